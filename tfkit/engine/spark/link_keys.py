"""Hierarchical match-key linkage on Spark: one distributed join per key, as ONS's PySpark linkage runs.

The rules are those of `tfkit.pseudonymise.link_keys` (the polars engine), and the links are equal:
keys are taken in order; each key's join sees only the records still unmatched; a key value held by
exactly one record on each side makes a pair; a value held by several records on a side is
ambiguous and not taken (counted). `one_to_many`: a value unique in A pairs with every B record
holding it, and A records stay offered to later keys.

Each pass is checkpointed to Parquet (`<checkpoint>/pass_NN_<key>/pairs`: the pass's pairs, as row
numbers, never a copy of the inputs), so the lineage stays one join long however many keys there
are. The rows matched so far are those checkpoints' row numbers: each pass leaves them out with a
broadcast anti-join (one long per matched record), reads one key column of each side, and groups B
only where its value occurs in A (B's rows are joined to A's value groups and grouped where the
join left them). A pass is one Spark job with one shuffle of each side's column by value; when A is
an LA's extract (up to `BROADCAST_A_ROWS` records), A's value groups are broadcast to B's scan
instead, and only B's rows holding one of A's values are shuffled. Its counts are observed metrics
of that job, not extra scans.
"""

from __future__ import annotations

import uuid

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tfkit.engine.spark.io import ROW, delete_path, read_parquet, write_parquet
from tfkit.errors import ConfigError
from tfkit.pseudonymise.link_keys import ID_COLUMNS, KeyLinkCount, resolve_key_names
from tfkit.pseudonymise.match_keys import MATCH_KEY_PREFIX

PAIR_COLUMNS = ("a_row", "b_row", "a_id", "b_id", "match_key")


def _id_column(df: DataFrame, given: str | None) -> str | None:
    if given is not None:
        if given not in df.columns:
            raise ConfigError(f"id column {given!r} is not in the extract")
        return given
    return next((c for c in ID_COLUMNS if c in df.columns), None)


# Matched row numbers are broadcast (8 bytes each) up to this many; beyond it Spark chooses the join.
BROADCAST_MATCHED_ROWS = 20_000_000
# An A (an LA's extract) of up to this many records has its key values broadcast to B's scan, so the
# national column is filtered where it is read, not shuffled (about 100 bytes a value on the driver).
BROADCAST_A_ROWS = 2_000_000


def _unmatched(df: DataFrame, col: str, matched: DataFrame | None, n_matched: int) -> DataFrame:
    """Rows of one key column, non-null, not matched by an earlier key."""
    rows = df.select(ROW, col).where(F.col(col).isNotNull())
    if matched is None:
        return rows
    return rows.join(F.broadcast(matched) if n_matched <= BROADCAST_MATCHED_ROWS else matched, ROW, "left_anti")


def _ids(df: DataFrame, id_col: str | None, side: str, pairs: DataFrame, n_pairs: int) -> DataFrame:
    """One side's (row, id) for the pairs' join; only the paired rows are shuffled where their row
    numbers can be broadcast (an LA's pairs against a national file: a few rows of B's millions)."""
    ids = df.select(F.col(ROW).alias(f"{side}_row"),
                    (F.col(id_col) if id_col else F.lit(None)).cast("string").alias(f"{side}_id"))
    if n_pairs <= BROADCAST_MATCHED_ROWS:
        ids = ids.join(F.broadcast(pairs.select(f"{side}_row")), f"{side}_row", "left_semi")
    return ids


def link_on_match_keys_spark(
    spark: SparkSession,
    a: str,
    b: str,
    keys=None,
    *,
    checkpoint_dir: str,
    a_id: str | None = None,
    b_id: str | None = None,
    one_to_many: bool = False,
    on_key=None,
) -> tuple[DataFrame, list[KeyLinkCount]]:
    """Link Parquet extract A to B (files or folders) on match keys; see the module docstring.

    Returns `(pairs, per_key_counts)`: pairs is a DataFrame with the polars engine's columns (a_row,
    b_row, a_id, b_id, match_key; rows as int64), ordered by key order, a_row, b_row. `on_key`, if
    given, is called with each key's `KeyLinkCount` as its pass ends (progress, per-pass timing).
    """
    from pyspark.sql import Observation

    da, db = read_parquet(spark, a, row_index=True), read_parquet(spark, b, row_index=True)
    names = resolve_key_names(da.columns, db.columns, keys)
    small_a = spark.read.parquet(a).count() <= BROADCAST_A_ROWS  # from the files' footers
    sc = spark.sparkContext
    taken: list[str] = []
    counts: list[KeyLinkCount] = []
    n_matched = 0
    for i, name in enumerate(names, start=1):
        sc.setJobDescription(f"tfkit link-keys pass {i:02d} {name}")
        col = MATCH_KEY_PREFIX + name
        done = spark.read.parquet(*taken) if taken else None
        obs_a, obs_b, obs_amb = Observation(f"a{i}"), Observation(f"b{i}"), Observation(f"amb{i}")
        ca = _unmatched(da, col, None if done is None or one_to_many else done.select(F.col("a_row").alias(ROW)),
                        n_matched).observe(obs_a, F.count(F.lit(1)).alias("n"))
        cb = _unmatched(db, col, None if done is None else done.select(F.col("b_row").alias(ROW)),
                        n_matched).observe(obs_b, F.count(F.lit(1)).alias("n"))
        ga = ca.groupBy(col).agg(F.count("*").alias("n_a"), F.min(ROW).alias("a_row"))
        # Only B's records whose value occurs in A can pair or be ambiguous (as the polars engine):
        # each is joined to its value's A group, then grouped where the join left it (one shuffle of
        # each side by value; none of B's when A's groups are broadcast, only of the rows that join).
        cb_in_a = cb.join(F.broadcast(ga) if small_a else ga, col, "inner")
        unique = (F.col("n_a") == 1) & ((F.col("n_b") == 1) | F.lit(one_to_many))
        ambiguous = F.when(~unique, 1)
        both = cb_in_a.groupBy(col).agg(
            F.count("*").alias("n_b"), F.min(ROW).alias("b_row"),
            F.max("n_a").alias("n_a"), F.max("a_row").alias("a_row"),  # one value each per group
        ).observe(
            obs_amb, F.count(ambiguous).alias("values"), F.sum(ambiguous * F.col("n_a")).alias("a"),
            F.sum(ambiguous * F.col("n_b")).alias("b"))
        if one_to_many:
            pairs = (both.where(unique).select(col, "a_row")
                     .join(cb_in_a.select(col, F.col(ROW).alias("b_row_many")), col, "inner")
                     .select("a_row", F.col("b_row_many").alias("b_row")))
        else:
            pairs = both.where(unique).select("a_row", "b_row")
        path = f"{checkpoint_dir}/pass_{i:02d}_{name}/pairs"
        write_parquet(pairs.withColumn("key_rank", F.lit(i)), path)  # the pass: one job
        n_pairs = spark.read.parquet(path).count()  # from the files' footers
        amb = obs_amb.get
        counts.append(KeyLinkCount(
            match_key=name, offered_a=int(obs_a.get["n"]), offered_b=int(obs_b.get["n"]), pairs=n_pairs,
            ambiguous_values=int(amb["values"] or 0), ambiguous_a=int(amb["a"] or 0), ambiguous_b=int(amb["b"] or 0),
        ))
        taken.append(path)
        n_matched += n_pairs
        if on_key is not None:
            on_key(counts[-1])

    sc.setJobDescription("tfkit link-keys pairs")
    ida, idb = _id_column(da, a_id), _id_column(db, b_id)
    all_pairs = spark.read.parquet(*taken)
    rank = F.create_map(*[x for i, n in enumerate(names, start=1) for x in (F.lit(i), F.lit(n))])
    out = all_pairs.withColumn("match_key", rank[F.col("key_rank")])
    ids_a = _ids(da, ida, "a", all_pairs, n_matched)
    ids_b = _ids(db, idb, "b", all_pairs, n_matched)
    out = (out.join(ids_a, "a_row", "left").join(ids_b, "b_row", "left")
           .orderBy("key_rank", "a_row", "b_row").select(*PAIR_COLUMNS))
    return out, counts


def link_keys_job(a: str, b: str, out: str, keys=None, *, one_to_many: bool = False, settings, on_key=None):
    """`tfkit link-keys --engine spark`: link, write the pairs folder at `out`, drop the checkpoints."""
    from tfkit.engine.spark.session import spark_session
    from tfkit.errors import InputFileError
    from tfkit.pseudonymise.link_keys import LinkKeysRun

    if out.rstrip("/") in (a.rstrip("/"), b.rstrip("/")):
        raise InputFileError("the output would overwrite the input", file=out, hint="choose another --out")
    spark = spark_session(settings)
    if settings.checkpoint_dir:
        checkpoints = f"{settings.checkpoint_dir.rstrip('/')}/link-keys-{uuid.uuid4().hex[:12]}"
    else:
        checkpoints = f"{out.rstrip('/')}.checkpoints"
    pairs, counts = link_on_match_keys_spark(spark, a, b, keys, checkpoint_dir=checkpoints, one_to_many=one_to_many,
                                            on_key=on_key)
    write_parquet(pairs, out)
    written = spark.read.parquet(out).count()
    rows = [read_parquet(spark, p).count() for p in (a, b)]
    delete_path(spark, checkpoints)
    spark.sparkContext.setJobDescription(None)
    return LinkKeysRun(a, b, out, "spark", one_to_many, rows[0], rows[1], written, counts)
