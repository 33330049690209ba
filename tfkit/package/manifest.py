"""tfkit's `manifest.json`: what a package holds, where it came from and how its rows reconcile.

The manifest is a tag file of the bag (so it is covered by the tag manifest and the signature).
It holds fingerprints and hashes only, never a key and never an identifier; consent withdrawals
appear as counts only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tfkit import __version__

MANIFEST_FORMAT = "tfkit-package/1"
DEPENDENCIES = ("polars", "pyarrow", "polars-hash", "cryptography", "bagit", "pandera")


class ReconciliationError(AssertionError):
    """Rows were lost or invented between input and output: a bug, never a user error."""


@dataclass
class Reconciliation:
    """Per source: rows_in = rows_out + quarantined + withdrawn + sum(excluded)."""

    source: str
    table: str
    rows_in: int
    rows_out: int = 0
    quarantined: int = 0
    withdrawn: int = 0
    excluded: dict[str, int] = field(default_factory=dict)  # any other counted exclusion, by reason

    @property
    def accounted(self) -> int:
        return self.rows_out + self.quarantined + self.withdrawn + sum(self.excluded.values())

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.accounted

    def check(self) -> "Reconciliation":
        if not self.balanced:
            raise ReconciliationError(
                f"source {self.source!r}: rows_in {self.rows_in} != rows_out {self.rows_out} + quarantined "
                f"{self.quarantined} + withdrawn {self.withdrawn} + excluded {sum(self.excluded.values())}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "balanced": self.balanced}


@dataclass(frozen=True)
class InputFile:
    source: str
    file: str  # the file's name only: paths on the LA's machines are not the recipient's business
    schema: str
    sha256: str
    bytes: int
    rows: int


def parquet_facts(path: Path) -> dict[str, Any]:
    """Rows and schema from a Parquet footer (no data read)."""
    md = pq.read_metadata(path)
    schema = md.schema.to_arrow_schema()
    return {"rows": md.num_rows, "schema": [{"name": f.name, "type": str(f.type)} for f in schema]}


def footer_metadata(path: Path) -> dict[str, str]:
    """tfkit's key-values from a Parquet footer (`tfkit.*`)."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if k.startswith(b"tfkit.")}


def dependency_versions() -> dict[str, str]:
    versions = {}
    for name in DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def destroy_after(created: dt.datetime, days: int) -> str:
    return (created.date() + dt.timedelta(days=days)).isoformat()


def dumps(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
