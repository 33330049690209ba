"""Standardisation on the Spark engine (local[2]) gives the polars engine's prepared records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tfkit.linkage.linker import Linker
from tests.febrl import febrl4_frames


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
