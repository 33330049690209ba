"""verify sees everything: links, special files, stray folders, the folder's name, staging folders
(issue 14, build 1). Each case fails with and without the signer's public key."""

from __future__ import annotations

import os
import shutil

import pytest
from typer.testing import CliRunner

from tests.test_package_fixtures import NAME, make_bag, manifest_for
from tests.test_verify_tamper import signed  # noqa: F401  (the module's signed package, built once)
from tfkit.cli import app
from tfkit.package import bag
from tfkit.package.build import build_bag
from tfkit.package.publish import new_staging_dir, publish
from tfkit.package.verify import verify_package


@pytest.fixture
def pkg(signed, tmp_path):
    src, pub, _ = signed
    dst = tmp_path / "out" / NAME
    shutil.copytree(src, dst)
    return dst, pub


def fails(path, pub, code, *words):
    for key in (pub, None):
        report = verify_package(path, public_key=key)
        found = [c for c in report.checks if c.code == code and c.status == "fail"]
        assert found, (key, [(c.code, c.status, c.message) for c in report.checks])
        text = " | ".join([found[0].message, *found[0].details])
        for word in words:
            assert word in text, text
        assert not report.ok


def _outside_copy(path, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(path / "data", outside)
    return outside


def test_symlinked_folder_under_data(pkg, tmp_path):
    path, pub = pkg
    outside = tmp_path / "raw"
    outside.mkdir()
    (outside / "cohort.csv").write_text("nhs_number\n9434765919\n")
    os.symlink(outside, path / "data" / "extra")
    fails(path, pub, "bag.files", "symlink: data/extra")


def test_data_replaced_by_a_symlink_to_an_identical_copy(pkg, tmp_path):
    path, pub = pkg
    outside = _outside_copy(path, tmp_path)
    shutil.rmtree(path / "data")
    os.symlink(outside, path / "data")
    fails(path, pub, "bag.files", "symlink: data")


def test_data_file_replaced_by_a_symlink_to_an_identical_copy(pkg, tmp_path):
    path, pub = pkg
    outside = _outside_copy(path, tmp_path)
    (path / "data" / "person.parquet").unlink()
    os.symlink(outside / "person.parquet", path / "data" / "person.parquet")
    fails(path, pub, "bag.files", "symlink: data/person.parquet")


@pytest.mark.parametrize("where", ["data/empty", "data/a/b", "stray"])
def test_unexpected_folder_even_empty(pkg, where):
    path, pub = pkg
    (path / where).mkdir(parents=True)
    fails(path, pub, "bag.files", "unexpected folder")


@pytest.mark.parametrize("where", ["data/pipe.parquet", "pipe"])
def test_fifo_fails_without_hanging(pkg, where):
    path, pub = pkg
    os.mkfifo(path / where)
    fails(path, pub, "bag.files", "a FIFO")


def test_symlinked_tag_file(pkg, tmp_path):
    path, pub = pkg
    copy = tmp_path / "manifest.json"
    shutil.copy(path / "manifest.json", copy)
    (path / "manifest.json").unlink()
    os.symlink(copy, path / "manifest.json")
    fails(path, pub, "bag.files", "symlink: manifest.json")


def test_package_folder_itself_a_symlink(pkg, tmp_path):
    path, pub = pkg
    link = tmp_path / "link" / NAME
    link.parent.mkdir()
    os.symlink(path, link)
    fails(link, pub, "bag.files", "symlink: the package folder")


def test_renamed_package(pkg):
    path, pub = pkg
    renamed = path.with_name("E09000031_nis_2020-H1")
    path.rename(renamed)
    fails(renamed, pub, "package.name", "renamed package", "E09000031_nis_2020-H1", NAME)


def test_external_identifier_must_match(signed, tmp_path):
    _, pub, key = signed
    path = tmp_path / NAME
    build_bag(path, tables={}, manifest=manifest_for(), signing_key=key,
              bag_info=[("External-Identifier", "E09000031_nis_2020-H1")])
    fails(path, pub, "package.name", "External-Identifier")


def test_staging_folder_fails_until_published(signed, tmp_path):
    _, pub, key = signed
    root = tmp_path / "out"
    root.mkdir()
    staging = new_staging_dir(root, NAME)
    make_bag(staging, key)
    fails(staging, pub, "package.staging", "unpublished staging folder")
    # the same folder under the package's own name still fails: the marker, not the name, decides
    renamed = root / NAME
    staging.rename(renamed)
    fails(renamed, pub, "package.staging")
    renamed.rename(staging)
    publish(staging, root / NAME, force=False)
    assert not (root / NAME / bag.STAGING_MARKER).exists()
    assert verify_package(root / NAME, public_key=pub).ok


def test_verify_never_writes_inside_the_package(pkg):
    path, pub = pkg
    for target in (path / "v.json", path / "data" / "v.json", path):
        result = CliRunner().invoke(app, ["verify", str(path), "--public-key", str(pub), "--json", str(target)])
        assert result.exit_code == 2, result.output
        assert "inside" in result.output or "folder" in result.output, result.output
    assert not (path / "v.json").exists()
    assert verify_package(path, public_key=pub).ok
