"""`prepare` on Spark: standardisation on the executors, the prepared records kept on the cluster.

The rules are tfkit.linkage.standardise's, not a second implementation: every field's distinct raw
values (a Spark `distinct`) go through `standardise.standardise_distinct` per Arrow batch on the
executors (`mapInArrow`); the names' shared vocabulary gets its phonetic code, variant group and
initial there too (`standardise.name_derived`). What comes back to the driver is per *distinct*
value, never per record: each coded column's vocabulary (sorted, as the polars engine's: the code of
a value is its position) and each term-frequency table (one Spark aggregation per column). The
distinct-value -> code tables are built on the executors from the broadcast vocabularies and joined
to the records by Spark (broadcast when small, shuffled otherwise). The records, with `_rid` (row
position in source order, as the polars engine numbers them), `_source`, `_record_id` and every
coded column, are one cached DataFrame: `SparkPrepared.records`.

Equal to `standardise.prepare` on the same inputs (tests/test_spark_prepare.py): the same codes,
vocabularies and term frequencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, StringType, StructField, StructType

from tfkit.engine.spark.io import ROW
from tfkit.linkage import standardise as st

# A distinct-value table with up to this many rows is broadcast to the records' join (a lookup, not
# records: at 10M records the largest, postcodes, has a few million rows); larger ones are shuffled.
BROADCAST_LOOKUP_ROWS = 2_000_000


@dataclass
class SparkPrepared:
    """The prepared records on the cluster and what is per distinct value on the driver.

    `records`: `_rid`, `_source`, `_record_id` and the coded columns (int32, null where missing),
    cached; `vocab[col]`, `tf[col]` and `truncated` as `standardise.Prepared`'s."""

    records: DataFrame
    sources: list[str]
    sizes: list[int]
    columns: list[str]
    vocab: dict[str, pl.Series] = field(default_factory=dict)
    tf: dict[str, np.ndarray] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step of prepare_spark
    inputs: dict[str, DataFrame] = field(default_factory=dict)  # the sources as given (with io.ROW)
    keep: tuple[str, ...] = ()  # columns carried as given (a truth column), after `_record_id`

    @property
    def n(self) -> int:
        return sum(self.sizes)

    def source_sizes(self) -> list[int]:
        return list(self.sizes)

    def local(self, columns, *, truth: str | None = None, ids_of_sources: tuple[int, ...] = (),
              ids_named: pl.DataFrame | None = None) -> st.Prepared:
        """A driver-side `Prepared` with only `columns`' codes (int32 a record and column; no record
        ids, no text): for the stages that still gather codes by row position on the driver.

        What the link constraints and evaluation read on the driver, made on the cluster:
        `truth`: that column as an integer code per record (the smallest `_rid` holding its value,
        null where missing: equal codes exactly where the values are equal, so `truth_codes`,
        `true_pairs` and the labels are the polars engine's); `_record_id` for the records of the
        sources `ids_of_sources` (clean sources) and those `ids_named` names (`_source` index,
        `_record_id`: a reviewer's decisions), null for every other record."""
        from pyspark.sql.window import Window

        columns = [c for c in self.columns if c in set(columns)]
        df = self.records
        extra = []
        if ids_of_sources or (ids_named is not None and ids_named.height):
            wanted = F.col("_source").isin(list(ids_of_sources)) if ids_of_sources else F.lit(False)
            if ids_named is not None and ids_named.height:
                named = self.records.sparkSession.createDataFrame(
                    ids_named.select(pl.col("_source").cast(pl.Int32), pl.col("_record_id").cast(pl.String))
                    .unique().with_columns(pl.lit(True).alias("__named")).to_arrow())
                df = df.join(F.broadcast(named), ["_source", "_record_id"], "left")
                wanted = wanted | F.coalesce(F.col("__named"), F.lit(False))
            extra.append(F.when(wanted, F.col("_record_id")).alias("_record_id"))
        if truth:
            extra.append(F.when(F.col(truth).isNotNull(), F.min("_rid").over(Window.partitionBy(truth)))
                         .alias(truth))
        table = df.select("_rid", "_source", *extra, *columns).orderBy("_rid").toArrow()
        frame = pl.from_arrow(table).with_columns(pl.col("_source").cast(pl.UInt16))
        return st.Prepared(frame=frame, sources=list(self.sources), vocab=dict(self.vocab), tf=dict(self.tf),
                           truncated=dict(self.truncated))

    def band(self, rids: np.ndarray, columns: list[str]) -> tuple[st.Prepared, pl.DataFrame]:
        """The records at row positions `rids` (sorted, distinct) only, collected from the cluster:
        a `Prepared` whose row k is `rids[k]` (`_source`, `_record_id` and `columns`' codes) and the
        same rows' `columns` as the sources gave them (text). What the review folder shows for its
        band of pairs, without the other records on the driver."""
        spark = self.records.sparkSession
        wanted = F.broadcast(spark.createDataFrame(pa.table({"_rid": pa.array(rids, pa.int64())})))
        coded = pl.from_arrow(self.records.join(wanted, "_rid").select(
            "_rid", "_source", "_record_id", *[c for c in columns if c in self.columns]).orderBy("_rid").toArrow())
        offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        given = None
        for i, df in enumerate(self.inputs.values()):
            part = df.select((F.col(ROW) + F.lit(int(offsets[i]))).alias("_rid"),
                             *[(F.col(f"`{c}`") if c in df.columns else F.lit(None)).cast("string").alias(c)
                               for c in columns])
            given = part if given is None else given.unionByName(part)
        given = pl.from_arrow(given.join(wanted, "_rid").orderBy("_rid").toArrow())
        frame = coded.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_rid"),
                                   pl.col("_source").cast(pl.UInt16))
        prepared = st.Prepared(frame=frame, sources=list(self.sources), vocab=dict(self.vocab), tf=dict(self.tf),
                               truncated=dict(self.truncated))
        return prepared, given.drop("_rid")

    def unpersist(self) -> None:
        self.records.unpersist()


def with_row_index(spark: SparkSession, frame: pl.DataFrame) -> DataFrame:
    """A polars frame as a Spark DataFrame with the 0-based row number `io.ROW` (what
    `io.read_parquet(..., row_index=True)` gives a file read by Spark)."""
    return spark.createDataFrame(frame.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64)).to_arrow())


def _raw_type(dtype) -> object:
    return DateType() if isinstance(dtype, DateType) else StringType()


def _cleaned_schema(column: str, kind: str, raw_type) -> StructType:
    """The kernel's output: the raw value and `standardise_distinct`'s columns for the kind."""
    if kind == "date":
        names = [column, *(f"{column}_{s}" for s in ("year", "month", "day", "ym", "md", "yd", "digits"))]
        return StructType([StructField("_raw", raw_type), *[StructField(n, IntegerType()) for n in names]])
    names = {"name": [column], "surname": [column, f"{column}_first", f"{column}_last"],
             "postcode": [column, *(f"{column}_{s}" for s in ("sector", "district", "area", "block", "sorted"))],
             "category": [column], "string": [column]}[kind]
    return StructType([StructField("_raw", raw_type), *[StructField(n, StringType()) for n in names]])


def _standardise_kernel(column: str, kind: str):
    """mapInArrow function: each batch of distinct raw values through the polars engine's rules."""

    def run(batches):
        import polars as pl

        from tfkit.linkage.standardise import raw_values, standardise_distinct

        for batch in batches:
            raw = pl.from_arrow(pa.Table.from_batches([batch])).get_column("_raw")
            distinct = pl.DataFrame({"_raw": raw_values(raw)})
            cleaned = standardise_distinct(distinct, column, kind)
            if kind == "date":
                cleaned = cleaned.cast(pl.Int32)
            yield from pl.concat([pl.DataFrame({"_raw": raw}), cleaned], how="horizontal").to_arrow(
                compat_level=pl.CompatLevel.oldest()).to_batches()

    return run


def _codes_kernel(shared, mapping: dict[str, str], derived_of: dict[str, str]):
    """mapInArrow function: a distinct-value table's cleaned text -> codes in the broadcast
    vocabularies (`mapping`: output column -> vocabulary), and the names' derived codes
    (`derived_of`: output column -> (its name column, suffix) via the derived code tables)."""

    def run(batches):
        import polars as pl

        from tfkit.linkage.standardise import _codes

        vocab, derived = shared.value
        for batch in batches:
            t = pl.from_arrow(pa.Table.from_batches([batch]))
            out = {"_raw": t.get_column("_raw")}
            for name, voc in mapping.items():
                out[name] = _codes(t.get_column(name), vocab[voc])
            for name, (source, suffix) in derived_of.items():
                out[name] = derived[suffix].gather(out[source])
            yield from pl.DataFrame(out).to_arrow(compat_level=pl.CompatLevel.oldest()).to_batches()

    return run


def dense_rank(keys: DataFrame, column: str, alias: str) -> DataFrame:
    """(column, alias): each distinct value's 0-based position in sorted order (int), distributed:
    the values range-partitioned and sorted, each partition's count collected (one number a
    partition) and its offset added to the row's position in the partition (no single-partition
    window, no Python per row)."""
    from pyspark import StorageLevel

    placed = keys.orderBy(column).select(column, F.spark_partition_id().alias("__p"),
                                         F.monotonically_increasing_id().alias("__m")) \
        .persist(StorageLevel.MEMORY_AND_DISK)
    counts = sorted((r["__p"], r["n"], r["first"]) for r in
                    placed.groupBy("__p").agg(F.count(F.lit(1)).alias("n"), F.min("__m").alias("first")).collect())
    rows, start = [], 0
    for part, n, first in counts:
        rows.append((part, start - first))
        start += n
    shift = keys.sparkSession.createDataFrame(rows, "__p int, __shift long")
    return placed.join(F.broadcast(shift), "__p").select(column, (F.col("__m") + F.col("__shift")).cast("int").alias(alias))


def prepare_spark(spark: SparkSession, sources: dict[str, DataFrame], fields: dict[str, str], *,
                  id_columns: dict[str, str], variants: st.NameVariants | None = None,
                  keep: tuple[str, ...] = ()) -> SparkPrepared:
    """`standardise.prepare` on the cluster. `sources`: each source's records with `io.ROW` (row
    number in the source), every column of `fields` and its id column (`id_columns[source]`);
    `keep`: columns carried as given (text) into the records (a truth column)."""
    from pyspark import StorageLevel

    import time

    variants = variants or st.NameVariants.load()
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock[0], 3)
        clock[0] = now

    names = list(sources)
    sizes = [int(r[0]) if r[0] is not None else 0 for r in
             (df.agg(F.max(ROW) + 1).first() for df in sources.values())]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    raw_types = {c: _raw_type(next(f.dataType for df in sources.values() for f in df.schema.fields if f.name == c))
                 for c in fields}
    parts = [df.select((F.col(ROW) + F.lit(int(offsets[i]))).alias("_rid"), F.lit(i).cast("int").alias("_source"),
                       F.col(id_columns[s]).cast("string").alias("_record_id"),
                       *[F.col(f"`{c}`").cast("string").alias(c) for c in keep if c not in fields],
                       *[F.col(c).cast(raw_types[c]).alias(f"__in_{c}") for c in fields])
             for i, (s, df) in enumerate(sources.items())]
    raw = parts[0]
    for p in parts[1:]:
        raw = raw.unionByName(p)
    raw = raw.persist(StorageLevel.MEMORY_AND_DISK)

    text = [c for c in fields if isinstance(raw_types[c], StringType)]
    truncated = {}
    if text:
        row = raw.agg(*[F.sum((F.length(f"__in_{c}") > st.MAX_CHARS).cast("long")).alias(c) for c in text]).first()
        truncated = {c: int(row[c]) for c in text if row[c]}
    lap("read")

    # Each field's distinct raw values through the rules, on the executors.
    cleaned = {}
    for column, kind in fields.items():
        distinct = raw.select(F.col(f"__in_{column}").alias("_raw")).distinct()
        cleaned[column] = distinct.mapInArrow(_standardise_kernel(column, kind),
                                              _cleaned_schema(column, kind, raw_types[column])) \
            .persist(StorageLevel.MEMORY_AND_DISK)
        cleaned[column].count()
    lap("standardise distinct values")

    vocab: dict[str, pl.Series] = {}
    derived: dict[str, pl.Series] = {}
    mappings: dict[str, tuple[dict, dict]] = {}
    order: list[str] = []  # the coded columns in the polars engine's order
    name_columns = [c for c, k in fields.items() if k in ("name", "surname")]
    tf_columns: list[str] = []
    if name_columns:
        # One vocabulary for every name column (a forename compared with a surname: swaps).
        values = None
        for c in name_columns:
            for n in cleaned[c].columns[1:]:
                part = cleaned[c].select(F.col(n).alias("v"))
                values = part if values is None else values.unionByName(part)
        # Phonetic code, variant group and initial per distinct name, on the executors.
        shared_variants = spark.sparkContext.broadcast(variants)

        def derive(batches):
            import polars as pl

            from tfkit.linkage.standardise import name_derived

            for batch in batches:
                v = pl.from_arrow(pa.Table.from_batches([batch])).get_column("v")
                d = name_derived(v, shared_variants.value)
                yield from pl.DataFrame({"v": v, **d}).to_arrow(compat_level=pl.CompatLevel.oldest()).to_batches()

        schema = StructType([StructField(n, StringType()) for n in ("v", *st.NAME_DERIVED)])
        table = pl.from_arrow(values.where(F.col("v").isNotNull()).distinct().mapInArrow(derive, schema).toArrow())
        table = table.sort("v")
        names_vocab = table.get_column("v")  # the names' shared vocabulary: distinct, sorted
        shared_variants.destroy()
        derived_vocab = {}
        for suffix in st.NAME_DERIVED:
            codes, dvocab = st._encode(table.get_column(suffix))
            derived[suffix], derived_vocab[suffix] = codes, dvocab
        for c in name_columns:
            vocab[c] = names_vocab.rename(c)
            tf_columns.append(c)
            outs = cleaned[c].columns[1:]
            order += outs
            mapping = {n: "_names" for n in outs}
            derived_of = {}
            for suffix in st.NAME_DERIVED:
                derived_of[f"{c}_{suffix}"] = (c, suffix)
                vocab[f"{c}_{suffix}"] = derived_vocab[suffix].rename(f"{c}_{suffix}")
                order.append(f"{c}_{suffix}")
            mappings[c] = (mapping, derived_of)
        vocab["_names"] = names_vocab
        lap("names: phonetic, variants")
    unordered = None
    forenames = [c for c in name_columns if fields[c] == "name"]
    surnames = [c for c in name_columns if fields[c] == "surname"]
    if forenames and surnames:
        unordered = (forenames[0], surnames[0])
    for column, kind in fields.items():
        if kind in ("name", "surname", "date"):
            if kind == "date":
                order += cleaned[column].columns[1:]
            continue
        outs = cleaned[column].columns[1:]
        # Every cleaned column's vocabulary from one collect of the (distinct-value) table.
        table = pl.from_arrow(cleaned[column].select(*outs).toArrow())
        for n in outs:
            vocab[n] = table.get_column(n).drop_nulls().unique().sort().rename(n)
        order += outs
        mappings[column] = ({n: n for n in outs}, {})
        if kind in st.TF_KINDS:
            tf_columns += list(st.TF_KINDS[kind](column))

    lap("vocabularies")
    # distinct value -> codes, on the executors from the broadcast vocabularies; joined to the records.
    shared = spark.sparkContext.broadcast((vocab, derived))
    records = raw
    for column, kind in fields.items():
        if kind == "date":
            table = cleaned[column]
        else:
            mapping, derived_of = mappings[column]
            schema = StructType([StructField("_raw", raw_types[column]),
                                 *[StructField(n, IntegerType()) for n in (*mapping, *derived_of)]])
            table = cleaned[column].mapInArrow(_codes_kernel(shared, mapping, derived_of), schema)
        table = table.withColumnRenamed("_raw", f"__raw_{column}").where(F.col(f"__raw_{column}").isNotNull())
        rows = cleaned[column].count()
        records = records.join(F.broadcast(table) if rows <= BROADCAST_LOOKUP_ROWS else table,
                               records[f"__in_{column}"] == table[f"__raw_{column}"], "left") \
            .drop(f"__raw_{column}", f"__in_{column}")
    lap("code tables")
    codes_order = order[:]
    coded = None
    if unordered:
        # The two names as an unordered pair: its dense rank among the records' pairs (as polars').
        a, b = unordered
        size = names_vocab.len()
        key = (F.least(a, b).cast("long") * F.lit(size) + F.greatest(a, b).cast("long"))
        coded = records.withColumn("__pair", key).persist(StorageLevel.MEMORY_AND_DISK)
        keys = coded.select("__pair").where(F.col("__pair").isNotNull()).distinct()
        ranked = dense_rank(keys, "__pair", "names_unordered")
        records = coded.join(ranked, "__pair", "left").drop("__pair")
        # After the name columns, before the other fields: the polars engine's column order.
        last_name = max(codes_order.index(f"{c}_{st.NAME_DERIVED[-1]}") for c in name_columns)
        codes_order.insert(last_name + 1, "names_unordered")
    final_order = codes_order
    keep = tuple(c for c in keep if c not in fields)
    records = records.select("_rid", "_source", "_record_id", *keep, *final_order).persist(StorageLevel.MEMORY_AND_DISK)
    records.count()
    if coded is not None:
        coded.unpersist()
    lap("records coded")
    shared.destroy()
    for t in cleaned.values():
        t.unpersist()
    raw.unpersist()
    vocab.pop("_names", None)

    # Term frequencies: every TF column's code counts in one aggregation (one row a column and code).
    tf: dict[str, np.ndarray] = {}
    if tf_columns:
        entries = F.array(*[F.struct(F.lit(k).alias("k"), F.col(c).alias("code")) for k, c in enumerate(tf_columns)])
        counts = pl.from_arrow(records.select(F.inline(entries)).where(F.col("code").isNotNull())
                               .groupBy("k", "code").count().toArrow())
        for k, c in enumerate(tf_columns):
            mine = counts.filter(pl.col("k") == k)
            arr = np.zeros(vocab[c].len(), dtype=np.float64)
            arr[mine.get_column("code").to_numpy()] = mine.get_column("count").to_numpy()
            total = arr.sum()
            tf[c] = arr / total if total else arr
    lap("term frequencies")
    return SparkPrepared(records, names, sizes, final_order, vocab, tf, truncated, timings, dict(sources), keep)


def shape_frames(sources: dict[str, DataFrame]) -> dict[str, pl.DataFrame]:
    """Per source, a polars frame with its columns and at most two rows saying only whether the
    source is empty and which columns hold no value (one Spark aggregation a source): what
    `linker.check_inputs` and the model's optional comparisons look at, without the records."""
    out = {}
    for name, df in sources.items():
        columns = [c for c in df.columns if c != ROW]
        row = df.agg(F.count(F.lit(1)).alias("__n"), *[F.count(F.col(f"`{c}`")).alias(f"__{i}")
                                                      for i, c in enumerate(columns)]).first()
        height = 2 if row["__n"] else 0
        out[name] = pl.DataFrame({c: [None if not row[f"__{i}"] else "x"] * height for i, c in enumerate(columns)},
                                 schema={c: pl.String for c in columns})
    return out


def spark_linker(spark: SparkSession, sources: dict[str, DataFrame], model=None, *, mode=None, id_column=None,
                 seed=None, truth_column: str | None = None, clean: tuple[str, ...] = (), decisions=None):
    """A `Linker` whose records are prepared on the cluster (`prepare_spark`), and that
    `SparkPrepared`. The Linker's input checks run on `shape_frames`; its `prepared` is the driver
    view of the coded columns (`SparkPrepared.local`) for the stages that still gather codes by row
    position on the driver or in broadcasts (training's samples and EM sessions, comparisons), with
    the truth column's codes and the record ids of the `clean` sources and of the records a
    reviewer's `decisions` name (what the link constraints and evaluation read on the driver)."""
    from tfkit.linkage.linker import Linker, _id_column

    shapes = shape_frames(sources)
    held: list[SparkPrepared] = []
    names = list(sources)

    def prepare_records(frames, names_, fields, *, id_column, variants, keep=()):
        # check_inputs added a missing optional column (compared as unknown) to the shapes: here too.
        inputs = {}
        for s, df in sources.items():
            absent = [c for c in fields if c not in df.columns]
            inputs[s] = df.select("*", *[F.lit(None).cast("string").alias(c) for c in absent])
        ids = {s: _id_column(f, s, id_column_wanted) for s, f in shapes.items()}
        prepared = prepare_spark(spark, inputs, fields, id_columns=ids, variants=variants, keep=keep)
        held.append(prepared)
        named = None
        if decisions is not None and decisions.height:
            named = pl.concat([decisions.select(pl.col(f"source_{side}").cast(pl.String).alias("s"),
                                                pl.col(f"record_id_{side}").cast(pl.String).alias("_record_id"))
                               for side in ("l", "r")]).filter(pl.col("s").is_in(names)).select(
                pl.col("s").replace_strict(names, list(range(len(names))), return_dtype=pl.Int32).alias("_source"),
                "_record_id")
        return prepared.local(prepared.columns, truth=truth_column,
                              ids_of_sources=tuple(names.index(c) for c in clean if c in names), ids_named=named)

    id_column_wanted = id_column
    linker = Linker(shapes, model, mode=mode, seed=seed, id_column=id_column, truth_column=truth_column,
                    prepare_records=prepare_records)
    return linker, held[0]
