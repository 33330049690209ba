"""Cron-safe publishing: a lock per package, a staging directory, and an atomic rename.

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
import errno
import fcntl
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from tfkit.errors import InputFileError, UsageError
from tfkit.package.bag import STAGING_MARKER, fsync_dir, fsync_tree, write_text

LOCK_SUFFIX = ".lock"
STAGING_PREFIX = ".tmp-"


class PackageLocked(UsageError):
    """Another tfkit run holds the lock on this output root."""


class PackageExists(UsageError):
    """The package already exists and --force was not given."""


@contextlib.contextmanager
def output_lock(root: Path, name: str) -> Iterator[Path]:
    """Hold an exclusive, non-blocking flock on `<root>/.<name>.lock` (released when the process dies)."""
    root.mkdir(parents=True, exist_ok=True)
    lock_path = root / f".{name}{LOCK_SUFFIX}"
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
        yield lock_path
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def clean_stale_staging(root: Path, name: str) -> list[Path]:
    """Remove `.tmp-<name>-*` directories left by killed runs. Call only while holding output_lock(root, name)."""
    removed = []
    for entry in sorted(root.glob(f"{STAGING_PREFIX}{name}-*")) + sorted(root.glob(f"{STAGING_PREFIX}old-{name}-*")):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def new_staging_dir(root: Path, name: str) -> Path:
    """A fresh staging folder holding the staging marker: verify fails it until publish removes it."""
    path = root / f"{STAGING_PREFIX}{name}-{secrets.token_hex(4)}"
    path.mkdir(mode=0o755)
    write_text(path / STAGING_MARKER, f"This folder is tfkit's unfinished staging copy of package {name}. "
                                      "It is not a package: tfkit verify fails it, and the next tfkit extract "
                                      "for this package removes it.\n")
    return path


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
