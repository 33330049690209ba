"""Blocking, EM, term-frequency adjustment, prior, clustering and evaluation arithmetic."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfkit.linkage.blocking import (BlockingRule, blocking_recall, candidate_pairs, comparisons_possible,
                                   sample_records, scope_blocks)
from tfkit.linkage.clustering import best_links, components
from tfkit.linkage.comparisons import Comparison, exact_comparison, name_comparison
from tfkit.linkage.evaluate import accuracy_curve
from tfkit.linkage.model import LinkageModel
from tfkit.linkage.predict import score
from tfkit.linkage.standardise import NULL, prepare
from tfkit.linkage.training import expectation_maximisation, patterns

FIELDS = {"forename": "name", "surname": "surname", "dob": "date", "postcode": "postcode"}


def people(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["record_id", "forename", "surname", "dob", "postcode", "key"], orient="row")


@pytest.fixture
def two_sources():
    d = dt.date(1990, 1, 1)
    a = people([("a1", "Ann", "Lee", d, "E17 5LA", 1), ("a2", "Bob", "Lee", d, "E17 5LA", 2),
                ("a3", "Cat", "Ray", dt.date(1991, 2, 2), "E10 5PD", 3), ("a4", "Dan", "Fox", None, None, 4)])
    b = people([("b1", "Ann", "Lee", d, "E17 5LA", 1), ("b2", "Bob", "Lea", d, "E17 5QT", 2),
                ("b3", "Kat", "Ray", dt.date(1991, 2, 2), "E10 5PD", 3), ("b4", "Dan", "Fox", dt.date(2000, 1, 1), None, 4)])
    return prepare([a, b], ["a", "b"], FIELDS, id_column="record_id", keep=("key",))


def test_blocking_union_generates_each_pair_once(two_sources):
    rules = [BlockingRule("dob", ("dob",)), BlockingRule("surname", ("surname",)),
             BlockingRule("dob again", ("dob",))]
    pairs, report = candidate_pairs(two_sources, rules, "link")
    assert pairs.select("rid_l", "rid_r").is_unique().all()
    # dob: a1,a2 x b1,b2 (4) + a3 x b3 (1); surname adds Lee/Lee pairs not on dob (none) and Fox/Fox.
    assert [r.pairs_added for r in report.rules] == [5, 1, 0]
    assert report.total_pairs == 6 == pairs.height
    assert set(zip(pairs["rid_l"], pairs["rid_r"])) >= {(0, 4), (1, 5), (2, 6), (3, 7)}
    assert (pairs["rid_l"] < 4).all() and (pairs["rid_r"] >= 4).all()  # link mode: across sources only


def test_union_keeps_each_pair_once_with_the_first_rule_that_made_it():
    from tfkit.linkage.blocking import _first_of_each_code, _first_of_each_pair

    lefts = [np.array([5, 1, 1]), np.array([1, 0]), np.array([5, 2])]
    rights = [np.array([9, 3, 4]), np.array([3, 7]), np.array([9, 8])]
    expected = [[0, 1, 1, 2, 5], [7, 3, 4, 8, 9], [1, 0, 0, 2, 0]]
    codes = [(a << 6) | (b << 2) | k for k, (a, b) in enumerate(zip(lefts, rights))]  # rid 4 bits, rule 2
    assert [g.tolist() for g in _first_of_each_code(codes, 4, 2)] == expected
    # Too many records to code a pair and its rule in one int64: a sort on the columns.
    assert [g.tolist() for g in _first_of_each_pair(list(zip(lefts, rights)))] == expected


def test_blocking_by_sorting_makes_every_pair_of_the_rule_once_in_each_mode():
    # Records sorted by (block, source, row): each record's partners are one run after it. Checked
    # against every pair of records, with three sources, nulls, and a block limit.
    from tfkit.linkage.blocking import plan_rule

    rng = np.random.default_rng(11)
    frames = []
    for s in range(3):
        n = 40
        frames.append(pl.DataFrame({"record_id": [f"{s}-{i}" for i in range(n)],
                                    "surname": rng.choice(np.array(["Lee", "Ray", "Fox", None], dtype=object), n).tolist(),
                                    "postcode": rng.choice(np.array(["E17 5LA", "E10 5PD", None], dtype=object), n).tolist()}))
    prepared = prepare(frames, ["a", "b", "c"], {"surname": "surname", "postcode": "postcode"}, id_column="record_id")
    surname, postcode = prepared.codes("surname"), prepared.codes("postcode")
    source = prepared.codes("_source")
    rule = BlockingRule("surname and postcode", ("surname", "postcode"))
    for mode in ("link", "dedupe", "both"):
        for limit in (None, 30):
            count, rid_l, rid_r = plan_rule(prepared, rule, mode, limit)
            got = sorted(zip(rid_l.tolist(), rid_r.tolist()))
            blocks: dict = {}
            for i in range(prepared.n):
                for j in range(i + 1, prepared.n):
                    same = source[i] == source[j]
                    in_scope = {"link": not same, "dedupe": same, "both": True}[mode]
                    if in_scope and surname[i] == surname[j] != NULL and postcode[i] == postcode[j] != NULL:
                        blocks.setdefault((surname[i], postcode[i]), []).append((i, j))
            kept = [p for b in blocks.values() if limit is None or len(b) <= limit for p in b]
            assert got == sorted(kept), (mode, limit)
            assert count.pairs_planned == len(kept)
            assert count.blocks_skipped == sum(1 for b in blocks.values() if limit is not None and len(b) > limit)


def test_blocking_modes_and_recall(two_sources):
    rules = [BlockingRule("dob", ("dob",))]
    dedupe, _ = candidate_pairs(two_sources, rules, "dedupe")
    assert set(zip(dedupe["rid_l"], dedupe["rid_r"])) == {(0, 1), (4, 5)}
    both, _ = candidate_pairs(two_sources, rules, "both")
    assert both.height == 5 + 2
    pairs, report = candidate_pairs(two_sources, rules, "link")
    report = blocking_recall(two_sources, pairs, "key", "link", report)
    assert report.true_pairs == 4 and report.true_pairs_found == 3 and report.recall == pytest.approx(0.75)
    assert comparisons_possible([4, 4], "link") == 16 and comparisons_possible([4, 4], "dedupe") == 12


def test_u_sample_is_seeded_and_sized_like_splinks(two_sources):
    # Two sources of 4: 16 pairs possible. 4 pairs wanted -> half of each source (2 x 2 records).
    a = sample_records(two_sources, 4, "link", seed=7)
    assert [len(r) for r in a] == [2, 2] and (a[0] < 4).all() and (a[1] >= 4).all()
    assert all((x == y).all() for x, y in zip(a, sample_records(two_sources, 4, "link", seed=7)))
    # More pairs wanted than exist: every record, so u is computed over every pair.
    every = sample_records(two_sources, 1_000_000, "link", seed=7)
    assert [r.tolist() for r in every] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert scope_blocks(2, "link") == [(0, 1)] and scope_blocks(2, "dedupe") == [(0, 0), (1, 1)]
    assert scope_blocks(2, "both") == [(0, 0), (0, 1), (1, 1)]


def _simulated_levels(rng, n_match, n_non, m, u):
    """Comparison vectors drawn from known m and u (conditionally independent)."""
    cols = {}
    for name in m:
        lm = rng.choice(len(m[name]), size=n_match, p=m[name])
        lu = rng.choice(len(u[name]), size=n_non, p=u[name])
        cols[name] = np.concatenate([lm, lu]).astype(np.int8)
    return cols


def test_em_converges_and_recovers_m_and_u():
    rng = np.random.default_rng(3)
    m = {"a": np.array([0.9, 0.07, 0.03]), "b": np.array([0.85, 0.15]), "c": np.array([0.8, 0.15, 0.05])}
    u = {"a": np.array([0.01, 0.09, 0.9]), "b": np.array([0.1, 0.9]), "c": np.array([0.02, 0.18, 0.8])}
    comps = [Comparison(n, n, "category", tuple(f"l{i}" for i in range(len(m[n])))) for n in m]
    levels = _simulated_levels(rng, 20_000, 80_000, m, u)
    gammas, counts = patterns(levels, comps)
    flat = {k: np.full(len(v), 1 / len(v)) for k, v in m.items()}
    start_m = {k: np.linspace(1, 0.2, len(v)) / np.linspace(1, 0.2, len(v)).sum() for k, v in m.items()}
    result = expectation_maximisation(gammas, counts, comps, start_m, flat, 0.3, max_iterations=500, tolerance=1e-8)
    assert result.converged
    assert result.match_share == pytest.approx(0.2, abs=0.01)
    for k in m:
        assert np.abs(result.m[k] - m[k]).max() < 0.02
        assert np.abs(result.u[k] - u[k]).max() < 0.02


def test_patterns_by_mixed_radix_code_equal_the_group_by(monkeypatch):
    from tfkit.linkage import training

    rng = np.random.default_rng(5)
    comps = [Comparison(n, n, "category", tuple(f"l{i}" for i in range(k))) for n, k in (("a", 7), ("b", 2), ("c", 4))]
    levels = {c.name: rng.integers(-1, c.n_levels, 5_000).astype(np.int8) for c in comps}
    levels["b"][:] = np.where(levels["b"] == 1, 1, -1)  # a level no pair reaches
    gammas, counts = patterns(levels, comps)
    monkeypatch.setattr(training, "MAX_RADIX_PATTERNS", 0)  # the group-by, for models with many levels
    by_group = patterns(levels, comps)
    np.testing.assert_array_equal(gammas, by_group[0])
    np.testing.assert_array_equal(counts, by_group[1])
    assert counts.sum() == 5_000 and gammas.dtype == np.int64


def test_term_frequency_adjustment_rare_names_weigh_more():
    names = ["SMITH"] * 40 + [f"RARE{i}" for i in range(20)]
    a = pl.DataFrame({"record_id": [f"a{i}" for i in range(60)], "surname": names})
    b = pl.DataFrame({"record_id": [f"b{i}" for i in range(60)], "surname": names})
    prepared = prepare([a, b], ["a", "b"], {"surname": "surname"}, id_column="record_id")
    model = LinkageModel.default()
    model.comparisons = [name_comparison("surname", "surname", kind="surname")]
    model.m = {"surname": np.array([0.9, 0.03, 0.03, 0.02, 0.02])}
    u_exact = float((prepared.tf["surname"] ** 2).sum())
    model.u = {"surname": np.array([u_exact, 0.01, 0.01, 0.01, 1 - u_exact - 0.03])}
    model.prior = 0.01
    rid_l = np.array([0, 40])   # SMITH v SMITH, RARE0 v RARE0
    rid_r = np.array([60, 100])
    scored = score(prepared, model, rid_l, rid_r, {"surname": np.array([0, 0], dtype=np.int8)})
    tf = scored["surname_tf_adjustment"].to_list()
    assert tf[0] < 0 < tf[1]  # common name: less evidence than average; rare: more
    w = scored["match_weight"].to_list()
    assert w[1] > w[0]


def test_components_and_best_links():
    labels = components(6, np.array([0, 1, 4]), np.array([1, 2, 5]))
    assert labels.tolist() == [0, 0, 0, 3, 4, 4]
    # Record 0 (source 0) has two candidates in source 1; it keeps its best, 1 keeps the other.
    pairs = pl.DataFrame({"rid_l": [0, 0, 1], "rid_r": [2, 3, 2], "match_weight": [5.0, 3.0, 4.0]})
    links = best_links(pairs, np.array([0, 0, 1, 1]))
    assert set(zip(links["rid_l"], links["rid_r"])) == {(0, 2)}
    pairs = pl.DataFrame({"rid_l": [0, 0, 1], "rid_r": [2, 3, 3], "match_weight": [5.0, 3.0, 4.0]})
    links = best_links(pairs, np.array([0, 0, 1, 1]))
    assert set(zip(links["rid_l"], links["rid_r"])) == {(0, 2), (1, 3)}


def test_accuracy_arithmetic():
    p = np.array([0.99, 0.95, 0.8, 0.6, 0.2])
    match = np.array([True, True, False, True, False])
    at = accuracy_curve(p, match, total_true=4, thresholds=np.array([0.9, 0.5, 0.1, 1.0]))
    assert (at[0].true_positives, at[0].false_positives, at[0].false_negatives) == (2, 0, 2)
    assert at[0].precision == 1.0 and at[0].recall == 0.5 and at[0].f1 == pytest.approx(2 / 3)
    assert (at[1].true_positives, at[1].false_positives, at[1].false_negatives) == (3, 1, 1)
    assert at[1].f1 == pytest.approx(0.75)
    assert at[2].false_positives == 2
    assert at[3].true_positives == 0 and at[3].precision == 1.0 and at[3].recall == 0.0


def test_sex_comparison_is_category():
    assert exact_comparison("sex", "sex").field_kinds() == {"sex": "category"}


def _reference_components(n, edges):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [min(i for i in range(n) if find(i) == find(j)) for j in range(n)]


def test_components_match_union_find():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.integers(1, 30).flatmap(lambda n: st.tuples(
        st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=40))))
    def check(case):
        n, edges = case
        l = np.array([e[0] for e in edges], dtype=np.int64)
        r = np.array([e[1] for e in edges], dtype=np.int64)
        assert components(n, l, r).tolist() == _reference_components(n, edges)

    check()


def test_model_file_may_override_only_settings_and_is_validated():
    from tfkit.errors import ConfigError

    model = LinkageModel.from_toml("[settings]\nthreshold = 0.95\nreview_lower = 0.6\n", source="m.toml")
    assert model.settings.threshold == 0.95
    assert [c.name for c in model.comparisons] == ["forename", "surname", "dob", "postcode", "sex"]
    assert model.training and model.blocking
    assert LinkageModel.from_toml("training = []\n", source="m.toml").training == []
    for bad, words in [("[settings]\ndeterministic_recall = 0", "deterministic_recall"),
                       ("[settings]\ncolour = 1", "settings.colour"), ("x = 1", "unknown top-level"),
                       ("[settings]\nthreshold = 'high'", "must be a number"),
                       ("[[blocking]]\non = []", "non-empty list")]:
        with pytest.raises(ConfigError, match=words):
            LinkageModel.from_toml(bad, source="m.toml")


def _febrl_like(n: int = 40, seed: int = 3) -> dict[str, pl.DataFrame]:
    """Two small sources with FEBRL's shape: no sex column, yyyymmdd text dates, Australian postcodes."""
    rng = np.random.default_rng(seed)
    forenames = ["ANNA", "BEN", "CHLOE", "DAVID", "ELLA", "FINN", "GRACE", "HARRY", "ISLA", "JACK"]
    surnames = ["SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES", "ROBINSON", "WRIGHT"]
    rows = [(f"{i}", forenames[rng.integers(10)], surnames[rng.integers(10)],
             f"19{rng.integers(40, 99)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}", f"{rng.integers(2000, 7000)}")
            for i in range(n)]
    a = pl.DataFrame(rows, schema=["record_id", "forename", "surname", "dob", "postcode"], orient="row")
    b = a.with_columns(pl.format("b{}", "record_id").alias("record_id"))
    return {"a": a.with_columns(pl.col("record_id").alias("key")), "b": b.with_columns(pl.col("record_id").str.slice(1).alias("key"))}


def test_optional_comparison_no_source_has_is_dropped_with_a_warning():
    from tfkit.linkage import link

    result = link(_febrl_like(), LinkageModel.default(), mode="link", truth_column="key")
    assert "sex" not in [c.name for c in result.model.comparisons]
    codes = [w["code"] for w in result.summary()["warnings"]]
    assert "optional_comparison_dropped" in codes
    assert result.metrics["at_threshold"]["recall"] > 0.9


def test_blocking_plan_counts_pairs_from_block_sizes_and_skips_oversized_blocks():
    # Ten SMITHs on each side (a 100-pair block) and one LEE each: the plan counts 101 pairs; with
    # a limit of 50 pairs per block the SMITH block is skipped, and the report says so.
    a = people([(f"a{i}", "Ann", "Smith", None, None, i) for i in range(10)] + [("a10", "Bo", "Lee", None, None, 10)])
    b = people([(f"b{i}", "Ann", "Smith", None, None, i) for i in range(10)] + [("b10", "Bo", "Lee", None, None, 10)])
    prepared = prepare([a, b], ["a", "b"], FIELDS, id_column="record_id", keep=("key",))
    pairs, report = candidate_pairs(prepared, [BlockingRule("surname", ("surname",))], "link", max_block_pairs=1000)
    assert pairs.height == 101 and report.rules[0].pairs_planned == 101 and report.rules[0].blocks_skipped == 0
    pairs, report = candidate_pairs(prepared, [BlockingRule("surname", ("surname",))], "link", max_block_pairs=50)
    r = report.rules[0]
    assert pairs.height == 1 and (r.pairs_planned, r.blocks_skipped, r.pairs_skipped) == (1, 1, 100)
    assert report.to_dict()["cumulative_pairs_planned"] == [1]
    # dedupe counts pairs within a source: 10 SMITHs make 45
    _, report = candidate_pairs(prepared, [BlockingRule("surname", ("surname",))], "dedupe")
    assert report.rules[0].pairs_planned == 45 * 2


def test_blocking_rules_survive_swapped_names_and_one_wrong_date_part():
    a = people([("a1", "Abby", "Sporn", "19830505", "2340", 1), ("a2", "Lia", "Maynard", "19250717", "3169", 2)])
    b = people([("b1", "Sporn", "Abbie", None, "2340", 1), ("b2", "Lia", "Maymard", "19250917", "9999", 2)])
    prepared = prepare([a, b], ["a", "b"], FIELDS, id_column="record_id", keep=("key",))
    swapped = BlockingRule.from_spec({"on": ["postcode"], "cross": ["forename_dm", "surname_dm"]})
    pairs, _ = candidate_pairs(prepared, [swapped], "link")
    assert list(zip(pairs["rid_l"], pairs["rid_r"])) == [(0, 2)]
    partial = BlockingRule("forename, year+day", ("forename", "dob_yd"))
    pairs, _ = candidate_pairs(prepared, [partial], "link")
    assert list(zip(pairs["rid_l"], pairs["rid_r"])) == [(1, 3)]


def test_default_blocking_rules_are_equi_joins_on_prepared_columns():
    model = LinkageModel.default()
    prepared = prepare([people([("a1", "Ann", "Lee", "19900101", "E17 5LA", 1)])], ["a"], FIELDS,
                       id_column="record_id")
    for rule in model.blocking:
        assert set(rule.columns) <= set(prepared.frame.columns), rule.name


def test_invisible_values_are_missing_and_long_values_truncated_and_counted():
    a = people([("a1", "\u200d\u200b", "Lee", "19900101", "\u2060", 1), ("a2", "A" * 5000, "Lee", "19900101", None, 2)])
    prepared = prepare([a], ["a"], FIELDS, id_column="record_id")
    assert prepared.codes("forename")[0] < -2**30 and prepared.codes("postcode")[0] < -2**30  # NULL
    assert prepared.truncated == {"forename": 1}
    assert prepared.vocab["forename"].str.len_chars().max() <= 200


def test_relatives_with_another_forename_and_sex_are_non_links():
    from tfkit.linkage import link

    frames = _febrl_like(60)
    a, b = frames["a"], frames["b"]
    sexes = pl.Series(["F", "M"] * 30)
    a, b = a.with_columns(sexes.alias("sex")), b.with_columns(sexes.alias("sex"))
    twin = a.head(1).with_columns(pl.lit("t1").alias("record_id"), pl.lit("ZACHARY").alias("forename"),
                                  pl.lit("M" if a["sex"][0] == "F" else "F").alias("sex"), pl.lit("twin").alias("key"))
    result = link({"a": pl.concat([a, twin]), "b": b}, LinkageModel.default(), mode="link", truth_column="key")
    pair = result.pairs.filter((pl.col("record_id_l") == "t1") & (pl.col("record_id_r") == "b0"))
    assert pair.height == 1 and pair["match_probability"][0] == 0.0 and pair["non_link_rule"][0]
    assert result.pairs.filter(pl.col("record_id_l") == "0", pl.col("record_id_r") == "b0")["match_probability"][0] > 0.9


def test_a_junior_with_his_fathers_forename_is_a_non_link_when_one_sex_is_not_recorded():
    from tfkit.linkage import link

    frames = _febrl_like(60)
    a, b = frames["a"], frames["b"]
    sexes = pl.Series(["M", "F"] * 30)
    a, b = a.with_columns(sexes.alias("sex")), b.with_columns(sexes.alias("sex"))
    # The son: his father's forename, surname and postcode, born 31 years later, sex not recorded
    # (a DWP-style extract). Before 'sex=null' the junior rules needed the same sex recorded.
    born = str(int(a["dob"][0][:4]) + 31) + a["dob"][0][4:]  # + 30 may differ in one digit only
    junior = b.head(1).with_columns(pl.lit("j1").alias("record_id"), pl.lit(born).alias("dob"),
                                    pl.lit(None, dtype=pl.String).alias("sex"), pl.lit("junior").alias("key"))
    model = LinkageModel.default()
    assert ["forename=exact", "dob=else", "sex=null"] in model.settings.non_link_when
    assert [("forename", 0), ("dob", 7), ("sex", -1)] in model.non_link_rules()
    result = link({"a": a, "b": pl.concat([b, junior])}, model, mode="link", truth_column="key")
    pair = result.pairs.filter((pl.col("record_id_l") == "0") & (pl.col("record_id_r") == "j1"))
    assert pair.height == 1 and pair["non_link_rule"][0] and pair["match_probability"][0] == 0.0
    assert result.pairs.filter(pl.col("record_id_l") == "0", pl.col("record_id_r") == "b0")["match_probability"][0] > 0.9


def test_em_that_does_not_converge_says_so_and_out_of_order_weights_are_flagged():
    from tfkit.linkage import link
    from tfkit.linkage.evaluate import weights_out_of_order

    model = LinkageModel.default()
    model.settings.em_max_iterations = 1
    result = link(_febrl_like(), model, mode="link")
    linker = result.linker
    codes = [w["code"] for w in result.summary()["warnings"]]
    assert "em_not_converged" in codes
    assert any(t.get("converged") is False for t in linker.model.training_log)
    # A looser level weighing more than a closer one is flagged, exact-level TF aside.
    m = linker.model
    m.m["dob"] = np.array([0.5, 0.01, 0.01, 0.01, 0.01, 0.39, 0.03, 0.04])
    m.u["dob"] = np.array([0.001, 0.0001, 0.001, 0.001, 0.002, 0.0001, 0.01, 0.9848])
    m.u_counts["dob"] = np.full(8, 100.0)
    flagged = [(f["closer"], f["looser"]) for f in weights_out_of_order(m) if f["comparison"] == "dob"]
    assert ("exact", "within a year") in flagged
    m.u_counts["dob"][5] = 0  # a level (almost) never seen among random pairs is not held against the order
    flagged = [(f["closer"], f["looser"]) for f in weights_out_of_order(m) if f["comparison"] == "dob"]
    assert ("exact", "within a year") not in flagged


def test_prior_is_refined_on_the_candidates_once_m_and_u_are_trained():
    from tfkit.linkage.linker import Linker

    linker = Linker(_febrl_like(), LinkageModel.default(), mode="link")
    linker.training.train()
    steps = [t for t in linker.model.training_log if t["step"] == "prior"]
    assert steps[0]["method"] == "deterministic rules" and steps[-1]["method"].startswith("fixed point")
    # 40 true pairs among 40 x 40: the refined prior lands near 1/40, whatever the rules' assumed recall.
    assert 0.5 / 40 < linker.model.prior < 2 / 40


def test_a_pair_in_a_block_an_earlier_rule_skipped_is_still_produced_once_by_a_later_rule():
    # The SMITH block is skipped by the first rule (over its limit); the second rule must still
    # produce the pair ANN SMITH x ANN SMITH, and every pair stays unique.
    a = people([(f"a{i}", f"N{i}", "Smith", None, None, i) for i in range(10)] + [("a10", "Ann", "Smith", None, None, 10)])
    b = people([(f"b{i}", f"M{i}", "Smith", None, None, 100 + i) for i in range(10)] + [("b10", "Ann", "Smith", None, None, 10)])
    prepared = prepare([a, b], ["a", "b"], FIELDS, id_column="record_id", keep=("key",))
    rules = [BlockingRule("surname", ("surname",), max_block_pairs=50), BlockingRule("names", ("forename", "surname"))]
    pairs, report = candidate_pairs(prepared, rules, "link")
    assert [r.pairs_added for r in report.rules] == [0, 1] and report.rules[0].blocks_skipped == 1
    assert pairs.select("rid_l", "rid_r").is_unique().all()


def test_pairs_written_a_row_group_at_a_time_are_the_bytes_of_the_whole_frame(tmp_path, monkeypatch):
    # LinkResult holds the scored pairs by row position only; `pairs.parquet` gathers the record ids
    # per row group (never all pairs' ids at once). Row groups of 7 rows: many batches, same bytes.
    import tfkit.parquet
    from tfkit.linkage import link
    from tfkit.linkage.outputs import _stats, write_outputs

    monkeypatch.setattr(tfkit.parquet, "ROW_GROUP_SIZE", 7)
    result = link(_febrl_like(), LinkageModel.default(), mode="link", review_lower=0.01)
    pairs = result.pairs
    assert pairs.height == result.scored.height > 7 and "rid_l" not in pairs.columns
    assert pairs.columns[:4] == ["source_l", "record_id_l", "source_r", "record_id_r"]
    assert result.review.drop("review_reason").equals(pairs.filter(
        pl.col("match_probability").is_between(0.01, result.threshold, closed="left")))
    assert (result.review["review_reason"] == "in the review band").all()  # no clean source: the band alone
    assert result.summary()["candidate_pairs"] == pairs.height
    write_outputs(result, tmp_path / "out")
    meta = {"tfkit.linkage.threshold": str(result.threshold), "tfkit.linkage.review_lower": str(result.review_lower)}
    whole = tfkit.parquet.write_parquet(pairs, tmp_path / "whole.parquet", statistics=_stats(pairs), metadata=meta)
    assert (tmp_path / "out" / "pairs.parquet").read_bytes() == whole.read_bytes()


def test_training_holds_the_patterns_a_non_link_rule_vetoes_among_the_non_matches():
    from tfkit.linkage.training import vetoed

    model = LinkageModel.default()
    names = [c.name for c in model.comparisons]  # forename, surname, dob, postcode, sex
    col = {n: k for k, n in enumerate(names)}
    twins = np.zeros(len(names), dtype=np.int64)  # same surname, DOB, postcode and sex ...
    twins[col["forename"]] = 7  # ... another forename: same-sex twins
    brother = twins.copy()
    brother[col["sex"]] = 1  # another forename and another sex
    same = np.zeros(len(names), dtype=np.int64)
    gammas = np.stack([twins, brother, same])
    assert vetoed(model, gammas, model.comparisons).tolist() == [True, True, False]
    # An EM session on dob sees no dob level: its own column agrees exactly, so the twins' rule
    # (which needs dob=exact) still applies there; a rule on a comparison absent for another
    # reason is not applied.
    free = [c for c in model.comparisons if c.name != "dob"]
    without_dob = np.delete(gammas, col["dob"], axis=1)
    assert vetoed(model, without_dob, free, exact=["dob"]).tolist() == [True, True, False]
    only_same_sex_twins = [[("forename", 7), ("surname", 0), ("dob", 0), ("sex", 0)]]
    model.non_link_rules = lambda: only_same_sex_twins  # type: ignore[method-assign]
    assert vetoed(model, without_dob, free).tolist() == [False, False, False]

    # EM keeps vetoed patterns out of the match class: relatives (another forename, all else the
    # same) would otherwise teach it that matches often disagree on the forename.
    comps = [Comparison("f", "f", "category", ("same", "else")), Comparison("d", "d", "category", ("same", "else"))]
    g = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    counts = np.array([900.0, 300.0, 1_000.0, 100_000.0])  # 300 relatives: another forename, same DOB
    u = {"f": np.array([0.01, 0.99]), "d": np.array([0.0001, 0.9999])}
    m0 = {"f": np.array([0.9, 0.1]), "d": np.array([0.9, 0.1])}
    free_em = expectation_maximisation(g, counts, comps, m0, u, 0.1, fix_u=True)
    held = expectation_maximisation(g, counts, comps, m0, u, 0.1, fix_u=True,
                                    non_match=np.array([False, True, False, False]))
    assert free_em.m["f"][1] > 0.2 and held.m["f"][1] < 0.01


def test_default_em_sessions_include_surname_and_postcode():
    # Forename and DOB get m from two sessions each (dob; surname and postcode), not one.
    sessions = [tuple(r.columns) for r in LinkageModel.default().training]
    assert sessions == [("dob",), ("forename", "surname"), ("surname", "postcode")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=60), max_size=40), st.one_of(st.none(), st.integers(1, 60)),
       st.integers(min_value=0, max_value=400), st.randoms(use_true_random=False))
def test_a_rules_budget_leaves_out_its_largest_blocks_until_the_rest_fit(pairs, limit, budget, rnd):
    from tfkit.linkage.blocking import skipped_blocks

    pairs = np.array(pairs, dtype=np.int64)
    over, lowered = skipped_blocks(pairs, limit, budget)
    plain, _ = skipped_blocks(pairs, limit, None)
    kept = pairs[~over]
    assert (over >= plain).all()  # the block limit still holds
    if lowered is None:
        assert (over == plain).all() and pairs[~plain].sum() <= budget
    else:
        assert kept.sum() <= budget and (kept <= lowered).all()
        # the largest: every block left out by the budget is larger than every kept one, and the
        # next size up would not have fitted
        assert (pairs[over & ~plain] > lowered).all()
        nxt = pairs[over & ~plain].min()
        assert pairs[~plain & (pairs <= nxt)].sum() > budget
    # block sizes alone decide: the same in any order
    order = list(range(len(pairs)))
    rnd.shuffle(order)
    again, lowered_again = skipped_blocks(pairs[order], limit, budget)
    assert (again == over[order]).all() and lowered_again == lowered


def test_a_rule_over_its_budget_is_cut_and_warned():
    # Ten SMITHs a side (100 pairs), five JONESes (25), two LEEs (4): a budget of 30 keeps LEE and JONES.
    from tfkit.linkage.blocking import rule_budget

    def side(p):
        return people([(f"{p}{i}", "Ann", "Smith", None, None, i) for i in range(10)]
                      + [(f"{p}j{i}", "Bo", "Jones", None, None, 20 + i) for i in range(5)]
                      + [(f"{p}l{i}", "Cy", "Lee", None, None, 30 + i) for i in range(2)])

    prepared = prepare([side("a"), side("b")], ["a", "b"], FIELDS, id_column="record_id", keep=("key",))
    rule = [BlockingRule("surname", ("surname",))]
    pairs, report = candidate_pairs(prepared, rule, "link", budget=30)
    r = report.rules[0]
    assert pairs.height == 29 and (r.pairs_planned, r.blocks_skipped, r.pairs_skipped, r.budget_limit) == (29, 1, 100, 25)
    _, report = candidate_pairs(prepared, rule, "link", budget=129)
    assert report.rules[0].budget_limit is None and report.rules[0].pairs_planned == 129
    assert rule_budget(34) == 10_000_000 and rule_budget(30_000_000) == 30_000_000
    assert rule_budget(100, max_rule_pairs=30, per_record=0.5) == 50
    model = LinkageModel.default()
    from tfkit.linkage.blocking import warn_skipped

    _, report = candidate_pairs(prepared, rule, "link", budget=30)
    warn_skipped(model, report.rules)
    assert any(w["code"] == "rule_budget" and "more than 25 pairs" in w["message"] for w in model.warnings)


def test_em_session_pairs_are_sampled_without_making_every_pair():
    # A session's rule on a date of birth makes ~N^2 pairs in a national file: drawn by index from
    # the sort-based plan, never all made. Under the cap: exactly the rule's pairs.
    from tfkit.linkage.blocking import rule_pairs, sample_rule_pairs

    rng = np.random.default_rng(5)
    frames = [pl.DataFrame({"record_id": [f"{s}-{i}" for i in range(300)],
                            "surname": rng.choice(np.array(["Lee", "Ray", "Fox", "Ng", None], dtype=object), 300).tolist()})
              for s in range(2)]
    prepared = prepare(frames, ["a", "b"], {"surname": "surname"}, id_column="record_id")
    rule = BlockingRule("surname", ("surname",))
    for mode in ("link", "dedupe", "both"):
        every = rule_pairs(prepared, rule, mode)
        assert sample_rule_pairs(prepared, rule, mode, every.height, seed=1).equals(every)
        sample = sample_rule_pairs(prepared, rule, mode, 500, seed=1)
        assert sample.height == 500 and sample.unique().height == 500
        assert sample.join(every, on=["rid_l", "rid_r"], how="anti").is_empty()  # every drawn pair is a pair
        assert sample.equals(sample_rule_pairs(prepared, rule, mode, 500, seed=1))
        assert not sample.equals(sample_rule_pairs(prepared, rule, mode, 500, seed=2))


def test_scores_computed_in_parts_on_threads_equal_one_part(monkeypatch):
    rng = np.random.default_rng(5)
    names = ["SMITH", "JONES", "KHAN", "WYNNE", "EMILY", "AMIR", "LEE", "RAY"]
    rows = [(f"r{i}", names[i % 8], names[(i * 3) % 8], dt.date(1980 + i % 30, 1 + i % 12, 1 + i % 28),
             ["E17 5LA", "E10 5PD", "E4 9QG"][i % 3], i) for i in range(400)]
    prepared = prepare([people(rows[:200]), people(rows[200:])], ["a", "b"], FIELDS, id_column="record_id")
    model = LinkageModel.default()
    model.comparisons = [c for c in model.comparisons if c.column in FIELDS]
    model.m = {c.name: np.full(c.n_levels, 1.0 / c.n_levels) for c in model.comparisons}
    model.u = {c.name: np.linspace(1, 2, c.n_levels) / np.linspace(1, 2, c.n_levels).sum() for c in model.comparisons}
    model.prior = 0.001
    n = 130_000  # over two parts' minimum
    rid_l, rid_r = rng.integers(0, 200, n), rng.integers(200, 400, n)
    levels = {c.name: rng.integers(-1, c.n_levels, n).astype(np.int8) for c in model.comparisons}
    one = score(prepared, model, rid_l, rid_r, levels)
    assert "full_name_adjustment" in one.columns and "forename_tf_adjustment" in one.columns
    assert score(prepared, model, rid_l, rid_r, levels, parts=2).equals(one)
    assert score(prepared, model, rid_l, rid_r, levels, parts=3).equals(one)
    from tfkit.linkage import predict

    for chunk in (n, 999):  # a thread's share in one chunk, or in many small ones: the same scores
        monkeypatch.setattr(predict, "SCORE_CHUNK_PAIRS", chunk)
        assert score(prepared, model, rid_l, rid_r, levels, parts=2).equals(one)
