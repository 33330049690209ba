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
    la, ret, period = name.split("_")
    m = manifest_for()
    m["retention"]["destroy_after"] = destroy_after
    m["period"] = period
    return make_bag(root / name, key, manifest=m)


def test_retention_lists_and_purges_with_audit(tmp_path):
    key, pub = signing_pair(tmp_path / "keys")
    root = tmp_path / "out"
    old = _package(root, "E09000031_nis_2015-H1", "2020-01-01", key)
    new = _package(root, "E09000031_nis_2019-H2", "2099-01-01", key)
    due, unverifiable = retention.due_packages(root, today=dt.date(2026, 1, 1), public_key=pub)
    assert [p.path for p in due] == [old] and unverifiable == []
    log = root / "audit.jsonl"
    assert retention.purge(due, log, key) == [old.name]
    assert not old.exists() and new.exists()
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["event"] == "retention_purge" and entry["package"] == old.name
    assert audit.verify_log(log, public_key=pub).ok


def test_retention_never_trusts_an_unverified_date(tmp_path):
    key, pub = signing_pair(tmp_path / "keys")
    root = tmp_path / "out"
    edited = _package(root, "E09000031_nis_2015-H1", "2031-01-01", key)
    m = json.loads((edited / "manifest.json").read_text())
    m["retention"]["destroy_after"] = "2000-01-01"  # due in 2031, edited to be due now
    (edited / "manifest.json").write_text(json.dumps(m))
    resigned = _package(root, "E09000031_nis_2016-H1", "2000-01-01", signing_pair(tmp_path / "evil")[0])
    due, unverifiable = retention.due_packages(root, public_key=pub)
    assert due == []
    problems = {p.path.name: p.problem for p in unverifiable}
    assert "fails verification" in problems[edited.name] and "fails verification" in problems[resigned.name]
    assert all(p.hint for p in unverifiable)
    due, unverifiable = retention.due_packages(root)  # no key: nothing can be trusted
    assert due == [] and all("no signer's public key" in p.problem for p in unverifiable)
    with pytest.raises(ValueError):
        retention.purge(unverifiable, root / "audit.jsonl", key)
    assert edited.exists() and resigned.exists()


def test_retention_cli_lists_unverifiable_and_purge_needs_a_config(tmp_path):
    key, pub = signing_pair(tmp_path / "keys")
    root = tmp_path / "out"
    old = _package(root, "E09000031_nis_2015-H1", "2020-01-01", key)
    runner = CliRunner()
    listed = runner.invoke(app, ["retention", "--root", str(root), "--public-key", str(pub), "--json", "-"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout)["due"][0]["package"] == old.name
    unkeyed = runner.invoke(app, ["retention", "--root", str(root), "--json", "-"])
    assert json.loads(unkeyed.stdout)["unverifiable"][0]["package"] == old.name
    refused = runner.invoke(app, ["retention", "purge", "--root", str(root), "--yes"])
    assert refused.exit_code == 2 and "--config" in refused.output and old.exists()
