"""Locking, atomic publish and retention."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from tests.test_package_fixtures import make_bag, manifest_for, signing_pair
from tfkit.cli import app
from tfkit.package import audit, publish, retention


def test_lock_contention_from_another_process(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from tfkit.package.publish import output_lock
        with output_lock(Path({str(tmp_path)!r}), "P"):
            print("locked", flush=True)
            time.sleep(30)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(publish.PackageLocked) as err:
            with publish.output_lock(tmp_path, "P"):
                pass
        assert err.value.exit_code == 2 and "another tfkit run is writing package P" in str(err.value)
        with publish.output_lock(tmp_path, "Q"):  # another package in the same root is not blocked
            pass
    finally:
        holder.kill()
        holder.wait()
    with publish.output_lock(tmp_path, "P"):  # released when the holder died
        pass


def test_publish_refuses_existing_without_force_and_replaces_with_it(tmp_path):
    key, _ = signing_pair(tmp_path / "keys")
    root = tmp_path / "out"
    root.mkdir()
    target = root / "E09000031_nis_2019-H2"
    first = publish.new_staging_dir(root, target.name)
    make_bag(first, key)
    publish.publish(first, target, force=False)
    assert target.is_dir() and not first.exists()
    second = publish.new_staging_dir(root, target.name)
    make_bag(second, key, manifest={**manifest_for(), "period": "replaced"})
    with pytest.raises(publish.PackageExists) as err:
        publish.publish(second, target, force=False)
    assert err.value.exit_code == 2 and "--force" in err.value.hint
    publish.publish(second, target, force=True)
    assert json.loads((target / "manifest.json").read_text())["period"] == "replaced"
    assert sorted(p.name for p in root.iterdir()) == [target.name]  # nothing left over


def test_stale_staging_dirs_are_cleaned_under_the_lock(tmp_path):
    stale = publish.new_staging_dir(tmp_path, "E09000031_nis_2019-H2")
    (stale / "data").mkdir()
    other = publish.new_staging_dir(tmp_path, "E09000031_fpd_2019-H2")  # another package's run: untouched
    with publish.output_lock(tmp_path, "E09000031_nis_2019-H2"):
        removed = publish.clean_stale_staging(tmp_path, "E09000031_nis_2019-H2")
    assert removed == [stale] and not stale.exists() and other.exists()


def _package(root, name, destroy_after, key):
    m = manifest_for()
    m["retention"]["destroy_after"] = destroy_after
    return make_bag(root / name, key, manifest=m)


def test_retention_lists_and_purges_with_audit(tmp_path):
    key, _ = signing_pair(tmp_path / "keys")
    root = tmp_path / "out"
    old = _package(root, "E09000031_nis_2015-H1", "2020-01-01", key)
    new = _package(root, "E09000031_nis_2019-H2", "2099-01-01", key)
    due = retention.due_packages(root, today=dt.date(2026, 1, 1))
    assert [p.path for p in due] == [old]
    log = root / "audit.jsonl"
    assert retention.purge(due, log) == [old.name]
    assert not old.exists() and new.exists()
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["event"] == "retention_purge" and entry["package"] == old.name
    assert audit.verify_log(log).ok


def test_retention_cli_requires_yes_without_a_terminal(tmp_path):
    key, _ = signing_pair(tmp_path / "keys")
    root = tmp_path / "out"
    old = _package(root, "E09000031_nis_2015-H1", "2020-01-01", key)
    runner = CliRunner()
    listed = runner.invoke(app, ["retention", "--root", str(root), "--json", "-"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["due"][0]["package"] == old.name
    refused = runner.invoke(app, ["retention", "purge", "--root", str(root)])
    assert refused.exit_code == 2 and "--yes" in refused.output and old.exists()
    done = runner.invoke(app, ["retention", "purge", "--root", str(root), "--yes"])
    assert done.exit_code == 0, done.output
    assert not old.exists()
    assert json.loads((root / "audit.jsonl").read_text().splitlines()[-1])["event"] == "retention_purge"
