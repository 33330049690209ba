"""Writing a link job's outputs: deterministic Parquet (record ids and levels only, never names) + JSON.

Record ids are LA-internal but still identifiers, so no id column gets min/max statistics in the
Parquet footer.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from tfkit.parquet import write_parquet
from tfkit.validation.quarantine import private_folder

from .linker import LinkResult
from .predict import with_record_ids

ID_COLUMNS = {"record_id", "record_id_l", "record_id_r"}


def _stats(frame: pl.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ID_COLUMNS]


def _write_json(data: dict, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", "utf-8")
    tmp.replace(path)
    return path


def write_outputs(result: LinkResult, out: str | Path, tables: list | None = None) -> list[Path]:
    out = private_folder(out)  # pairs, clusters and review hold record ids: 0700 (files 0600: mkstemp)
    # summary.json is written last and says the job completed: a rerun first removes the last run's
    # (and its metrics.json), so a run stopped halfway, or one without --truth, leaves none that lies.
    for stale in ("summary.json", "metrics.json"):
        (out / stale).unlink(missing_ok=True)
    meta = {"tfkit.linkage.threshold": str(result.threshold), "tfkit.linkage.review_lower": str(result.review_lower)}
    def with_ids(scored: pl.DataFrame) -> pl.DataFrame:  # one row group at a time: never all pairs' ids at once
        return with_record_ids(result.linker.prepared, scored)

    written = [
        write_parquet(result.scored, out / "pairs.parquet", statistics=_stats(with_ids(result.scored.head(0))),
                      metadata=meta, rows=with_ids),
        write_parquet(result.clusters, out / "clusters.parquet", statistics=_stats(result.clusters), metadata=meta),
        write_parquet(result.review, out / "review.parquet", statistics=_stats(result.review), metadata=meta),
        _write_json(result.model.parameters(), out / "model.json"),
    ]
    if result.metrics is not None:
        written.append(_write_json(result.metrics, out / "metrics.json"))
    if result.linker is not None:
        written += write_review_folder(result, out)
    summary = {k: v for k, v in result.summary().items() if k != "timings_seconds"}
    if tables:
        summary["inputs"] = [{"source": t.name, "rows_read": t.rows_read, "rows_linked": t.frame.height,
                              "rows_excluded_by_schema": t.excluded} for t in tables]
    written.append(_write_json(summary, out / "summary.json"))
    return written


def write_review_folder(result: LinkResult, out: Path, queue: pl.DataFrame | None = None) -> list[Path]:
    """The clerical review files (`review.csv`, `review.xlsx`) in the job's review folder, listed
    for retention. Names and dates side by side: LA-internal, 0600 in a 0700 folder. `queue`: the
    review queue's pairs by row position (`review.review_table`; the Spark engine passes those it
    collected), else made from `result`."""
    from tfkit.validation import ledger

    from .review import link_review_folder, review_table, write_review_files

    folder = link_review_folder(out)
    written = write_review_files(review_table(result, queue), folder, warn=result.model.warn)
    # Raw values outside any package: listed for `tfkit retention --root OUT` to destroy.
    ledger.record(out, folder, "", days=ledger.REVIEW_DAYS, kind="link review")
    return written
