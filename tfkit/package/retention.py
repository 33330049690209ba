"""Retention: packages past their `destroy_after` date, and their recorded destruction."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tfkit import console
from tfkit.package import audit
from tfkit.package.bag import MANIFEST_JSON, TAG_MANIFEST, sha256_file


@dataclass(frozen=True)
class PackageEntry:
    path: Path
    destroy_after: dt.date | None
    demo: bool

    def due(self, today: dt.date) -> bool:
        return self.destroy_after is not None and self.destroy_after < today

    def to_dict(self) -> dict:
        return {"package": self.path.name, "path": str(self.path),
                "destroy_after": self.destroy_after.isoformat() if self.destroy_after else None, "demo": self.demo}


def list_packages(root: str | Path) -> list[PackageEntry]:
    root = Path(root)
    audit.check_output_root(root)
    found = []
    for manifest_path in sorted(root.glob(f"*/{MANIFEST_JSON}")):
        if manifest_path.parent.name.startswith("."):
            continue  # staging directories are not packages
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            raw = (manifest.get("retention") or {}).get("destroy_after")
            date = dt.date.fromisoformat(raw) if raw else None
        except (ValueError, AttributeError):
            date = None
            manifest = {}
        if date is None:
            # Such a package would silently never be purged: say so every time retention looks.
            console.log("retention_unreadable",
                        f"warning: {manifest_path}: no readable retention.destroy_after, so this package is "
                        "never due for destruction; check the package (tfkit verify) and delete it by hand "
                        "when its time is up", level="warning", package=manifest_path.parent.name,
                        file=str(manifest_path))
        found.append(PackageEntry(manifest_path.parent, date, bool(manifest.get("demo"))))
    return found


def due_packages(root: str | Path, today: dt.date | None = None) -> list[PackageEntry]:
    today = today or dt.date.today()
    return [p for p in list_packages(root) if p.due(today)]


def purge(entries: list[PackageEntry], audit_log: Path, quarantine_root: Path | None = None) -> list[str]:
    """Delete each package, the report.html beside it and (given `quarantine_root`) its quarantine folder
    of raw rows, and record it (by name and tag-manifest hash) in the audit log."""
    purged = []
    for entry in entries:
        tag = entry.path / TAG_MANIFEST
        tag_sha = sha256_file(tag) if tag.is_file() else None
        shutil.rmtree(entry.path)
        entry.path.with_name(f"{entry.path.name}.report.html").unlink(missing_ok=True)
        quarantine = quarantine_root / entry.path.name if quarantine_root is not None else None
        quarantine_deleted = quarantine is not None and quarantine.is_dir()
        if quarantine_deleted:
            shutil.rmtree(quarantine)
        audit.append(audit_log, "retention_purge", package=entry.path.name, tagmanifest_sha256=tag_sha,
                     destroy_after=entry.destroy_after.isoformat() if entry.destroy_after else None,
                     quarantine_deleted=quarantine_deleted)
        purged.append(entry.path.name)
    return purged
