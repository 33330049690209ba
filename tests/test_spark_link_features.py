"""`tfkit link --engine spark` with the polars engine's options: clean sources, one-to-one links,
a reviewer's decisions, evaluation against a truth column (and training on it), the report and the
review folder give what the polars engine gives; training runs on comparison-pattern counts."""

from __future__ import annotations

import copy
import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tests.febrl import febrl4_frames
from tests.test_spark_engine import same_figures

runner = CliRunner()
KEYS = ["source_l", "record_id_l", "source_r", "record_id_r"]


@pytest.fixture(scope="module")
def frames():
    from tfkit.demo import generate_frames
    from tests.fixtures.demo_frames import cohort_and_partners

    from tests.test_linkage_review import with_father_and_junior

    # The hard profile: partners' records link to two cohort records, so --clean has conflicts to
    # resolve; and a record too close to call between a father and his junior (held for review).
    return with_father_and_junior(cohort_and_partners(generate_frames(300, seed=5, profile="hard"), n_right=400, seed=0))


# --------------------------------------------------------------------------- training on pattern counts


def test_training_takes_pattern_counts_whoever_counted_them(frames):
    """EM, the prior's refinement and m from labels read (patterns, counts): counted per pair by the
    polars engine or grouped elsewhere (here: a shuffled group-by, as a cluster would), the same model."""
    from tfkit.linkage import Linker, training
    from tfkit.linkage.evaluate import label_pairs

    linker = Linker(frames, seed=3, truth_column="person_key")
    linker.training.estimate_u_using_random_sampling()
    linker.training.estimate_probability_two_random_records_match()
    model, names = linker.model, [c.name for c in linker.model.comparisons]
    counted = training.patterns(linker.levels, model.comparisons)
    shuffled = pl.DataFrame(linker.levels).sample(fraction=1.0, shuffle=True, seed=1)
    grouped = shuffled.group_by(names).len().sort(names)
    elsewhere = (grouped.select(names).to_numpy().astype(np.int64), grouped["len"].to_numpy().astype(np.float64))
    assert np.array_equal(counted[0], elsewhere[0]) and np.array_equal(counted[1], elsewhere[1])
    assert len(counted[1]) < linker.candidates.height / 3  # EM's work: the patterns, not the pairs

    results = []
    for patterns in (counted, elsewhere):
        m = copy.deepcopy(model)
        em = training.estimate_m_em(m, patterns)
        prior = training.refine_prior(m, patterns, 10**6)
        results.append((em, prior, m))
    (em_a, prior_a, a), (em_b, prior_b, b) = results
    assert em_a.iterations == em_b.iterations and abs(em_a.match_share - em_b.match_share) < 1e-9
    for name in names:
        assert np.abs(a.m[name] - b.m[name]).max() < 1e-9 and np.abs(em_a.u[name] - em_b.u[name]).max() < 1e-9
    assert abs(prior_a - prior_b) < 1e-9 * prior_a

    # m from labels: the level frequencies among matching pairs, as before the counts (one pseudo-count of 0.5)
    is_match = label_pairs(linker.prepared, linker.candidates, "person_key")
    m = training.estimate_m_from_labels(copy.deepcopy(model), training.patterns(
        {k: v[is_match] for k, v in linker.levels.items()}, model.comparisons))
    for c in model.comparisons:
        want = training.level_frequencies(linker.levels[c.name][is_match], c.n_levels, pseudocount=0.5)
        assert np.abs(m[c.name] - want).max() < 1e-12


# --------------------------------------------------------------------------- the options on Spark


@pytest.fixture(scope="module")
def febrl4():
    """FEBRL4's first 600 originals and their 600 duplicates, with the person as truth."""
    out = febrl4_frames(person=True)
    out["a"] = out["a"].head(600)
    out["b"] = out["b"].filter(pl.col("person").is_in(out["a"]["person"].implode()))
    return out


def _decisions(frames) -> pl.DataFrame:
    """A reviewer's decisions from a polars run: accept its strongest review pair, reject its strongest link."""
    from tfkit.linkage import link

    result = link(frames, seed=3)
    links = result.pairs.filter(pl.col("match_probability") >= result.threshold).sort("match_weight", descending=True)
    review = result.review.sort("match_weight", descending=True)
    return pl.concat([review.head(1).select(KEYS).with_columns(pl.lit("accept").alias("decision")),
                      links.head(1).select(KEYS).with_columns(pl.lit("reject").alias("decision"))])


def test_link_spark_one_to_one_decisions_and_truth_equal_polars_on_febrl4(spark, febrl4, tmp_path):
    """(--clean and --train-on-labels: the CLI test below, on generated data.)"""
    from tfkit.engine.spark.link import link_spark
    from tfkit.linkage import link

    frames = febrl4
    options = {"one_to_one": True, "truth_column": "person", "decisions": _decisions(frames)}
    want = link(frames, seed=3, **copy.deepcopy(options))
    got = link_spark(spark, frames, seed=3, checkpoint_dir=str(tmp_path / "ck"), pairs_per_task=100, **copy.deepcopy(options))
    w, g = want.summary(), got.summary()
    for key in ("candidate_pairs", "links", "review_pairs", "clusters", "constraints", "prior", "warnings"):
        assert g[key] == w[key], key
    assert same_figures(g["metrics"], w["metrics"])
    assert got.linker.model.parameters() == want.model.parameters()
    clusters = pl.from_arrow(got.clusters.toArrow())
    assert clusters.equals(want.clusters.cast(clusters.schema))
    review = pl.from_arrow(got.review.toArrow())
    assert review.select(KEYS).equals(want.review.select(KEYS))
    assert g["constraints"]["forced_links"] == g["constraints"]["forced_non_links"] == 1
    # More links above the threshold than the driver is to take: refused before anything is collected.
    from tfkit.engine.spark import link as spark_link
    from tfkit.errors import UsageError

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(spark_link, "MAX_DRIVER_LINKS", 10)
        with pytest.raises(UsageError, match="links above the threshold"):
            spark_link.constrained_links_spark(spark, got.linker, got.scored, got.threshold, g["links"],
                                               one_to_one=True, clean=(), decisions=None)
    assert g["metrics"]["at_threshold"]["true_positives"] > 0 and g["metrics"]["blocking_recall"] > 0.5


# --------------------------------------------------------------------------- the CLI: outputs, report, review folder


def test_link_cli_spark_with_clean_labels_and_report_writes_what_polars_writes(spark, frames, tmp_path):
    paths = []
    for name, frame in frames.items():
        paths.append(tmp_path / f"{name}.csv")
        frame.write_csv(paths[-1])
    common = ["link", *map(str, paths), "--seed", "2", "--clean", "cohort", "--truth", "person_key",
              "--train-on-labels", "--json", "-"]
    res_p = runner.invoke(app, [*common, "--out", str(tmp_path / "p"), "--report", str(tmp_path / "p.html")])
    assert res_p.exit_code == 0, res_p.output
    res_s = runner.invoke(app, [*common, "--out", str(tmp_path / "s"), "--report", str(tmp_path / "s.html"),
                                "--engine", "spark"])
    assert res_s.exit_code == 0, res_s.output
    want, got = json.loads(res_p.stdout), json.loads(res_s.stdout)
    assert got["engine"] == "spark"
    for key in ("candidate_pairs", "links", "review_pairs", "review_pairs_by_reason", "clusters", "constraints",
                "inputs"):
        assert got[key] == want[key], key
    assert same_figures(got["metrics"], want["metrics"])
    assert got["constraints"]["conflicts_resolved"] > 0 and got["constraints"]["clusters_with_two_clean_records"] == 0
    assert got["review_pairs_by_reason"]["too_close_to_call"] >= 2  # the father and junior's, at least
    assert [t["method"] for t in got["training"] if t["step"] == "m"] == ["labels"]
    assert got["metrics"]["at_threshold"]["true_positives"] > 0
    from rich.console import Console

    from tfkit.commands.link import _render

    console = Console(record=True, width=140)
    _render(console, got)  # the terminal's table, as the polars engine's, with the engine's line
    text = console.export_text()
    assert "clustering rounds" in text and "conflicting links dropped" in text and "precision / recall / F1" in text
    import pyarrow.parquet as pq

    for part in (tmp_path / "s" / "pairs.parquet").glob("*.parquet"):  # record ids: no min/max in the footers
        meta = pq.ParquetFile(part).metadata
        assert all(not meta.row_group(0).column(i).is_stats_set for i in range(meta.num_columns))
    clusters = pl.read_parquet(tmp_path / "s" / "clusters.parquet" / "*.parquet")
    assert clusters.equals(pl.read_parquet(tmp_path / "p" / "clusters.parquet").cast(clusters.schema))
    review = pl.read_parquet(tmp_path / "s" / "review.parquet" / "*.parquet")  # the queue: band and too close to call
    want_review = pl.read_parquet(tmp_path / "p" / "review.parquet")
    assert review.select(*KEYS, "review_reason").equals(want_review.select(*KEYS, "review_reason"))
    assert review.columns == want_review.columns
    for name in ("model.json", "review/review.csv"):  # the review folder: both records' values, 0600
        assert (tmp_path / "s" / name).read_bytes() == (tmp_path / "p" / name).read_bytes(), name
    assert same_figures(*(json.loads((tmp_path / f / "metrics.json").read_text()) for f in ("s", "p")))
    assert "too close to call between two clean records" in (tmp_path / "s" / "review" / "review.csv").read_text("utf-8")
    assert (tmp_path / "s" / "review" / "review.csv").stat().st_mode & 0o777 == 0o600
    # The same page: every figure from aggregates made on the cluster equals the polars engine's.
    page = (tmp_path / "s.html").read_text("utf-8")
    assert page == (tmp_path / "p.html").read_text("utf-8")
    assert "Accuracy against the truth column" in page and "Cluster sizes" in page and "Conflicting links dropped" in page
    assert (tmp_path / "s.html").stat().st_mode & 0o777 == 0o600


# --------------------------------------------------------------------------- pairs too close to call in the review queue


def test_link_spark_holds_pairs_too_close_to_call_for_review_as_polars_does(spark, frames, tmp_path):
    """The review queue (review.parquet, review.csv) on both engines: the band's pairs and those the
    clean-source rule held as too close to call, with their reasons; with one-to-one links (as
    extract links: neither linked, both listed) and after a reviewer's decision on one."""
    from tfkit.engine.spark.link import link_spark, write_review_folder_spark
    from tfkit.linkage import link
    from tfkit.linkage.outputs import write_review_folder

    reject = pl.DataFrame({"source_l": ["cohort"], "record_id_l": ["F-SR"], "source_r": ["partners"],
                           "record_id_r": ["police:F"], "decision": ["reject"]})
    for i, options in enumerate([{"one_to_one": True}, {"decisions": reject}]):
        want = link(frames, seed=3, clean=("cohort",), **copy.deepcopy(options))
        got = link_spark(spark, frames, seed=3, clean=("cohort",), checkpoint_dir=str(tmp_path / f"ck{i}"),
                         **copy.deepcopy(options))
        w, g = want.summary(), got.summary()
        for key in ("links", "review_pairs", "review_pairs_by_reason", "clusters", "constraints"):
            assert g[key] == w[key], (options, key)
        review = pl.from_arrow(got.review.toArrow())
        assert review.columns == want.review.columns
        assert review.select(*KEYS, "review_reason").equals(want.review.select(*KEYS, "review_reason"))
        close = want.review.filter(pl.col("record_id_r") == "police:F")
        if i == 0:
            assert close["review_reason"].str.starts_with("too close to call").all() and close.height == 2
        else:  # rejected: not asked again; the other is police:F's only candidate, linked
            assert close.height == 0 and w["constraints"]["forced_non_links"] == 1
        written = [write_review_folder(want, tmp_path / f"p{i}"), write_review_folder_spark(got, str(tmp_path / f"s{i}"))]
        assert written[0][0].read_bytes() == written[1][0].read_bytes()
