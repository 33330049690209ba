"""Deterministic, atomic Parquet writing.

Same frame in, same bytes out: explicit Arrow schema, caller-fixed row order, fixed row-group size,
zstd at a fixed level, no timestamps in the footer. Files are written beside their target and renamed
into place, so a killed run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from typing import TYPE_CHECKING, Callable

import polars as pl

from tfkit.errors import writing

if TYPE_CHECKING:  # pyarrow is imported when a file is written, not at every command's start-up
    import pyarrow as pa

ROW_GROUP_SIZE = 131_072
COMPRESSION = "zstd"
# Level 1: pseudonyms are random hex, so higher levels cost time and save almost nothing.
COMPRESSION_LEVEL = 1
# String columns whose first rows are mostly distinct (pseudonyms, match keys) skip dictionary
# encoding: a dictionary of random values only costs time. Decided from the data, so deterministic.
DICTIONARY_SAMPLE_ROWS = 10_000
DICTIONARY_MAX_DISTINCT_RATIO = 0.5


def to_arrow(df: pl.DataFrame) -> pa.Table:
    """Arrow table with plain `string` columns (not string_view/large_string) for the widest readers."""
    import pyarrow as pa

    table = df.to_arrow()
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            t = pa.string()
        elif pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
            t = pa.binary()
        fields.append(pa.field(f.name, t, nullable=True))
    return table.cast(pa.schema(fields))


def dictionary_columns(df: pl.DataFrame) -> list[str]:
    """Columns worth dictionary encoding: all but mostly-distinct string/binary columns."""
    sample = df.head(DICTIONARY_SAMPLE_ROWS)
    keep = []
    for name, dtype in df.schema.items():
        if dtype in (pl.String, pl.Binary) and sample.height:
            if sample[name].n_unique() > DICTIONARY_MAX_DISTINCT_RATIO * sample.height:
                continue
        keep.append(name)
    return keep


def write_parquet(
    df: pl.DataFrame,
    path: str | Path,
    *,
    statistics: bool | list[str] = True,
    metadata: dict[str, str] | None = None,
    rows: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
) -> Path:
    """Write `df` deterministically and atomically to `path`.

    `statistics` may list the only columns allowed min/max statistics (plaintext in the footer):
    pass False or a list excluding any column that could hold a raw identifier.
    `rows`, if given, maps `df` row by row to what is written, applied to one row group's slice at a
    time, so the mapped frame is never whole in memory (the same bytes as writing `rows(df)`).
    """
    shape = rows or (lambda frame: frame)
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written one row group at a time, each from a single-chunk slice: pages and row groups never
    # depend on how the frame was built (polars' chunking varies with the engine and core count),
    # and only one row group's Arrow copy is in memory at once.
    first = to_arrow(shape(df.head(0)))
    schema = first.schema
    if metadata:
        schema = schema.with_metadata({**(schema.metadata or {}), **metadata})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with pq.ParquetWriter(
            tmp,
            schema,
            compression=COMPRESSION,
            compression_level=COMPRESSION_LEVEL,
            write_statistics=statistics,
            use_dictionary=dictionary_columns(shape(df.head(DICTIONARY_SAMPLE_ROWS))),
            version="2.6",
            data_page_version="1.0",
        ) as writer:
            if df.height == 0:
                writer.write_table(first.cast(schema))
            for offset in range(0, df.height, ROW_GROUP_SIZE):
                part = to_arrow(shape(df.slice(offset, ROW_GROUP_SIZE)).rechunk())
                writer.write_table(part.cast(schema), row_group_size=ROW_GROUP_SIZE)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, Exception):
            with writing(path):  # a full disk or I/O error names the output (pyarrow's name no file)
                raise
        raise
    return path
