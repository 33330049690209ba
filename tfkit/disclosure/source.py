"""Where the disclosure commands read a person table from: a package directory or a single file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tfkit.errors import InputFileError

PERSON_TABLE = Path("data") / "person.parquet"


@dataclass(frozen=True)
class PersonSource:
    path: Path
    frame: pl.LazyFrame
    manifest: dict[str, Any] | None

    @property
    def published(self) -> dict[str, Any]:
        """What extract recorded of the person table's disclosure check (k and the quasi-identifiers
        as published, after generalisation), or {} for a plain table."""
        return ((self.manifest or {}).get("disclosure") or {}).get("published") or {}

    @property
    def period(self) -> str | None:
        return (self.manifest or {}).get("period")

    @property
    def label(self) -> str:
        return self.period or self.path.name


def open_person_table(path: str | Path) -> PersonSource:
    """A package (`<dir>/data/person.parquet` + `manifest.json`), or a .parquet / .csv file."""
    path = Path(path)
    if not path.exists():
        raise InputFileError("no such file or package directory", file=path,
                             hint="give a package directory written by `tfkit extract`, or a .parquet/.csv file")
    manifest = None
    if path.is_dir():
        table = path / PERSON_TABLE
        if not table.is_file():
            raise InputFileError(f"not a tfkit package: {PERSON_TABLE} is missing", file=path,
                                 hint="give the package directory itself (the one holding bagit.txt and data/)")
        manifest_path = path / "manifest.json"
        if manifest_path.is_file():
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise InputFileError(f"manifest.json cannot be read: {err}", file=manifest_path,
                                     hint="verify the package with `tfkit verify`") from None
        file = table
    else:
        file = path
    suffix = file.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pl.scan_parquet(file)
        elif suffix == ".csv":
            frame = pl.scan_csv(file, infer_schema_length=10_000)
        else:
            raise InputFileError(f"cannot read {suffix or 'extension-less'} files here", file=file,
                                 hint="give a package directory, a .parquet or a .csv file")
        frame.collect_schema()
    except InputFileError:
        raise
    except Exception as err:  # polars raises several types for unreadable files
        raise InputFileError(f"cannot be read as a table: {err}", file=file) from None
    return PersonSource(path, frame, manifest)
