"""Hierarchical match-key linkage on Spark: one distributed join per key, as ONS's PySpark linkage runs.

The rules are those of `tfkit.pseudonymise.link_keys` (the polars engine), and the links are equal:
keys are taken in order; each key's join sees only the records still unmatched; a key value held by
exactly one record on each side makes a pair; a value held by several records on a side is
ambiguous and not taken (counted). `one_to_many`: a value unique in A pairs with every B record
holding it, and A records stay offered to later keys.

Each pass is checkpointed to Parquet (`<checkpoint>/pass_NN_<key>/{pairs,matched_a,matched_b}`: the
pairs and the row numbers matched so far, never a copy of the inputs), so the lineage stays one
join long however many keys there are, and a failed pass is redone from the last one. Each pass
reads one key column of each side; B's records are grouped only where their value occurs in A.
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


def _checkpoint(spark: SparkSession, df: DataFrame, path: str) -> DataFrame:
    write_parquet(df, path)
    return spark.read.parquet(path)


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
) -> tuple[DataFrame, list[KeyLinkCount]]:
    """Link Parquet extract A to B (files or folders) on match keys; see the module docstring.

    Each pass reads one key column of each side, leaves out the records matched so far (an
    anti-join with the matched row numbers, which are few next to a national file), and writes its
    pairs and the matched rows to `checkpoint_dir` (never a copy of the inputs). Returns
    `(pairs, per_key_counts)`: pairs is a DataFrame with the polars engine's columns (a_row, b_row,
    a_id, b_id, match_key; rows as int64), ordered by key order, a_row, b_row.
    """
    da, db = read_parquet(spark, a, row_index=True), read_parquet(spark, b, row_index=True)
    names = resolve_key_names(da.columns, db.columns, keys)
    empty = spark.createDataFrame([], f"{ROW} long")
    matched_a, matched_b = empty, empty

    taken: list[str] = []
    counts: list[KeyLinkCount] = []
    for i, name in enumerate(names, start=1):
        col = MATCH_KEY_PREFIX + name
        ca = da.select(ROW, col).where(F.col(col).isNotNull()).join(matched_a, ROW, "left_anti")
        cb = db.select(ROW, col).where(F.col(col).isNotNull()).join(matched_b, ROW, "left_anti")
        ga = ca.groupBy(col).agg(F.count("*").alias("n_a"), F.min(ROW).alias("a_row"))
        # Only B's records whose value occurs in A can pair or be ambiguous (as the polars engine).
        cb_in_a = cb.join(ga.select(col), col, "left_semi")
        gb = cb_in_a.groupBy(col).agg(F.count("*").alias("n_b"), F.min(ROW).alias("b_row"))
        both = ga.join(gb, col, "inner").persist()  # small (values of A also in B): pairs and counts read it
        unique = (F.col("n_a") == 1) & ((F.col("n_b") == 1) | F.lit(one_to_many))
        if one_to_many:
            pairs = (both.where(unique).select(col, "a_row")
                     .join(cb_in_a.withColumnRenamed(ROW, "b_row_many"), col, "inner")
                     .select("a_row", F.col("b_row_many").alias("b_row")))
        else:
            pairs = both.where(unique).select("a_row", "b_row")
        pass_dir = f"{checkpoint_dir}/pass_{i:02d}_{name}"
        pairs = _checkpoint(spark, pairs.withColumn("key_rank", F.lit(i)), f"{pass_dir}/pairs")
        amb = both.where(~unique).agg(F.count("*").alias("values"), F.sum("n_a").alias("a"),
                                      F.sum("n_b").alias("b")).first()
        counts.append(KeyLinkCount(
            match_key=name, offered_a=ca.count(), offered_b=cb.count(), pairs=pairs.count(),
            ambiguous_values=int(amb["values"] or 0), ambiguous_a=int(amb["a"] or 0), ambiguous_b=int(amb["b"] or 0),
        ))
        both.unpersist()
        taken.append(f"{pass_dir}/pairs")
        # Hierarchical: matched records are not offered to later keys.
        if not one_to_many:
            matched_a = _checkpoint(spark, matched_a.unionByName(pairs.select(F.col("a_row").alias(ROW))),
                                    f"{pass_dir}/matched_a")
        matched_b = _checkpoint(spark, matched_b.unionByName(pairs.select(F.col("b_row").alias(ROW))),
                                f"{pass_dir}/matched_b")

    ida, idb = _id_column(da, a_id), _id_column(db, b_id)
    all_pairs = spark.read.parquet(*taken)
    rank = F.create_map(*[x for i, n in enumerate(names, start=1) for x in (F.lit(i), F.lit(n))])
    out = all_pairs.withColumn("match_key", rank[F.col("key_rank")])
    ids_a = da.select(F.col(ROW).alias("a_row"), (F.col(ida) if ida else F.lit(None)).cast("string").alias("a_id"))
    ids_b = db.select(F.col(ROW).alias("b_row"), (F.col(idb) if idb else F.lit(None)).cast("string").alias("b_id"))
    out = (out.join(ids_a, "a_row", "left").join(ids_b, "b_row", "left")
           .orderBy("key_rank", "a_row", "b_row").select(*PAIR_COLUMNS))
    return out, counts


def link_keys_job(a: str, b: str, out: str, keys=None, *, one_to_many: bool = False, settings):
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
    pairs, counts = link_on_match_keys_spark(spark, a, b, keys, checkpoint_dir=checkpoints, one_to_many=one_to_many)
    write_parquet(pairs, out)
    written = spark.read.parquet(out).count()
    rows = [read_parquet(spark, p).count() for p in (a, b)]
    delete_path(spark, checkpoints)
    return LinkKeysRun(a, b, out, "spark", one_to_many, rows[0], rows[1], written, counts)
