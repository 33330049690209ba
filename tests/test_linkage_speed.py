"""Speed shortcuts in the polars engine held to the code they replaced (same results, exactly)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tfkit.linkage.blocking import SORT_BY_POLARS_FROM, BlockingRule, RuleCount, plan_rule, sort_codes
from tfkit.linkage.model import LinkageModel
from tfkit.linkage.standardise import prepare


def _mode_filter(mode: str) -> pl.Expr:
    same = pl.col("_source") == pl.col("_source_r")
    return {"link": ~same, "dedupe": same, "both": pl.lit(True)}[mode]


def _cross_rule_by_join(prepared, rule, mode, limit):
    """The `cross` rule as it was: a polars group-by for the plan and a self-join for the pairs."""
    a, b = rule.cross
    frame = prepared.frame
    keys = [*rule.on, "_k"]
    sides = [frame.select(*rule.on, pl.col(c).alias("_k")).drop_nulls().group_by(keys).len(name=f"n{i}")
             for i, c in enumerate((a, b))]
    blocks = sides[0].join(sides[1], on=keys).with_columns((pl.col("n0").cast(pl.Int64) * pl.col("n1")).alias("pairs"))
    over = blocks.filter(pl.col("pairs") > limit) if limit is not None else blocks.clear()
    kept = blocks.filter((pl.col("pairs") <= limit) & (pl.col("pairs") > 0)) if limit is not None else \
        blocks.filter(pl.col("pairs") > 0)
    count = RuleCount(rule.name, 0, int(kept["pairs"].sum()), over.height, int(over["pairs"].sum()),
                      int(kept["pairs"].max() or 0))
    keep = kept.select(keys) if over.height else None
    rows = prepared.frame.select("_rid", "_source", *rule.on, a, b).drop_nulls(list(rule.on))
    left = rows.lazy().select("_rid", "_source", *rule.on, pl.col(a).alias("_k")).drop_nulls("_k")
    right = rows.lazy().select("_rid", "_source", *rule.on, pl.col(b).alias("_k")).drop_nulls("_k")
    if keep is not None:
        left = left.join(keep.lazy(), on=keys, how="semi")
    pairs = (left.join(right, on=keys, how="inner", suffix="_r")
             .filter((pl.col("_rid") != pl.col("_rid_r")) & _mode_filter(mode))
             .select(pl.min_horizontal("_rid", "_rid_r").alias("rid_l"), pl.max_horizontal("_rid", "_rid_r").alias("rid_r"))
             .unique().sort("rid_l", "rid_r").collect())
    return count, pairs["rid_l"].to_numpy(), pairs["rid_r"].to_numpy()


@pytest.fixture(scope="module")
def crowd():
    """Three sources of people with few names (big blocks), swapped names, nulls and typos."""
    rng = np.random.default_rng(5)
    names = np.array(["Lee", "Ray", "Fox", "Ann", "Bob", "Leigh", "Rae", None], dtype=object)
    frames = []
    for s in range(3):
        n = 60
        frames.append(pl.DataFrame({
            "record_id": [f"{s}-{i}" for i in range(n)],
            "forename": rng.choice(names, n).tolist(), "surname": rng.choice(names, n).tolist(),
            "dob": rng.choice(np.array(["1990-01-01", "1991-02-02", "02/01/1990", None], dtype=object), n).tolist(),
            "postcode": rng.choice(np.array(["E17 5LA", "E10 5PD", "2612", None], dtype=object), n).tolist(),
            "sex": rng.choice(np.array(["M", "F", None], dtype=object), n).tolist()}))
    fields = {"forename": "name", "surname": "surname", "dob": "date", "postcode": "postcode", "sex": "category"}
    return prepare(frames, ["a", "b", "c"], fields, id_column="record_id")


@pytest.mark.parametrize("size", [0, 1, SORT_BY_POLARS_FROM - 1, SORT_BY_POLARS_FROM, 50_000])
def test_codes_sorted_by_polars_in_place_equal_numpys_sort(size):
    rng = np.random.default_rng(size)
    values = rng.integers(-(1 << 62), 1 << 62, size, dtype=np.int64)
    values[: size // 3] = values[size // 2: size // 2 + size // 3]  # repeated codes too
    expected = np.sort(values)
    got = sort_codes(values)
    assert got is values  # in place, as ndarray.sort
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("on", [(), ("postcode",), ("dob",)])
def test_cross_rule_by_sorting_equals_the_join(crowd, on):
    rule = BlockingRule("names swapped", on, cross=("forename_dm", "surname_dm"))
    for mode in ("link", "dedupe", "both"):
        for limit in (None, 1, 12, 250_000):
            want = _cross_rule_by_join(crowd, rule, mode, limit)
            got = plan_rule(crowd, rule, mode, limit)
            assert got[0] == want[0], (mode, limit)
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(got[2], want[2])


def _index_by_search(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """`standardise._distinct`'s index as it was: a binary search of the sorted distinct values."""
    present = values.drop_nulls().unique().sort()
    index = present.search_sorted(values).cast(pl.UInt32)
    if values.null_count():
        index = index.scatter(values.is_null().arg_true(), present.len())
    return present, index


@pytest.mark.parametrize("seed", range(4))
def test_distinct_values_and_codes_by_hash_equal_the_binary_search(seed):
    from tfkit.linkage.standardise import _codes, _distinct

    rng = np.random.default_rng(seed)
    pool = np.array(["", "A", "a", "É", "ÉA", "Zoë", "  x", "SMITH", "SMITH-JONES", "9", None], dtype=object)
    values = pl.Series("v", rng.choice(pool, 500).tolist(), dtype=pl.String)
    distinct, index = _distinct(pl.DataFrame({"v": values}), "v")
    present, want = _index_by_search(values)
    assert index.equals(want)
    assert distinct["_raw"].head(present.len()).equals(present.rename("_raw"))
    codes = _codes(values, present)
    want_codes = present.search_sorted(values).cast(pl.Int32)
    if values.null_count():
        want_codes = want_codes.scatter(values.is_null().arg_true(), None)
    assert codes.equals(want_codes, check_names=False)


def test_jaro_winkler_once_per_distinct_pair_of_values_equals_every_pair(crowd):
    from tfkit.linkage.comparisons import PairContext, jaro_winkler_kernel
    from tfkit.linkage.standardise import NULL

    rng = np.random.default_rng(3)
    rid_l, rid_r = rng.integers(0, crowd.n, (2, 5000))
    ctx = PairContext(crowd, rid_l, rid_r)
    for column in ("forename", "surname"):
        left, right = ctx.pair(column)
        want = np.zeros(len(left), dtype=np.float32)
        want[(left == right) & (left != NULL)] = 1.0
        todo = (left != NULL) & (right != NULL) & (left != right)
        vocab = crowd.vocab[column]
        want[todo] = jaro_winkler_kernel(vocab.gather(left[todo]), vocab.gather(right[todo]))
        np.testing.assert_array_equal(ctx.jaro_winkler(column), want)


@pytest.mark.parametrize("same_source", [True, False])
def test_grid_pairs_give_the_levels_of_the_same_pairs_gathered_one_by_one(crowd, same_source):
    # The u sample's grid (row and column of each pair, then gathers) against explicit pairs.
    from tfkit.linkage.comparisons import GridPairs, PairContext, SimilarityTable

    model = LinkageModel.default()
    left = np.arange(0, 60) if same_source else np.arange(0, 60, 2)
    right = np.arange(0, 60) if same_source else np.arange(60, 180, 3)
    grid_l, grid_r = np.repeat(left, len(right)), np.tile(right, len(left))
    if same_source:
        keep = grid_l < grid_r
        grid_l, grid_r = grid_l[keep], grid_r[keep]
    for c in model.comparisons:
        table = SimilarityTable(crowd, left, right)
        grids = [GridPairs(crowd, table, slice(s, s + 7), same_source=same_source) for s in range(0, len(left), 7)]
        got = np.concatenate([g.flat(c.levels(g)) for g in grids])
        np.testing.assert_array_equal(got, c.levels(PairContext(crowd, grid_l, grid_r)), err_msg=c.name)


@pytest.mark.parametrize("mode", ["link", "dedupe"])
def test_u_sample_patterns_counted_by_block_equal_every_pairs_levels(crowd, mode, monkeypatch):
    """estimate_u counts the sampled pairs' patterns a block at a time by their codes; the same as
    keeping every pair's levels and counting them at the end (the path a model too wide for a code takes)."""
    from tfkit.linkage import training

    def u_patterns():
        model = LinkageModel.default()
        training.estimate_u(crowd, model, mode=mode, seed=3)
        return model.u_patterns, model.u

    (g1, c1), u1 = u_patterns()
    monkeypatch.setattr(training, "MAX_RADIX_PATTERNS", 0)
    (g2, c2), u2 = u_patterns()
    assert np.array_equal(g1, g2) and np.array_equal(c1, c2) and c1.sum() > 1000
    assert all(np.array_equal(u1[k], u2[k]) for k in u1)


def test_training_beside_blocking_gives_the_sequential_model_and_log(monkeypatch):
    """`link` runs u and the EM sessions on a second thread while it blocks and compares
    (linker.TrainingBeside); the model, its log and the scored pairs must be those of training in sequence."""
    from tfkit.demo import generate_frames
    from tfkit.linkage import link, linker

    from tests.fixtures.demo_frames import cohort_and_partners

    inputs = cohort_and_partners(generate_frames(1500, seed=4), n_right=1500)

    def run():
        result = link(inputs, LinkageModel.default(), mode="link")
        return result.model, result.scored

    (threaded, pairs_threaded) = run()
    monkeypatch.setattr(linker.TrainingBeside, "wanted", staticmethod(lambda lk, labels: False))
    (sequential, pairs_sequential) = run()
    assert threaded.training_log == sequential.training_log and threaded.prior == sequential.prior
    assert [step["step"] for step in threaded.training_log][:2] == ["u", "prior"]
    for name in sequential.m:
        assert np.array_equal(threaded.m[name], sequential.m[name]) and np.array_equal(threaded.u[name], sequential.u[name])
    assert pairs_threaded.equals(pairs_sequential)


def test_training_beside_blocking_raises_its_error_on_the_caller(monkeypatch):
    from tfkit.demo import generate_frames
    from tfkit.linkage import link, training

    from tests.fixtures.demo_frames import cohort_and_partners

    def broken(*args, **kwargs):
        raise RuntimeError("u failed")

    monkeypatch.setattr(training, "estimate_u", broken)
    with pytest.raises(RuntimeError, match="u failed"):
        link(cohort_and_partners(generate_frames(300, seed=4)), LinkageModel.default(), mode="link")
