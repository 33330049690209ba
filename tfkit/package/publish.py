"""Cron-safe publishing: a lock per package, a staging directory, and an atomic rename.

`write_package` is the one call that makes a package: it locks, stages, writes the bag, writes the
package's audit entry (before the rename, so the signed manifest records the entry's hash), signs,
writes report.html beside the package, publishes, and on any failure takes all of it back (the
staging folder, the audit entry and its checkpoint, the new report).

A package is built in `<root>/.tmp-<name>-<random>/` and renamed to `<root>/<name>/` only when it
is complete and fsynced, so a killed run leaves a `.tmp-*` directory and never anything that looks
like a package. The lock is `<root>/.<name>.lock` (runs for other packages in the same root go
ahead); the next run for the same package removes its stale `.tmp-<name>-*` directories (stale
because holding the lock proves no other run is writing them).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import errno
import fcntl
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tfkit.errors import InputFileError, UsageError, writing
from tfkit.package import audit
from tfkit.package.bag import STAGING_MARKER, fsync_dir, fsync_tree, write_text
from tfkit.package.build import BuiltBag, finish_bag, write_tables
from tfkit.package.manifest import Manifest

LOCK_SUFFIX = ".lock"
STAGING_PREFIX = ".tmp-"


class PackageLocked(UsageError):
    """Another tfkit run holds the lock on this output root."""


class PackageExists(UsageError):
    """The package already exists and --force was not given."""


_HELD: dict[Path, int] = {}  # locks this process holds (output_lock is re-entrant within a process)


@contextlib.contextmanager
def output_lock(root: Path, name: str) -> Iterator[Path]:
    """Hold an exclusive, non-blocking flock on `<root>/.<name>.lock` (released when the process dies).
    Re-entrant: a caller already holding it (extract holds it for the whole run) goes straight in."""
    root.mkdir(parents=True, exist_ok=True)
    lock_path = root / f".{name}{LOCK_SUFFIX}"
    key = Path(os.path.abspath(lock_path))
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield lock_path
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise PackageLocked(
                    f"another tfkit run is writing package {name}",
                    file=lock_path,
                    hint="wait for it to finish; the lock is released automatically when that run ends",
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[key] = 1
        try:
            yield lock_path
        finally:
            del _HELD[key]
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def clean_stale_staging(root: Path, name: str) -> list[Path]:
    """Remove `.tmp-<name>-*` directories left by killed runs. Call only while holding output_lock(root, name)."""
    removed = []
    for entry in sorted(root.glob(f"{STAGING_PREFIX}{name}-*")) + sorted(root.glob(f"{STAGING_PREFIX}old-{name}-*")):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)  # a staged report.html
        removed.append(entry)
    return removed


def new_staging_dir(root: Path, name: str) -> Path:
    """A fresh staging folder holding the staging marker: verify fails it until publish removes it."""
    path = root / f"{STAGING_PREFIX}{name}-{secrets.token_hex(4)}"
    path.mkdir(mode=0o755)
    try:
        _write_marker(path, name)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def _write_marker(path: Path, name: str) -> None:
    write_text(path / STAGING_MARKER, f"This folder is tfkit's unfinished staging copy of package {name}. "
                                      "It is not a package: tfkit verify fails it, and the next tfkit extract "
                                      "for this package removes it.\n")


def check_target(target: Path, force: bool) -> None:
    if target.exists() and not force:
        raise PackageExists(
            "the package already exists; refusing to overwrite it",
            file=target,
            hint="pass --force to replace it (the old package is swapped out atomically)",
        )
    if target.exists() and not target.is_dir():
        raise InputFileError("a file (not a package folder) is in the way", file=target)


def publish(staging: Path, target: Path, force: bool) -> None:
    """fsync the staged bag and rename it into place; with force, atomically replace an existing one."""
    check_target(target, force)
    (staging / STAGING_MARKER).unlink(missing_ok=True)  # last change: from here on it is a package
    fsync_tree(staging)
    if target.exists():
        _replace_dir(staging, target)
    else:
        os.rename(staging, target)
    fsync_dir(target.parent)


_RENAME_EXCHANGE = 2
_libc = None


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Linux renameat2(RENAME_EXCHANGE): swap two paths in one step. False where unsupported."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = _libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD = -100
    rc = fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _replace_dir(staging: Path, target: Path) -> None:
    # Best: swap the two directories atomically, then delete the old one (now under the staging name).
    if _renameat2_exchange(staging, target):
        shutil.rmtree(staging)
        return
    # Fallback: two renames; a reader could see no package for an instant, never a partial one.
    old = target.parent / f"{STAGING_PREFIX}old-{target.name}-{secrets.token_hex(4)}"
    os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- the one call


@dataclass
class PackageRequest:
    """Everything a package is made of. `render_report(path, manifest)` writes report.html (optional)."""

    root: Path
    tables: dict[str, pl.DataFrame]
    manifest: Manifest
    bag_info: list[tuple[str, str]]
    signing_key: Ed25519PrivateKey
    audit_log: Path
    audit_fields: dict[str, Any] = field(default_factory=dict)  # more for the audit entry: hashes and counts only
    table_metadata: dict[str, dict[str, str]] | None = None
    render_report: Callable[[Path, dict[str, Any]], Any] | None = None
    bagging_date: dt.date | None = None
    force: bool = False

    @property
    def name(self) -> str:
        return self.manifest.package_id

    @property
    def target(self) -> Path:
        return self.root / self.name

    @property
    def report_path(self) -> Path:
        return report_path_for(self.target)


@dataclass(frozen=True)
class Published:
    package: Path
    report: Path | None
    built: BuiltBag
    audit_entry: dict[str, Any]


def report_path_for(package: Path) -> Path:
    return package.with_name(f"{package.name}.report.html")


def write_package(req: PackageRequest) -> Published:
    """Lock, stage, write the bag, audit, sign, write the report, publish; on failure undo every step."""
    target = req.target
    with output_lock(req.root, req.name):
        clean_stale_staging(req.root, req.name)
        check_target(target, req.force)
        staging = new_staging_dir(req.root, req.name)
        try:
            outputs = write_tables(staging, req.tables, req.table_metadata)
            fields = {"package": req.name, **req.audit_fields,
                      "outputs": [{"path": o["path"], "sha256": o["sha256"], "rows": o["rows"]} for o in outputs]}
            with audit.pending(req.audit_log, "extract", req.signing_key, **fields) as entry:
                req.manifest.audit_log = req.audit_log.name
                req.manifest.audit_entry_hash, req.manifest.audit_entry_seq = entry["hash"], entry["seq"]
                built = finish_bag(staging, outputs, manifest=req.manifest.to_dict(), bag_info=req.bag_info,
                                   signing_key=req.signing_key, bagging_date=req.bagging_date)
                with _staged_report(req, built.manifest) as report:
                    publish(staging, target, req.force)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return Published(target, report, built, entry)


@contextlib.contextmanager
def _staged_report(req: PackageRequest, manifest: dict[str, Any]) -> Iterator[Path | None]:
    """report.html written beside the package before it is published; the old one back on failure."""
    if req.render_report is None:
        yield None
        return
    final = req.report_path
    token = secrets.token_hex(4)
    staged = req.root / f"{STAGING_PREFIX}{req.name}-report-{token}.html"
    old = req.root / f"{STAGING_PREFIX}old-{req.name}-report-{token}.html"
    had_old = final.exists()
    try:
        with writing(final):  # a full disk names the report, not a staging file or nothing
            req.render_report(staged, manifest)
        if had_old:
            os.rename(final, old)
        os.rename(staged, final)
        yield final
    except BaseException:
        if old.exists():
            os.replace(old, final)
        elif not had_old:
            final.unlink(missing_ok=True)
        staged.unlink(missing_ok=True)
        raise
    old.unlink(missing_ok=True)
