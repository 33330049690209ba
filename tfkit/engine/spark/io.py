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


def read_sources_spark(spark, paths, mapping: dict[str, str] | None = None, *, rows: dict | None = None) -> dict:
    """Each Parquet source read by Spark (never by polars on the driver), with the row number `ROW`
    and every column as text, as `tfkit.io.read_table` gives a Parquet file to the polars engine
    (dates as yyyy-MM-dd, times as HH:mm:ss, timestamps as yyyy-MM-dd HH:mm:ss); `mapping` renames
    columns as `--map` does. Keyed by source name (`linkage.inputs.source_names`); `rows`, when
    given, gets each source's number of rows (counted while numbering them: no extra scan)."""
    from tfkit.linkage.inputs import source_names

    mapping = mapping or {}
    out, used = {}, set()
    for path, name in zip(paths, source_names([Path(str(p)) for p in paths])):
        out[name], n = _read_as_text(spark, path, mapping, used)
        if rows is not None:
            rows[name] = n
    _check_mapping_used(mapping, used)
    return out


def _check_mapping_used(mapping: dict[str, str], used: set[str]) -> None:
    from tfkit.linkage.inputs import unknown_map_column

    unused = [old for old in mapping if old not in used]
    if unused:
        raise unknown_map_column(unused[0], None)


def _read_as_text(spark, path, mapping: dict[str, str], used: set[str]):
    """One Parquet source as text columns with `ROW` (see `read_sources_spark`), and its rows."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from tfkit.linkage.inputs import check_map_targets

    df, n = _numbered(spark, as_uri(path))
    check_map_targets([c for c in df.columns if c != ROW], {o: m for o, m in mapping.items() if o in df.columns}, path)
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
    return df.select(F.col(ROW), *cols), n


# Files the Spark engine never reads itself: on a non-local path they are refused (exit 2).
DRIVER_ONLY_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".xls")


def _is_remote(text: str) -> bool:
    """A URI naming a Hadoop file system other than the local one (hdfs://, s3a://, abfss://, ...)."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]+):/", text)
    return bool(m) and m.group(1).lower() != "file" and not Path(text).exists()


def _local_path(text: str) -> str:
    """A `file:` URI as a local path (other text unchanged)."""
    from urllib.parse import unquote, urlparse

    if re.match(r"^file:/", text, re.IGNORECASE):
        return unquote(urlparse(text).path)
    return text


def read_link_sources(spark, paths, *, schemas: list[str] | None, mapping: dict[str, str], keep: tuple[str, ...],
                      prepare: str, cluster_records: int, sheet: str | int | None = None):
    """`tfkit link`'s sources for the Spark engine: {name: polars frame or Spark DataFrame with `ROW`},
    the summary's `inputs` rows, and where to prepare them ("driver" or "cluster").

    A Parquet folder or a Hadoop path (hdfs://, s3a://, file://...) is read by Spark; with
    `prepare = "driver"` it is then collected to the driver. A local file (CSV, Excel, Parquet) is
    read on the driver by `linkage.inputs.read_sources`, as the polars engine reads it (through its
    `--schema` and `--sheet` when given), except a Parquet file when the records are prepared on the cluster.
    "auto" prepares on the cluster when a source is a folder or Hadoop path, or when the sources
    hold more than `cluster_records` records (Parquet footers and the rows read); else on the driver.
    A CSV or Excel file on a non-local path is refused (exit 2)."""
    import polars as pl

    from tfkit.errors import UsageError
    from tfkit.linkage.inputs import check_map_targets, read_sources, source_names

    texts = [as_uri(p) for p in paths]
    names = source_names([Path(t) for t in texts])
    for text in texts:
        if _is_remote(text) and text.rstrip("/").lower().endswith(DRIVER_ONLY_SUFFIXES):
            raise UsageError("a CSV or Excel file on a non-local path: the Spark engine reads only Parquet files "
                             "and folders there", file=text,
                             hint="convert it to Parquet first (tfkit validate --quarantine writes "
                                  "<stem>.valid.parquet), or give a local copy")
    texts = [t if _is_remote(t) or not t.lower().endswith(DRIVER_ONLY_SUFFIXES) else _local_path(t) for t in texts]
    distributed = [_is_remote(t) or t.lower().startswith("file:") or Path(t).is_dir() for t in texts]
    if schemas and any(distributed):
        raise UsageError("--schema validates a source on the driver: it takes files, not Parquet folders or "
                         "Hadoop paths", hint="validate each extract first (tfkit validate --quarantine writes "
                                              "<stem>.valid.parquet) and link those without --schema")
    if prepare == "auto":
        if any(distributed):
            prepare = "cluster"
        else:
            footers = sum(_parquet_rows(t) for t in texts)
            prepare = "cluster" if footers > cluster_records else "auto"
    by_spark = [d or (prepare == "cluster" and not schemas and is_parquet_source(t)) for d, t in zip(distributed, texts)]
    out, inputs, used = {}, {}, set()
    driver = [i for i, s in enumerate(by_spark) if not s]
    if driver:
        sub_schemas = schemas if not schemas or len(schemas) == 1 else [schemas[i] for i in driver]
        every = len(driver) == len(texts)  # all on the driver: exactly the polars engine's reading
        tables = read_sources([Path(texts[i]) for i in driver], schemas=sub_schemas, keep=keep,
                              mapping=mapping if every else {}, sheet=sheet)
        for i, t in zip(driver, tables):
            present = [] if every else [old for old in mapping if old in t.frame.columns]
            used.update(mapping if every else present)
            check_map_targets(t.frame.columns, {old: mapping[old] for old in present}, t.path)
            out[names[i]] = t.frame.rename({old: mapping[old] for old in present})
            inputs[names[i]] = {"source": names[i], "file": str(t.path), "rows_read": t.rows_read,
                                "rows_linked": t.frame.height, "rows_excluded_by_schema": t.excluded}
    for i, s in enumerate(by_spark):
        if s:
            df, n = _read_as_text(spark, texts[i], mapping, used)
            out[names[i]] = df if prepare != "driver" else pl.from_arrow(df.orderBy(ROW).drop(ROW).toArrow())
            inputs[names[i]] = {"source": names[i], "file": texts[i], "rows_read": n, "rows_linked": n,
                                "rows_excluded_by_schema": 0}
    _check_mapping_used(mapping, used)
    if prepare == "auto":
        prepare = "cluster" if sum(inputs[n]["rows_linked"] for n in names) > cluster_records else "driver"
    return {n: out[n] for n in names}, [inputs[n] for n in names], prepare


def _parquet_rows(text: str) -> int:
    """A local Parquet file's rows from its footer (0 for anything else: read on the driver first)."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(text).metadata.num_rows if is_parquet_source(text) else 0
    except Exception:  # not readable as Parquet: the reader gives the clear error
        return 0


def read_parquet(spark, path: str, *, row_index: bool = False):
    """A Parquet file or folder as a DataFrame. With `row_index`, a 0-based row number in the same
    order as the polars engine reads it (files in path order, rows in file order), column `ROW`."""
    if not row_index:
        return _load(spark, path)
    return _numbered(spark, path)[0]


def _load(spark, path: str):
    from pyspark.sql.utils import AnalysisException

    try:
        return spark.read.parquet(str(path))
    except AnalysisException as err:
        kind = "not found" if "PATH_NOT_FOUND" in str(err) else "not a readable Parquet file or folder"
        raise InputFileError(kind, file=path, hint="give the Parquet output of tfkit pseudonymise") from None


def _numbered(spark, path: str):
    """The source with `ROW` (see `read_parquet`) and its number of rows (the per-file counts that
    number the rows: no extra scan)."""
    from pyspark.sql import functions as F

    df = _load(spark, path)
    located = df.select("*", F.col("_metadata.file_path").alias("__file"),
                        F.col("_metadata.row_index").alias("__in_file"))
    sizes = sorted(located.groupBy("__file").count().collect(), key=lambda r: r["__file"])
    offsets, start = [], 0
    for r in sizes:
        offsets.append((r["__file"], start))
        start += r["count"]
    if not offsets:
        return df.select(F.lit(None).cast("long").alias(ROW), "*").limit(0), 0
    starts = spark.createDataFrame(offsets, "__file string, __start long")
    return (located.join(F.broadcast(starts), "__file")
            .select((F.col("__start") + F.col("__in_file")).alias(ROW), *[F.col(c) for c in df.columns])), start


def write_parquet(df, path: str, *, statistics: bool = True) -> None:
    """A folder of Parquet part files, replaced whole (Spark writes `_SUCCESS` last). Without
    `statistics`, no min/max in the footers (pseudonymised outputs keep their footers minimal)."""
    writer = df.write.mode("overwrite").option("compression", "zstd")
    if not statistics:
        writer = writer.option("parquet.column.statistics.enabled", "false")
    writer.parquet(str(path))


def tasks_write_locally(spark, path: str) -> bool:
    """Whether `write_parquet_by_tasks` may write `path`: a local path (or `file:` URI) under a
    local master, where the tasks' file system is the driver's. Anything else is written by
    Spark's own writer (`write_parquet`)."""
    return spark.sparkContext.master.startswith("local") and not _is_remote(str(path))


def write_parquet_by_tasks(df, path: str, schema, transform, *, statistics: bool = True) -> int:
    """`write_parquet` (a folder of zstd part files, replaced whole, `_SUCCESS` last) with each
    partition's part written by its task with pyarrow: `transform` turns each Arrow batch of `df`
    into a batch of `schema` (a Spark StructType) as it is written. For `tasks_write_locally`
    paths: no row of the output goes back through the JVM, whose row-by-row Parquet writer cost
    more than the rest of writing the pairs at 1M x 1M. Parts are named by partition (the same
    inputs give the same files, byte for byte), written as hidden temporary files (0600 from their
    creation) and renamed when complete; a failed write leaves no folder. Returns the rows written."""
    import os
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import to_arrow_schema

    from tfkit.validation.quarantine import private_folder

    folder = Path(_local_path(str(path)))
    # every column nullable, as Spark's writer makes them ("for compatibility")
    arrow_schema = pa.schema([f.with_nullable(True) for f in to_arrow_schema(schema)])
    options = {"compression": "zstd", "write_statistics": statistics}

    def create(name: str) -> str:  # the file created 0600 before any row is in it
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        return name

    def write(batches):
        from pyspark import TaskContext

        ctx = TaskContext.get()
        part = folder / f"part-{ctx.partitionId():05d}.zstd.parquet"
        tmp = folder / f".part-{ctx.partitionId():05d}-{ctx.attemptNumber()}.tmp"
        writer, rows = None, 0
        try:
            for batch in batches:
                out = pa.RecordBatch.from_arrays(transform(batch).columns, schema=arrow_schema)
                if writer is None:
                    writer = pq.ParquetWriter(create(str(tmp)), arrow_schema, **options)
                writer.write_batch(out)
                rows += out.num_rows
            if writer is not None:
                writer.close()
                writer = None
                os.replace(tmp, part)
        finally:
            if writer is not None:
                writer.close()
            if tmp.exists():
                tmp.unlink()
        yield pa.RecordBatch.from_pydict({"rows": [rows]})

    shutil.rmtree(folder, ignore_errors=True)
    private_folder(folder)
    try:
        rows = sum(r["rows"] for r in df.mapInArrow(write, "rows long").collect())
        if not any(folder.glob("part-*.parquet")):  # no row: one empty part holds the schema
            pq.write_table(arrow_schema.empty_table(), create(str(folder / "part-00000.zstd.parquet")), **options)
        create(str(folder / "_SUCCESS"))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return rows


def part_files(spark, path: str) -> list[str]:
    """The Parquet part files of a folder written by Spark (any Hadoop-compatible path), sorted by
    name: in the order of the partitions that wrote them."""
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    statuses = p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).listStatus(p)
    return sorted(str(s.getPath().toString()) for s in statuses
                  if s.isFile() and s.getPath().getName().startswith("part-"))


def delete_path(spark, path: str) -> None:
    """Remove a file or folder on any Hadoop-compatible file system (local, HDFS, S3A, ABFS)."""
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(p, True)
