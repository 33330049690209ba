"""Standardisation on the Spark engine (local[2]) gives the polars engine's prepared records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.linkage.linker import Linker
from tests.febrl import febrl4_frames
from tests.test_spark_engine import by_pair, part_bytes, same_figures

runner = CliRunner()


def _compare(spark, frames, **kw):
    from tfkit.engine.spark.prepare import prepare_spark, with_row_index
    from tfkit.linkage.standardise import NameVariants

    want = Linker(frames, **kw)
    fields = want.model.field_kinds()
    got = prepare_spark(spark, {s: with_row_index(spark, f) for s, f in frames.items()}, fields,
                        id_columns={s: "record_id" for s in frames}, variants=NameVariants.load())
    p = want.prepared
    frame = pl.from_arrow(got.records.orderBy("_rid").toArrow())
    assert frame.columns == p.frame.columns
    assert frame.equals(p.frame.cast(frame.schema))  # _source: UInt16 in polars, int on Spark
    assert got.sizes == p.source_sizes() and got.n == p.n and got.truncated == p.truncated
    assert sorted(got.vocab) == sorted(p.vocab)
    for c, v in p.vocab.items():
        assert got.vocab[c].equals(v, check_names=False), c
    assert sorted(got.tf) == sorted(p.tf)
    for c, t in p.tf.items():
        assert np.array_equal(got.tf[c], t), c
    local = got.local(["forename", "dob"])
    assert np.array_equal(local.codes("forename"), p.codes("forename"))
    assert local.source_sizes() == p.source_sizes()
    return got, p


def test_prepare_spark_equals_polars_on_generated_data(spark):
    from tfkit.demo import generate_frames
    from tests.fixtures.demo_frames import cohort_and_partners

    frames = cohort_and_partners(generate_frames(300, seed=5), n_right=400, seed=0)
    frames = {k: v.drop("person_key") for k, v in frames.items()}
    # Values the rules must treat alike on both engines: titles, accents, invisible characters,
    # a missing value, an over-long one, an unreadable date.
    left = frames[next(iter(frames))]
    odd = {"forename": ["Mr  José", "\u200b", None, "X" * 250], "dob": ["1990-02-30", "31/12/1985", None, "19450493"]}
    frames[next(iter(frames))] = left.with_columns(
        *[pl.Series(c, v + left.get_column(c).to_list()[len(v):], dtype=left.schema[c]) for c, v in odd.items()
          if left.schema[c] == pl.String])
    got, p = _compare(spark, frames)
    assert p.truncated and got.truncated == p.truncated


def test_prepare_spark_equals_polars_on_febrl4(spark):
    _compare(spark, febrl4_frames(500))


def test_prepare_spark_joins_the_codes_when_the_values_are_many(spark, monkeypatch):
    """Above `BROADCAST_LOOKUP_ROWS` distinct values the codes are joined by Spark (`_join_codes`)
    instead of gathered from the broadcast lookup: the same records, vocabularies and term
    frequencies; dates given as dates (not text) read back as dates on both paths."""
    from tfkit.engine.spark import prepare

    frames = febrl4_frames(300)
    frames = {k: v.with_columns(pl.col("dob").str.to_date("%Y%m%d", strict=False)) for k, v in frames.items()}
    assert frames["a"]["dob"].null_count() < frames["a"].height
    _compare(spark, frames)
    monkeypatch.setattr(prepare, "BROADCAST_LOOKUP_ROWS", 10)
    got, _ = _compare(spark, frames)
    assert "term frequencies" in got.timings  # the records' aggregation, not the lookup's counts



def test_read_sources_spark_gives_the_polars_readers_text(spark, tmp_path):
    """Parquet read by Spark (a file and a folder of parts): every column as text as
    `tfkit.io.read_table` gives it to the polars engine (a date as yyyy-MM-dd), with row numbers."""
    from tfkit.engine.spark.io import ROW, as_uri, is_parquet_source, read_sources_spark
    from tfkit.io import read_table

    frame = pl.DataFrame({"record_id": [3, 1, 2], "dob": [None, *pl.Series(["1990-02-01", "1985-12-31"]).str.to_date()],
                          "forename": ["Ann", None, "Bo"]})
    frame.write_parquet(tmp_path / "a.parquet")
    (tmp_path / "b").mkdir()
    frame[:1].write_parquet(tmp_path / "b" / "part-0.parquet")
    frame[1:].write_parquet(tmp_path / "b" / "part-1.parquet")
    assert is_parquet_source(tmp_path / "a.parquet") and is_parquet_source(tmp_path / "b")
    assert as_uri(Path("hdfs://nn/x")) == "hdfs://nn/x"
    got = read_sources_spark(spark, [tmp_path / "a.parquet", tmp_path / "b"], {"forename": "first"})
    want = read_table(tmp_path / "a.parquet").frame.drop("_source_line").rename({"forename": "first"})
    for name in ("a", "b"):
        df = pl.from_arrow(got[name].orderBy(ROW).toArrow())
        assert df.get_column(ROW).to_list() == [0, 1, 2]
        assert df.drop(ROW).equals(want)



def test_spark_linker_checks_inputs_and_prepares_on_the_cluster(spark):
    """`spark_linker`: the Linker's checks on per-source shape frames (an optional column missing in
    one source is added as unknown), its `prepared` the int32 view of the cluster's records."""
    from tfkit.engine.spark.prepare import spark_linker, with_row_index
    from tfkit.errors import InputFileError
    from tfkit.demo import generate_frames
    from tests.fixtures.demo_frames import cohort_and_partners

    frames = cohort_and_partners(generate_frames(150, seed=2), n_right=150, seed=0)
    frames = {k: v.drop("person_key") for k, v in frames.items()}
    first = next(iter(frames))
    frames[first] = frames[first].drop("sex")
    want = Linker(frames, seed=1)
    linker, got = spark_linker(spark, {s: with_row_index(spark, f) for s, f in frames.items()}, seed=1)
    assert [c.name for c in linker.model.comparisons] == [c.name for c in want.model.comparisons]
    assert got.n == want.prepared.n
    for c in ("forename", "surname_dm", "dob", "postcode_block", "sex", "names_unordered"):
        assert np.array_equal(linker.prepared.codes(c), want.prepared.codes(c)), c
    empty = {s: with_row_index(spark, f.head(0)) for s, f in frames.items()}
    with pytest.raises(InputFileError, match="no records"):
        spark_linker(spark, empty)


# --------------------------------------------------------------------------- link with the records prepared on the cluster


def test_link_spark_prepared_on_the_cluster_equals_polars(spark, tmp_path):
    """`prepare="cluster"`: the same pairs, levels, weights, model and clusters as the polars engine
    (and as `prepare="driver"`, tested alike in test_spark_engine), in link and dedupe mode."""
    from tfkit.demo import generate_frames
    from tests.fixtures.demo_frames import cohort_and_partners
    from tests.test_spark_engine import _assert_link_engines_agree

    frames = cohort_and_partners(generate_frames(300, seed=5), n_right=400, seed=0)
    frames = {k: v.drop("person_key") for k, v in frames.items()}
    _assert_link_engines_agree(spark, frames, tmp_path / "link", prepare="cluster", seed=3)
    one = {"all": pl.concat([f.with_columns(pl.col("record_id").cast(pl.String) + f"-{k}") for k, f in frames.items()],
                            how="diagonal_relaxed")}
    _assert_link_engines_agree(spark, one, tmp_path / "dedupe", prepare="cluster", pairs_per_task=1_000_000, mode="dedupe",
                               seed=3)


def test_link_spark_prepared_on_the_cluster_with_constraints_and_truth_on_febrl4(spark, tmp_path):
    """One-to-one links, a reviewer's decisions and --truth read record ids and truth codes made on
    the cluster (`SparkPrepared.local`): the polars engine's summary, model, clusters and review."""
    import copy

    from tfkit.engine.spark.link import link_spark
    from tfkit.linkage import link
    from tests.test_spark_link_features import KEYS, _decisions

    frames = febrl4_frames(person=True)
    frames["a"] = frames["a"].head(400)
    frames["b"] = frames["b"].filter(pl.col("person").is_in(frames["a"]["person"].implode()))
    options = {"one_to_one": True, "truth_column": "person", "decisions": _decisions(frames)}
    want = link(frames, seed=3, **copy.deepcopy(options))
    got = link_spark(spark, frames, seed=3, checkpoint_dir=str(tmp_path / "ck"), prepare="cluster",
                     **copy.deepcopy(options))
    w, g = want.summary(), got.summary()
    assert g["prepared_on"] == "cluster"
    for key in ("candidate_pairs", "links", "review_pairs", "clusters", "constraints", "prior", "warnings"):
        assert g[key] == w[key], key
    assert same_figures(g["metrics"], w["metrics"])
    assert g["constraints"]["forced_links"] == g["constraints"]["forced_non_links"] == 1
    assert got.linker.model.parameters() == want.model.parameters()
    assert "_record_id" in got.linker.prepared.frame.columns  # the decided records' ids only
    assert got.linker.prepared.frame["_record_id"].null_count() > got.linker.prepared.n - 10
    clusters = pl.from_arrow(got.clusters.toArrow())
    assert clusters.equals(want.clusters.cast(clusters.schema))
    assert pl.from_arrow(got.review.toArrow()).select(KEYS).equals(want.review.select(KEYS))
    pairs = pl.from_arrow(got.pairs.toArrow())
    assert pairs.select(KEYS).sort(KEYS).equals(want.pairs.select(KEYS).sort(KEYS))


def _parquet_folders(frames, root, parts=3):
    """Each frame as a folder of `parts` Parquet part files (read in path order by both engines)."""
    out = []
    for name, frame in frames.items():
        folder = root / name
        folder.mkdir(parents=True)
        step = -(-frame.height // parts)
        for i in range(parts):
            frame[i * step:(i + 1) * step].write_parquet(folder / f"part-{i:05d}.parquet")
        out.append(folder)
    return out


def test_link_cli_spark_on_parquet_folders_and_uris_writes_what_polars_writes(spark, tmp_path):
    """`tfkit link file:///.../cohort/ DIR/partners/ --engine spark`: sources read by Spark (never on
    the driver), prepared on the cluster (auto: a folder or URI), with --clean, --truth,
    --train-on-labels and --report: the polars engine's clusters, model, metrics, review folder and
    report, byte for byte. A CSV on a non-local path: exit 2."""
    from tfkit.demo import generate_frames
    from tests.fixtures.demo_frames import cohort_and_partners

    from tests.test_linkage_review import with_father_and_junior

    # with a record too close to call between a father and his junior: held for review on both engines
    frames = with_father_and_junior(cohort_and_partners(generate_frames(300, seed=5, profile="hard"), n_right=400, seed=0))
    frames = {k: v.with_columns(pl.col("person_key").cast(pl.String)) for k, v in frames.items()}
    csvs = []
    for name, frame in frames.items():
        csvs.append(tmp_path / f"{name}.csv")
        frame.write_csv(csvs[-1])
    # The same values as the CSVs give the polars engine: every column as text.
    texts = {k: pl.read_csv(p, infer_schema=False) for k, p in zip(frames, csvs)}
    folders = _parquet_folders(texts, tmp_path / "in")
    sources = [f"file://{folders[0]}", str(folders[1])]
    common = ["--seed", "2", "--clean", "cohort", "--truth", "person_key", "--train-on-labels", "--json", "-"]
    res_p = runner.invoke(app, ["link", *map(str, csvs), *common, "--out", str(tmp_path / "p"),
                                "--report", str(tmp_path / "p.html")])
    assert res_p.exit_code == 0, res_p.output
    res_s = runner.invoke(app, ["link", *sources, *common, "--out", str(tmp_path / "s"),
                                "--report", str(tmp_path / "s.html"), "--engine", "spark"])
    assert res_s.exit_code == 0, res_s.output
    again = runner.invoke(app, ["link", *sources, *common, "--out", str(tmp_path / "s2"), "--engine", "spark"])
    assert again.exit_code == 0, again.output
    for name in ("pairs", "clusters", "review"):  # deterministic: the same parts, byte for byte
        assert part_bytes(tmp_path / "s" / f"{name}.parquet") == part_bytes(tmp_path / "s2" / f"{name}.parquet"), name
    want, got = json.loads(res_p.stdout), json.loads(res_s.stdout)
    assert got["prepared_on"] == "cluster"
    for key in ("candidate_pairs", "links", "review_pairs", "review_pairs_by_reason", "clusters", "constraints"):
        assert got[key] == want[key], key
    assert same_figures(got["metrics"], want["metrics"])
    assert got["review_pairs_by_reason"]["too_close_to_call"] >= 2
    assert [i["rows_linked"] for i in got["inputs"]] == [i["rows_linked"] for i in want["inputs"]]
    assert got["constraints"]["conflicts_resolved"] > 0
    for name in ("pairs", "clusters", "review"):
        g = pl.read_parquet(tmp_path / "s" / f"{name}.parquet" / "*.parquet")
        w = pl.read_parquet(tmp_path / "p" / f"{name}.parquet")
        assert g.columns == w.columns, name
        g, w = g.select(w.columns[:4]), w.select(w.columns[:4]).cast(g.select(w.columns[:4]).schema)
        assert (by_pair(g).equals(by_pair(w)) if name == "pairs" else g.equals(w)), name
    for name in ("model.json", "review/review.csv"):
        assert (tmp_path / "s" / name).read_bytes() == (tmp_path / "p" / name).read_bytes(), name
    assert same_figures(*(json.loads((tmp_path / f / "metrics.json").read_text()) for f in ("s", "p")))
    assert (tmp_path / "s.html").read_text("utf-8") == (tmp_path / "p.html").read_text("utf-8")

    res = runner.invoke(app, ["link", "hdfs://namenode/extracts/a.csv", str(folders[1]), "--out",
                              str(tmp_path / "x"), "--engine", "spark"])
    assert res.exit_code == 2 and "non-local path" in res.output


def test_engine_prepare_setting(tmp_path):
    from tfkit.engine import engine_from_table
    from tfkit.errors import ConfigError

    assert engine_from_table({"kind": "spark"}).prepare == "auto"
    assert engine_from_table({"kind": "spark", "prepare": "cluster"}).prepare == "cluster"
    with pytest.raises(ConfigError, match="prepare"):
        engine_from_table({"kind": "spark", "prepare": "executors"})
