"""`tfkit link --engine spark`: blocking, comparisons, scoring and clustering as distributed stages.

The stages and their arithmetic are tfkit.linkage's, not a second implementation:
- standardisation (`prepare`: cleaning, phonetic codes, term-frequency tables) runs once, on the
  driver or on the cluster (`prepare.py`); the records' int32 codes reach the executors' kernels as
  memory-mapped files Spark ships to each node (`mapped.py`), not as broadcast objects;
- blocking planned on the driver from the records' codes (the polars engine's
  `blocking.equi_blocks` / `cross_blocks` and `sorted_runs`: block sizes, the skew guard's report,
  the blocks over the limit left out); each rule's sorted rows and their runs of partners reach the
  executors as mapped files, cut into tasks of about a million pairs (a common name's block spread
  over several tasks, by record: no block stalls a stage), where the pairs are made with the polars
  engine's kernel (`blocking.run_pairs`), each kept only for the first rule that produces it
  (`blocking.produced_by`), so the pairs are exactly `blocking.candidate_pairs`' with no shuffle;
- in the same job, comparison levels once per pair (`comparisons.comparison_levels`), written to
  Parquet as one pattern code, with a flag for the prior's deterministic rules and the per-pair
  parts of the score (term-frequency and full-name adjustments: no model parameter in them);
- scoring after training as a projection of those columns, no pass through Python: the pattern's
  part of `predict.score` (level weights, swaps, veto) from a table made on the driver per pattern;
- training: u by sampling, m by the model's EM sessions on the driver (sampled, as the polars
  engine does, so the same parameters); the prior from the candidate pairs meeting a deterministic
  rule, selected on the cluster; without `[[training]]` rules, EM runs on the comparison-pattern
  counts aggregated on the cluster;
- clustering: each partition's links first reduced to stars (its components by the polars engine's
  kernel), then connected components by min-label propagation with pointer jumping, one Spark job a
  round (labels kept with localCheckpoint), stopping when no label changes, bounded by
  `max_iterations` and reported; cluster id = the smallest row position in the component, as the
  polars engine's;
- outputs: every stage works on row positions; the record ids (and sources) reach the pairs, the
  review queue and the clusters in the writing task, gathered by row position from mapped files
  (`SharedIds`): no shuffle of the pairs for their ids, at any size (the pairs of records prepared
  on the driver, up to 5M, by two broadcast joins instead, cheaper at that size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tfkit.errors import UsageError
from tfkit.linkage import blocking as blocking_stage
from tfkit.linkage import predict as predict_stage
from tfkit.linkage import training as training_stage
from tfkit.linkage.linker import Linker, TrainingBeside
from tfkit.linkage.standardise import NULL

# ONS's Census 2021 deduplication rewrote any rule over 10M comparisons or any block over 100 people.
WARN_RULE_COMPARISONS = 10_000_000
WARN_BLOCK_SIZE = 100
# The job's own checkpoints (pairs, levels, scores: read back and deleted by the job) are written
# with snappy, not the outputs' zstd: measured on 5M scored rows (local[2]), write + read took 7.8 s
# of CPU against 13.5 s. (lz4_raw was as fast, but Spark 4.0's Parquet reader failed on some of
# its pages: "MalformedInputException: all input must be consumed".)
CHECKPOINT_CODEC = "snappy"


@dataclass
class RuleSkew:
    rule: str
    comparisons: int          # pairs the rule's blocks hold in the mode's scope (before de-duplication)
    pairs_added: int          # pairs this rule adds (not produced by an earlier rule)
    largest_blocks: list[int]  # sizes (records) of the largest blocks kept; never their values
    split_blocks: int         # kept blocks whose pairs are made by more than one task (sub-blocked by record)
    blocks_skipped: int = 0   # blocks over the rule's max_block_pairs or past its budget, left out (as the polars engine)
    pairs_skipped: int = 0
    budget_limit: int | None = None  # the block limit the rule's comparison budget lowered it to

    @property
    def pairs_planned(self) -> int:  # the polars engine's name (blocking.RuleCount), for warn_skipped
        return self.comparisons

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
    link_stats: object = None       # clustering.LinkStats: what the link constraints did
    metrics: dict | None = None     # evaluation against the truth column (evaluate.evaluate's dict)
    scored: DataFrame | None = None  # scored pairs by row position (rid_l, rid_r): the report's figures
    records: object = None  # prepare.SparkPrepared when the records were prepared on the cluster, else None
    ids: SharedIds | None = None  # the records' ids as mapped files: what pairs, clusters and review read
    band: DataFrame | None = None  # `scored`'s pairs at or above the review band's floor (saved)
    positions: dict = field(default_factory=dict)  # OUTPUTS by row position (`ByPosition`): what `link_job` writes

    def __post_init__(self) -> None:
        import weakref

        from tfkit.engine.spark import mapped

        # the driver's copy of the mapped ids goes with the result when nobody called close()
        self._drop_ids = weakref.finalize(self, mapped.drop, self.ids.files) if self.ids is not None else None

    def close(self) -> None:
        """Delete the driver's copy of the mapped ids (`pairs`, `clusters` and `review` read them:
        call once they are written; else it goes when the result is garbage-collected, or at exit)."""
        if self._drop_ids is not None:
            self._drop_ids()

    def blocking_report(self):
        """The polars engine's `BlockingReport` (what the report's blocking section reads)."""
        from tfkit.linkage.blocking import BlockingReport, RuleCount

        p = self.linker.prepared
        report = BlockingReport([RuleCount(s.rule, s.pairs_added, s.comparisons, s.blocks_skipped) for s in self.skew],
                                sum(s.pairs_added for s in self.skew),
                                blocking_stage.comparisons_possible(p.source_sizes(), self.linker.mode))
        if self.metrics is not None:
            report.true_pairs = self.metrics["true_pairs"]
            report.true_pairs_found = self.counts.get("true_pairs_found")
        return report

    def summary(self) -> dict:
        lk = self.linker
        metrics = None if self.metrics is None else {k: v for k, v in self.metrics.items() if k != "curve"}
        return {
            "engine": "spark", "mode": lk.mode, "prepared_on": "driver" if self.records is None else "cluster",
            "sources": dict(zip(lk.prepared.sources, lk.prepared.source_sizes())),
            **{k: v for k, v in self.counts.items() if k != "true_pairs_found"},
            "threshold": self.threshold, "review_lower": self.review_lower, "prior": lk.model.prior,
            "blocking": {"rules": [{"rule": s.rule, "pairs_added": s.pairs_added, "comparisons": s.comparisons,
                                    "largest_blocks": s.largest_blocks, "split_blocks": s.split_blocks,
                                    "blocks_skipped": s.blocks_skipped, "pairs_skipped": s.pairs_skipped,
                                    "budget_limit": s.budget_limit,
                                    "warnings": s.warnings} for s in self.skew]},
            "clustering": {"method": "min-label propagation with pointer jumping",
                           "iterations": self.cluster_iterations},
            "training": lk.model.training_log,
            "constraints": self.link_stats.to_dict() if self.link_stats is not None else None,
            "warnings": lk.model.warnings,
            "metrics": metrics,
            "timings_seconds": {k: round(v, 3) for k, v in lk.timings.items()},
        }


# --------------------------------------------------------------------------- blocking


# Pairs a block job task makes (before the pairs an earlier rule produced are dropped): the plan's
# rows are split into tasks of about this many, so a large block's rows are spread over several
# tasks (sub-blocked by record) and no task holds more than a few tens of MB of pairs.
PAIRS_PER_TASK = 1_000_000


@dataclass
class _BlockPlan:
    """What the driver plans from the block sizes (`_plan_blocks`): the skew report's figures and
    the tasks, each a contiguous range of one rule's sorted rows holding about `pairs_per_task`
    pairs; per rule, the rows and each row's run of partners are in the mapped `files`."""
    files: object                # mapped.Mapped: per rule k, _rid{k}, _lo{k}, _runs{k} (and _kept{k} where blocks were left out)
    tasks: list[tuple[int, int, int]] = field(default_factory=list)  # (rule, first row, row after the last)
    counts: list = field(default_factory=list)  # per rule: `blocking.RuleCount` (planned, skipped, budget limit)
    largest: list[list[int]] = field(default_factory=list)  # per rule: the five largest kept blocks' sizes (records)
    spread: list[int] = field(default_factory=list)  # per rule: kept blocks whose rows are made by more than one task


def _plan_blocks(spark, prepared, rules, mode: str, *, max_block_pairs: int, pairs_per_task: int,
                 budget: int | None = None) -> _BlockPlan:
    """Every rule's blocks planned on the driver from the records' codes (the polars engine's
    `blocking.rule_runs`: one sort a rule, no Spark job). A rule's rows in sorted order, each with
    its run of partners, are what the executors make its pairs from (`_pair_tasks`), read from
    mapped files (written a rule at a time, the next rule sorted meanwhile: the driver holds two
    rules' plans at most): no block row is shuffled, and a task is a range of a rule's rows cut
    anywhere, so a block's rows can be made by several tasks (a block of a common name cannot
    stall a stage). About 12 bytes a record and rule, for the records sitting in a block with
    another record (most records are alone in most rules' blocks).

    Blocks over the rule's limit, and past its comparison budget, are left out as the polars
    engine leaves them (`blocking.skipped_blocks`)."""
    from concurrent.futures import ThreadPoolExecutor

    from tfkit.engine.spark import mapped
    from tfkit.linkage.blocking import rule_runs

    plan = _BlockPlan(mapped.folder())
    index = np.int32 if 2 * prepared.n < 2 ** 31 else np.int64  # positions and runs: half the bytes
    runs_of = lambda k: rule_runs(prepared, rules[k], mode, rules[k].max_block_pairs or max_block_pairs,  # noqa: E731
                                  budget)
    pool = ThreadPoolExecutor(1)  # the next rule sorted beside this one's files (the sorts release the GIL)
    try:
        ahead = pool.submit(runs_of, 0) if rules else None
        for k, rule in enumerate(rules):
            r = ahead.result()
            if k + 1 < len(rules):  # at most two rules' plans held at once
                ahead = pool.submit(runs_of, k + 1)
            rid, side, lo, runs, size, kept, over = r.rid, r.side, r.lo, r.runs, r.size, r.kept, r.over
            plan.counts.append(r.count(rule.name))
            plan.largest.append(sorted(size[kept].tolist(), reverse=True)[:5] if kept.any() else [])
            if over.any():  # records whose block (side 0's) was left out produce nothing for this rule
                flags = np.ones(prepared.n, dtype=bool)
                in_over = np.repeat(over, size)
                flags[rid[in_over & (side == 0) if side is not None else in_over]] = False
                mapped.save(plan.files, f"_kept{k}", flags)
            for name, values in (("_rid", rid), ("_lo", lo), ("_runs", runs)):
                mapped.save(plan.files, f"{name}{k}", values.astype(index))
            # the rule's rows cut into tasks of about pairs_per_task pairs (by each row's first pair)
            first = np.cumsum(runs) - runs
            total = int(runs.sum())
            cuts = np.arange(0, total, pairs_per_task, dtype=np.int64)
            bounds = np.append(np.searchsorted(first, cuts, side="left"), len(first)) if total else np.zeros(0, np.int64)
            plan.tasks += [(k, int(a), int(z)) for a, z in zip(bounds[:-1], bounds[1:]) if z > a]
            # kept blocks whose pair-making rows fall in more than one task (the skew report's figure)
            task = np.searchsorted(cuts, first, side="right")
            making = runs > 0
            starts = np.cumsum(size) - size
            high = np.maximum.reduceat(np.where(making, task, -1), starts) if len(size) else np.zeros(0)
            low = np.minimum.reduceat(np.where(making, task, len(cuts) + 1), starts) if len(size) else np.zeros(0)
            plan.spread.append(int((kept & (high > low)).sum()))
        mapped.ship(spark, plan.files)
    except BaseException:
        mapped.drop(plan.files)
        raise
    finally:
        pool.shutdown(cancel_futures=True)
    return plan


def _pair_tasks(records, plan_files, tasks: list[tuple[int, int, int]], rules, mode: str):
    """The mapInArrow function making a task's pairs (its input: task numbers, `spark.range`):
    the rows of its range of one rule's plan (`_BlockPlan.tasks`), each with the rows of its run
    (`blocking.run_pairs`, the polars engine's kernel), each pair kept once, for the first rule
    that produces it (`blocking.produced_by` on the mapped codes). `records`: the broadcast mapped
    records; `plan_files`: the plan's mapped arrays."""

    def pairs(batches):
        from tfkit.linkage.blocking import cross_scope, produced_by, run_pairs
        from tfkit.linkage.standardise import NULL

        codes = records.value  # the mapped records (mapped.share_prepared)
        kept = [plan_files.array(f"_kept{k}") if f"_kept{k}" in plan_files else None for k in range(len(rules))]
        for b in batches:
            for t in b.column("id").to_numpy(zero_copy_only=False):
                k, a, z = tasks[t]
                rule = rules[k]
                x, y = run_pairs(plan_files.array(f"_rid{k}"), plan_files.array(f"_lo{k}"),
                                 plan_files.array(f"_runs{k}"), order=np.arange(a, z))
                x, y = x.astype(np.int64), y.astype(np.int64)
                if rule.cross:
                    # one record's a equals the other's b, within the mode's scope; when y also
                    # finds x (the swap both ways), the pair is kept from the smaller record only
                    keep = cross_scope(codes, x, y, mode)
                    a_codes, b_codes = (codes.codes(c) for c in rule.cross)
                    back = (x > y) & (b_codes[x] == a_codes[y]) & (a_codes[y] != NULL)
                    if kept[k] is not None:
                        back &= kept[k][y]
                    keep &= ~back
                    x, y = x[keep], y[keep]
                rid_l, rid_r = np.minimum(x, y), np.maximum(x, y)
                keep = np.ones(len(rid_l), dtype=bool)
                for j, earlier in enumerate(rules[:k]):  # a pair an earlier rule produced belongs to it
                    idx = np.flatnonzero(keep)
                    if not len(idx):
                        break
                    keep[idx[produced_by(codes, earlier, rid_l[idx], rid_r[idx], kept[j])]] = False
                rid_l, rid_r = rid_l[keep], rid_r[keep]
                if not len(rid_l):
                    continue
                # Sorted by row positions (each pair once: a total order), so every later stage reads
                # the pairs in an order fixed by the inputs alone, and the pairs' parts are written in
                # it (`_pairs_by_position`).
                order = np.lexsort((rid_r, rid_l))
                yield pa.RecordBatch.from_pydict({"rid_l": rid_l[order], "rid_r": rid_r[order],
                                                  "rule": np.full(len(order), k, dtype=np.int8)})

    return pairs


# --------------------------------------------------------------------------- comparisons and scoring


VETO = "non_link_rule"  # predict.score adds it only when a pair is vetoed (`score_spark`: a pattern present is)
DETERMINISTIC = "_meets_deterministic_rule"
# What the block job stores for scoring beside each pair, none of it depending on the trained model:
PATTERN = "_pattern"    # the comparison vector as one mixed-radix code (`training.pattern_codes`)
TF_PART = "_tf_"        # + a TF comparison's name: its adjustment with u = 1, null where its TF level was not reached
FULL_PART = "_full_name"  # `predict.full_name_adjustment`, null where 0


@dataclass
class _Scoring:
    """How a pair's score splits into what the block job computes per pair, before training
    (`_level_kernel`), and what the trained model gives per comparison pattern (`score_spark`).

    `predict.score`'s weight is the prior's weight, each comparison's level weight, the names'
    swap adjustments (all functions of the pattern), each term-frequency adjustment
    log2(u / tf) = log2(u) + log2(1 / tf) where its level was reached (u per comparison, the value's
    frequency per pair) and the full-name adjustment (per pair, no model parameter in it)."""

    radix: list[int]             # each comparison's digit base in PATTERN
    wide: bool                   # PATTERN as int64 (more than 2^31 possible vectors)
    tf: list                     # comparisons with a term-frequency adjustment (`predict.score`'s set)
    partners: list[tuple]        # `predict.name_partners`
    full_name: list[tuple]       # the partners whose full-name adjustment applies (both with TF)

    @classmethod
    def of(cls, linker: Linker) -> "_Scoring":
        model, prepared = linker.model, linker.prepared
        radix = training_stage.pattern_radix(model.comparisons)
        if float(np.prod(radix, dtype=np.float64)) >= 2.0 ** 62:
            raise UsageError(f"{len(radix)} comparisons make too many comparison patterns for the Spark engine",
                             hint="use fewer comparisons or levels, or the polars engine")
        tf = [c for c in model.comparisons if c.term_frequency and c.column in prepared.tf]
        partners = predict_stage.name_partners(model)
        full = [(a, b) for a, b in partners if a in tf and b in tf]
        return cls(radix, float(np.prod(radix, dtype=np.float64)) >= 2.0 ** 31, tf, partners, full)


def _level_kernel(spark: SparkSession, linker: Linker, records):
    """The broadcast and per-batch function giving a batch of pairs (rid_l, rid_r, ...) what is
    stored for training and scoring: the pattern of its comparison levels
    (`comparisons.comparison_levels`, as `training.pattern_codes`), whether it meets one of the
    prior's deterministic rules, and the per-pair parts of its score (`_Scoring`: the
    term-frequency and full-name adjustments, by `predict`'s own functions); and the columns it
    adds, as a Spark schema. `records`: the broadcast mapped records (`mapped.share_prepared`)."""
    from types import SimpleNamespace

    from pyspark.sql.types import BooleanType, DoubleType, IntegerType, LongType, StructField

    model, prepared = linker.model, linker.prepared
    scoring = _Scoring.of(linker)
    rules = model.settings.deterministic_rules
    # A rule on a column the records lack: no hits here, and estimate_prior raises its clear error.
    rules = rules if all(c in prepared.frame.columns for r in rules for c in r) else []
    # tf_adjustment with u = 1 at the TF level: log2(1 / the pair's larger clipped frequency)
    unit = SimpleNamespace(u={c.name: np.ones(c.n_levels) for c in scoring.tf}, settings=model.settings)
    shared = spark.sparkContext.broadcast((model.comparisons, model.settings.batch_pairs, rules, unit, scoring))

    def with_levels(batch):
        from tfkit.linkage.comparisons import comparison_levels
        from tfkit.linkage.predict import full_name_adjustment, tf_adjustment
        from tfkit.linkage.training import deterministic_hits, pattern_codes

        prepared = records.value
        comparisons, batch_pairs, rules, unit, scoring = shared.value
        rid_l = batch.column("rid_l").to_numpy(zero_copy_only=False).astype(np.int64)
        rid_r = batch.column("rid_r").to_numpy(zero_copy_only=False).astype(np.int64)
        levels = comparison_levels(prepared, comparisons, rid_l, rid_r, batch_pairs=batch_pairs)
        out = {c: batch.column(c) for c in batch.schema.names}
        out[PATTERN] = pattern_codes(levels, comparisons, scoring.radix, np.int64 if scoring.wide else np.int32)
        out[DETERMINISTIC] = deterministic_hits(prepared, rules, rid_l, rid_r)
        for c in scoring.tf:
            part = tf_adjustment(prepared, unit, c.name, c.column, c.tf_level, levels[c.name], rid_l, rid_r)
            out[TF_PART + c.name] = pa.array(part, mask=levels[c.name] != c.tf_level)
        if scoring.full_name:
            part = np.zeros(len(rid_l))
            for first, second in scoring.full_name:
                part += full_name_adjustment(prepared, unit, first, second, levels, rid_l, rid_r)
            out[FULL_PART] = pa.array(part, mask=part == 0)
        return pa.RecordBatch.from_pydict(out)

    added = [StructField(PATTERN, LongType() if scoring.wide else IntegerType()),
             StructField(DETERMINISTIC, BooleanType()),
             *[StructField(TF_PART + c.name, DoubleType()) for c in scoring.tf],
             *([StructField(FULL_PART, DoubleType())] if scoring.full_name else [])]
    return shared, with_levels, added


def candidate_levels_spark(spark: SparkSession, linker: Linker, records, *, checkpoint_dir: str,
                           pairs_per_task: int = PAIRS_PER_TASK) -> tuple[DataFrame, list[RuleSkew], pl.DataFrame]:
    """Every rule's pairs, each kept for the first rule that produces it (as
    `blocking.candidate_pairs`), with their comparison levels, in one Spark job; and the skew
    guard's report.

    The driver plans the blocks from the codes it holds (`_plan_blocks`: the rules' sorted blocks,
    the skew report, the blocks to leave out) and cuts the rows into tasks of about
    `pairs_per_task` pairs; each task makes its pairs from the mapped plan (`_pair_tasks`: no
    shuffle) and gives them their comparison levels and the prior's deterministic flag
    (`_level_kernel`) at once: the candidate pairs are never written, read back and shipped to
    Python a second time. The levels (with each pair's `rule`) are written to Parquet once: the
    pattern counts, the prior's rule hits, the scores and the per-rule counts all read them.
    `records`: the broadcast mapped records (`mapped.share_prepared`); the plan's arrays are mapped
    the same way, for this job only."""
    import time

    from pyspark.sql.types import ByteType, LongType, StructField, StructType

    from tfkit.engine.spark import mapped

    prepared, rules, mode = linker.prepared, linker.model.blocking, linker.mode
    s = linker.model.settings
    blocking_stage.check_rules(prepared, rules)
    t = time.perf_counter()
    plan = _plan_blocks(spark, prepared, rules, mode, max_block_pairs=s.max_block_pairs, pairs_per_task=pairs_per_task,
                        budget=blocking_stage.rule_budget(prepared.n, s.max_rule_pairs, s.max_rule_pairs_per_record))
    linker.timings["block_plan"] = time.perf_counter() - t  # on the driver, within block_and_compare
    plan_files = plan.files
    make_pairs = _pair_tasks(records, plan_files, plan.tasks, rules, mode)
    level_shared, with_levels, added = _level_kernel(spark, linker, records)
    batch = s.batch_pairs

    def pairs_and_levels(batches):
        for found in make_pairs(batches):
            for start in range(0, found.num_rows, batch):
                yield with_levels(found.slice(start, batch))

    schema = StructType([StructField("rid_l", LongType()), StructField("rid_r", LongType()),
                         StructField("rule", ByteType()), *added])
    n_tasks = max(1, len(plan.tasks))  # no task: an empty job, an empty levels folder
    tasks = spark.range(0, len(plan.tasks), numPartitions=n_tasks)
    try:
        levels = _save(tasks.mapInArrow(pairs_and_levels, schema), f"{checkpoint_dir}/levels")
    finally:
        mapped.drop(plan_files)
        level_shared.destroy()
    # one narrow scan: the pairs per rule (the skew report) and per pattern (training, the scoring table)
    counts = pl.from_arrow(levels.groupBy("rule", PATTERN).count().toArrow())
    added_by = dict(counts.group_by("rule").agg(pl.col("count").sum()).iter_rows())
    patterns = counts.group_by(PATTERN).agg(pl.col("count").sum()).sort(PATTERN)
    skew = [RuleSkew(c.rule, c.pairs_planned, int(added_by.get(k, 0)), [int(n) for n in plan.largest[k]],
                     plan.spread[k], c.blocks_skipped, c.pairs_skipped, c.budget_limit)
            for k, c in enumerate(plan.counts)]
    return levels, skew, patterns


def _patterns_counted(linker: Linker, counts: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(PATTERN, count) rows as `training.patterns` gives them: the vectors and their counts, sorted."""
    from tfkit.linkage.training import decode_patterns

    counts = counts.sort(PATTERN)
    return (decode_patterns(counts[PATTERN].to_numpy(), _Scoring.of(linker).radix),
            counts["count"].to_numpy().astype(np.float64))


def pattern_counts_spark(linker: Linker, levels: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Distinct comparison-level vectors and their counts over the pairs of `levels`, aggregated on
    the cluster (one narrow column), in `training.patterns`' order: what EM needs, whatever the
    number of pairs."""
    return _patterns_counted(linker, pl.from_arrow(levels.groupBy(PATTERN).count().toArrow()))


def score_spark(spark: SparkSession, linker: Linker, levels: DataFrame, patterns: pl.DataFrame) -> DataFrame:
    """Every candidate pair scored as `predict.score` scores it, with the trained model, as a
    projection of the stored levels (no Spark job, no pass through Python): the pattern's part
    (prior and level weights, the names' swap adjustments, the veto, the levels) looked up in a
    table made on the driver from the model, for the patterns present (`patterns`: PATTERN and
    count), by a broadcast join; the per-pair term-frequency and full-name parts added
    (`_Scoring`). Equal to `predict.score` bit for bit where no term-frequency level was reached,
    elsewhere to rounding (the sum's order differs and 2^-w is Java's pow: ~1e-15)."""
    from functools import reduce

    from tfkit.linkage.training import decode_patterns

    model = linker.model
    scoring = _Scoring.of(linker)
    codes = patterns[PATTERN].to_numpy()
    gammas = decode_patterns(codes, scoring.radix)
    lv = {c.name: gammas[:, k] for k, c in enumerate(model.comparisons)}
    base = np.full(len(codes), model.prior_weight)
    for c in model.comparisons:
        base += model.level_weights(c.name)[lv[c.name] + 1]
    swap = np.zeros(len(codes))
    for first, second in scoring.partners:  # as predict.score: names swapped counted once
        for mine, theirs in zip(first.swap_levels, second.swap_levels):
            swap[(lv[first.name] == mine) & (lv[second.name] == theirs)] -= model.level_weights(second.name)[theirs + 1]
    veto = model.vetoed(lv, len(codes))
    # A pair with no per-pair part (no TF level reached) weighs its pattern's weight, summed in
    # predict.score's order (adding its zeros changes nothing), and its probability is numpy's, as
    # predict.score computes it: bit for bit the polars engine's, and no pow per pair on the cluster.
    alone = base + swap
    probability = 1.0 / (1.0 + np.exp2(-np.clip(alone, -1000, 1000)))
    probability[veto] = 0.0
    table = pa.table({PATTERN: pa.array(codes, pa.int64() if scoring.wide else pa.int32()), "_base": base,
                      "_swap": swap, "_veto": veto, "_weight": alone, "_probability": probability,
                      **{f"{c.name}_level": lv[c.name].astype(np.int8) for c in model.comparisons}})
    scored = levels.join(F.broadcast(spark.createDataFrame(table)), PATTERN)
    weight, columns, parts = F.col("_base"), [], []
    for c in model.comparisons:
        columns.append(F.col(f"{c.name}_level"))
        if c in scoring.tf:
            part = F.col(TF_PART + c.name)
            parts.append(part.isNotNull())
            u = float(np.log2(np.clip(model.u[c.name][c.tf_level], 1e-12, 1.0)))
            adjust = F.when(part.isNotNull(), F.lit(u) + part).otherwise(F.lit(0.0))
            weight = weight + adjust
            columns.append(adjust.cast("float").alias(f"{c.name}_tf_adjustment"))
    if scoring.partners:
        full = (F.coalesce(F.col(FULL_PART), F.lit(0.0)) if scoring.full_name else F.lit(0.0)) + F.col("_swap")
        weight = weight + full
        columns.append(full.cast("float").alias(predict_stage.FULL_NAME))
    if veto.any():  # as predict.score: the flag only when a pair is vetoed (a property of its pattern)
        columns.append(F.col("_veto").alias(VETO))
    clipped = F.greatest(F.least(weight, F.lit(1000.0)), F.lit(-1000.0))
    per_pair = F.when(F.col("_veto"), F.lit(0.0)).otherwise(F.lit(1.0) / (F.lit(1.0) + F.pow(F.lit(2.0), -clipped)))
    if parts:
        any_part = reduce(lambda a, b: a | b, parts)
        weight = F.when(any_part, weight).otherwise(F.col("_weight"))
        per_pair = F.when(any_part, per_pair).otherwise(F.col("_probability"))
    else:
        weight, per_pair = F.col("_weight"), F.col("_probability")
    return scored.select("rid_l", "rid_r", weight.alias("match_weight"), per_pair.alias("match_probability"),
                         *columns)


def train_spark(linker: Linker, levels: DataFrame, patterns: pl.DataFrame, *, labelled: DataFrame | None = None,
                beside=None) -> None:
    """The polars engine's training sequence (`Linker.training.train`), with the cluster doing what
    grows with the number of pairs: selecting the prior's rule hits and counting comparison patterns
    (EM, the prior's refinement and m from labels take those counts, never one row per pair).
    `patterns`: every candidate pair's pattern counts (`candidate_levels_spark`); `labelled`: the
    levels with `MATCH` (`with_truth`), to estimate m from the truth column; `beside`: u and the EM
    sessions already run on the driver while the cluster blocked and compared (`linker.TrainingBeside`,
    as the polars engine runs them), their results taken in the same order."""
    model, prepared = linker.model, linker.prepared
    if beside is not None:
        beside.join_into(model)
    else:
        linker.training.estimate_u_using_random_sampling()
    # The prior needs only the candidate pairs meeting a deterministic rule (flagged with the levels).
    hits = pl.from_arrow(levels.where(F.col(DETERMINISTIC)).select("rid_l", "rid_r").toArrow())
    training_stage.estimate_prior(prepared, model, hits, mode=linker.mode)
    s = model.settings
    counted = None
    if labelled is not None:
        training_stage.estimate_m_from_labels(model, pattern_counts_spark(linker, labelled.where(F.col(MATCH))))
    elif beside is not None:
        beside.log_m_into(model)
    elif model.training:
        linker.training.estimate_m_using_expectation_maximisation()  # sampled sessions on the driver
    else:
        counted = _patterns_counted(linker, patterns)
        training_stage.estimate_m_em(model, counted)
    if s.refine_prior:
        counted = counted or _patterns_counted(linker, patterns)
        training_stage.refine_prior(model, counted, blocking_stage.comparisons_possible(
            prepared.source_sizes(), linker.mode))
    training_stage.check_training(model)


# --------------------------------------------------------------------------- evaluation


MATCH = "_same_truth"
# Evaluation collects one row per distinct match probability; above this many they are counted
# per probability rounded to 6 decimals (at most a million rows on the driver).
EVAL_MAX_PROBABILITIES = 1_000_000


def with_truth(spark: SparkSession, pairs: DataFrame, codes: np.ndarray) -> DataFrame:
    """`pairs` with `MATCH`: whether the two records share a truth id (`evaluate.same_truth` per
    partition, on the truth codes broadcast: 8 bytes a record)."""
    from pyspark.sql.types import BooleanType, StructField, StructType

    shared = spark.sparkContext.broadcast(codes)
    schema = StructType([*pairs.schema.fields, StructField(MATCH, BooleanType())])

    def label(batches):
        import pyarrow as pa

        from tfkit.linkage.evaluate import same_truth

        codes = shared.value
        for batch in batches:
            rid_l = batch.column("rid_l").to_numpy(zero_copy_only=False).astype(np.int64)
            rid_r = batch.column("rid_r").to_numpy(zero_copy_only=False).astype(np.int64)
            yield pa.RecordBatch.from_arrays([*batch.columns, pa.array(same_truth(codes, rid_l, rid_r))],
                                             names=[*batch.schema.names, MATCH])

    return pairs.mapInArrow(label, schema)


def evaluate_spark(linker: Linker, labelled: DataFrame, truth_column: str, threshold: float) -> tuple[dict, int]:
    """`evaluate.evaluate` from counts made on the cluster: pairs and true matches per distinct
    match probability (`evaluate.probability_counts`); the true pairs (records sharing a truth id)
    from the prepared records on the driver. Also returns the true pairs among the candidates."""
    from tfkit.linkage.blocking import true_pairs
    from tfkit.linkage.evaluate import evaluate_counts

    p = F.col("match_probability")
    counts = lambda key: labelled.groupBy(key.alias("p")).agg(  # noqa: E731
        F.count("*").alias("pairs"), F.sum(F.col(MATCH).cast("long")).alias("matches"))
    frame = pl.from_arrow(counts(p).limit(EVAL_MAX_PROBABILITIES + 1).toArrow())  # one pass when few
    if frame.height > EVAL_MAX_PROBABILITIES:
        frame = pl.from_arrow(counts(F.round(p, 6)).toArrow())
    frame = frame.sort("p")
    total_true = true_pairs(linker.prepared, truth_column, linker.mode).height
    matches = frame["matches"].to_numpy().astype(np.int64)
    metrics = evaluate_counts(frame["p"].to_numpy().astype(np.float64), frame["pairs"].to_numpy().astype(np.int64),
                              matches, total_true, truth_column, threshold)
    found = int(matches.sum())
    metrics["blocking_recall"] = found / total_true if total_true else None
    return metrics, found


# --------------------------------------------------------------------------- link constraints


# The links above the threshold are collected to the driver when clean sources, one-to-one links
# or a reviewer's decisions constrain them (about 40 bytes a link in polars): refused above this.
MAX_DRIVER_LINKS = 50_000_000


def constrained_links_spark(spark: SparkSession, linker: Linker, scored: DataFrame, threshold: float, n_links: int, *,
                            one_to_one: bool, clean: tuple[str, ...], decisions) -> tuple[DataFrame, object]:
    """The edges clustering joins and the constraints' counts (`clustering.LinkStats`): without
    constraints the links above the threshold, left on the cluster; with them
    `clustering.select_links` on the driver, over those links only (never every candidate pair)."""
    from tfkit.linkage.clustering import LinkStats, select_links

    above = scored.where(F.col("match_probability") >= threshold)
    if not (clean or one_to_one or (decisions is not None and decisions.height)):
        return above.select("rid_l", "rid_r"), LinkStats(clean_sources=list(clean), links_above_threshold=n_links)
    if n_links > MAX_DRIVER_LINKS:
        raise UsageError(f"{n_links:,} links above the threshold: over the {MAX_DRIVER_LINKS:,} the driver takes "
                         "to apply --clean, --one-to-one or review decisions",
                         hint="raise the threshold, or link without those constraints on Spark")
    links = pl.from_arrow(above.select("rid_l", "rid_r", "match_weight", "match_probability").toArrow()
                          ).sort("rid_l", "rid_r")  # the polars engine's order, whatever the parts' order
    edges, stats = select_links(linker.prepared, links, threshold, one_to_one=one_to_one, clean=clean,
                                decisions=decisions)
    schema = "rid_l long, rid_r long"
    return spark.createDataFrame(edges.select(pl.col("rid_l", "rid_r").cast(pl.Int64)).to_arrow(), schema), stats


def clean_conflicts_spark(clusters: DataFrame, clean: tuple[str, ...]) -> int:
    """`clustering.count_clean_conflicts` on the cluster: clusters holding two records of one clean source."""
    if not clean:
        return 0
    return clusters.where(F.col("source").isin(list(clean))).groupBy("cluster_id", "source").count() \
        .where(F.col("count") > 1).select("cluster_id").distinct().count()


# --------------------------------------------------------------------------- report


def report_figures_spark(linker: Linker, result: "SparkLinkResult", scored: DataFrame):
    """What the report's charts read (`report.ReportFigures`), aggregated on the cluster: pairs per
    floor(match weight), the sample pairs' rows (a few `limit`s), cluster sizes capped at the
    report's cap; never every pair or record on the driver."""
    from tfkit.linkage.report import SIZE_CAP, ReportFigures, sample_pairs

    w = F.col("match_weight")
    low_high = scored.agg(F.min(w).alias("low"), F.max(w).alias("high")).first()
    floors = pl.from_arrow(scored.groupBy(F.floor(w).alias("f")).count().toArrow()).sort("f")
    t = result.threshold
    k = 6  # sample_pairs' default: the strongest, the weakest and k - 2 around the threshold
    picks = [scored.orderBy(w.desc(), "rid_l", "rid_r").limit(1),
             scored.orderBy(F.abs(F.col("match_probability") - t), "rid_l", "rid_r").limit(k - 2),
             scored.orderBy(w.asc(), F.col("rid_l").desc(), F.col("rid_r").desc()).limit(1)]
    candidates = pl.concat([pl.from_arrow(p.toArrow()) for p in picks])
    sizes = result.clusters.groupBy("cluster_id").count()
    capped = pl.from_arrow(sizes.groupBy(F.least(F.col("count"), F.lit(SIZE_CAP + 1)).alias("s")).count()
                           .toArrow()).sort("s")
    largest = sizes.agg(F.max("count").alias("m"), F.count("*").alias("n")).first()
    return ReportFigures(
        result.blocking_report(), (floors["f"].to_numpy().astype(np.float64), floors["count"].to_numpy()),
        None if low_high["low"] is None else (float(low_high["low"]), float(low_high["high"])),
        sample_pairs(candidates, t, k), [(int(a), int(b)) for a, b in capped.iter_rows()],
        int(largest["m"] or 0), int(largest["n"]))


# --------------------------------------------------------------------------- clustering


def _local_stars(edges: DataFrame) -> DataFrame:
    """Each partition's links replaced by stars: every record linked to the smallest record of its
    connected component within that partition (`clustering.components`, the polars engine's
    kernel). The same components over the whole graph, and most of them (a pair, a small cluster
    whose links are in one partition) already final, so the Spark rounds have little left to do."""
    from pyspark.sql.types import LongType, StructField, StructType

    def stars(batches):
        import numpy as np
        import pyarrow as pa

        from tfkit.linkage.clustering import components

        batches = list(batches)
        if not batches:
            return
        table = pa.Table.from_batches(batches)
        ends = np.concatenate([table.column(c).to_numpy().astype(np.int64) for c in ("rid_l", "rid_r")])
        nodes, position = np.unique(ends, return_inverse=True)
        root = nodes[components(len(nodes), position[:table.num_rows], position[table.num_rows:])]
        star = root != nodes
        yield pa.RecordBatch.from_pydict({"rid_l": root[star], "rid_r": nodes[star]})

    schema = StructType([StructField("rid_l", LongType()), StructField("rid_r", LongType())])
    return edges.select("rid_l", "rid_r").mapInArrow(stars, schema)


def connected_components_spark(edges: DataFrame, *, max_iterations: int) -> tuple[DataFrame, int]:
    """(rid, label) for every record on an edge: label = the smallest rid of its component.

    Each round: every record takes the smallest label among itself and its neighbours, then jumps
    to its label's label (pointer jumping), so rounds grow with the log of a component's diameter.
    A round is one Spark job: its labels are kept with `localCheckpoint` (executor storage, no plan
    growing with the rounds), and a cheap scan of them says whether any label changed. Raises when
    `max_iterations` rounds do not converge (never a silently partial clustering). The rounds run
    on each partition's components first (`_local_stars`): the same components, fewer rounds."""
    edges = _local_stars(edges)
    both = edges.select(F.col("rid_l").alias("src"), F.col("rid_r").alias("dst")).unionByName(
        edges.select(F.col("rid_r").alias("src"), F.col("rid_l").alias("dst")))
    both = both.repartition("dst").localCheckpoint(eager=True)
    labels = both.groupBy(F.col("src").alias("rid")).agg(F.least(F.col("src"), F.min("dst")).alias("label"))
    labels = labels.localCheckpoint(eager=True)  # round 1: the smallest of itself and its neighbours
    for i in range(2, max_iterations + 1):
        offered = both.join(labels.withColumnRenamed("rid", "dst"), "dst").groupBy(F.col("src").alias("rid")) \
            .agg(F.min("label").alias("offered"))
        hooked = labels.join(offered, "rid", "left").select(
            "rid", F.col("label").alias("old"), F.least("label", F.coalesce("offered", "label")).alias("label"))
        jumped = hooked.join(hooked.select(F.col("rid").alias("label"), F.col("label").alias("root")),
                             "label", "left").select("rid", "old", F.coalesce("root", "label").alias("label"))
        new = jumped.localCheckpoint(eager=True)
        labels = new.select("rid", "label")
        if new.where(F.col("label") != F.col("old")).isEmpty():
            return labels, i
    raise UsageError(f"connected components did not converge in {max_iterations} rounds",
                     hint="raise [engine] cluster_max_iterations, or raise the threshold (long chains of links)")


def _save(df: DataFrame, path: str) -> DataFrame:
    """`df` written to a checkpoint folder and read back in the order of its parts. Spark's reader
    packs a folder's files into splits by size, largest first, and orders files of one size as the
    file system lists them: with small parts of equal sizes the splits, and so the order of the
    pairs written from them, could differ between runs. Named one by one, in part order, ties keep
    that order."""
    from tfkit.engine.spark.io import part_files

    df.write.mode("overwrite").option("compression", CHECKPOINT_CODEC).parquet(path)
    parts = part_files(df.sparkSession, path)
    return df.sparkSession.read.schema(df.schema).parquet(*parts) if parts else df.sparkSession.read.parquet(path)


# --------------------------------------------------------------------------- the job


@dataclass
class SharedIds:
    """Every record's source and record id by row position, for the executors: `_source` (int16) and
    the ids' UTF-8 bytes with their offsets (Arrow's large-string layout) as mapped files
    (`mapped.share`: one copy a node, shared through the page cache), so a task gathers a pair's ids
    by its row positions, without a join."""

    files: object  # mapped.Mapped
    sources: list[str]
    # (_rid, source, record_id) of every record, for broadcast hash joins in the JVM instead of the
    # gather (`_gather_ids`): set when the records were prepared on the driver and are few enough to
    # broadcast (`BROADCAST_IDS_RECORDS`). At 1M x 1M the gather's round trip of every scored pair
    # through a Python worker cost more than two broadcast joins, which keep the pairs' partitions
    # and their order and never leave the JVM.
    lookup: DataFrame | None = None

    def gather(self, rid: np.ndarray) -> tuple[pa.Array, pa.Array]:
        """The (source, record_id) of the records at row positions `rid`, as Arrow string arrays."""
        offsets, data = self.files.array("_id_offsets"), self.files.array("_id_bytes")
        ids = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))
        at = pa.array(rid, pa.int64())
        source = pa.array(self.sources, pa.string()).take(pa.array(self.files.array("_source")[rid]))
        return source, ids.take(at).cast(pa.string())


# Records prepared on the driver up to this many: their ids are broadcast and joined in the JVM
# (`SharedIds.lookup`); above it, and whenever the records were prepared on the cluster, gathered.
BROADCAST_IDS_RECORDS = 5_000_000


def _share_ids(spark: SparkSession, linker: Linker, records) -> SharedIds:
    """`SharedIds` of every record: from the driver's prepared frame, or (records prepared on the
    cluster) collected once from the cluster's prepared records (about 20 bytes a record, on the
    driver only while its files are written)."""
    p = linker.prepared
    if records is None:
        source, ids = p.frame.get_column("_source").to_numpy(), p.frame.get_column("_record_id").to_arrow()
        shared = _shared_ids(spark, list(p.sources), source, ids)
        if p.n <= BROADCAST_IDS_RECORDS:
            shared.lookup = spark.createDataFrame(p.frame.select(
                pl.col("_rid").cast(pl.Int64), p.source_name().alias("source"),
                pl.col("_record_id").cast(pl.String).alias("record_id")).to_arrow())
        return shared
    table = records.records.select("_rid", "_source", "_record_id").toArrow()
    at = np.empty(table.num_rows, dtype=np.int64)  # _rid is 0..n-1: each row's place
    at[table.column("_rid").to_numpy()] = np.arange(table.num_rows)
    source = table.column("_source").to_numpy()[at]
    ids = table.column("_record_id").take(pa.array(at))
    del table
    return _shared_ids(spark, list(p.sources), source, ids)


def _shared_ids(spark: SparkSession, sources: list[str], source: np.ndarray, ids) -> SharedIds:
    """`SharedIds` from every record's source index and record id (an Arrow string array), in row order."""
    from tfkit.engine.spark import mapped

    ids = ids.cast(pa.large_string())
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if ids.offset:  # a fresh copy: offsets from 0
        ids = pa.concat_arrays([pa.array([], pa.large_string()), ids])
    _, offsets, data = ids.buffers()
    files = mapped.share(spark, {
        "_source": np.asarray(source).astype(np.int16),
        "_id_offsets": np.frombuffer(offsets, dtype=np.int64, count=len(ids) + 1),
        "_id_bytes": np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(1, np.uint8)})
    return SharedIds(files, sources)


@dataclass
class ByPosition:
    """An output before its ids: `frame` with row-position columns (`rids`: column -> the ids'
    suffix), gathered by `_gather_ids` (`join`: by broadcast joins where the ids hold a lookup), or
    written with them by the tasks (`_write_with_ids`)."""
    frame: DataFrame
    rids: dict[str, str]
    join: bool = False

    def gathered(self, ids: SharedIds) -> DataFrame:
        return _gather_ids(ids, self.frame, self.rids, join=self.join)


def _pairs_by_position(scored: DataFrame, *, order: str = "global") -> ByPosition:
    """Pairs by row position (`ByPosition`), for `predict.with_record_ids` on the cluster: the ids
    gathered by row position from the mapped ids (`SharedIds`), in the writing task, or by broadcast
    joins where the ids hold a lookup (`_gather_ids`): no shuffle of the pairs, whatever the size
    (the ids of 185M pairs at 10M x 10M were two shuffle joins, 24.6 GiB of shuffle). `order`:
    - "global" (the review queue, small): sorted by row positions as the polars engine's files, in
      one part (the queue's rows gathered into one partition and sorted there);
    - "partitions" (every candidate pair): no shuffle. Each part holds the pairs of its partition
      in the order they were scored (`_pair_tasks` sorts each task's pairs by row positions, and
      the checkpoints keep that order): the same inputs give the same parts, byte for byte; the
      folder's rows, read in part order, are not globally sorted."""
    if order == "global":  # gathered, never joined: the optimizer drops a sort below a join (EliminateSorts)
        scored = scored.repartition(1).sortWithinPartitions("rid_l", "rid_r")
    return ByPosition(scored, {"rid_l": "_l", "rid_r": "_r"}, join=order != "global")


def _gather_ids(ids: SharedIds, frame: DataFrame, rids: dict[str, str], *, join: bool = True) -> DataFrame:
    """`frame` with each row-position column in `rids` replaced by `source<suffix>` and
    `record_id<suffix>` (first, in `rids`' order; the other columns after, as they were), gathered
    per batch from the mapped ids, or with `join` and a lookup (`SharedIds.lookup`) by broadcast
    hash joins: either way the rows keep their partitions and order."""
    if join and ids.lookup is not None:  # broadcast hash joins: the rows keep their partitions and order
        names = [f.name for f in _with_ids_schema(frame, rids).fields]
        lookup = F.broadcast(ids.lookup)
        for column, suffix in rids.items():
            frame = (frame.join(lookup.withColumnRenamed("_rid", column), column)
                     .withColumnsRenamed({"source": f"source{suffix}", "record_id": f"record_id{suffix}"}))
        return frame.select(*names)
    schema, add_ids = _with_ids_schema(frame, rids), _adding_ids(ids, frame, rids)

    def with_ids(batches):
        for b in batches:
            yield add_ids(b)

    return frame.mapInArrow(with_ids, schema)


def _with_ids_schema(frame: DataFrame, rids: dict[str, str]):
    """The Spark schema of `frame` with its row-position columns `rids` replaced by ids (`_gather_ids`)."""
    from pyspark.sql.types import StringType, StructField, StructType

    rest = [f for f in frame.schema.fields if f.name not in rids]
    added = [f"{c}{suffix}" for suffix in rids.values() for c in ("source", "record_id")]
    return StructType([*[StructField(c, StringType()) for c in added], *rest])


def _adding_ids(ids: SharedIds, frame: DataFrame, rids: dict[str, str]):
    """The per-batch function of `_gather_ids`' gather: an Arrow batch of `frame` to one with its
    row-position columns replaced by the records' sources and ids, from the mapped ids."""
    ids = SharedIds(ids.files, ids.sources)  # what the tasks need: not the lookup (a driver-side DataFrame)
    rest = [f.name for f in frame.schema.fields if f.name not in rids]
    names = [f.name for f in _with_ids_schema(frame, rids).fields]

    def add_ids(b: pa.RecordBatch) -> pa.RecordBatch:
        found = [a for c in rids for a in ids.gather(b.column(c).to_numpy(zero_copy_only=False))]
        return pa.RecordBatch.from_arrays([*found, *[b.column(c) for c in rest]], names=names)

    return add_ids


def _write_with_ids(ids: SharedIds, frame: DataFrame, rids: dict[str, str], path: str, *, statistics: bool) -> None:
    """`frame` with its ids gathered (`_gather_ids`), written by the tasks themselves
    (`io.write_parquet_by_tasks`): the rows never return to the JVM."""
    from tfkit.engine.spark.io import write_parquet_by_tasks

    write_parquet_by_tasks(frame, path, _with_ids_schema(frame, rids), _adding_ids(ids, frame, rids),
                           statistics=statistics)


def _clusters(spark: SparkSession, labels: DataFrame, n: int) -> ByPosition:
    """Every record's (source, record_id, cluster_id, cluster_size) in row order, as the polars
    engine's clusters file: the component labels (`connected_components_spark`: records on a link
    only) and their sizes joined to the row positions 0..n-1 (a record on no link is a cluster of
    one, its own id), by row position; the ids are gathered after (`ByPosition`): only integers
    are shuffled."""
    sized = labels.join(labels.groupBy("label").agg(F.count("*").alias("size")), "label")
    core = (spark.range(n).withColumnRenamed("id", "_rid").join(sized.withColumnRenamed("rid", "_rid"), "_rid", "left")
            .select("_rid", F.coalesce("label", "_rid").alias("cluster_id"),
                    F.coalesce("size", F.lit(1).cast("long")).alias("cluster_size"))
            .orderBy("_rid"))
    # gathered, never joined: the optimizer drops a sort below a join (EliminateSorts)
    return ByPosition(core, {"_rid": ""})


# --------------------------------------------------------------------------- where the records are prepared

# [engine] prepare = "auto": on the cluster when a source is a Parquet folder or a Hadoop path (it is
# never read on the driver) or when the sources hold more records than this, which the driver
# should not hold as a prepared frame (about 100 bytes a record, with the record ids as text);
# otherwise on the driver, faster at an LA's size (polars' prepare: 2.4 s at 1M x 1M).
AUTO_CLUSTER_RECORDS = 5_000_000


def _prepared_linker(spark: SparkSession, frames, model, *, mode, id_column, truth_column, seed, prepare: str,
                     clean: tuple[str, ...], decisions):
    """The Linker, and the `SparkPrepared` records when they are prepared on the cluster (None: on
    the driver, as `Linker` does). `frames`: polars frames, or Spark DataFrames with `io.ROW` (read
    by Spark: then always on the cluster); `prepare`: "driver", "cluster" or "auto" (by size)."""
    from tfkit.engine.spark.prepare import spark_linker, with_row_index

    on_spark = any(isinstance(f, DataFrame) for f in frames.values())
    if prepare == "auto":
        prepare = "cluster" if on_spark or sum(f.height for f in frames.values()) > AUTO_CLUSTER_RECORDS else "driver"
    if prepare == "driver" and not on_spark:
        return Linker(frames, model, mode=mode, id_column=id_column, truth_column=truth_column, seed=seed), None
    sources = {s: f if isinstance(f, DataFrame) else with_row_index(spark, f) for s, f in frames.items()}
    return spark_linker(spark, sources, model, mode=mode, id_column=id_column, seed=seed, truth_column=truth_column,
                        clean=clean, decisions=decisions)


def link_spark(spark: SparkSession, frames, model=None, *, mode=None, threshold=None, review_lower=None,
               seed=None, id_column=None, checkpoint_dir: str, pairs_per_task: int = PAIRS_PER_TASK,
               max_iterations: int = 64, truth_column: str | None = None, train_on_labels: bool = False,
               one_to_one: bool = False, clean: tuple[str, ...] = (), decisions=None,
               prepare: str = "auto") -> SparkLinkResult:
    """The whole job on Spark; the same pairs, weights, clusters, constraint counts and accuracy as
    `tfkit.linkage.link` with the same arguments. `frames`: polars frames, or Spark DataFrames with
    `io.ROW` (`io.read_sources_spark`); `prepare`: where standardisation runs (`_prepared_linker`)."""
    import time

    from tfkit.engine.spark import mapped
    from tfkit.linkage import clustering as clustering_stage
    from tfkit.linkage.evaluate import truth_codes
    from tfkit.linkage.review import HELD, REASON_BAND, REVIEW_REASON, held_reasons, reason_counts

    linker, records = _prepared_linker(spark, frames, model, mode=mode, id_column=id_column,
                                       truth_column=truth_column, seed=seed, prepare=prepare, clean=clean,
                                       decisions=decisions)
    s = linker.model.settings
    threshold = s.threshold if threshold is None else threshold
    review_lower = s.review_lower if review_lower is None else review_lower
    if not 0 < review_lower <= threshold < 1:
        raise UsageError(f"need 0 < review lower ({review_lower}) <= threshold ({threshold}) < 1")
    clustering_stage.check_clean_sources(linker.prepared, clean)  # before the work: exit 2 at once
    if one_to_one and linker.mode != "link":
        raise UsageError("one-to-one best links apply to link mode only", hint="drop --one-to-one or use --mode link")
    batch = "spark.sql.execution.arrow.maxRecordsPerBatch"
    if spark.conf.get(batch, "10000") == "10000":  # Spark's default: the kernels' own batch instead
        spark.conf.set(batch, str(s.batch_pairs))
    split = "spark.sql.files.minPartitionNum"
    if spark.conf.get(split, None) is None:
        # Spark's default (one split a core) read the checkpoints in 4 splits at 1M x 1M, the
        # last alone on a core while the pairs were written: 8 a core, 33.7 -> 26.5 s.
        spark.conf.set(split, str(8 * spark.sparkContext.defaultParallelism))
    t = time.perf_counter()
    # the records' codes for the executors' kernels: mapped files, not a broadcast of the records
    shared = mapped.share_prepared(spark, linker.prepared)
    records_b = spark.sparkContext.broadcast(shared)
    linker.timings["share_records"] = time.perf_counter() - t
    try:
        t = time.perf_counter()
        # u and the EM sessions on a driver thread while the cluster blocks and compares (as the
        # polars engine: `linker.TrainingBeside`); the records' codes are the driver's either way
        beside = TrainingBeside(linker) if TrainingBeside.wanted(linker, train_on_labels) else None
        levels, skew, patterns = candidate_levels_spark(spark, linker, records_b, checkpoint_dir=checkpoint_dir,
                                                        pairs_per_task=pairs_per_task)
        blocking_stage.warn_skipped(linker.model, skew)  # the polars engine's warnings, word for word
        linker.timings["block_and_compare"] = time.perf_counter() - t  # one Spark job (candidate_levels_spark)
        t = time.perf_counter()
        codes = truth_codes(linker.prepared, truth_column) if truth_column else None
        train_spark(linker, levels, patterns,
                    labelled=with_truth(spark, levels, codes) if train_on_labels and codes is not None else None,
                    beside=beside)
        linker.timings["train"] = time.perf_counter() - t
        if beside is not None:
            linker.timings["train_beside"] = beside.elapsed  # u and EM, overlapping block and compare
        t = time.perf_counter()
        scored = score_spark(spark, linker, levels, patterns)  # a projection of the levels: no job
    finally:  # the per-pair parts of the scores are on disk: nothing reads the mapped records after this
        records_b.destroy()
        mapped.drop(shared.mapped)
    linker.timings["predict"] = time.perf_counter() - t
    t = time.perf_counter()
    p_ = F.col("match_probability")
    # One scan of every pair keeps those at or above the review band's floor (the links and the
    # review queue: a small share), saved: the links, the counts, the review queue and the review
    # folder read them, not every pair again.
    band = _save(scored.where(p_ >= review_lower), f"{checkpoint_dir}/band")
    bands = band.agg(F.sum((p_ >= threshold).cast("long")).alias("links"),
                     F.sum((p_ < threshold).cast("long")).alias("review")).first()
    linker.timings["bands"] = time.perf_counter() - t
    t = time.perf_counter()
    links, link_stats = constrained_links_spark(spark, linker, band, threshold, int(bands["links"] or 0),
                                                one_to_one=one_to_one, clean=clean, decisions=decisions)
    labels, iterations = connected_components_spark(links, max_iterations=max_iterations)

    p = linker.prepared
    # every record's source and id for the executors (the pairs', the review queue's and the
    # clusters' ids by row position, `_gather_ids`); dropped by SparkLinkResult.close
    ids = _share_ids(spark, linker, records)
    try:
        positions = {"clusters": _clusters(spark, labels, p.n)}
        clusters = positions["clusters"].gathered(ids)
        link_stats.clusters_with_two_clean_records = clean_conflicts_spark(clusters, clean)
        linker.timings["cluster"] = time.perf_counter() - t
        metrics = None
        counts = {}
        if truth_column:
            t = time.perf_counter()
            metrics, counts["true_pairs_found"] = evaluate_spark(
                linker, with_truth(spark, scored.select("rid_l", "rid_r", "match_probability"), codes), truth_column,
                threshold)
            linker.timings["evaluate"] = time.perf_counter() - t
        held = link_stats.held_for_review
        queue = review_queue_spark(band, threshold, review_lower, held)
        decided_pairs = decisions is not None and decisions.height
        if decided_pairs:  # a decided pair is not asked about again
            decided, _ = clustering_stage._pair_keys(p, decisions)
            queue = queue.join(F.broadcast(spark.createDataFrame(
                decided.select(pl.col("rid_l", "rid_r").cast(pl.Int64)).to_arrow(), "rid_l long, rid_r long")),
                ["rid_l", "rid_r"], "left_anti")
        positions.update(pairs=_pairs_by_position(scored, order="partitions"),
                         review=_pairs_by_position(queue.drop(HELD)))
        pairs, review = positions["pairs"].gathered(ids), positions["review"].gathered(ids)
        t = time.perf_counter()
        linked = labels.agg(F.count("*").alias("records"), F.countDistinct("label").alias("clusters")).first()
        # without decisions the band's count is the bands' and the held pairs' the driver's (no scan of the pairs)
        counted = (queue.groupBy(REVIEW_REASON).count().collect() if decided_pairs else
                   [(REASON_BAND, int(bands["review"] or 0)), *held_reasons(held).group_by(REVIEW_REASON).len().iter_rows()])
        by_reason = reason_counts(counted=counted)
        counts = {"candidate_pairs": sum(r.pairs_added for r in skew), "links": int(bands["links"] or 0),
                  "review_pairs": sum(by_reason.values()), "review_pairs_by_reason": by_reason,
                  # records on no link are clusters of one
                  "clusters": p.n - int(linked["records"]) + int(linked["clusters"]), **counts}
        linker.timings["counts"] = time.perf_counter() - t
        return SparkLinkResult(pairs, clusters, review, linker, threshold, review_lower, skew, iterations, counts,
                               link_stats, metrics, scored, records, ids, band, positions)
    except BaseException:
        mapped.drop(ids.files)
        raise


def review_queue_spark(scored: DataFrame, threshold: float, review_lower: float, held: pl.DataFrame) -> DataFrame:
    """`review.review_queue` on the cluster: the review band's pairs, and the pairs the clean-source
    rule held as too close to call (`held`: a few, on the driver), each with `review_reason` and
    `_held`; `scored`'s columns first (unsorted: `_pairs_by_position` sorts)."""
    from tfkit.linkage.review import HELD, REASON_BAND, REVIEW_REASON, held_reasons

    p_ = F.col("match_probability")
    in_band = (p_ >= review_lower) & (p_ < threshold)
    if held.height == 0:
        return scored.where(in_band).withColumns({REVIEW_REASON: F.lit(REASON_BAND), HELD: F.lit(None).cast("long")})
    reasons = scored.sparkSession.createDataFrame(held_reasons(held).to_arrow(),
                                                  f"rid_l long, rid_r long, {REVIEW_REASON} string, {HELD} long")
    # one scan of the pairs: each tagged with its held reason, if any (a broadcast join, map side)
    tagged = scored.join(F.broadcast(reasons), ["rid_l", "rid_r"], "left")
    return tagged.where(in_band | (F.col(REVIEW_REASON).isNotNull() & (p_ >= threshold))).withColumns(
        {REVIEW_REASON: F.when(in_band, F.lit(REASON_BAND)).otherwise(F.col(REVIEW_REASON)),
         HELD: F.when(in_band, F.lit(None).cast("long")).otherwise(F.col(HELD))})


def write_review_folder_spark(result: SparkLinkResult, out: str) -> list:
    """The polars engine's review folder (`outputs.write_review_folder`: review.csv and .xlsx, both
    records' values side by side), from the review queue's pairs collected to the driver (the band's
    and those too close to call: a clerical-review queue, not the candidate pairs)."""
    from pathlib import Path

    from tfkit.linkage.linker import LinkResult
    from tfkit.linkage.outputs import write_review_folder

    from tfkit.linkage.predict import with_record_ids
    from tfkit.linkage.review import HELD

    # the review queue (band and pairs too close to call: a clerical queue, small) from the saved
    # band (`SparkLinkResult.band`), sorted on the driver
    queue = pl.from_arrow(review_queue_spark(result.band, result.threshold, result.review_lower,
                                             result.link_stats.held_for_review).toArrow()).sort("rid_l", "rid_r")
    # the queue's pairs with their ids, as written to review.parquet/ (collected again when a
    # reviewer's decisions took pairs out of it, or when the ids are on the cluster)
    decided = result.counts.get("review_pairs") != queue.height
    if decided or result.records is not None:
        review = pl.from_arrow(result.review.toArrow())
    else:
        review = with_record_ids(result.linker.prepared, queue.drop(HELD))
    linker = result.linker
    if result.records is not None:  # prepared on the cluster: the queue's records only, renumbered
        queue, linker = _band_linker(result, queue)
    local = LinkResult(queue, None, review, None,
                       result.linker.model, result.threshold, result.review_lower, linker=linker)
    return write_review_folder(local, Path(out), queue=queue)


def _report_view(result: SparkLinkResult, figures):
    """The linker and figures the report renders: as they are, or (records prepared on the cluster)
    with the sample pairs' records alone collected for their ids (`SparkPrepared.band`), renumbered."""
    import copy
    from dataclasses import replace

    if result.records is None:
        return result.linker, figures
    samples = figures.samples
    rids = np.unique(np.concatenate([samples.get_column(c).to_numpy() for c in ("rid_l", "rid_r")])).astype(np.int64)
    band, _ = result.records.band(rids, [])
    view = copy.copy(result.linker)
    view.prepared = _SourcesView(band, result.linker.prepared)
    renumber = lambda c: pl.Series(c, np.searchsorted(rids, samples.get_column(c).to_numpy()), dtype=pl.Int64)  # noqa: E731
    return view, replace(figures, samples=samples.with_columns(renumber("rid_l"), renumber("rid_r")))


class _SourcesView:
    """A few records' `Prepared` (`frame`) reporting the whole job's sources and their sizes."""

    def __init__(self, few, whole):
        self.frame, self.sources, self._sizes = few.frame, whole.sources, whole.source_sizes()

    def source_sizes(self) -> list[int]:
        return list(self._sizes)


def _band_linker(result: SparkLinkResult, band: pl.DataFrame):
    """The review band's pairs and what `review.review_table` reads of a Linker (`prepared`: ids and
    codes; `inputs`: the values as given) for the band's records alone, collected from the cluster
    (`SparkPrepared.band`); row positions renumbered 0..k-1 in the same order."""
    from types import SimpleNamespace

    rids = np.unique(np.concatenate([band.get_column(c).to_numpy() for c in ("rid_l", "rid_r")])).astype(np.int64)
    columns = list(dict.fromkeys(c.column for c in result.linker.model.comparisons))
    prepared, given = result.records.band(rids, columns)
    renumber = lambda c: pl.Series(c, np.searchsorted(rids, band.get_column(c).to_numpy()), dtype=pl.Int64)  # noqa: E731
    return band.with_columns(renumber("rid_l"), renumber("rid_r")), SimpleNamespace(prepared=prepared, inputs=[given])


# Folders of Parquet parts named as the polars engine's files (pairs.parquet, ...): review/ is the
# review folder (review.csv, review.xlsx and the reviewer's decisions store), as on the polars engine.
OUTPUTS = ("pairs", "clusters", "review")


def link_job(frames, out: str, model=None, *, mode=None, threshold=None, review_lower=None, seed=None,
             settings, truth: str | None = None, train_on_labels: bool = False, one_to_one: bool = False,
             clean: tuple[str, ...] = (), decisions=None, report=None, prepare: str | None = None) -> dict:
    """`tfkit link --engine spark`: run `link_spark`, write pairs.parquet/, clusters.parquet/ and
    review.parquet/ (folders of Parquet parts, the polars engine's names and columns), model.json, summary.json (metrics.json with a truth
    column) and the review folder, and the report when asked; drop the checkpoints."""
    import json
    import os
    import time
    import uuid
    from pathlib import Path

    from tfkit.engine.spark.io import delete_path, tasks_write_locally, write_parquet
    from tfkit.engine.spark.session import spark_session

    t = time.perf_counter()
    spark = spark_session(settings)
    started = time.perf_counter() - t
    local = "://" not in out
    made = local and not Path(out).exists()  # removed again, empty, when the run fails (as on the polars engine)
    if local:  # record ids (and, in review/, values as given): a 0700 folder, as the polars engine's
        from tfkit.validation.quarantine import private_folder

        private_folder(out)
    base = settings.checkpoint_dir.rstrip("/") if settings.checkpoint_dir else f"{out.rstrip('/')}/.checkpoints"
    checkpoints = f"{base}/link-{uuid.uuid4().hex[:12]}"
    written, result = [], None
    try:
        result = link_spark(spark, frames, model, mode=mode, threshold=threshold, review_lower=review_lower,
                            seed=seed, checkpoint_dir=checkpoints, truth_column=truth, train_on_labels=train_on_labels,
                            one_to_one=one_to_one, clean=tuple(clean), decisions=decisions,
                            prepare=prepare or settings.prepare)
        timings = result.linker.timings
        timings["session"] = started
        for name in OUTPUTS:  # record ids: no min/max statistics in the footers (as the polars engine's)
            t = time.perf_counter()
            target = f"{out.rstrip('/')}/{name}.parquet"
            if tasks_write_locally(spark, target):  # each part written by its task, never back through the JVM
                at = result.positions[name]
                _write_with_ids(result.ids, at.frame, at.rids, target, statistics=False)
            else:
                write_parquet(getattr(result, name), target, statistics=False)
            timings[f"write_{name}"] = time.perf_counter() - t
        if local:  # the review folder (raw values, 0600 in 0700) beside a local output
            t = time.perf_counter()
            written += write_review_folder_spark(result, out)
            timings["review_folder"] = time.perf_counter() - t
        summary = result.summary()
        if report:
            from tfkit.linkage.report import write_figures_report

            figures = report_figures_spark(result.linker, result, result.scored)
            linker, figures = _report_view(result, figures)
            written.append(write_figures_report(report, linker, figures, summary, metrics=result.metrics,
                                                threshold=result.threshold))
        made = False
    finally:
        if result is not None:
            result.close()
        delete_path(spark, checkpoints if settings.checkpoint_dir else base)
        if made:  # a failed run: the folder it made goes if nothing else is in it
            try:
                os.rmdir(out)
            except OSError:
                pass
    summary["outputs"] = [f"{out.rstrip('/')}/{n}.parquet" for n in OUTPUTS]
    if local:  # the JSON files beside a local output (on HDFS/S3 the summary is printed)
        files = [("model.json", result.linker.model.parameters()), ("summary.json", summary)]
        if result.metrics is not None:
            files.append(("metrics.json", result.metrics))
        for name, data in files:
            (Path(out) / name).write_text(json.dumps(data, indent=2, default=str) + "\n", "utf-8")
            summary["outputs"].append(str(Path(out) / name))
    summary["outputs"] += [str(p) for p in written]
    return summary


def run_link_job_spark(job, model, *, mode: str, decisions) -> dict:
    """`tfkit link --engine spark` from the job's paths (`linkage.job.run_link_job` hands it over):
    the sources read where they should be (`io.read_link_sources`: a Parquet folder or Hadoop path by
    Spark, never on the driver), then `link_job`, prepared where `[engine] prepare` says."""
    from tfkit.engine.spark.io import as_uri, read_link_sources
    from tfkit.engine.spark.session import spark_session

    spark = spark_session(job.engine)
    frames, inputs, prepare = read_link_sources(
        spark, job.sources, schemas=job.schemas, mapping=job.mapping, keep=(job.truth,) if job.truth else (),
        prepare=job.engine.prepare, cluster_records=AUTO_CLUSTER_RECORDS, sheet=job.sheet)
    summary = link_job(frames, as_uri(job.out), model, mode=mode, threshold=job.threshold,
                       review_lower=job.review_lower, seed=job.seed, settings=job.engine, truth=job.truth,
                       train_on_labels=job.train_on_labels, one_to_one=job.one_to_one, clean=job.clean,
                       decisions=decisions, report=job.report, prepare=prepare)
    summary["inputs"] = inputs
    return summary
