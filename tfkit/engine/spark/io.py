"""Parquet in and out on the Spark engine: files or folders on any Hadoop-compatible path."""

from __future__ import annotations

from tfkit.errors import InputFileError

ROW = "__tfkit_row"


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
