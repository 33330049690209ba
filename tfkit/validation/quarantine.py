"""Quarantine files: the rows that failed, as CSV for a person to open in Excel and fix at source.

    write_quarantine_csv(rows, path) -> path
    private_folder(path) -> path

Every file holding raw rows or identifiers is private whatever the umask: the file 0600 (created
so, never chmod-ed after the rows are in it), its folder 0700.

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


def private_folder(path: str | Path) -> Path:
    """`path` as a folder only its owner can enter (0700), made when missing, whatever the umask."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_quarantine_csv(rows: pl.DataFrame, path: str | Path, *, private: bool = True) -> Path:
    """Write `rows` to `path` atomically, mode 0600 in a 0700 folder (`private` is kept for old
    callers: quarantine files hold raw identifiers, so they are always private)."""
    path = Path(path)
    private_folder(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with writing(path), os.fdopen(fd, "wb") as fh:  # a full disk names the file (polars' error names none)
            neutralise_formulas(rows).write_csv(fh, include_bom=True)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
