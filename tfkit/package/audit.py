"""Append-only, hash-chained JSONL audit log of runs.

Each line is one JSON object with `seq` (1, 2, ...), `prev` (the previous entry's `hash`, or 64
zeros for the first) and `hash` = SHA-256 over the entry's canonical JSON without `hash` (sorted
keys, compact separators). Editing an entry breaks its own hash; removing or reordering entries
breaks `seq` and `prev`. Removing the *last* entry leaves a valid shorter chain, which is why each
package records the chain head it saw (`audit.chain_head` in manifest.json) and why
`verify_log(..., packages_root=...)` cross-checks packages against the log.

Entries hold fingerprints and hashes only: never a key, never an identifier.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfkit.errors import InputFileError

GENESIS = "0" * 64


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def _actor() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname()}


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return path.read_text(encoding="utf-8").splitlines()


def chain_head(path: str | Path) -> str:
    """The hash of the last entry (GENESIS for a missing or empty log)."""
    lines = [line for line in _read_lines(Path(path)) if line.strip()]
    if not lines:
        return GENESIS
    try:
        return json.loads(lines[-1])["hash"]
    except (ValueError, KeyError):
        raise InputFileError("the audit log's last line is not a tfkit audit entry", file=path,
                             hint="run: tfkit audit verify") from None


def append(path: str | Path, event: str, **fields: Any) -> dict[str, Any]:
    """Append one entry under an exclusive flock and fsync it. Returns the entry written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
    with os.fdopen(fd, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        fh.seek(0)
        lines = [line for line in fh.read().splitlines() if line.strip()]
        prev, seq = GENESIS, 1
        if lines:
            try:
                last = json.loads(lines[-1])
                prev, seq = last["hash"], int(last["seq"]) + 1
            except (ValueError, KeyError, TypeError):
                raise InputFileError("the audit log's last line is not a tfkit audit entry; refusing to extend it",
                                     file=path, hint="run: tfkit audit verify") from None
        entry: dict[str, Any] = {
            "seq": seq,
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "event": event,
            **_actor(),
            **fields,
            "prev": prev,
        }
        entry["hash"] = entry_hash(entry)
        fh.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return entry


@dataclass
class AuditProblem:
    line: int
    code: str  # malformed | hash_mismatch | broken_chain | bad_sequence | missing_entry
    message: str


@dataclass
class AuditReport:
    path: str
    entries: int = 0
    head: str = GENESIS
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "entries": self.entries, "head": self.head,
                "problems": [p.__dict__ for p in self.problems]}


def verify_log(path: str | Path, packages_root: str | Path | None = None) -> AuditReport:
    """Check every entry's hash, the chain and the sequence; optionally that every package under
    `packages_root` has its extract entry and that the chain head it recorded is in the log."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError("is a folder, not an audit log", file=path, hint=f"give the log itself, e.g. {path / 'audit.jsonl'}")
    if not path.is_file():
        raise InputFileError("audit log not found", file=path, hint="pass the log's path, or --config")
    report = AuditReport(str(path))
    prev, expected_seq = GENESIS, 1
    hashes: set[str] = {GENESIS}
    package_hashes: set[str] = set()
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            stored, seq = entry["hash"], int(entry["seq"])
        except (ValueError, KeyError, TypeError):
            report.problems.append(AuditProblem(number, "malformed", f"line {number} is not an audit entry"))
            continue
        report.entries += 1
        if entry_hash(entry) != stored:
            report.problems.append(AuditProblem(
                number, "hash_mismatch", f"entry {seq} (line {number}) was edited: its hash does not match its content"))
        if entry.get("prev") != prev:
            report.problems.append(AuditProblem(
                number, "broken_chain",
                f"entry {seq} (line {number}) does not follow the entry before it: an entry was removed, "
                "inserted or reordered"))
        if seq != expected_seq:
            report.problems.append(AuditProblem(
                number, "bad_sequence", f"line {number} holds entry {seq}, expected entry {expected_seq}"))
        prev, expected_seq = stored, seq + 1
        hashes.add(stored)
        if entry.get("event") == "extract" and entry.get("tagmanifest_sha256"):
            package_hashes.add(entry["tagmanifest_sha256"])
    if report.entries == 0 and report.problems:
        # Not one line is an entry: the wrong file, not a tampered log (which keeps some entries).
        raise InputFileError("is not an audit log: no line is an audit entry", file=path,
                             hint="pass the audit.jsonl tfkit extract writes (default: <output root>/audit.jsonl)")
    report.head = prev
    if packages_root is not None:
        _cross_check_packages(Path(packages_root), hashes, package_hashes, report)
    return report


def check_output_root(root: Path) -> None:
    """`root` must be the folder holding packages, not missing and not a package itself."""
    from tfkit.package.bag import MANIFEST_JSON

    hint = "pass the output root holding the packages (output.root in the config), e.g. packages"
    if not root.is_dir():
        raise InputFileError("output folder not found", file=root, hint=hint)
    if (root / MANIFEST_JSON).is_file():
        raise InputFileError("is a package, not the output folder holding packages", file=root, hint=hint)


def _cross_check_packages(root: Path, hashes: set[str], package_hashes: set[str], report: AuditReport) -> None:
    from tfkit.package.bag import MANIFEST_JSON, TAG_MANIFEST, sha256_file

    check_output_root(root)  # a wrong --root would cross-check nothing and pass
    for manifest_path in sorted(root.glob(f"*/{MANIFEST_JSON}")):
        bag = manifest_path.parent
        if bag.name.startswith("."):
            continue
        try:
            recorded = json.loads(manifest_path.read_text(encoding="utf-8")).get("audit", {}).get("chain_head")
        except ValueError:
            continue
        if recorded and recorded not in hashes:
            report.problems.append(AuditProblem(
                0, "missing_entry", f"package {bag.name} records audit chain head {recorded[:16]}... "
                "which is not in the log: entries were removed or the log replaced"))
        tag = bag / TAG_MANIFEST
        if tag.is_file() and sha256_file(tag) not in package_hashes:
            report.problems.append(AuditProblem(
                0, "missing_entry", f"package {bag.name} has no extract entry in the log"))
