"""Retention: packages past their signed `destroy_after` date, and their recorded destruction.

A package's date is trusted only when the whole package verifies against the signer's public key
held outside it (tfkit verify): an edited manifest.json, or one re-signed with another key, could
otherwise have any package purged early. Packages that do not verify are never purged; they are
listed as unverifiable with the reason and what to do.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tfkit import console
from tfkit.package import audit
from tfkit.package.bag import MANIFEST_JSON, TAG_MANIFEST, is_real_dir, is_regular, sha256_file

NO_KEY_HINT = "pass the signer's public key (--public-key, or --config whose signing key has its .pub beside it)"


@dataclass(frozen=True)
class PackageEntry:
    path: Path
    destroy_after: dt.date | None
    demo: bool
    verified: bool = False  # the package verifies against the signer's public key held outside it
    problem: str | None = None  # why it is unverifiable
    hint: str | None = None

    def due(self, today: dt.date) -> bool:
        return self.verified and self.destroy_after is not None and self.destroy_after < today

    def to_dict(self) -> dict:
        return {"package": self.path.name, "path": str(self.path),
                "destroy_after": self.destroy_after.isoformat() if self.destroy_after else None, "demo": self.demo,
                "verified": self.verified, "problem": self.problem, "hint": self.hint}


def list_packages(root: str | Path, public_key: str | Path | None = None) -> list[PackageEntry]:
    """Every package under root, each verified (signature, checksums, manifest) before its date is read."""
    root = Path(root)
    audit.check_output_root(root)
    return [_entry(folder, public_key) for folder in sorted(root.iterdir())
            if not folder.name.startswith(".") and is_real_dir(folder) and (folder / MANIFEST_JSON).exists()]


def _entry(folder: Path, public_key: str | Path | None) -> PackageEntry:
    from tfkit.package.verify import verify_package

    if public_key is None:
        return _unverifiable(folder, "not verified: no signer's public key given", NO_KEY_HINT)
    report = verify_package(folder, public_key=public_key, scan_identifiers=False)
    if not report.ok:
        first = report.failures[0]
        return _unverifiable(folder, f"fails verification ({first.code}: {first.message})",
                             f"run: tfkit verify {folder} --public-key KEY; restore it from backup or delete it by hand")
    manifest = json.loads((folder / MANIFEST_JSON).read_text(encoding="utf-8"))
    try:
        date = dt.date.fromisoformat((manifest.get("retention") or {}).get("destroy_after"))
    except (TypeError, ValueError):
        return _unverifiable(folder, "its signed manifest has no readable retention.destroy_after",
                             "delete it by hand when its time is up")
    return PackageEntry(folder, date, bool(manifest.get("demo")), verified=True)


def _unverifiable(folder: Path, problem: str, hint: str) -> PackageEntry:
    console.log("retention_unverifiable", f"warning: {folder.name}: unverifiable, never purged: {problem}\n"
                f"  hint: {hint}", level="warning", package=folder.name, problem=problem, hint=hint)
    return PackageEntry(folder, None, False, verified=False, problem=problem, hint=hint)


def due_packages(root: str | Path, today: dt.date | None = None,
                 public_key: str | Path | None = None) -> tuple[list[PackageEntry], list[PackageEntry]]:
    """(due, unverifiable): verified packages past their signed destroy_after, and those that do not verify."""
    today = today or dt.date.today()
    found = list_packages(root, public_key)
    return [p for p in found if p.due(today)], [p for p in found if not p.verified]


def purge(entries: list[PackageEntry], audit_log: Path, signing_key: Ed25519PrivateKey | str | Path,
          quarantine_root: Path | None = None) -> list[str]:
    """Delete each verified package, the report.html beside it and (given `quarantine_root`) its
    quarantine folder of raw rows, and record it (name and tag-manifest hash) in the audit log."""
    from tfkit.package.publish import output_lock

    purged = []
    for entry in entries:
        if not entry.verified:
            raise ValueError(f"refusing to purge unverified package {entry.path}")  # a caller's bug
        with output_lock(entry.path.parent, entry.path.name):  # never delete a package a run is replacing
            purged.append(_purge_one(entry, audit_log, signing_key, quarantine_root))
    return purged


def _purge_one(entry: PackageEntry, audit_log: Path, signing_key, quarantine_root: Path | None) -> str:
    tag = entry.path / TAG_MANIFEST
    tag_sha = sha256_file(tag) if is_regular(tag) else None
    quarantine = quarantine_root / entry.path.name if quarantine_root is not None else None
    quarantine_deleted = quarantine is not None and quarantine.is_dir()
    # The entry first (taken back if the deletion fails): no package ever disappears unrecorded.
    with audit.pending(audit_log, "retention_purge", signing_key, package=entry.path.name,
                       tagmanifest_sha256=tag_sha, destroy_after=entry.destroy_after.isoformat()
                       if entry.destroy_after else None, quarantine_deleted=quarantine_deleted):
        shutil.rmtree(entry.path)
    entry.path.with_name(f"{entry.path.name}.report.html").unlink(missing_ok=True)
    if quarantine_deleted:
        shutil.rmtree(quarantine)
    return entry.path.name
