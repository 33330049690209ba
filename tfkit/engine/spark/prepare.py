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
from pyspark.sql.types import DateType, IntegerType, LongType, StringType, StructField, StructType

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


def _is_date(dtype) -> bool:
    return isinstance(dtype, DateType)


@dataclass
class _Field:
    """One field's place in the fused tables: its outputs (`standardise_distinct`'s columns: text
    in the string slots s0.., a date's parts in the int slots i0..) and its coded columns (the
    codes slots c0.., in the polars engine's order: a name's own codes, then its derived ones)."""

    k: int
    column: str
    kind: str
    date_typed: bool  # the source held dates (not text): the kernel reads them back as dates
    outs: list[str]
    coded: list[str]

    @property
    def names(self) -> bool:
        return self.kind in ("name", "surname")


def _fields(fields: dict[str, str], date_typed: set[str]) -> list[_Field]:
    out = []
    for k, (column, kind) in enumerate(fields.items()):
        sample = st.standardise_distinct(pl.DataFrame({"_raw": pl.Series([], dtype=pl.String)}), column, kind)
        outs = list(sample.columns)
        coded = outs + ([f"{column}_{s}" for s in st.NAME_DERIVED] if kind in ("name", "surname") else [])
        out.append(_Field(k, column, kind, column in date_typed, outs, coded))
    return out


def _slots(plan: list[_Field]) -> tuple[int, int, int]:
    strings = max([len(f.outs) for f in plan if f.kind != "date"], default=0)
    ints = max([len(f.outs) for f in plan if f.kind == "date"], default=0)
    return strings, ints, max(len(f.coded) for f in plan)


def _standardise_all(plan: list[_Field]):
    """mapInArrow function: each batch of (field, raw value, records) through every field's rules
    (`standardise.standardise_distinct`, the polars engine's kernel), its outputs in the slots."""
    n_s, n_i, _ = _slots(plan)

    def run(batches):
        import polars as pl

        from tfkit.linkage.standardise import raw_values, standardise_distinct

        for batch in batches:
            t = pl.from_arrow(pa.Table.from_batches([batch]))
            parts = []
            for (k,), part in t.partition_by("f", as_dict=True, maintain_order=True).items():
                f = plan[k]
                raw = part.get_column("_raw")
                values = raw.str.to_date("%Y-%m-%d") if f.date_typed else raw
                cleaned = standardise_distinct(pl.DataFrame({"_raw": raw_values(values)}), f.column, f.kind)
                slots = {}
                if f.kind == "date":
                    slots.update({f"i{j}": cleaned.get_column(o).cast(pl.Int32) for j, o in enumerate(f.outs)})
                else:
                    slots.update({f"s{j}": cleaned.get_column(o).cast(pl.String) for j, o in enumerate(f.outs)})
                parts.append(part.select("f", "_raw", "_h", "n").with_columns(**slots))
            frame = pl.concat(parts, how="diagonal_relaxed") if parts else t.select("f", "_raw", "_h", "n")
            frame = frame.with_columns(*[pl.col(c).cast(pl.String) if c in frame.columns else pl.lit(None, pl.String)
                                         .alias(c) for c in (f"s{j}" for j in range(n_s))],
                                       *[pl.col(c).cast(pl.Int32) if c in frame.columns else pl.lit(None, pl.Int32)
                                         .alias(c) for c in (f"i{j}" for j in range(n_i))])
            yield from frame.select("f", "_raw", "_h", "n", *[f"s{j}" for j in range(n_s)],
                                    *[f"i{j}" for j in range(n_i)]).to_arrow(
                compat_level=pl.CompatLevel.oldest()).to_batches()

    return run


def _vocabulary_values(plan: list[_Field], variants_shared):
    """mapInArrow function: distinct (vocabulary, value) rows; the names' shared vocabulary's gets
    its Double Metaphone code, variant group and initial (`standardise.name_derived`)."""

    def run(batches):
        import polars as pl

        from tfkit.linkage.standardise import NAME_DERIVED, name_derived

        for batch in batches:
            t = pl.from_arrow(pa.Table.from_batches([batch]))
            names = t.filter(pl.col("voc") == "_names")
            derived = name_derived(names.get_column("v"), variants_shared.value)
            out = pl.concat([names.with_columns(**{k: derived[k] for k in NAME_DERIVED}),
                             t.filter(pl.col("voc") != "_names")], how="diagonal_relaxed")
            yield from out.select("voc", "v", *NAME_DERIVED).to_arrow(compat_level=pl.CompatLevel.oldest()).to_batches()

    return run


def _code_all(plan: list[_Field], shared):
    """mapInArrow function: each (field, raw value)'s outputs -> codes in the broadcast vocabularies
    (a name's outputs in the names' shared one, and its derived codes), in the codes slots."""
    _, _, n_c = _slots(plan)

    def run(batches):
        import polars as pl

        from tfkit.linkage.standardise import NAME_DERIVED, _codes

        vocab, derived = shared.value
        for batch in batches:
            t = pl.from_arrow(pa.Table.from_batches([batch]))
            parts = []
            for (k,), part in t.partition_by("f", as_dict=True, maintain_order=True).items():
                f = plan[k]
                codes = []
                for j, o in enumerate(f.outs):
                    if f.kind == "date":
                        codes.append(part.get_column(f"i{j}"))
                    else:
                        codes.append(_codes(part.get_column(f"s{j}"), vocab["_names" if f.names else o]))
                if f.names:
                    codes += [derived[s].gather(codes[0]) for s in NAME_DERIVED]
                parts.append(part.select("f", "_raw", "_h", "n").with_columns(
                    **{f"c{j}": c.cast(pl.Int32) for j, c in enumerate(codes)}))
            frame = pl.concat(parts, how="diagonal_relaxed") if parts else t.select("f", "_raw", "_h", "n")
            frame = frame.with_columns(*[pl.lit(None, pl.Int32).alias(c) for c in (f"c{j}" for j in range(n_c))
                                         if c not in frame.columns])
            yield from frame.select("f", "_raw", "_h", "n", *[f"c{j}" for j in range(n_c)]).to_arrow(
                compat_level=pl.CompatLevel.oldest()).to_batches()

    return run


@dataclass
class _Lookup:
    """Per field, its distinct raw values' 64-bit hashes (sorted) and their codes (one column per
    coded column, NULL where missing): what the records' pass gathers its codes from."""

    hashes: dict[int, np.ndarray]
    codes: dict[int, np.ndarray]

    def gather(self, k: int, hashes: np.ndarray, present: np.ndarray) -> np.ndarray:
        keys = self.hashes[k]
        at = np.searchsorted(keys, hashes).clip(0, max(len(keys) - 1, 0))
        found = present & (keys[at] == hashes) if len(keys) else np.zeros(len(hashes), bool)
        out = np.full((len(hashes), self.codes[k].shape[1]), st.NULL, dtype=np.int32)
        out[found] = self.codes[k][at[found]]
        return out


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
    `keep`: columns carried as given (text) into the records (a truth column).

    A fixed number of Spark jobs whatever the number of fields (`SparkPrepared.timings` names them):
    one scan of the records (cached) counting each source's rows and the over-long values; one of
    every field's raw values tagged by field, grouped (distinct values and their records), through
    the rules in one `mapInArrow` (`_standardise_all`); one collect of every vocabulary (the names'
    with their derived codes); one collect of the distinct values' codes by field, keyed by the
    raw value's 64-bit hash (`_code_all`: never the raw values on the driver), which also gives the
    term frequencies (each value's records counted); the records coded in one pass (`_coding_pass`,
    cached). Above `BROADCAST_LOOKUP_ROWS` distinct values, or on a hash collision, the codes are
    joined to the records by Spark instead (`_join_codes`)."""
    import time

    from pyspark import StorageLevel

    variants = variants or st.NameVariants.load()
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock[0], 3)
        clock[0] = now

    names = list(sources)
    keep = tuple(c for c in keep if c not in fields)
    date_typed = {c for c in fields if any(_is_date(f.dataType) for df in sources.values() for f in df.schema.fields
                                           if f.name == c)}
    plan = _fields(fields, date_typed)
    parts = [df.select(F.col(ROW), F.lit(i).cast("int").alias("_source"),
                       F.col(id_columns[s]).cast("string").alias("_record_id"),
                       *[F.col(f"`{c}`").cast("string").alias(c) for c in keep],
                       *[F.col(c).cast("string").alias(f"__in_{c}") for c in fields])
             for i, (s, df) in enumerate(sources.items())]
    raw = parts[0]
    for p in parts[1:]:
        raw = raw.unionByName(p)
    raw = raw.persist(StorageLevel.MEMORY_AND_DISK)
    text = [c for c in fields if c not in date_typed]
    stats = {r["_source"]: r for r in raw.groupBy("_source").agg(
        (F.max(ROW) + 1).alias("__n"),
        *[F.sum((F.length(f"__in_{c}") > st.MAX_CHARS).cast("long")).alias(c) for c in text]).collect()}
    sizes = [int(stats[i]["__n"]) if i in stats else 0 for i in range(len(names))]
    truncated = {c: sum(int(r[c] or 0) for r in stats.values()) for c in text}
    truncated = {c: n for c, n in truncated.items() if n}
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    lap("read")

    # Every field's distinct raw values (with their records) through the rules, in one pass.
    n_s, n_i, n_c = _slots(plan)
    tagged = raw.select(F.inline(F.array(*[F.struct(F.lit(f.k).alias("f"), F.col(f"__in_{f.column}").alias("_raw"))
                                           for f in plan]))).where(F.col("_raw").isNotNull())
    counted = tagged.groupBy("f", "_raw").agg(F.count(F.lit(1)).alias("n")).withColumn("_h", F.xxhash64("_raw"))
    schema = StructType([StructField("f", IntegerType()), StructField("_raw", StringType()),
                         StructField("_h", LongType()), StructField("n", LongType()),
                         *[StructField(f"s{j}", StringType()) for j in range(n_s)],
                         *[StructField(f"i{j}", IntegerType()) for j in range(n_i)]])
    cleaned = counted.select("f", "_raw", "_h", "n").mapInArrow(_standardise_all(plan), schema) \
        .persist(StorageLevel.MEMORY_AND_DISK)

    # Every vocabulary in one collect (sorted on the driver: a code is a position, as in polars).
    vocab: dict[str, pl.Series] = {}
    derived: dict[str, pl.Series] = {}
    text_fields = [f for f in plan if f.kind != "date"]
    if text_fields:
        # (vocabulary, value) of every text output: the names' outputs share one vocabulary.
        pick = lambda f, j, o: F.when(F.col("f") == f.k, F.struct(  # noqa: E731
            F.lit("_names" if f.names else o).alias("voc"), F.col(f"s{j}").alias("v")))
        vals = cleaned.select(F.inline(F.array(*[pick(f, j, o) for f in text_fields for j, o in enumerate(f.outs)])))
        shared_variants = spark.sparkContext.broadcast(variants)
        vschema = StructType([StructField("voc", StringType()), StructField("v", StringType()),
                              *[StructField(n, StringType()) for n in st.NAME_DERIVED]])
        table = pl.from_arrow(vals.where(F.col("v").isNotNull()).distinct()
                              .mapInArrow(_vocabulary_values(plan, shared_variants), vschema).toArrow())
        shared_variants.destroy()
        lap("standardise distinct values, vocabularies")
        names_table = table.filter(pl.col("voc") == "_names").sort("v")
        if any(f.names for f in plan):
            names_vocab = names_table.get_column("v")
            vocab["_names"] = names_vocab
            derived_vocab = {}
            for suffix in st.NAME_DERIVED:
                derived[suffix], derived_vocab[suffix] = st._encode(names_table.get_column(suffix))
            for f in plan:
                if f.names:
                    vocab[f.column] = names_vocab.rename(f.column)
                    for suffix in st.NAME_DERIVED:
                        vocab[f"{f.column}_{suffix}"] = derived_vocab[suffix].rename(f"{f.column}_{suffix}")
        for f in plan:
            if f.kind not in ("date", "name", "surname"):
                for o in f.outs:
                    vocab[o] = table.filter(pl.col("voc") == o).get_column("v").sort().rename(o)
    order = [c for f in plan if f.names for c in f.coded] + [c for f in plan if not f.names for c in f.coded]
    tf_columns = [f.column for f in plan if f.names] + [c for f in plan if f.kind in st.TF_KINDS
                                                         for c in st.TF_KINDS[f.kind](f.column)]
    unordered = None
    forenames = [f.column for f in plan if f.kind == "name"]
    surnames = [f.column for f in plan if f.kind == "surname"]
    if forenames and surnames:
        unordered = (forenames[0], surnames[0])

    # The distinct values' codes (by raw value's hash) and records, collected when they are few.
    shared = spark.sparkContext.broadcast((vocab, derived))
    cschema = StructType([StructField("f", IntegerType()), StructField("_raw", StringType()),
                          StructField("_h", LongType()), StructField("n", LongType()),
                          *[StructField(f"c{j}", IntegerType()) for j in range(n_c)]])
    code_table = cleaned.mapInArrow(_code_all(plan, shared), cschema)
    # (A count of the cached table, then one collect: `limit` would collect in growing rounds of jobs.)
    small = pl.from_arrow(code_table.drop("_raw").toArrow()) if cleaned.count() <= BROADCAST_LOOKUP_ROWS else None
    lookup = _lookup(plan, small) if small is not None else None
    lap("code tables")
    tf: dict[str, np.ndarray] = {}
    if lookup is not None:
        for c in tf_columns:
            f = next(f for f in plan if c in f.coded)
            j = f.coded.index(c)
            part = small.filter((pl.col("f") == f.k) & pl.col(f"c{j}").is_not_null())
            counts = np.bincount(part.get_column(f"c{j}").to_numpy(), weights=part.get_column("n").to_numpy(),
                                 minlength=vocab[c].len()).astype(np.float64)
            total = counts.sum()
            tf[c] = counts / total if total else counts
        records = _coding_pass(spark, raw, plan, lookup, offsets, keep, order, unordered,
                               vocab.get("_names"))
    else:
        records = _join_codes(raw, plan, code_table, offsets, keep, order, unordered, vocab.get("_names"))
    records = records.persist(StorageLevel.MEMORY_AND_DISK)
    records.count()
    lap("records coded")
    shared.destroy()
    cleaned.unpersist()
    raw.unpersist()
    vocab.pop("_names", None)
    final_order = list(records.columns[3 + len(keep):])
    if lookup is None and tf_columns:  # one aggregation of the records' codes
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


def _lookup(plan: list[_Field], table: pl.DataFrame) -> _Lookup | None:
    """The collected code table as per-field sorted hashes and codes; None when two distinct raw
    values of a field share a hash (then the codes are joined by value instead)."""
    hashes, codes = {}, {}
    for f in plan:
        part = table.filter(pl.col("f") == f.k).sort("_h")
        h = part.get_column("_h").to_numpy()
        if len(h) > 1 and (np.diff(h) == 0).any():
            return None
        hashes[f.k] = h
        codes[f.k] = np.column_stack([part.get_column(f"c{j}").fill_null(st.NULL).to_numpy()
                                      for j in range(len(f.coded))]).astype(np.int32) if len(f.coded) else \
            np.empty((len(h), 0), np.int32)
    return _Lookup(hashes, codes)


def _coding_pass(spark, raw: DataFrame, plan: list[_Field], lookup: _Lookup, offsets, keep, order: list[str],
                 unordered, names_vocab) -> DataFrame:
    """The records with their codes, in one `mapInArrow` pass: each value's codes gathered from the
    broadcast lookup by its hash (`_Lookup`); the unordered name pair (`names_unordered`) ranked
    among the records' pairs from their distinct keys, collected (one number a distinct pair)."""
    hashed = raw.select((F.col(ROW) + F.element_at(F.array(*[F.lit(int(o)) for o in offsets]), F.col("_source") + 1))
                        .alias("_rid"), "_source", "_record_id", *keep,
                        *[F.when(F.col(f"__in_{f.column}").isNotNull(), F.xxhash64(f"__in_{f.column}"))
                          .alias(f"__h{f.k}") for f in plan])
    shared = spark.sparkContext.broadcast(lookup)
    ranks, size = None, names_vocab.len() if names_vocab is not None else 0
    if unordered:
        a, b = (next(f for f in plan if f.column == c).k for c in unordered)

        def pair_keys(batches):
            for batch in batches:
                key, ok = _pair_key(shared.value, batch, a, b, size)
                yield pa.RecordBatch.from_pydict({"k": np.unique(key[ok])})

        keys = hashed.select(f"__h{a}", f"__h{b}").mapInArrow(pair_keys, "k long").distinct()
        ranks = np.sort(pl.from_arrow(keys.toArrow()).get_column("k").to_numpy())
        ranks = spark.sparkContext.broadcast(ranks)
    final = list(order)
    if unordered:  # after the name columns, before the other fields: the polars engine's order
        names_cols = [c for f in plan if f.names for c in f.coded]
        final = names_cols + ["names_unordered"] + [c for c in final if c not in names_cols]
    arrow = pa.schema([pa.field("_rid", pa.int64()), pa.field("_source", pa.int32()),
                       pa.field("_record_id", pa.string()), *[pa.field(c, pa.string()) for c in keep],
                       *[pa.field(c, pa.int32()) for c in final]])
    schema = StructType([StructField("_rid", LongType()), StructField("_source", IntegerType()),
                         StructField("_record_id", StringType()), *[StructField(c, StringType()) for c in keep],
                         *[StructField(c, IntegerType()) for c in final]])
    by_column = {c: (f.k, j) for f in plan for j, c in enumerate(f.coded)}

    def code(batches):
        lookup = shared.value
        for batch in batches:
            got = {f.k: lookup.gather(f.k, *_hashes(batch, f"__h{f.k}")) for f in plan}
            cols = {"_rid": batch.column("_rid"), "_source": batch.column("_source"),
                    "_record_id": batch.column("_record_id"), **{c: batch.column(c) for c in keep}}
            for c in final:
                if c == "names_unordered":
                    key, ok = _pair_key(lookup, batch, a, b, size)
                    cols[c] = pa.array(np.searchsorted(ranks.value, key).astype(np.int32), mask=~ok)
                else:
                    k, j = by_column[c]
                    v = got[k][:, j]
                    cols[c] = pa.array(v, mask=v == st.NULL)
            yield pa.RecordBatch.from_pydict(cols, schema=arrow)

    return hashed.mapInArrow(code, schema)


def _hashes(batch, column: str) -> tuple[np.ndarray, np.ndarray]:
    h = batch.column(column)
    return h.fill_null(0).to_numpy(zero_copy_only=False), h.is_valid().to_numpy(zero_copy_only=False)


def _pair_key(lookup: _Lookup, batch, a: int, b: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The unordered name pair's key (smaller code x vocabulary size + larger; a missing name is
    left out, as polars' min/max_horizontal do), and where either is known."""
    ca = lookup.gather(a, *_hashes(batch, f"__h{a}"))[:, 0].astype(np.int64)
    cb = lookup.gather(b, *_hashes(batch, f"__h{b}"))[:, 0].astype(np.int64)
    ca, cb = np.where(ca == st.NULL, cb, ca), np.where(cb == st.NULL, ca, cb)
    return np.minimum(ca, cb) * size + np.maximum(ca, cb), ca != st.NULL


def _join_codes(raw: DataFrame, plan, code_table, offsets, keep, order, unordered, names_vocab) -> DataFrame:
    """The records coded by Spark joins (many distinct values, or a hash collision): each field's
    codes joined by raw value (a shuffle a field), the unordered name pair ranked by `dense_rank`."""
    from pyspark import StorageLevel

    # Each distinct value's codes once (cached: every field's join reads them), joined by value.
    with_raw = code_table.persist(StorageLevel.MEMORY_AND_DISK)
    records = raw.select((F.col(ROW) + F.element_at(F.array(*[F.lit(int(o)) for o in offsets]),
                                                    F.col("_source") + 1)).alias("_rid"), "*")
    for f in plan:
        table = with_raw.where(F.col("f") == f.k).select(F.col("_raw").alias(f"__raw_{f.k}"),
                                                         *[F.col(f"c{j}").alias(c) for j, c in enumerate(f.coded)])
        records = records.join(table, records[f"__in_{f.column}"] == table[f"__raw_{f.k}"], "left") \
            .drop(f"__raw_{f.k}", f"__in_{f.column}")
    final = list(order)
    if unordered:
        a, b = unordered
        size = names_vocab.len()
        key = (F.least(a, b).cast("long") * F.lit(size) + F.greatest(a, b).cast("long"))
        coded = records.withColumn("__pair", key).persist(StorageLevel.MEMORY_AND_DISK)
        ranked = dense_rank(coded.select("__pair").where(F.col("__pair").isNotNull()).distinct(), "__pair",
                            "names_unordered")
        records = coded.join(ranked, "__pair", "left").drop("__pair")
        names_cols = [c for f in plan if f.names for c in f.coded]
        final = names_cols + ["names_unordered"] + [c for c in final if c not in names_cols]
    return records.select("_rid", "_source", "_record_id", *keep, *final)


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
