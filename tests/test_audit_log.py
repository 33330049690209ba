"""The hash-chained audit log detects edited, removed and reordered entries."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.package import audit


def _log(tmp_path, n=4):
    log = tmp_path / "audit.jsonl"
    for i in range(n):
        audit.append(log, "extract", package=f"P{i}", key_fingerprint="180a39191bd3ca09")
    return log


def codes(report):
    return {p.code for p in report.problems}


def test_chain_intact(tmp_path):
    log = _log(tmp_path)
    report = audit.verify_log(log)
    assert report.ok and report.entries == 4
    assert report.head == audit.chain_head(log) == json.loads(log.read_text().splitlines()[-1])["hash"]
    first = json.loads(log.read_text().splitlines()[0])
    assert first["prev"] == audit.GENESIS and first["seq"] == 1 and first["user"] and first["time"]


def test_edited_entry(tmp_path):
    log = _log(tmp_path)
    lines = log.read_text().splitlines()
    lines[1] = lines[1].replace('"P1"', '"PX"')
    log.write_text("\n".join(lines) + "\n")
    report = audit.verify_log(log)
    assert "hash_mismatch" in codes(report)
    assert any("entry 2 (line 2) was edited" in p.message for p in report.problems)


def test_edited_last_entry(tmp_path):
    log = _log(tmp_path)
    lines = log.read_text().splitlines()
    lines[-1] = lines[-1].replace('"P3"', '"PX"')
    log.write_text("\n".join(lines) + "\n")
    assert "hash_mismatch" in codes(audit.verify_log(log))


def test_removed_entry(tmp_path):
    log = _log(tmp_path)
    lines = log.read_text().splitlines()
    del lines[1]
    log.write_text("\n".join(lines) + "\n")
    report = audit.verify_log(log)
    assert {"broken_chain", "bad_sequence"} <= codes(report)


def test_reordered_entries(tmp_path):
    log = _log(tmp_path)
    lines = log.read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    log.write_text("\n".join(lines) + "\n")
    assert "broken_chain" in codes(audit.verify_log(log))


def test_removed_last_entry_caught_by_package_cross_check(tmp_path):
    from tests.test_package_fixtures import make_bag, manifest_for, signing_pair
    from tfkit.package.bag import TAG_MANIFEST, sha256_file

    root = tmp_path / "out"
    key, _ = signing_pair(tmp_path / "keys")
    log = root / "audit.jsonl"
    m = manifest_for()
    m["audit"]["chain_head"] = audit.chain_head(log)
    pkg = make_bag(root / "E09000031_nis_2019-H2", key, manifest=m)
    audit.append(log, "extract", package=pkg.name, tagmanifest_sha256=sha256_file(pkg / TAG_MANIFEST))
    assert audit.verify_log(log, packages_root=root).ok
    log.write_text("")  # the last (only) entry removed
    report = audit.verify_log(log, packages_root=root)
    assert any("has no extract entry" in p.message for p in report.problems)


def test_cli_audit_verify_exit_codes(tmp_path):
    log = _log(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", str(log)])
    assert ok.exit_code == 0, ok.output
    assert "audit log intact" in ok.output
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    bad = runner.invoke(app, ["audit", "verify", str(log), "--json", "-"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout[: bad.stdout.rindex("}") + 1])["ok"] is False
    missing = runner.invoke(app, ["audit", "verify", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2
