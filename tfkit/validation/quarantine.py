"""Quarantine files: the rows that failed, as CSV for a person to open in Excel and fix at source.

    write_quarantine_csv(rows, path, private=False) -> path

UTF-8 with a byte-order mark (Excel then reads accented names correctly), written to a temporary
file and renamed, so a half-written file never looks complete. A cell Excel would run as a formula
(it starts with =, +, -, @, a tab or a carriage return: "CSV injection") gets a leading apostrophe,
which Excel shows as a text marker and does not display; the value is otherwise as the source had it.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from tfkit.errors import writing

FORMULA_START = r"^[=+\-@\t\r]"


def neutralise_formulas(rows: pl.DataFrame) -> pl.DataFrame:
    """Prefix "'" to every text cell that starts like a spreadsheet formula."""
    text = [c for c, t in rows.schema.items() if t == pl.String]
    return rows.with_columns(
        pl.when(pl.col(c).str.contains(FORMULA_START)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in text
    )


def write_quarantine_csv(rows: pl.DataFrame, path: str | Path, *, private: bool = False) -> Path:
    """Write `rows` to `path` atomically; `private` makes the file readable by its owner only."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if private:  # owner-only from the first byte, not after the raw rows are written
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        with writing(path):  # a full disk names the quarantine file (polars' error names none)
            neutralise_formulas(rows).write_csv(tmp, include_bom=True)
        if private:
            os.chmod(tmp, 0o600)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave raw rows behind in a half-written temporary file
        raise
    return path
