"""`tfkit link --engine spark`: blocking, comparisons, scoring and clustering as distributed stages.

The stages and their arithmetic are tfkit.linkage's, not a second implementation:
- standardisation (`prepare`: cleaning, phonetic codes, term-frequency tables) runs once on the
  driver and the prepared records are broadcast to the executors;
- blocking: each `[[blocking]]` rule is a Spark equi-join on the prepared columns' integer codes;
  a pair is kept by the first rule that produces it (as `blocking.candidate_pairs`). A skew guard
  counts each rule's comparisons and largest blocks first and salts oversized blocks (the bigger
  side split by record, the other replicated), which spreads a common name over many tasks and
  leaves the pairs exactly the same;
- comparison levels and scores: `comparisons.comparison_levels` and `predict.score`, per partition
  of candidate pairs through `mapInArrow`;
- training: u by sampling, m by the model's EM sessions on the driver (sampled, as the polars
  engine does, so the same parameters); the prior from the candidate pairs meeting a deterministic
  rule, selected on the cluster; without `[[training]]` rules, EM runs on the comparison-pattern
  counts aggregated on the cluster;
- clustering: connected components by min-label propagation with pointer jumping, each round
  checkpointed, bounded by `max_iterations` and reported; cluster id = the smallest row position
  in the component, as the polars engine's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from tfkit.errors import UsageError
from tfkit.linkage import blocking as blocking_stage
from tfkit.linkage import predict as predict_stage
from tfkit.linkage import training as training_stage
from tfkit.linkage.comparisons import comparison_levels
from tfkit.linkage.linker import Linker
from tfkit.linkage.standardise import NULL

# ONS's Census 2021 deduplication rewrote any rule over 10M comparisons or any block over 100 people.
WARN_RULE_COMPARISONS = 10_000_000
WARN_BLOCK_SIZE = 100


@dataclass
class RuleSkew:
    rule: str
    comparisons: int          # pairs the rule's blocks hold in the mode's scope (before de-duplication)
    pairs_added: int          # pairs this rule adds (not produced by an earlier rule)
    largest_blocks: list[int]  # sizes (records) of the largest blocks kept; never their values
    salted_blocks: int        # blocks over the salt size, spread over several tasks
    blocks_skipped: int = 0   # blocks over the rule's max_block_pairs, left out (as the polars engine)

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.comparisons > WARN_RULE_COMPARISONS:
            out.append(f"over {WARN_RULE_COMPARISONS:,} comparisons")
        if self.largest_blocks and self.largest_blocks[0] > WARN_BLOCK_SIZE:
            out.append(f"a block of {self.largest_blocks[0]:,} records (over {WARN_BLOCK_SIZE})")
        return out


@dataclass
class SparkLinkResult:
    pairs: DataFrame      # source_l, record_id_l, source_r, record_id_r, match_weight, match_probability, levels
    clusters: DataFrame   # source, record_id, cluster_id, cluster_size (every input record)
    review: DataFrame
    linker: Linker
    threshold: float
    review_lower: float
    skew: list[RuleSkew]
    cluster_iterations: int
    counts: dict = field(default_factory=dict)

    def summary(self) -> dict:
        lk = self.linker
        return {
            "engine": "spark", "mode": lk.mode,
            "sources": dict(zip(lk.prepared.sources, lk.prepared.source_sizes())),
            **self.counts,
            "threshold": self.threshold, "review_lower": self.review_lower, "prior": lk.model.prior,
            "blocking": {"rules": [{"rule": s.rule, "pairs_added": s.pairs_added, "comparisons": s.comparisons,
                                    "largest_blocks": s.largest_blocks, "salted_blocks": s.salted_blocks,
                                    "blocks_skipped": s.blocks_skipped,
                                    "warnings": s.warnings} for s in self.skew]},
            "clustering": {"method": "min-label propagation with pointer jumping",
                           "iterations": self.cluster_iterations},
            "training": lk.model.training_log,
            "timings_seconds": {k: round(v, 3) for k, v in lk.timings.items()},
        }


# --------------------------------------------------------------------------- blocking


def _codes_frame(spark: SparkSession, prepared, columns: list[str]) -> DataFrame:
    """_rid, _source and each column's integer code (null where missing): what blocking joins on."""
    data = {"_rid": prepared.frame.get_column("_rid").to_numpy(),
            "_source": prepared.frame.get_column("_source").cast(pl.Int32).to_numpy()}
    for c in columns:
        codes = prepared.codes(c)
        data[c] = pa.array(codes, mask=codes == NULL)
    return spark.createDataFrame(pa.table(data))


def _scope(mode: str):
    """The mode's pairs: across sources (link), within (dedupe), or all (both)."""
    left, right = F.col("_source"), F.col("_source_r")  # (built in a call: Column needs a running Spark)
    return {"link": left != right, "dedupe": left == right, "both": F.lit(True)}[mode]


def _agree(c: str):
    """Both records hold the same non-null code in column c (null-safe: a null never agrees)."""
    return F.coalesce((F.col(f"{c}_l") == F.col(f"{c}_r")) & F.col(f"{c}_l").isNotNull(), F.lit(False))


def _cross_agree(a: str, b: str):
    one = F.coalesce((F.col(f"{a}_l") == F.col(f"{b}_r")) & F.col(f"{a}_l").isNotNull(), F.lit(False))
    other = F.coalesce((F.col(f"{b}_l") == F.col(f"{a}_r")) & F.col(f"{b}_l").isNotNull(), F.lit(False))
    return one | other


def _produced_by(rule):
    """A pair (columns suffixed _l/_r) meets `rule`: as `blocking._produced_by`, on the cluster."""
    conditions = [_agree(c) for c in rule.on] + ([_cross_agree(*rule.cross)] if rule.cross else [])
    return _all(*conditions)


def _block_pairs(mode: str, n_sources: int):
    """Pairs in each block in the mode's scope, from its per-source counts n0, n1, ..."""
    total = sum(F.col(f"n{s}") for s in range(n_sources))
    squares = sum(F.col(f"n{s}") * F.col(f"n{s}") for s in range(n_sources))
    within = sum(F.col(f"n{s}") * (F.col(f"n{s}") - 1) / 2 for s in range(n_sources))
    return {"link": (total * total - squares) / 2, "dedupe": within, "both": total * (total - 1) / 2}[mode]


def _rule_candidates(keys: DataFrame, rule, mode: str, limit: int, salt_above: int,
                     n_sources: int) -> tuple[DataFrame, RuleSkew]:
    """One rule's pairs (rid_l < rid_r), its blocks over `limit` pairs left out as the polars engine
    does (`blocking.plan_rule`), and blocks over `salt_above` records salted (same pairs)."""
    on = list(rule.on)
    if rule.cross:
        a, b = rule.cross
        sides = [keys.where(_all(*[F.col(c).isNotNull() for c in [*on, col]]))
                 .select("_rid", "_source", *on, F.col(col).alias("_k")) for col in (a, b)]
        blocks = sides[0].groupBy(*on, "_k").agg(F.count("*").alias("n0")).join(
            sides[1].groupBy(*on, "_k").agg(F.count("*").alias("n1")), [*on, "_k"])
        blocks = blocks.withColumn("pairs", F.col("n0") * F.col("n1")).withColumn("n", F.col("n0") + F.col("n1"))
        block_keys = [*on, "_k"]
    else:
        rows = keys.where(_all(*[F.col(c).isNotNull() for c in on])).select("_rid", "_source", *on)
        blocks = rows.groupBy(*on).agg(F.count("*").alias("n"), *[
            F.sum((F.col("_source") == s).cast("long")).alias(f"n{s}") for s in range(n_sources)])
        blocks = blocks.withColumn("pairs", _block_pairs(mode, n_sources))
        block_keys = on
    blocks = blocks.cache()
    over = F.col("pairs") > limit
    stats = blocks.agg(F.sum(F.when(~over, F.col("pairs"))).alias("c"), F.sum(over.cast("long")).alias("skipped"),
                       F.sum(((F.col("n") > salt_above) & ~over).cast("long")).alias("big")).first()
    largest = [r["n"] for r in blocks.where(~over).orderBy(F.desc("n")).select("n").limit(5).collect()]
    kept = blocks.where(~over & (F.col("pairs") > 0))
    salts = kept.select(*block_keys, F.greatest(F.lit(1), F.ceil(F.col("n") / salt_above)).cast("int").alias("_salts"))
    if rule.cross:
        left = sides[0].join(salts, block_keys)  # only the kept blocks (as the polars engine's semi-join)
        left = left.withColumn("_salt", F.col("_rid") % F.col("_salts"))
        right = sides[1].join(salts, block_keys).withColumn("_salt", F.explode(F.sequence(F.lit(0), F.col("_salts") - 1)))
        right = right.select(*block_keys, "_salt", F.col("_rid").alias("_rid_r"), F.col("_source").alias("_source_r"))
        pairs = (left.join(right, [*block_keys, "_salt"])
                 .where((F.col("_rid") != F.col("_rid_r")) & _scope(mode))
                 .select(F.least("_rid", "_rid_r").alias("rid_l"), F.greatest("_rid", "_rid_r").alias("rid_r"))
                 .distinct())
    else:
        k = rows.join(salts, on)  # only the kept blocks (inner join: semi on the block keys)
        left = k.withColumn("_salt", F.col("_rid") % F.col("_salts"))
        right = k.withColumn("_salt", F.explode(F.sequence(F.lit(0), F.col("_salts") - 1)))
        right = right.select(*on, "_salt", F.col("_rid").alias("_rid_r"), F.col("_source").alias("_source_r"))
        pairs = (left.join(right, [*on, "_salt"]).where((F.col("_rid") < F.col("_rid_r")) & _scope(mode))
                 .select(F.col("_rid").alias("rid_l"), F.col("_rid_r").alias("rid_r")))
    return pairs, RuleSkew(rule.name, int(stats["c"] or 0), 0, largest, int(stats["big"] or 0),
                           int(stats["skipped"] or 0))


def _all(*conditions):
    out = conditions[0]
    for c in conditions[1:]:
        out = out & c
    return out


def candidate_pairs_spark(spark: SparkSession, prepared, rules, mode: str, *, max_block_pairs: int,
                          salt_above: int, checkpoint_dir: str) -> tuple[DataFrame, list[RuleSkew]]:
    """Every rule's pairs not produced by an earlier rule (as `blocking.candidate_pairs`), each
    rule's pairs checkpointed to Parquet; and the skew guard's report."""
    blocking_stage.check_rules(prepared, rules)
    keys = _codes_frame(spark, prepared, sorted({c for r in rules for c in r.columns})).cache()
    parts, skew = [], []
    for k, rule in enumerate(rules):
        limit = rule.max_block_pairs or max_block_pairs
        pairs, report = _rule_candidates(keys, rule, mode, limit, salt_above, len(prepared.sources))
        earlier = rules[:k]
        if earlier:
            cols = sorted({c for e in earlier for c in e.columns})
            side = lambda s: keys.select(F.col("_rid").alias(f"rid_{s}"), *[F.col(c).alias(f"{c}_{s}") for c in cols])
            pairs = (pairs.join(side("l"), "rid_l").join(side("r"), "rid_r")
                     .where(~_any(*[_produced_by(e) for e in earlier])).select("rid_l", "rid_r"))
        path = f"{checkpoint_dir}/blocking_{k:02d}"
        pairs.withColumn("rule", F.lit(k).cast("byte")).write.mode("overwrite").parquet(path)
        parts.append(path)
        report.pairs_added = spark.read.parquet(path).count()
        skew.append(report)
    keys.unpersist()
    return spark.read.parquet(*parts), skew


def _any(*conditions):
    out = conditions[0]
    for c in conditions[1:]:
        out = out | c
    return out


# --------------------------------------------------------------------------- scoring


VETO = "non_link_rule"  # predict.score adds it only when a pair is vetoed: here every partition has it


def _scored_schema(linker: Linker):
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import BooleanType, StructField

    empty = np.empty(0, dtype=np.int64)
    levels = comparison_levels(linker.prepared, linker.model.comparisons, empty, empty)
    schema = from_arrow_schema(predict_stage.score(linker.prepared, linker.model, empty, empty, levels).to_arrow().schema)
    if linker.model.non_link_rules() and VETO not in schema.names:
        schema = schema.add(StructField(VETO, BooleanType()))
    return schema


def score_spark(spark: SparkSession, linker: Linker, candidates: DataFrame) -> DataFrame:
    """Every candidate pair scored per partition by the polars engine's kernels."""
    shared = spark.sparkContext.broadcast((linker.prepared, linker.model))
    schema = _scored_schema(linker)
    veto = VETO in schema.names

    def score_partition(batches):
        import polars as pl

        from tfkit.linkage import predict
        from tfkit.linkage.comparisons import comparison_levels

        prepared, model = shared.value
        for batch in batches:
            rid_l = batch.column("rid_l").to_numpy(zero_copy_only=False).astype(np.int64)
            rid_r = batch.column("rid_r").to_numpy(zero_copy_only=False).astype(np.int64)
            levels = comparison_levels(prepared, model.comparisons, rid_l, rid_r, batch_pairs=model.settings.batch_pairs)
            scored = predict.score(prepared, model, rid_l, rid_r, levels)
            if veto and VETO not in scored.columns:
                scored = scored.with_columns(pl.lit(False).alias(VETO))
            yield from scored.to_arrow().to_batches()

    return candidates.select("rid_l", "rid_r").mapInArrow(score_partition, schema)


def pattern_counts_spark(spark: SparkSession, linker: Linker, candidates: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Distinct comparison-level vectors and their counts over every candidate pair, aggregated on
    the cluster, in `training.patterns`' order: what EM needs, whatever the number of pairs."""
    from pyspark.sql.types import ByteType, StructField, StructType

    names = [c.name for c in linker.model.comparisons]
    shared = spark.sparkContext.broadcast((linker.prepared, linker.model.comparisons, linker.model.settings.batch_pairs))

    def level_partition(batches):
        import pyarrow as pa

        from tfkit.linkage.comparisons import comparison_levels

        prepared, comparisons, batch_pairs = shared.value
        for batch in batches:
            rid_l = batch.column("rid_l").to_numpy(zero_copy_only=False).astype(np.int64)
            rid_r = batch.column("rid_r").to_numpy(zero_copy_only=False).astype(np.int64)
            levels = comparison_levels(prepared, comparisons, rid_l, rid_r, batch_pairs=batch_pairs)
            yield pa.RecordBatch.from_pydict({n: levels[n] for n in names})

    schema = StructType([StructField(n, ByteType()) for n in names])
    rows = candidates.select("rid_l", "rid_r").mapInArrow(level_partition, schema).groupBy(*names).count().collect()
    frame = pl.DataFrame([tuple(r) for r in rows], schema={**{n: pl.Int64 for n in names}, "len": pl.Int64},
                         orient="row").sort(names)
    return frame.select(names).to_numpy().astype(np.int64), frame["len"].to_numpy().astype(np.float64)


def _as_levels(gammas: np.ndarray, counts: np.ndarray, comparisons) -> dict[str, np.ndarray]:
    """Level arrays with the same patterns and counts, for the training functions that take levels
    (one int8 per pair and comparison on the driver; the pairs themselves never leave the cluster)."""
    reps = counts.astype(np.int64)
    return {c.name: np.repeat(gammas[:, k], reps).astype(np.int8) for k, c in enumerate(comparisons)}


def train_spark(spark: SparkSession, linker: Linker, candidates: DataFrame) -> None:
    """The polars engine's training sequence (`Linker.training.train`), with the cluster doing what
    grows with the number of pairs: selecting the prior's rule hits and counting comparison patterns."""
    model, prepared = linker.model, linker.prepared
    linker.training.estimate_u_using_random_sampling()
    # The prior needs only the candidate pairs meeting a deterministic rule: select them on the cluster.
    rules = model.settings.deterministic_rules
    cols = sorted({c for r in rules for c in r})
    hits = pl.DataFrame(schema={"rid_l": pl.Int64, "rid_r": pl.Int64})
    if rules and all(c in prepared.frame.columns for c in cols):  # else estimate_prior raises the clear error
        codes = _codes_frame(spark, prepared, cols)
        side = lambda s: codes.select(F.col("_rid").alias(f"rid_{s}"), *[F.col(c).alias(f"{c}_{s}") for c in cols])
        meets = _any(*[_all(*[_agree(c) for c in r]) for r in rules])
        hits = pl.from_arrow(candidates.join(side("l"), "rid_l").join(side("r"), "rid_r").where(meets)
                             .select("rid_l", "rid_r").toArrow())
    training_stage.estimate_prior(prepared, model, hits, mode=linker.mode)
    s = model.settings
    patterns = None
    if model.training:
        linker.training.estimate_m_using_expectation_maximisation()  # sampled sessions on the driver
    else:
        patterns = pattern_counts_spark(spark, linker, candidates)
        training_stage.estimate_m_em(model, _as_levels(*patterns, model.comparisons))
    if s.refine_prior:
        patterns = patterns or pattern_counts_spark(spark, linker, candidates)
        training_stage.refine_prior(model, _as_levels(*patterns, model.comparisons), blocking_stage.comparisons_possible(
            prepared.source_sizes(), linker.mode))
    training_stage.check_training(model)


# --------------------------------------------------------------------------- clustering


def connected_components_spark(spark: SparkSession, edges: DataFrame, *, max_iterations: int,
                               checkpoint_dir: str) -> tuple[DataFrame, int]:
    """(rid, label) for every record on an edge: label = the smallest rid of its component.

    Each round: every record takes the smallest label among itself and its neighbours, then jumps
    to its label's label (pointer jumping), so rounds grow with the log of a component's diameter.
    Raises when `max_iterations` rounds do not converge (never a silently partial clustering)."""
    both = edges.select(F.col("rid_l").alias("src"), F.col("rid_r").alias("dst")).unionByName(
        edges.select(F.col("rid_r").alias("src"), F.col("rid_l").alias("dst")))
    both = both.repartition("src").cache()
    labels = both.select(F.col("src").alias("rid")).distinct().withColumn("label", F.col("rid"))
    labels = _save(labels, f"{checkpoint_dir}/labels_00")
    for i in range(1, max_iterations + 1):
        offered = both.join(labels.withColumnRenamed("rid", "dst"), "dst").groupBy(F.col("src").alias("rid")) \
            .agg(F.min("label").alias("offered"))
        hooked = labels.join(offered, "rid", "left").select("rid", F.least("label", F.coalesce("offered", "label")).alias("label"))
        jumped = hooked.alias("h").join(hooked.select(F.col("rid").alias("label"), F.col("label").alias("root")),
                                        "label", "left").select("rid", F.coalesce("root", "label").alias("label"))
        new = _save(jumped, f"{checkpoint_dir}/labels_{i:02d}")
        changed = new.join(labels.withColumnRenamed("label", "old"), "rid").where(F.col("label") != F.col("old")).count()
        labels = new
        if changed == 0:
            both.unpersist()
            return labels, i
    both.unpersist()
    raise UsageError(f"connected components did not converge in {max_iterations} rounds",
                     hint="raise [engine] cluster_max_iterations, or raise the threshold (long chains of links)")


def _save(df: DataFrame, path: str) -> DataFrame:
    df.write.mode("overwrite").parquet(path)
    return df.sparkSession.read.parquet(path)


# --------------------------------------------------------------------------- the job


def link_spark(spark: SparkSession, frames, model=None, *, mode=None, threshold=None, review_lower=None,
               seed=None, id_column=None, checkpoint_dir: str, salt_above: int = 10_000,
               max_iterations: int = 64) -> SparkLinkResult:
    """The whole job on Spark; the same pairs, weights and clusters as `tfkit.linkage.link`."""
    import time

    linker = Linker(frames, model, mode=mode, id_column=id_column, seed=seed)
    s = linker.model.settings
    threshold = s.threshold if threshold is None else threshold
    review_lower = s.review_lower if review_lower is None else review_lower
    if not 0 < review_lower <= threshold < 1:
        raise UsageError(f"need 0 < review lower ({review_lower}) <= threshold ({threshold}) < 1")
    t = time.perf_counter()
    candidates, skew = candidate_pairs_spark(spark, linker.prepared, linker.model.blocking, linker.mode,
                                             max_block_pairs=s.max_block_pairs, salt_above=salt_above,
                                             checkpoint_dir=checkpoint_dir)
    own_limit = {r.name for r in linker.model.blocking if r.max_block_pairs}
    for r in skew:  # the polars engine's warning, word for word
        if r.blocks_skipped and r.rule not in own_limit:
            linker.model.warn("blocks_skipped", f"blocking rule {r.rule!r}: {r.blocks_skipped:,} oversized "
                              f"block(s) skipped; other rules still reach them", rule=r.rule, blocks=r.blocks_skipped)
    linker.timings["block"] = time.perf_counter() - t
    t = time.perf_counter()
    train_spark(spark, linker, candidates)
    linker.timings["train"] = time.perf_counter() - t
    t = time.perf_counter()
    scored = _save(score_spark(spark, linker, candidates), f"{checkpoint_dir}/scored")
    if VETO in scored.columns and scored.where(F.col(VETO)).limit(1).count() == 0:
        scored = scored.drop(VETO)  # the polars engine's columns: the flag only when a pair was vetoed
    linker.timings["compare_and_score"] = time.perf_counter() - t
    t = time.perf_counter()
    links = scored.where(F.col("match_probability") >= threshold).select("rid_l", "rid_r")
    labels, iterations = connected_components_spark(spark, links, max_iterations=max_iterations,
                                                    checkpoint_dir=f"{checkpoint_dir}/components")
    linker.timings["cluster"] = time.perf_counter() - t

    p = linker.prepared
    ids = spark.createDataFrame(p.frame.select(
        "_rid", pl.col("_source").replace_strict(list(range(len(p.sources))), p.sources, return_dtype=pl.String)
        .alias("source"), pl.col("_record_id").alias("record_id")).to_arrow())
    clusters = (ids.join(labels.withColumnRenamed("rid", "_rid"), "_rid", "left")
                .withColumn("cluster_id", F.coalesce("label", "_rid"))
                .withColumn("cluster_size", F.count("*").over(Window.partitionBy("cluster_id")))
                .orderBy("_rid").select("source", "record_id", "cluster_id", "cluster_size"))
    rest = [c for c in scored.columns if c not in ("rid_l", "rid_r")]
    left = ids.select(F.col("_rid").alias("rid_l"), F.col("source").alias("source_l"), F.col("record_id").alias("record_id_l"))
    right = ids.select(F.col("_rid").alias("rid_r"), F.col("source").alias("source_r"), F.col("record_id").alias("record_id_r"))
    pairs = (scored.join(left, "rid_l").join(right, "rid_r").orderBy("rid_l", "rid_r")
             .select("source_l", "record_id_l", "source_r", "record_id_r", *rest))
    review = pairs.where((F.col("match_probability") >= review_lower) & (F.col("match_probability") < threshold))
    counts = {"candidate_pairs": scored.count(), "links": links.count(), "review_pairs": review.count(),
              "clusters": clusters.select("cluster_id").distinct().count()}
    return SparkLinkResult(pairs, clusters, review, linker, threshold, review_lower, skew, iterations, counts)


def link_job(frames, out: str, model=None, *, mode=None, threshold=None, review_lower=None, seed=None,
             settings) -> dict:
    """`tfkit link --engine spark`: run `link_spark`, write pairs/, clusters/ and review/ (Parquet
    folders, the polars engine's columns) and model.json + summary.json; drop the checkpoints."""
    import json
    import uuid
    from pathlib import Path

    from tfkit.engine.spark.io import delete_path, write_parquet
    from tfkit.engine.spark.session import spark_session

    spark = spark_session(settings)
    base = settings.checkpoint_dir.rstrip("/") if settings.checkpoint_dir else f"{out.rstrip('/')}/.checkpoints"
    checkpoints = f"{base}/link-{uuid.uuid4().hex[:12]}"
    try:
        result = link_spark(spark, frames, model, mode=mode, threshold=threshold, review_lower=review_lower,
                            seed=seed, checkpoint_dir=checkpoints)
        for name in ("pairs", "clusters", "review"):
            write_parquet(getattr(result, name), f"{out.rstrip('/')}/{name}")
    finally:
        delete_path(spark, checkpoints if settings.checkpoint_dir else base)
    summary = result.summary()
    summary["outputs"] = [f"{out.rstrip('/')}/{n}" for n in ("pairs", "clusters", "review")]
    if "://" not in out:  # the JSON files beside a local output (on HDFS/S3 the summary is printed)
        for name, data in (("model.json", result.linker.model.parameters()), ("summary.json", summary)):
            (Path(out) / name).write_text(json.dumps(data, indent=2, default=str) + "\n", "utf-8")
            summary["outputs"].append(str(Path(out) / name))
    return summary
