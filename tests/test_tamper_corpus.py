"""The tamper corpus (issue 14, build 6): every file of a package flipped, truncated, emptied,
grown, removed, renamed and replaced by a symlink to an identical copy; added files and folders;
path traversal in the manifests; a package re-signed with another key. Every case fails verify
with the signer's public key; every case but the re-signing (which only the held key can tell)
fails without it too."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.test_package_fixtures import NAME, make_bag, manifest_for, signing_pair
from tfkit.package import bag
from tfkit.package.verify import verify_package

FILES = ["bagit.txt", "bag-info.txt", "manifest-sha256.txt", "manifest.json", "signer.pub",
         "tagmanifest-sha256.txt", "signature.ed25519", "data/person.parquet"]


def _flip(p):
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


def _symlink(p):
    copy = p.parent.parent.parent / f"outside-{p.name}"
    shutil.copy(p, copy)
    p.unlink()
    os.symlink(copy, p)


OPS = {
    "flipped": _flip,
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "emptied": lambda p: p.write_bytes(b""),
    "grown": lambda p: p.write_bytes(p.read_bytes() + b"\n"),
    "removed": lambda p: p.unlink(),
    "renamed": lambda p: p.rename(p.with_name(p.name + ".bak")),
    "symlinked": _symlink,
}


def _traversal(pkg):
    with open(pkg / bag.PAYLOAD_MANIFEST, "a") as fh:
        fh.write(f"{'0' * 64}  data/../../outside.txt\n")


def _added_payload(pkg):
    (pkg / "data" / "extra.parquet").write_bytes((pkg / "data" / "person.parquet").read_bytes())


def _added_top(pkg):
    (pkg / "notes.txt").write_text("hello")


def _added_folder(pkg):
    (pkg / "data" / "sub").mkdir()


def _renamed_package(pkg):
    pkg.rename(pkg.with_name("E09000031_nis_2020-H1"))
    return pkg.with_name("E09000031_nis_2020-H1")


def _fifo(pkg):
    os.mkfifo(pkg / "data" / "pipe")


def _hard_swap_signer(pkg):
    other_key, other_pub = signing_pair(pkg.parent / "other-keys")
    shutil.copy(other_pub, pkg / bag.SIGNER_PUB)


WHOLE = {"path_traversal": _traversal, "added_payload": _added_payload, "added_top_level": _added_top,
         "added_empty_folder": _added_folder, "renamed_package": _renamed_package, "fifo": _fifo,
         "swapped_signer_pub": _hard_swap_signer}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tamper")
    key, pub = signing_pair(root / "keys")
    return make_bag(root / "src" / NAME, key), pub


@pytest.fixture
def pkg(built, tmp_path):
    src, pub = built
    dst = tmp_path / "out" / NAME
    shutil.copytree(src, dst)
    return dst, pub


def _caught(path, pub):
    return not verify_package(path, public_key=pub).ok


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("name", FILES)
def test_every_file_every_change(pkg, name, op):
    path, pub = pkg
    OPS[op](path / name)
    assert _caught(path, pub), f"{op} {name} passed verify with the key"
    assert _caught(path, None), f"{op} {name} passed verify without the key"


@pytest.mark.parametrize("case", list(WHOLE))
def test_whole_package_changes(pkg, case):
    path, pub = pkg
    path = WHOLE[case](path) or path
    assert _caught(path, pub), f"{case} passed verify with the key"
    assert _caught(path, None), f"{case} passed verify without the key"


def test_re_signed_package_is_caught_only_with_the_held_key(built, tmp_path):
    _, pub = built
    evil, _ = signing_pair(tmp_path / "evil")
    manifest = manifest_for()
    manifest["retention"]["destroy_after"] = "2000-01-01"  # e.g. to have it purged early
    path = make_bag(tmp_path / "out" / NAME, evil, manifest=manifest)
    report = verify_package(path, public_key=pub)
    assert not report.ok and any(c.code == "signer.key" and c.status == "fail" for c in report.checks)
    assert verify_package(path).ok  # without the held key, integrity only: documented, and warned
