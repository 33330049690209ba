"""What keeps the default model's probabilities honest on populations tfkit did not make (issue 11):
a full name's own frequency where forenames and surnames cluster, names swapped counted once, and
the weight-order check flagging only what matters."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tfkit.linkage.evaluate import ORDER_MARGIN_BITS, weights_out_of_order
from tfkit.linkage.model import LinkageModel
from tfkit.linkage.predict import full_name_adjustment, name_partners, score
from tfkit.linkage.standardise import prepare


def _population(n_cluster: int, n_other: int, seed: int = 0) -> pl.DataFrame:
    """`n_cluster` people called SIMRAN KAUR (a clustered full name) and `n_other` others whose
    forenames and surnames are drawn independently, among them SIMRANs and KAURs."""
    rng = np.random.default_rng(seed)
    forenames = np.array(["SIMRAN", "ANNA", "BEN", "CHLOE", "DAVID", "ELLA", "FINN", "GRACE"])
    surnames = np.array(["KAUR", "SMITH", "JONES", "TAYLOR", "BROWN", "WILSON", "DAVIES", "WRIGHT"])
    fn = np.concatenate([np.repeat("SIMRAN", n_cluster), forenames[rng.integers(0, 8, n_other)]])
    sn = np.concatenate([np.repeat("KAUR", n_cluster), surnames[rng.integers(0, 8, n_other)]])
    n = n_cluster + n_other
    return pl.DataFrame({"record_id": [str(i) for i in range(n)], "forename": fn, "surname": sn,
                         "dob": ["2001-02-03"] * n, "postcode": ["E4 9AA"] * n})


def _prepare(frame: pl.DataFrame, model: LinkageModel):
    model.comparisons = [c for c in model.comparisons if c.name != "sex"]
    return prepare([frame], ["a"], model.field_kinds(), id_column="record_id")


def _adjust(frame: pl.DataFrame, i: int, j: int) -> float:
    model = LinkageModel.default()
    prepared = _prepare(frame, model)
    (first, second), = name_partners(model)
    levels = {first.name: np.array([0], dtype=np.int8), second.name: np.array([0], dtype=np.int8)}
    return float(full_name_adjustment(prepared, model, first, second, levels, np.array([i]), np.array([j]))[0])


def test_a_clustered_full_name_weighs_less_than_its_two_names_say():
    # 300 SIMRAN KAURs among 2,300: the product of the two names' shares (about 0.24 x 0.24) says
    # two strangers share that full name about 6% of the time; the full name's own share is 14%.
    frame = _population(300, 2000)
    adjust = _adjust(frame, 0, 1)
    tf_f = (frame["forename"] == "SIMRAN").mean()
    tf_s = (frame["surname"] == "KAUR").mean()
    holders = ((frame["forename"] == "SIMRAN") & (frame["surname"] == "KAUR")).sum()
    share = (holders - 2 + 1) / (frame.height + 1 / (tf_f * tf_s))
    assert adjust == pytest.approx(np.log2(tf_f * tf_s / share), rel=1e-6)
    assert adjust < -1


def test_independent_names_keep_their_weight():
    # Names drawn independently: a full name is as common as its two names say, give or take.
    frame = _population(0, 4000, seed=1)
    pairs = frame.with_row_index("i").group_by("forename", "surname").agg(pl.col("i").head(2)).filter(
        pl.col("i").list.len() == 2)
    adjustments = [_adjust(frame, *row) for row in pairs["i"].to_list()]
    assert abs(np.mean(adjustments)) < 0.3


def test_a_full_name_nobody_else_holds_keeps_its_independence_weight():
    frame = _population(0, 3000, seed=2).vstack(pl.DataFrame(
        {"record_id": ["x", "y"], "forename": ["ZYGMUNT"] * 2, "surname": ["QUARTERMAINE"] * 2,
         "dob": ["2001-02-03"] * 2, "postcode": ["E4 9AA"] * 2}))
    assert abs(_adjust(frame, frame.height - 2, frame.height - 1)) < 0.01


def test_names_swapped_count_once():
    frame = pl.DataFrame({"record_id": ["1", "2"], "forename": ["AHMED", "WAQAS"], "surname": ["WAQAS", "AHMED"],
                          "dob": ["2005-06-15", "2005-06-15"], "postcode": ["E17 5DU", "E17 5DU"]})
    model = LinkageModel.default()
    model.comparisons = [c for c in model.comparisons if c.name != "sex"]
    prepared = _prepare(frame, model)
    names = [c.name for c in model.comparisons]
    for name in names:
        model.m[name] = np.full(next(c.n_levels for c in model.comparisons if c.name == name), 0.1)
        model.u[name] = np.full(len(model.m[name]), 0.1)
    model.prior = 0.01
    # Both swap levels ("swapped", "one name swapped"), looked up by label: +log2(8) = 3 bits each
    # ladder, counted once.
    for kind in ("swapped with", "one name swapped with"):
        at = {c.name: c.labels.index(f"{kind} {c.options['swap_with']}") for c in model.comparisons[:2]}
        for name in names:
            model.m[name] = np.full(len(model.m[name]), 0.1)
        model.m["forename"][at["forename"]] = model.m["surname"][at["surname"]] = 0.8
        # DOB and postcode at their last level (m = u: no evidence, and no TF adjustment there).
        levels = {c.name: np.array([c.n_levels - 1], dtype=np.int8) for c in model.comparisons}
        levels["forename"][0], levels["surname"][0] = at["forename"], at["surname"]
        one = np.array([0]), np.array([1])
        scored = score(prepared, model, *one, levels)
        assert scored["match_weight"][0] == pytest.approx(model.prior_weight + 3.0, abs=1e-9)


def test_order_check_leaves_out_side_levels_and_small_differences():
    model = LinkageModel.default()
    model.comparisons = [c for c in model.comparisons if c.name == "dob"]
    dob = model.comparisons[0]
    assert dob.labels[1] == "day and month swapped" and 1 in dob.side_levels
    n = dob.n_levels
    model.u = {"dob": np.full(n, 1.0 / n)}
    model.u_counts = {"dob": np.full(n, 1000.0)}
    model.prior = 0.01
    m = np.array([0.5, 0.9, 0.05, 0.05, 0.01, 0.012, 0.01, 0.01])  # swapped above exact: a side level, fine
    model.m = {"dob": m / m.sum()}
    assert weights_out_of_order(model) == []
    # "within a month" a fraction of a bit under "within a year": noise, not flagged.
    assert np.log2(0.012 / 0.01) < ORDER_MARGIN_BITS
    # A closer level two bits under a looser one is flagged.
    m2 = m.copy()
    m2[4] = 0.0025
    model.m = {"dob": m2 / m2.sum()}
    assert [(f["closer"], f["looser"]) for f in weights_out_of_order(model)] == [("within a month", "within a year")]


def test_u_leaves_out_the_matches_among_the_random_pairs():
    """Random pairs hold matches too (a share lambda of them): u is their level frequencies with each
    pair counted by its chance of being a non-match, not the raw frequencies (FEBRL1: DOB exact's
    sampled u was 9.9e-4, of which 9e-4 were the duplicates themselves)."""
    from tfkit.linkage import link
    from tests.test_linkage_engine import _febrl_like

    result = link(_febrl_like(100), LinkageModel.default(), mode="link")  # b is a copy of a: lambda = 1/100
    model = result.model
    sampled = (model.u_counts["dob"] + 1) / (model.u_counts["dob"] + 1).sum()
    assert sampled[0] > 0.009  # the 100 matches among the 10,000 pairs agree on DOB
    assert model.u["dob"][0] < sampled[0] / 5 and model.u["dob"].sum() == pytest.approx(1.0)
    assert model.u["dob"][-1] == pytest.approx(sampled[-1], rel=0.02)  # 'else' is all non-matches anyway
    assert model.prior == pytest.approx(0.01, rel=0.1)
