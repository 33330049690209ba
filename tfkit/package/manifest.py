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
DEPENDENCIES = ("polars", "pyarrow", "polars-hash", "cryptography")  # what shapes a package's bytes


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


@dataclass
class Manifest:
    """What a package says about itself, typed. `to_dict` gives manifest.json's fields in their
    fixed order (build adds `outputs` and `signer`); tfkit.package.publish fills in `audit`."""

    project: str
    la_code: str
    return_type: str
    period: str
    demo: bool
    created: dt.datetime
    retention_days: int
    key_fingerprint: str
    config_sha256: str
    contract_version: str
    inputs: list[InputFile]
    consent_withdrawals: dict[str, Any]
    reconciliation: list[Reconciliation]
    pseudonymisation: dict[str, Any]
    linkage: dict[str, Any] | None
    disclosure: dict[str, Any]
    run_sha256: str
    audit_log: str = "audit.jsonl"
    audit_entry_hash: str | None = None  # the hash of the package's own audit entry (written before publish)
    audit_entry_seq: int | None = None

    @property
    def package_id(self) -> str:
        return package_id(self.la_code, self.return_type, self.period)

    @property
    def destroy_after(self) -> str:
        return destroy_after(self.created, self.retention_days)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "tool": {"name": "tfkit", "version": __version__},
            "dependencies": dependency_versions(),
            "contract_version": self.contract_version,
            "project": self.project,
            "la_code": self.la_code,
            "return": self.return_type,
            "period": self.period,
            "demo": self.demo,
            "created": self.created.isoformat(timespec="seconds"),
            "retention": {"days": self.retention_days, "destroy_after": self.destroy_after},
            "key_fingerprint": self.key_fingerprint,
            "config_sha256": self.config_sha256,
            "inputs": [asdict(i) for i in self.inputs],
            "consent_withdrawals": self.consent_withdrawals,
            "reconciliation": [r.to_dict() for r in self.reconciliation],
            "pseudonymisation": self.pseudonymisation,
            "linkage": self.linkage,
            "disclosure": self.disclosure,
            "audit": {"log": self.audit_log, "chain_head": self.audit_entry_hash, "entry_seq": self.audit_entry_seq},
            "run_sha256": self.run_sha256,
        }


def package_id(la_code: str, return_type: str, period: str) -> str:
    """A package's name: its folder, bag-info's External-Identifier and the manifest's LA, return and period."""
    return f"{la_code}_{return_type}_{period}"


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
