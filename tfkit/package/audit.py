"""Append-only audit log of runs: hash-chained, every entry signed, the head in a signed checkpoint.

Each line is one JSON object with `seq` (1, 2, ...), `prev` (the previous entry's `hash`, or 64
zeros for the first), `hash` = SHA-256 over the entry's canonical JSON without `hash` and `sig`
(sorted keys, compact separators), `signer` (the signing key's fingerprint) and `sig`, an Ed25519
signature by the signing key over `hash`. So:

  * editing an entry breaks its hash; recomputing the hash breaks its signature (a forgery needs
    the private signing key);
  * removing, inserting or reordering entries breaks `seq` and `prev`;
  * removing entries at the end (truncation) is caught by the signed checkpoint beside the log
    (`<log>.checkpoint`: the entry count and head, rewritten under the log's lock with every
    append) and by every package, whose signed manifest records its own extract entry's hash
    (`audit.chain_head`): `verify_log(..., packages_root=...)` checks each is in the log;
  * an empty or missing log fails when packages exist.

`append` refuses to extend a log that no longer matches its checkpoint (so a truncated log is not
"healed" by the next run). `pending` writes an entry and takes it back (log and checkpoint) when the
step it records fails: tfkit.package.publish uses it to make publishing and auditing one step.

Entries hold fingerprints and hashes only: never a key, never an identifier.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tfkit.errors import InputFileError, writing

GENESIS = "0" * 64
CHECKPOINT_SUFFIX = ".checkpoint"
CHECKPOINT_FORMAT = "tfkit-audit-checkpoint/1"


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k not in ("hash", "sig")})).hexdigest()


def checkpoint_path(log: str | Path) -> Path:
    log = Path(log)
    return log.with_name(log.name + CHECKPOINT_SUFFIX)


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


def _private_key(key: Ed25519PrivateKey | str | Path) -> Ed25519PrivateKey:
    if isinstance(key, Ed25519PrivateKey):
        return key
    from tfkit.package.signing import load_signing_key
    return load_signing_key(key)


def _public_key(key: Ed25519PublicKey | Ed25519PrivateKey | str | Path | None) -> Ed25519PublicKey | None:
    if key is None or isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    from tfkit.package.signing import load_public_key
    return load_public_key(key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _signed_ok(public: Ed25519PublicKey, sig: Any, data: bytes) -> bool:
    from tfkit.package.signing import verify_signature
    try:
        return isinstance(sig, str) and verify_signature(public, base64.b64decode(sig, validate=True), data)
    except ValueError:
        return False


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


def not_an_audit_log(path: str | Path) -> InputFileError:
    """The error for a file that holds lines but not one audit entry (the wrong file was given)."""
    return InputFileError("is not an audit log: no line is an audit entry", file=path,
                          hint="pass the audit.jsonl tfkit extract writes (default: <output root>/audit.jsonl)")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """`read_entries` for a file that must be an audit log: holding lines, none of them an entry
    (seq and hash), is `not_an_audit_log`."""
    entries = read_entries(path)
    if not any("seq" in e and "hash" in e for e in entries) and any(line.strip() for line in _read_lines(Path(path))):
        raise not_an_audit_log(path)
    return entries


def read_entries(path: str | Path) -> list[dict[str, Any]]:
    """Every entry that parses as one (verify_log says what else is there)."""
    entries = []
    for line in _read_lines(Path(path)):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def next_checkpoint_path(log: str | Path) -> Path:
    """The checkpoint for the entry being appended, written before the entry and renamed over the
    checkpoint after it: a run killed between the two leaves a log one entry ahead of its
    checkpoint and this file matching it exactly, so the next append (and verify) can tell a
    crash from a truncation."""
    return checkpoint_path(log).with_name(checkpoint_path(log).name + ".next")


def read_checkpoint(log: str | Path, path: Path | None = None) -> dict[str, Any] | None:
    path = path or checkpoint_path(log)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_checkpoint(log: Path, entries: int, head: str, key: Ed25519PrivateKey | None,
                      path: Path | None = None) -> None:
    from tfkit.package.bag import fsync_dir
    from tfkit.package.signing import public_key_fingerprint

    body = {"format": CHECKPOINT_FORMAT, "log": log.name, "entries": entries, "head": head,
            "signer": public_key_fingerprint(key.public_key()) if key else None}
    body["sig"] = _b64(key.sign(_canonical(body))) if key else None
    _atomic_write(path or checkpoint_path(log), json.dumps(body, sort_keys=True) + "\n")
    fsync_dir(log.parent)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _tail(lines: list[str], path: Path) -> tuple[str, int]:
    if not lines:
        return GENESIS, 1
    try:
        last = json.loads(lines[-1])
        return last["hash"], int(last["seq"]) + 1
    except (ValueError, KeyError, TypeError):
        raise InputFileError("the audit log's last line is not a tfkit audit entry; refusing to extend it",
                             file=path, hint="run: tfkit audit verify") from None


def _matches(cp: dict[str, Any] | None, lines: list[str]) -> bool:
    """The checkpoint describes exactly this log: its entry count, and the last entry's hash as head."""
    if not cp or cp.get("entries") != len(lines):
        return False
    try:
        return cp.get("head") == (json.loads(lines[-1])["hash"] if lines else GENESIS)
    except (ValueError, KeyError, TypeError):
        return False


def _recover_killed_append(path: Path, lines: list[str]) -> None:
    """A run killed between writing its entry and its checkpoint: the `.next` checkpoint matches
    the log exactly, so it is promoted; one that does not match (killed before the entry) is dropped."""
    nxt = next_checkpoint_path(path)
    if nxt.is_file():
        if _matches(read_checkpoint(path, nxt), lines):
            os.replace(nxt, checkpoint_path(path))
        else:
            nxt.unlink()


def _check_against_checkpoint(path: Path, lines: list[str]) -> None:
    """Refuse to extend a log shorter than its checkpoint or whose entry there is not the checkpoint's head."""
    _recover_killed_append(path, lines)
    cp = read_checkpoint(path)
    if cp is None:
        if lines:
            raise InputFileError("the audit log has entries but no checkpoint; refusing to extend it", file=path,
                                 hint="run: tfkit audit verify (the checkpoint was removed, or the log replaced)")
        return
    count, head = cp.get("entries"), cp.get("head")
    try:
        at = json.loads(lines[count - 1])["hash"] if isinstance(count, int) and 0 < count <= len(lines) else None
    except (ValueError, KeyError, TypeError):
        at = None
    if count == 0 and head == GENESIS:
        return
    if at is None or at != head:
        raise InputFileError(f"the audit log does not match its signed checkpoint (entry {count}); refusing to "
                             "extend it: entries were removed or rewritten", file=path,
                             hint="run: tfkit audit verify, and restore the log from backup")


@contextlib.contextmanager
def pending(path: str | Path, event: str, key: Ed25519PrivateKey | str | Path | None = None,
            **fields: Any) -> Iterator[dict[str, Any]]:
    """Write one signed entry (and the checkpoint) under an exclusive flock held until the block
    ends. If the block raises, the entry and the checkpoint are taken back before the lock is released.
    `key` None (a link job's own log, where no signing key exists) writes an unsigned entry: see verify_log."""
    path = Path(path)
    signer = _private_key(key) if key is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
    with os.fdopen(fd, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        fh.seek(0)
        size = os.fstat(fh.fileno()).st_size
        lines = [line for line in fh.read().splitlines() if line.strip()]
        _check_against_checkpoint(path, lines)
        prev, seq = _tail(lines, path)
        from tfkit.package.signing import public_key_fingerprint

        entry: dict[str, Any] = {
            "seq": seq,
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "event": event,
            **_actor(),
            **fields,
            "prev": prev,
            "signer": public_key_fingerprint(signer.public_key()) if signer else None,
        }
        entry["hash"] = entry_hash(entry)
        entry["sig"] = _b64(signer.sign(entry["hash"].encode())) if signer else None
        cp = checkpoint_path(path)
        old_checkpoint = cp.read_bytes() if cp.is_file() else None
        try:
            with writing(checkpoint_path(path)):  # the next checkpoint first, then the entry, then the swap
                _write_checkpoint(path, seq, entry["hash"], signer, next_checkpoint_path(path))
            with writing(path):
                fh.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            with writing(checkpoint_path(path)):
                os.replace(next_checkpoint_path(path), cp)
                from tfkit.package.bag import fsync_dir
                fsync_dir(path.parent)
            yield entry
        except BaseException:
            os.ftruncate(fh.fileno(), size)  # take the entry back: nobody else can have appended (the lock)
            os.fsync(fh.fileno())
            next_checkpoint_path(path).unlink(missing_ok=True)
            if old_checkpoint is None:
                cp.unlink(missing_ok=True)
            else:
                _atomic_write(cp, old_checkpoint.decode("utf-8"))
            raise


def append(path: str | Path, event: str, key: Ed25519PrivateKey | str | Path | None = None, **fields: Any) -> dict[str, Any]:
    """Append one entry signed with `key` (the signing key, or its file) and return it. Pass the key
    whenever the run has one: an unsigned entry in a log holding signed ones fails `audit verify`.
    Fields must hold fingerprints, hashes, names and counts only: never a key or an identifier."""
    with pending(path, event, key, **fields) as entry:
        return entry


@dataclass
class AuditProblem:
    line: int
    code: str  # malformed | hash_mismatch | bad_signature | broken_chain | bad_sequence | truncated | checkpoint | missing_entry | empty_log
    message: str


@dataclass
class AuditReport:
    path: str
    entries: int = 0
    head: str = GENESIS
    authenticated: bool = False  # signatures checked against a public key
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, line: int, code: str, message: str) -> None:
        self.problems.append(AuditProblem(line, code, message))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "entries": self.entries, "head": self.head,
                "authenticated": self.authenticated, "problems": [p.__dict__ for p in self.problems]}


def verify_log(path: str | Path, packages_root: str | Path | None = None,
               public_key: Ed25519PublicKey | str | Path | None = None) -> AuditReport:
    """Check every entry's hash, signature (given the signer's public key), the chain, the sequence and
    the signed checkpoint; with `packages_root`, that every package's own entry is in the log."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError("is a folder, not an audit log", file=path, hint=f"give the log itself, e.g. {path / 'audit.jsonl'}")
    if not path.is_file() and not (packages_root is not None and checkpoint_path(path).parent.is_dir()):
        raise InputFileError("audit log not found", file=path, hint="pass the log's path, or --config")
    public = _public_key(public_key)
    report = AuditReport(str(path), authenticated=public is not None)
    hashes = _check_entries(path, public, report)
    report.head = hashes[-1][1] if hashes else GENESIS
    _check_checkpoint(path, hashes, public, report)
    if packages_root is not None:
        _cross_check_packages(Path(packages_root), {h for _, h in hashes}, report)
    return report


def _check_entries(path: Path, public: Ed25519PublicKey | None, report: AuditReport) -> list[tuple[int, str]]:
    prev, expected_seq = GENESIS, 1
    hashes: list[tuple[int, str]] = []
    lines = _read_lines(path) if path.is_file() else []
    # A log holding any signed entry (or checked with a key) must be signed throughout; a wholly
    # unsigned log (a link job's, written without a signing key) is checked as a chain only.
    signed_log = public is not None or any(e.get("sig") for e in read_entries(path))
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            stored, seq = entry["hash"], int(entry["seq"])
        except (ValueError, KeyError, TypeError):
            report.problem(number, "malformed", f"line {number} is not an audit entry")
            continue
        report.entries += 1
        if entry_hash(entry) != stored:
            report.problem(number, "hash_mismatch", f"entry {seq} (line {number}) was edited: its hash does not match its content")
        if not entry.get("sig"):
            if signed_log:
                report.problem(number, "bad_signature", f"entry {seq} (line {number}) is unsigned in a signed log: "
                                                        "written without a signing key, forged, or its signature removed")
        elif public is not None and not _signed_ok(public, entry.get("sig"), str(stored).encode()):
            report.problem(number, "bad_signature", f"entry {seq} (line {number}) is forged or edited: its signature "
                                                    "does not verify under the signing key")
        if entry.get("prev") != prev:
            report.problem(number, "broken_chain", f"entry {seq} (line {number}) does not follow the entry before it: "
                                                   "an entry was removed, inserted or reordered")
        if seq != expected_seq:
            report.problem(number, "bad_sequence", f"line {number} holds entry {seq}, expected entry {expected_seq}")
        prev, expected_seq = stored, seq + 1
        hashes.append((seq, stored))
    if report.entries == 0 and report.problems:
        # Not one line is an entry: the wrong file, not a tampered log (which keeps some entries).
        raise not_an_audit_log(path)
    return hashes


def _check_checkpoint(path: Path, hashes: list[tuple[int, str]], public: Ed25519PublicKey | None, report: AuditReport) -> None:
    cp = read_checkpoint(path)
    nxt = read_checkpoint(path, next_checkpoint_path(path))
    if nxt and nxt.get("entries") == len(hashes) and hashes and nxt.get("head") == hashes[-1][1]:
        cp = nxt  # a run was killed between its entry and its checkpoint: the next append promotes this one
    if cp is None:
        if hashes:
            report.problem(0, "checkpoint", f"the signed checkpoint {checkpoint_path(path).name} is missing: the log "
                                            "cannot be shown complete (its last entries may have been removed)")
        return
    body = {k: v for k, v in cp.items() if k != "sig"}
    if cp.get("format") != CHECKPOINT_FORMAT or not isinstance(cp.get("entries"), int):
        report.problem(0, "checkpoint", f"{checkpoint_path(path).name} is not a tfkit audit checkpoint")
        return
    if public is not None and not _signed_ok(public, cp.get("sig"), _canonical(body)):
        report.problem(0, "checkpoint", f"{checkpoint_path(path).name} is forged or edited: its signature does not verify")
    count, head = cp["entries"], cp.get("head")
    if count > len(hashes):
        report.problem(0, "truncated", f"the log ends at entry {len(hashes)}, but the signed checkpoint says it holds "
                                       f"{count}: entries were removed from its end")
    elif count and hashes[count - 1][1] != head:
        report.problem(0, "truncated", f"entry {count} is not the one the signed checkpoint records: the log was rewritten")
    elif count < len(hashes):
        report.problem(0, "checkpoint", f"{len(hashes) - count} entr{'y' if len(hashes) - count == 1 else 'ies'} after "
                                        f"the signed checkpoint (entry {count}): written by a run killed mid-append, or added")


def check_output_root(root: Path) -> None:
    """`root` must be the folder holding packages, not missing and not a package itself."""
    from tfkit.package.bag import MANIFEST_JSON

    hint = "pass the output root holding the packages (output.root in the config), e.g. packages"
    if not root.is_dir():
        raise InputFileError("output folder not found", file=root, hint=hint)
    if (root / MANIFEST_JSON).is_file():
        raise InputFileError("is a package, not the output folder holding packages", file=root, hint=hint)


def package_anchor(package: Path) -> str | None:
    """The audit entry hash a package's manifest records (None when it records none or is unreadable)."""
    from tfkit.package.bag import MANIFEST_JSON, is_regular

    try:
        if not is_regular(package / MANIFEST_JSON):
            return None
        anchor = (json.loads((package / MANIFEST_JSON).read_text(encoding="utf-8")).get("audit") or {}).get("chain_head")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return anchor if isinstance(anchor, str) else None


def _cross_check_packages(root: Path, hashes: set[str], report: AuditReport) -> None:
    from tfkit.package.bag import MANIFEST_JSON

    check_output_root(root)  # a wrong --root would cross-check nothing and pass
    packages = [m.parent for m in sorted(root.glob(f"*/{MANIFEST_JSON}")) if not m.parent.name.startswith(".")]
    if packages and report.entries == 0:
        report.problem(0, "empty_log", f"the log has no entries, but {len(packages)} package(s) are under {root}: "
                                       "the log was emptied or replaced")
    for package in packages:
        recorded = package_anchor(package)
        if recorded is None:
            report.problem(0, "missing_entry", f"package {package.name} records no audit entry in its manifest")
        elif recorded not in hashes:
            report.problem(0, "missing_entry", f"package {package.name} records audit entry {recorded[:16]}... which is "
                                               "not in the log: entries were removed or the log replaced")
