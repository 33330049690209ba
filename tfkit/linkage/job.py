"""`tfkit link` as one library call: read the sources, link them on the chosen engine, write the
outputs (and the report), and return the job's summary. The CLI parses, calls `run_link_job` and
renders; a notebook or another job can make the same call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfkit.errors import UsageError


@dataclass
class LinkJob:
    """What `tfkit link` was asked to do."""

    sources: list[Path]
    out: Path
    schemas: list[str] | None = None
    sheet: str | int | None = None  # an .xlsx source's worksheet (name or 0-based index; default: the first)
    mapping: dict[str, str] = field(default_factory=dict)
    model: Path | None = None  # None: the built-in model
    mode: str | None = None  # None: link for two or more sources, dedupe for one
    threshold: float | None = None
    review_lower: float | None = None
    truth: str | None = None
    train_on_labels: bool = False
    one_to_one: bool = False
    clean: tuple[str, ...] = ()
    report: Path | None = None
    seed: int | None = None
    engine: Any = None  # tfkit.engine.EngineSettings; None: polars

    def check(self) -> None:
        """The mistakes that would otherwise surface only after the work."""
        if self.out.exists() and not self.out.is_dir():
            raise UsageError("--out is a file: it must be a folder (new, or one of tfkit link's)", file=self.out,
                             hint="choose a folder, e.g. --out linked/")
        if self.report is not None and self.report.is_dir():
            raise UsageError("--report names a folder", file=self.report,
                             hint="give an .html file path, e.g. --report link.html")
        if self.train_on_labels and not self.truth:
            raise UsageError("--train-on-labels needs --truth COLUMN")
        from tfkit.linkage.review import STORE_NAME, check_no_unapplied_decisions, link_review_folder

        folder = link_review_folder(self.out)
        check_no_unapplied_decisions(folder, folder / STORE_NAME, f"tfkit review apply {folder / 'review.xlsx'} "
                                                                  f"--out {self.out}")


def run_link_job(job: LinkJob) -> dict[str, Any]:
    """Run `job` and return its summary (counts, blocking plan, training, outputs: no record values)."""
    from tfkit.linkage import LinkageModel, link
    from tfkit.linkage.inputs import check_record_ids, read_sources
    from tfkit.linkage.outputs import write_outputs
    from tfkit.linkage.review import STORE_NAME, link_review_folder, load_decisions

    job.check()
    mode = job.mode or ("link" if len(job.sources) > 1 else "dedupe")
    model = LinkageModel.load(job.model)
    decisions = load_decisions(link_review_folder(job.out) / STORE_NAME)
    if job.engine is not None and job.engine.is_spark:  # reads its sources itself (Parquet folders, HDFS)
        from tfkit.engine.spark.link import run_link_job_spark

        return run_link_job_spark(job, model, mode=mode, decisions=decisions)
    tables = read_sources(job.sources, schemas=job.schemas, mapping=job.mapping, keep=(job.truth,) if job.truth else (),
                          sheet=job.sheet)
    check_record_ids(tables, job.clean)
    frames = {t.name: t.frame for t in tables}
    result = link(frames, model, mode=mode, threshold=job.threshold, review_lower=job.review_lower,
                  truth_column=job.truth, train_on_labels=job.train_on_labels, one_to_one=job.one_to_one,
                  seed=job.seed, clean=job.clean, decisions=decisions)
    written = write_outputs(result, job.out, tables)
    if job.report:
        from tfkit.linkage.report import write_link_report

        written.append(write_link_report(job.report, result))
    summary = result.summary()
    summary["engine"] = "polars"
    summary["inputs"] = _inputs(tables)
    summary["outputs"] = [str(p) for p in written]
    return summary


def _inputs(tables) -> list[dict]:
    return [{"source": t.name, "file": str(t.path), "rows_read": t.rows_read, "rows_linked": t.frame.height,
             "rows_excluded_by_schema": t.excluded} for t in tables]
