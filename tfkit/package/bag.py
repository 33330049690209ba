"""BagIt (RFC 8493) layout of a tfkit package: writing and reading the bag's own files.

A package is a bag:

    <name>/
      bagit.txt                 BagIt-Version 1.0, UTF-8
      bag-info.txt              deterministic fields plus Bagging-Date and Payload-Oxum
      data/person.parquet       the payload (one Parquet file per table)
      manifest-sha256.txt       SHA-256 of every payload file
      manifest.json             tfkit's manifest (tag file)
      signer.pub                the signer's Ed25519 public key, PEM (tag file)
      tagmanifest-sha256.txt    SHA-256 of every tag file above
      signature.ed25519         detached Ed25519 signature over the bytes of tagmanifest-sha256.txt

The signature cannot be listed in the tag manifest it signs; it is the one file outside both
manifests, and the verifier allows exactly that one. Manifest lines use two spaces (`sha256sum`
format) so `sha256sum -c manifest-sha256.txt` works inside the bag too.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

BAGIT_VERSION = "1.0"
BAGIT_TXT = "bagit.txt"
BAG_INFO = "bag-info.txt"
PAYLOAD_DIR = "data"
PAYLOAD_MANIFEST = "manifest-sha256.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"
MANIFEST_JSON = "manifest.json"
SIGNER_PUB = "signer.pub"
SIGNATURE = "signature.ed25519"

# Tag files listed in the tag manifest, in this order (bagit.txt first, as bagit-python does).
TAG_FILES = (BAGIT_TXT, BAG_INFO, PAYLOAD_MANIFEST, MANIFEST_JSON, SIGNER_PUB)
# Files allowed at the top of a bag besides those in the tag manifest.
UNLISTED_TOP_LEVEL = (TAG_MANIFEST, SIGNATURE)
# Written into every staging folder when it is made and removed by publish just before the rename:
# a folder holding it is an unfinished package, and verify fails it (see tfkit.package.publish).
STAGING_MARKER = "UNPUBLISHED-STAGING-FOLDER.txt"

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    path: str  # relative to the bag, forward slashes
    sha256: str
    bytes: int


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def digest_file(bag_dir: Path, rel: str) -> FileDigest:
    full = bag_dir / rel
    return FileDigest(rel, sha256_file(full), full.stat().st_size)


def is_regular(path: Path) -> bool:
    """A regular file itself, not a symlink to one (never follows a link, never opens a FIFO)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_real_dir(path: Path) -> bool:
    """A directory itself, not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def payload_paths(bag_dir: Path) -> list[str]:
    """Every regular file under data/, relative to the bag, sorted (the order manifests are written in).
    Links are never followed and anything that is not a regular file is left out: verify's
    `bag.files` check reports those (a bag's payload is regular files only)."""
    found: list[str] = []

    def walk(folder: Path) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    walk(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    found.append(Path(entry.path).relative_to(bag_dir).as_posix())

    if is_real_dir(bag_dir / PAYLOAD_DIR):
        walk(bag_dir / PAYLOAD_DIR)
    return sorted(found)


def foreign_entries(bag_dir: Path) -> list[str]:
    """Everything in a bag that a tfkit package never holds, one message each: a symlink anywhere
    (the bag's own folder included), a FIFO, socket or device, and any folder but data/ (empty ones
    too; data/ holds files only). Uses lstat throughout: nothing is followed or opened."""
    problems: list[str] = []
    kinds = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
             stat.S_IFBLK: "a block device"}

    def describe(rel: str, full: Path, allowed_dir: bool) -> bool:
        """A problem message for `rel`, or True when it is a folder to walk into."""
        mode = os.lstat(full).st_mode
        if stat.S_ISLNK(mode):
            problems.append(f"symlink: {rel} points to {os.readlink(full)} (a package holds regular files only)")
        elif stat.S_ISDIR(mode):
            if allowed_dir:
                return True
            problems.append(f"unexpected folder: {rel}/ (a package has one folder, {PAYLOAD_DIR}/, holding files only)")
        elif not stat.S_ISREG(mode):
            problems.append(f"{kinds.get(stat.S_IFMT(mode), 'not a regular file')}: {rel} (a package holds regular files only)")
        return False

    if os.path.islink(bag_dir):
        problems.append(f"symlink: the package folder {bag_dir.name} points to {os.readlink(bag_dir)}")
        return problems
    for name in sorted(os.listdir(bag_dir)):
        if describe(name, bag_dir / name, allowed_dir=name == PAYLOAD_DIR):
            for inner in sorted(os.listdir(bag_dir / name)):
                describe(f"{name}/{inner}", bag_dir / name / inner, allowed_dir=False)
    return problems


def manifest_text(digests: list[FileDigest]) -> str:
    return "".join(f"{d.sha256}  {d.path}\n" for d in sorted(digests, key=lambda d: d.path))


def parse_manifest(text: str, source: str) -> dict[str, str]:
    """`<sha256>  <path>` lines -> {path: sha256}. Raises ValueError naming the bad line."""
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ValueError(f"{source} line {number} is not '<sha256>  <path>'")
        path = parts[1].strip().lstrip("*")
        if path.startswith("/") or ".." in Path(path).parts:
            raise ValueError(f"{source} line {number} names a path outside the bag: {path!r}")
        entries[path] = parts[0].lower()
    return entries


def bagit_txt() -> str:
    return f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n"


def bag_info_text(fields: list[tuple[str, str]]) -> str:
    """Labels and values in the order given; values must be one line each."""
    lines = []
    for label, value in fields:
        value = str(value)
        if "\n" in value or ":" in label:
            raise ValueError(f"bag-info field {label!r} must be a single line without ':' in its label")
        lines.append(f"{label}: {value}\n")
    return "".join(lines)


def parse_bag_info(text: str) -> dict[str, str]:
    info: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and last is not None:  # folded continuation line
            info[last] += " " + line.strip()
            continue
        if ":" in line:
            label, value = line.split(":", 1)
            last = label.strip()
            info[last] = value.strip()
    return info


def payload_oxum(digests: list[FileDigest]) -> str:
    return f"{sum(d.bytes for d in digests)}.{len(digests)}"


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    from tfkit.errors import writing

    with writing(path), open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under root (files written by others, e.g. the Parquet writer)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                _fsync_named(fd, os.path.join(dirpath, name))
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def _fsync_named(fd: int, path: str) -> None:
    from tfkit.errors import writing

    with writing(path):
        os.fsync(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _fsync_named(fd, str(path))
    finally:
        os.close(fd)
