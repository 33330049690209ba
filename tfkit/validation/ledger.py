"""The quarantine ledger: raw rows a run had to leave outside a package, listed so retention destroys them.

A successful extract's quarantine folder goes with its package (`retention purge` deletes both).
A failed run publishes no package, yet its quarantine files must stay for a person to read the
reasons and fix the data: each such folder is recorded here, in `<output root>/quarantine-ledger.jsonl`
(paths and dates only, never a value), with a destroy-after date FAILED_RUN_DAYS ahead. `retention`
lists the entries due and `retention purge` deletes their folders. An entry whose package has since
been written is superseded: that folder is now the package's, and goes when the package goes.

`tfkit link --out DIR` records its clerical-review folder (both records' names, dates of birth and
postcodes side by side) in DIR's ledger the same way (kind "link review", REVIEW_DAYS ahead; each
rerun moves the date on), so `tfkit retention --root DIR` lists it and `retention purge` deletes it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

LEDGER_NAME = "quarantine-ledger.jsonl"
FAILED_RUN_DAYS = 30  # long enough to fix the extract and rerun; raw rows are not kept for years
REVIEW_DAYS = 90  # a link run's clerical review: a quarter to decide the pairs, then destroyed
KINDS = {"quarantine": "quarantine of a failed run", "link review": "clerical review files of a link run"}


@dataclass(frozen=True)
class LedgerEntry:
    folder: Path
    package: str
    recorded: dt.date
    destroy_after: dt.date
    kind: str = "quarantine"

    @property
    def description(self) -> str:
        return KINDS.get(self.kind, self.kind)

    def to_dict(self) -> dict:
        return {"folder": str(self.folder), "package": self.package, "recorded": self.recorded.isoformat(),
                "destroy_after": self.destroy_after.isoformat(), "kind": self.kind}


def ledger_path(output_root: Path) -> Path:
    return Path(output_root) / LEDGER_NAME


def record(output_root: Path, folder: Path, package: str, today: dt.date | None = None,
           days: int = FAILED_RUN_DAYS, kind: str = "quarantine") -> LedgerEntry:
    """Note `folder` (the quarantine files of a failed run for `package`, or `kind` "link review":
    a link run's review files, package "") for destruction."""
    today = today or dt.date.today()
    entry = LedgerEntry(Path(folder).resolve(), package, today, today + dt.timedelta(days=days), kind)
    path = ledger_path(output_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry.to_dict(), sort_keys=True) + "\n")
    return entry


def entries(output_root: Path) -> list[LedgerEntry]:
    """The ledger's live entries: folders still present, not superseded by a package since."""
    path = ledger_path(output_root)
    if not path.is_file():
        return []
    found: dict[Path, LedgerEntry] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            d = json.loads(line)
            entry = LedgerEntry(Path(d["folder"]), d["package"], dt.date.fromisoformat(d["recorded"]),
                                dt.date.fromisoformat(d["destroy_after"]), d.get("kind", "quarantine"))
        except (ValueError, KeyError, TypeError):
            continue
        found[entry.folder] = entry  # the latest record of a folder wins
    return [e for e in found.values()
            if e.folder.is_dir() and not (e.package and (Path(output_root) / e.package / "manifest.json").is_file())]


def due(output_root: Path, today: dt.date | None = None) -> list[LedgerEntry]:
    today = today or dt.date.today()
    return [e for e in entries(output_root) if e.destroy_after < today]


def purge_due(output_root: Path, audit_log: Path, signing_key, today: dt.date | None = None) -> list[LedgerEntry]:
    """Delete the folders of the entries due, each recorded in the audit log; rewrite the ledger
    with what is left."""
    from tfkit.package import audit

    gone = due(output_root, today)
    for entry in gone:
        shutil.rmtree(entry.folder, ignore_errors=True)
        audit.append(audit_log, "retention_purge_quarantine", signing_key, package=entry.package, folder=entry.folder.name,
                     destroy_after=entry.destroy_after.isoformat(), kind=entry.kind)
    _rewrite(output_root, [e for e in entries(output_root) if e not in gone])
    return gone


def forget(output_root: Path, folder: Path) -> None:
    """Take `folder`'s entries out of the ledger (it is gone, or back in a package's keeping); the
    ledger file goes with its last entry."""
    folder = Path(folder).resolve()
    _rewrite(output_root, [e for e in entries(output_root) if e.folder != folder])


def _rewrite(output_root: Path, left: list[LedgerEntry]) -> None:
    path = ledger_path(output_root)
    if not path.is_file():
        return
    if not left:
        path.unlink()
        return
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in left)
    tmp.replace(path)
