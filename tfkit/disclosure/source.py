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


@dataclass(frozen=True)
class TableCheck:
    """One table of a package and what to check it over: its record in the manifest, else the
    person table's published quasi-identifiers (or the defaults) that it holds."""

    name: str
    frame: pl.LazyFrame
    quasi_identifiers: tuple[str, ...]
    k: int


def package_tables(person: PersonSource, qi: tuple[str, ...] | None = None, k: int | None = None) -> list[TableCheck]:
    """Every table of the package `person` was opened from that carries quasi-identifiers, the
    person table first (only the person table itself for a plain file)."""
    from tfkit.disclosure.hierarchies import DEFAULT_QUASI_IDENTIFIERS, present_quasi_identifiers

    published = person.published
    first = TableCheck(PERSON_TABLE.stem, person.frame,
                       qi or tuple(published.get("quasi_identifiers") or DEFAULT_QUASI_IDENTIFIERS),
                       k or published.get("k") or 10)
    if not person.path.is_dir():
        return [first]
    records = ((person.manifest or {}).get("disclosure") or {}).get("tables") or {}
    found = [first]
    for file in sorted(f for f in (person.path / "data").glob("*.parquet") if f.is_file() and not f.is_symlink()):
        if file.stem == PERSON_TABLE.stem:
            continue
        frame = pl.scan_parquet(file)
        record = records.get(file.stem) or {}
        wanted = qi or tuple(record.get("quasi_identifiers") or ()) or (*first.quasi_identifiers, *DEFAULT_QUASI_IDENTIFIERS)
        held = present_quasi_identifiers(frame.collect_schema().names(), wanted)
        if held:
            found.append(TableCheck(file.stem, frame, tuple(q.name for q in held), k or record.get("k") or first.k))
    return found
