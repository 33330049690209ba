"""The `Linker`: one object per job, its verbs grouped by stage as in Splink.

    linker = Linker({"police": police, "school": school}, mode="link")
    linker.training.train()                 # u by sampling, prior by rules, m by EM
    pairs = linker.inference.predict()      # every candidate pair, weight and probability
    clusters = linker.clustering.connected_components(0.9)
    linker.evaluation.accuracy(pairs, "person_key")
    linker.visualisations.report("link.html", pairs)

`link(...)` runs the whole job and returns a `LinkResult` (what the CLI writes).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import polars as pl

from tfkit.entry import return_free_memory
from tfkit.errors import InputFileError, UsageError
from tfkit.masking import safe_headers

from . import background
from . import blocking as blocking_stage
from . import clustering as clustering_stage
from . import evaluate as evaluate_stage
from . import predict as predict_stage
from . import training as training_stage
from .comparisons import comparison_levels
from .model import LinkageModel
from .standardise import MAX_CHARS, NameVariants, Prepared, prepare

ID_COLUMNS = ("record_id", "person_id")


def _id_column(frame: pl.DataFrame, source: str, wanted: str | None) -> str:
    if wanted:
        if wanted not in frame.columns:
            raise InputFileError(f"no id column {wanted!r}", file=source, column=wanted,
                                 hint="name the column holding each record's id, or map it with --map old=record_id")
        return wanted
    for c in ID_COLUMNS:
        if c in frame.columns:
            return c
    raise InputFileError("no record id column (record_id or person_id)", file=source,
                         hint="map the id column with --map 'Your ID=record_id'")


def check_inputs(frames: Mapping[str, pl.DataFrame], columns: list[str], mode: str,
                 truth_column: str | None = None, optional: tuple[str, ...] = ()) -> dict[str, pl.DataFrame]:
    """Clear errors for inputs that cannot be linked: missing columns, empty sources, all-null fields.

    A column of an optional comparison (`required = false`, e.g. sex: DWP extracts carry none) may be
    missing or empty in some sources: it is added as nulls there (no evidence) with a warning.
    Returns the frames, with such columns added.
    """
    if not frames:
        raise UsageError("no input sources given")
    if mode == "link" and len(frames) < 2:
        raise UsageError("link mode needs at least two sources", hint="pass more files, or use --mode dedupe")
    out = {}
    for source, frame in frames.items():
        if frame.height == 0:
            raise InputFileError("the source has no records", file=source, hint="check the extract is not empty")
        missing = [c for c in columns if c not in frame.columns and c not in optional]
        if missing:
            raise InputFileError(
                f"missing column(s) the model compares: {', '.join(missing)}", file=source, column=missing[0],
                hint=f"map them with --map 'Old name={missing[0]}' or use --schema; columns present: "
                     + ", ".join(safe_headers(frame.columns[:12])),
            )
        if truth_column and truth_column not in frame.columns:
            raise InputFileError(f"no truth column {truth_column!r}", file=source, column=truth_column)
        absent = [c for c in optional if c in columns and c not in frame.columns]
        for c in absent:
            if not any(c in f.columns for f in frames.values()):
                continue  # in no source: the Linker drops the comparison, with one warning
            from tfkit import console

            console.log("optional_column_missing", f"warning: {source} has no {c!r} column; compared as unknown",
                        level="warning", source=source, column=c)
        out[source] = frame.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in absent])
    for c in columns:
        if c in optional:
            continue  # the Linker drops an optional comparison no source has, with a warning
        if all(frame.get_column(c).null_count() == frame.height for frame in out.values()):
            raise InputFileError(f"column {c!r} is empty (null) in every source, so it carries no evidence",
                                 column=c, hint="fix the extract, or remove the comparison from the model")
    for source, frame in out.items():
        all_null = [c for c in columns if frame.get_column(c).null_count() == frame.height]
        required_null = [c for c in all_null if c not in optional]
        if required_null:
            raise InputFileError(f"column {required_null[0]!r} has no values in this source", file=source,
                                 column=required_null[0], hint="check the column mapping for this file")
    return out


@contextlib.contextmanager
def _progress(description: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """An advance callback for `console.progress()`'s bar; None where no bar shows (off a terminal,
    --quiet, JSON logs: console.interactive() decides, for every command alike), so rich is not loaded
    and no callback runs per batch."""
    from tfkit import console

    if not console.interactive():
        yield None
        return
    with console.progress() as bar:
        task = bar.add_task(description, total=total)
        yield lambda k: bar.advance(task, k)


class _Stage:
    def __init__(self, linker: "Linker") -> None:
        self.linker = linker


class Blocking(_Stage):
    def candidates(self) -> pl.DataFrame:
        return self.linker.candidates

    def report(self) -> blocking_stage.BlockingReport:
        self.linker.candidates  # noqa: B018 - computes the report
        return self.linker._blocking_report


class Training(_Stage):
    def estimate_u_using_random_sampling(self, seed: int | None = None) -> dict[str, np.ndarray]:
        lk = self.linker
        return training_stage.estimate_u(lk.prepared, lk.model, mode=lk.mode, seed=lk.seed if seed is None else seed)

    def estimate_probability_two_random_records_match(self) -> float:
        lk = self.linker
        return training_stage.estimate_prior(lk.prepared, lk.model, lk.candidates, mode=lk.mode)

    def estimate_m_using_expectation_maximisation(self) -> dict[str, np.ndarray]:
        """EM sessions on the model's [[training]] rules; without any, one EM over all candidates."""
        lk = self.linker
        if lk.model.training:
            blocking_stage.check_rules(lk.prepared, lk.model.training)
            return training_stage.estimate_m_em_sessions(lk.prepared, lk.model, mode=lk.mode, seed=lk.seed)
        return training_stage.estimate_m_em(lk.model, lk.patterns).m

    def estimate_m_from_labels(self, truth_column: str) -> dict[str, np.ndarray]:
        lk = self.linker
        is_match = evaluate_stage.label_pairs(lk.prepared, lk.candidates, truth_column)
        matching = training_stage.patterns({k: v[is_match] for k, v in lk.levels.items()}, lk.model.comparisons)
        return training_stage.estimate_m_from_labels(lk.model, matching)

    def train(self, truth_column: str | None = None, beside: "TrainingBeside | None" = None) -> LinkageModel:
        """The usual sequence: u, prior, then m from labels if given, else by EM. `beside`: u and
        the EM sessions already run on another thread (`TrainingBeside`); their results and log are taken
        in the same order."""
        if beside is not None:
            beside.join_into(self.linker.model)
        else:
            self.estimate_u_using_random_sampling()
        self.estimate_probability_two_random_records_match()
        if beside is not None:
            beside.log_m_into(self.linker.model)
        elif truth_column:
            self.estimate_m_from_labels(truth_column)
        else:
            self.estimate_m_using_expectation_maximisation()
        lk = self.linker
        if lk.model.settings.refine_prior:
            training_stage.refine_prior(lk.model, lk.patterns, blocking_stage.comparisons_possible(
                lk.prepared.source_sizes(), lk.mode))
        return self.linker.model


class TrainingBeside:
    """u and the EM sessions on a second thread, while the main thread blocks and compares the
    candidates: neither needs the other (EM needs u; the sessions make their own pairs), and both
    spend their time in numpy and rapidfuzz, which release the GIL. The thread works on a shallow
    copy of the model with its own log; `join_into` and `log_m_into` hand the results over so the
    model and its log come out as the sequential `train` makes them."""

    def __init__(self, linker: "Linker") -> None:
        import copy
        import threading

        self.model = copy.copy(linker.model)
        self.model.training_log = []
        self.error: BaseException | None = None
        self.elapsed = 0.0

        def work() -> None:
            started = time.perf_counter()
            try:
                training_stage.estimate_u(linker.prepared, self.model, mode=linker.mode, seed=linker.seed)
                blocking_stage.check_rules(linker.prepared, self.model.training)
                training_stage.estimate_m_em_sessions(linker.prepared, self.model, mode=linker.mode, seed=linker.seed)
            except BaseException as err:  # re-raised on the main thread by join_into
                self.error = err
            self.elapsed = time.perf_counter() - started

        self.thread = threading.Thread(target=work, name="tfkit-train", daemon=True)
        self.thread.start()

    @staticmethod
    def wanted(linker: "Linker", labels: bool) -> bool:
        return bool(linker.model.training) and not labels

    def join_into(self, model: LinkageModel) -> None:
        """Wait for the thread; u (its counts and patterns) and m onto `model`, the u step logged."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        model.u, model.u_counts, model.u_patterns, model.m = (self.model.u, self.model.u_counts,
                                                              self.model.u_patterns, self.model.m)
        model.training_log.append(self.model.training_log[0])

    def log_m_into(self, model: LinkageModel) -> None:
        model.training_log.extend(self.model.training_log[1:])


class Inference(_Stage):
    def predict(self) -> pl.DataFrame:
        """Scored candidate pairs by row position (rid_l, rid_r); see `with_record_ids`."""
        lk = self.linker
        if not lk.model.trained:
            raise UsageError("the model is not trained", hint="call linker.training.train() first")
        c = lk.candidates
        return predict_stage.score(lk.prepared, lk.model, c["rid_l"].to_numpy(), c["rid_r"].to_numpy(), lk.levels,
                                   parts=2)

    def with_record_ids(self, pairs: pl.DataFrame) -> pl.DataFrame:
        return predict_stage.with_record_ids(self.linker.prepared, pairs)


class Clustering(_Stage):
    def connected_components(self, pairs: pl.DataFrame, threshold: float) -> pl.DataFrame:
        return clustering_stage.cluster(self.linker.prepared, pairs, threshold)

    def best_links(self, pairs: pl.DataFrame, threshold: float) -> pl.DataFrame:
        return clustering_stage.cluster(self.linker.prepared, pairs, threshold, one_to_one=True)


class Evaluation(_Stage):
    def accuracy(self, pairs: pl.DataFrame, truth_column: str, threshold: float | None = None) -> dict:
        lk = self.linker
        t = lk.model.settings.threshold if threshold is None else threshold
        return evaluate_stage.evaluate(lk.prepared, pairs, truth_column, lk.mode, t)

    def blocking_recall(self, truth_column: str) -> blocking_stage.BlockingReport:
        lk = self.linker
        return blocking_stage.blocking_recall(lk.prepared, lk.candidates, truth_column, lk.mode,
                                              self.linker.blocking.report())


class Visualisations(_Stage):
    def report(self, path: str | Path, pairs: pl.DataFrame, *, metrics: dict | None = None,
               threshold: float | None = None) -> Path:
        from .report import write_report

        return write_report(path, self.linker, pairs, metrics=metrics, threshold=threshold)


class Linker:
    def __init__(self, frames: Mapping[str, pl.DataFrame], model: LinkageModel | None = None, *,
                 mode: str | None = None, id_column: str | None = None, truth_column: str | None = None,
                 seed: int | None = None, prepare_records: Callable[..., Prepared] = prepare) -> None:
        """`prepare_records`: `standardise.prepare` or a stand-in with its signature (the Spark
        engine's prepares on the cluster; its `frames` then stand for the sources' shape)."""
        self.model = model or LinkageModel.default()
        self.mode = mode or self.model.settings.mode
        if self.mode not in blocking_stage.MODES:
            raise UsageError(f"unknown mode {self.mode!r}", hint="use link, dedupe or both")
        self.seed = self.model.settings.seed if seed is None else seed
        self.truth_column = truth_column
        frames = check_inputs(frames, self.model.input_columns(), self.mode, truth_column,
                              optional=self.model.optional_columns())
        self.model = self.model.without_absent_optional(frames)
        sources = list(frames)
        frames_list = [f.with_columns(pl.col(_id_column(f, s, id_column)).alias("_id")) for s, f in frames.items()]
        self.inputs = frames_list  # values as given, by row position (clerical review shows them)
        variants = NameVariants.load(self.model.settings.name_variants)
        self.timings: dict[str, float] = {}
        t = time.perf_counter()
        self.prepared: Prepared = prepare_records(frames_list, sources, self.model.field_kinds(), id_column="_id",
                                          variants=variants, keep=(truth_column,) if truth_column else ())
        self.timings["standardise"] = time.perf_counter() - t
        for column, records in self.prepared.truncated.items():
            self.model.warn("values_truncated", f"{records:,} value(s) of {column!r} longer than "
                            f"{MAX_CHARS} characters compared on their first {MAX_CHARS}", column=column, records=records)
        self._candidates: pl.DataFrame | None = None
        self._blocking_report: blocking_stage.BlockingReport | None = None
        self._levels: dict[str, np.ndarray] | None = None
        self.blocking = Blocking(self)
        self.training = Training(self)
        self.inference = Inference(self)
        self.clustering = Clustering(self)
        self.evaluation = Evaluation(self)
        self.visualisations = Visualisations(self)

    @property
    def candidates(self) -> pl.DataFrame:
        if self._candidates is None:
            t = time.perf_counter()
            s = self.model.settings
            self._candidates, self._blocking_report = blocking_stage.candidate_pairs(
                self.prepared, self.model.blocking, self.mode, max_block_pairs=s.max_block_pairs,
                budget=blocking_stage.rule_budget(self.prepared.n, s.max_rule_pairs, s.max_rule_pairs_per_record))
            blocking_stage.warn_skipped(self.model, self._blocking_report.rules)
            self.timings["block"] = time.perf_counter() - t
        return self._candidates

    @property
    def levels(self) -> dict[str, np.ndarray]:
        """Comparison levels of every candidate pair, computed once (int8 per comparison)."""
        if self._levels is None:
            c = self.candidates
            t = time.perf_counter()
            with _progress("comparing pairs", c.height) as advance:
                self._levels = comparison_levels(
                    self.prepared, self.model.comparisons, c["rid_l"].to_numpy(), c["rid_r"].to_numpy(),
                    batch_pairs=self.model.settings.batch_pairs, on_batch=advance)
            self.timings["compare"] = time.perf_counter() - t
        return self._levels

    @property
    def patterns(self) -> tuple[np.ndarray, np.ndarray]:
        """The candidate pairs' distinct comparison vectors and their counts (what EM and the
        prior's refinement read; the Spark engine counts them on the cluster)."""
        return training_stage.patterns(self.levels, self.model.comparisons)


@dataclass
class LinkResult:
    scored: pl.DataFrame           # scored candidate pairs by row position (rid_l, rid_r)
    clusters: pl.DataFrame         # every input record with its cluster id
    review: pl.DataFrame           # pairs in [review_lower, threshold), and above it too close to call (review_reason)
    blocking: blocking_stage.BlockingReport
    model: LinkageModel
    threshold: float
    review_lower: float
    metrics: dict | None = None
    timings: dict[str, float] = field(default_factory=dict)
    linker: Linker | None = None
    link_stats: clustering_stage.LinkStats | None = None  # clean-source constraints and decisions
    # `link` clusters on another thread while its caller writes the pairs: clusters, link_stats
    # and the review queue (which needs the links selected) are this function's result, waited for
    # on first reading any of them (see `_settled`).
    pending: Callable[[], tuple[pl.DataFrame, clustering_stage.LinkStats, pl.DataFrame]] | None = field(
        default=None, repr=False, compare=False)

    def _settle(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.clusters, self.link_stats, self.review = pending()

    @property
    def pairs(self) -> pl.DataFrame:
        """The scored pairs with (source, record_id) for both sides instead of row positions.

        Built on each access and not held: at 100k x 100k the four id columns of a million pairs
        take ~85 MiB, the largest single item of a link job's peak memory. `outputs` writes them a
        row group at a time; take this once and keep it where a whole frame is needed."""
        return predict_stage.with_record_ids(self.linker.prepared, self.scored)

    def summary(self) -> dict:
        from .review import reason_counts

        return {
            "mode": self.linker.mode if self.linker else None,
            "sources": dict(zip(self.linker.prepared.sources, self.linker.prepared.source_sizes())) if self.linker else None,
            "candidate_pairs": self.scored.height,
            "links": int((self.scored["match_probability"] >= self.threshold).sum()),
            "review_pairs": self.review.height,  # the review band's and those too close to call
            "review_pairs_by_reason": reason_counts(self.review),
            "clusters": int(self.clusters["cluster_id"].n_unique()),
            "threshold": self.threshold,
            "review_lower": self.review_lower,
            "prior": self.model.prior,
            "blocking": self.blocking.to_dict(),
            "training": self.model.training_log,
            "constraints": self.link_stats.to_dict() if self.link_stats else None,
            "warnings": self.model.warnings,
            "metrics": None if self.metrics is None else {k: v for k, v in self.metrics.items() if k != "curve"},
            "timings_seconds": {k: round(v, 3) for k, v in self.timings.items()},
        }


def _settled(name: str) -> property:
    """A LinkResult field that `link` may still be computing on another thread: reading it waits."""
    key = f"_{name}"

    def get(self: LinkResult):
        self._settle()
        return self.__dict__[key]

    def put(self: LinkResult, value) -> None:
        self.__dict__[key] = value

    return property(get, put)


LinkResult.clusters = _settled("clusters")  # type: ignore[assignment]
LinkResult.link_stats = _settled("link_stats")  # type: ignore[assignment]
LinkResult.review = _settled("review")  # type: ignore[assignment]


def link(frames: Mapping[str, pl.DataFrame], model: LinkageModel | None = None, *, mode: str | None = None,
         threshold: float | None = None, review_lower: float | None = None, truth_column: str | None = None,
         train_on_labels: bool = False, one_to_one: bool = False, seed: int | None = None,
         id_column: str | None = None, clean: tuple[str, ...] = (),
         decisions: pl.DataFrame | None = None) -> LinkResult:
    """The whole job: standardise, block, compare, train, predict, cluster, (evaluate).

    `clean`: sources holding one record per person (see clustering.select_links); `decisions`: a
    reviewer's accepted and rejected pairs (tfkit.linkage.review), applied as forced links and non-links.
    """
    linker = Linker(frames, model, mode=mode, id_column=id_column, truth_column=truth_column, seed=seed)
    s = linker.model.settings
    threshold = s.threshold if threshold is None else threshold
    review_lower = s.review_lower if review_lower is None else review_lower
    if not 0 < review_lower <= threshold < 1:
        raise UsageError(f"need 0 < review lower ({review_lower}) <= threshold ({threshold}) < 1")
    clustering_stage.check_clean_sources(linker.prepared, clean)  # before the work: exit 2 at once
    if one_to_one and linker.mode != "link":
        raise UsageError("one-to-one best links apply to link mode only", hint="drop --one-to-one or use --mode link")
    # u and the EM sessions on a second thread while this one blocks and compares (see `TrainingBeside`).
    beside = TrainingBeside(linker) if TrainingBeside.wanted(linker, train_on_labels) else None
    linker.levels  # noqa: B018 - block and compare (timed)
    t = time.perf_counter()
    linker.training.train(truth_column if train_on_labels else None, beside=beside)
    if beside is not None:
        linker.timings["train_beside"] = beside.elapsed  # u and EM, overlapping block and compare
    training_stage.check_training(linker.model)  # in the summary, the console and the report
    linker.timings["train"] = time.perf_counter() - t
    t = time.perf_counter()
    scored = linker.inference.predict()
    linker.timings["predict"] = time.perf_counter() - t
    linker.prepared.release_caches()  # nothing after scoring gathers codes: ~10 MiB off the peak at 100k
    return_free_memory()  # blocking, comparing and training's freed arrays, before the pairs are written

    def clustered() -> tuple[pl.DataFrame, clustering_stage.LinkStats]:
        t = time.perf_counter()
        links, link_stats = clustering_stage.select_links(linker.prepared, scored, threshold, one_to_one=one_to_one,
                                                          clean=clean, decisions=decisions)
        clusters = clustering_stage.cluster_frame(linker.prepared, links)
        link_stats.clusters_with_two_clean_records = clustering_stage.count_clean_conflicts(
            linker.prepared, clusters, clean)
        linker.timings["cluster"] = time.perf_counter() - t
        # The review queue: the band's pairs and those the clean-source rule held as too close to
        # call (known once the links are selected), with their record ids.
        from .review import HELD, review_queue

        review = predict_stage.with_record_ids(linker.prepared, review_queue(
            scored, threshold, review_lower, link_stats.held_for_review).drop(HELD))
        if decisions is not None and decisions.height:  # a decided pair is not asked about again
            keys = ["source_l", "record_id_l", "source_r", "record_id_r"]
            decided = decisions.select(pl.col(keys).cast(pl.String))
            swapped = decided.select(pl.col(k).alias(k[:-1] + ("r" if k.endswith("l") else "l")) for k in keys)
            review = review.join(pl.concat([decided, swapped.select(keys)]), on=keys, how="anti")
        return clusters, link_stats, review

    # Clustering (and then the review queue, which needs the selected links) on another thread: the
    # evaluation and the caller's first writes (the pairs, with their ids) need none of it, and the
    # time of both is mostly in polars and
    # numpy, which release the GIL (the demo at 100k x 100k: 0.12 s of clustering beside 0.15 s of
    # writing the pairs, one after the other before). Same clusters: the same calls, elsewhere.
    linker.timings["cluster"] = 0.0  # its place among the timings, as before
    pending = background.start(clustered, name="tfkit-cluster")
    metrics = None
    report = linker._blocking_report
    if truth_column:
        t = time.perf_counter()
        metrics = linker.evaluation.accuracy(scored, truth_column, threshold)
        report = linker.evaluation.blocking_recall(truth_column)
        metrics["blocking_recall"] = report.recall
        linker.timings["evaluate"] = time.perf_counter() - t
    return LinkResult(scored, None, None, report, linker.model, threshold, review_lower, metrics,
                      linker.timings, linker, None, pending=pending)
