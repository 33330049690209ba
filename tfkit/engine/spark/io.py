"""Parquet in and out on the Spark engine: files or folders on any Hadoop-compatible path."""

from __future__ import annotations

import re
from pathlib import Path

from tfkit.errors import InputFileError

ROW = "__tfkit_row"
PARQUET_MAGIC = b"PAR1"


def as_uri(path) -> str:
    """A source path as text, with a URI's `//` back when it went through pathlib (which reads
    `hdfs://nn/x` as `hdfs:/nn/x`); `file:/x` is a valid Hadoop path as it is."""
    text = str(path)
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?!/)", text)
    if m and m.group(1).lower() != "file" and not Path(text).exists():
        return f"{m.group(1)}://{text[len(m.group(0)):]}"
    return text


def is_parquet_source(path) -> bool:
    """A path the Spark engine reads itself: a Parquet file, a folder (of Parquet part files), or a
    Hadoop-compatible URI (hdfs://, s3a://, abfss://, file://). Anything else (CSV, Excel) is read
    by `tfkit.io` on the driver, as the polars engine reads it."""
    text = as_uri(path)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", text) and not Path(text).exists():
        return True
    p = Path(text)
    if p.is_dir():
        return True
    try:
        with p.open("rb") as fh:
            return fh.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def read_sources_spark(spark, paths, mapping: dict[str, str] | None = None) -> dict:
    """Each Parquet source read by Spark (never by polars on the driver), with the row number `ROW`
    and every column as text, as `tfkit.io.read_table` gives a Parquet file to the polars engine
    (dates as yyyy-MM-dd, times as HH:mm:ss, timestamps as yyyy-MM-dd HH:mm:ss); `mapping` renames
    columns as `--map` does. Keyed by source name (`linkage.inputs.source_names`)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from tfkit.linkage.inputs import source_names

    mapping = mapping or {}
    out, used = {}, set()
    for path, name in zip(paths, source_names([Path(str(p)) for p in paths])):
        df = read_parquet(spark, as_uri(path), row_index=True)
        cols = []
        for f in df.schema.fields:
            if f.name == ROW:
                continue
            c = F.col(f"`{f.name}`")
            if isinstance(f.dataType, (T.ArrayType, T.MapType, T.StructType, T.BinaryType)):
                raise InputFileError(f"column {f.name!r} holds {f.dataType.simpleString()} values, not plain values",
                                     hint="flatten the column before export", file=path, column=f.name)
            if isinstance(f.dataType, T.DateType):
                c = F.date_format(c, "yyyy-MM-dd")
            elif isinstance(f.dataType, (T.TimestampType, T.TimestampNTZType)):
                c = F.date_format(c, "yyyy-MM-dd HH:mm:ss")
            cols.append(c.cast("string").alias(mapping.get(f.name, f.name)))
            used.update({f.name} & set(mapping))
        if not cols:
            raise InputFileError("has no columns", hint="export the extract again", file=path)
        out[name] = df.select(F.col(ROW), *cols)
    unused = [old for old in mapping if old not in used]
    if unused:
        raise InputFileError(f"--map names column {unused[0]!r}, which no input file has", column=unused[0],
                             hint="check the spelling and case of the column header")
    return out


def read_parquet(spark, path: str, *, row_index: bool = False):
    """A Parquet file or folder as a DataFrame. With `row_index`, a 0-based row number in the same
    order as the polars engine reads it (files in path order, rows in file order), column `ROW`."""
    from pyspark.sql import functions as F
    from pyspark.sql.utils import AnalysisException

    try:
        df = spark.read.parquet(str(path))
    except AnalysisException as err:
        kind = "not found" if "PATH_NOT_FOUND" in str(err) else "not a readable Parquet file or folder"
        raise InputFileError(kind, file=path, hint="give the Parquet output of tfkit pseudonymise") from None
    if not row_index:
        return df
    located = df.select("*", F.col("_metadata.file_path").alias("__file"),
                        F.col("_metadata.row_index").alias("__in_file"))
    sizes = sorted(located.groupBy("__file").count().collect(), key=lambda r: r["__file"])
    offsets, start = [], 0
    for r in sizes:
        offsets.append((r["__file"], start))
        start += r["count"]
    if not offsets:
        return df.select(F.lit(None).cast("long").alias(ROW), "*").limit(0)
    starts = spark.createDataFrame(offsets, "__file string, __start long")
    return (located.join(F.broadcast(starts), "__file")
            .select((F.col("__start") + F.col("__in_file")).alias(ROW), *[F.col(c) for c in df.columns]))


def write_parquet(df, path: str, *, statistics: bool = True) -> None:
    """A folder of Parquet part files, replaced whole (Spark writes `_SUCCESS` last). Without
    `statistics`, no min/max in the footers (pseudonymised outputs keep their footers minimal)."""
    writer = df.write.mode("overwrite").option("compression", "zstd")
    if not statistics:
        writer = writer.option("parquet.column.statistics.enabled", "false")
    writer.parquet(str(path))


def delete_path(spark, path: str) -> None:
    """Remove a file or folder on any Hadoop-compatible file system (local, HDFS, S3A, ABFS)."""
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(p, True)
