"""The audit log cannot be rewritten: every edit, deletion, reordering, truncation (the tail
included) and forgery is caught; with the signer's public key, and where possible without it."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from tests.test_package_fixtures import NAME, make_bag, manifest_for, signing_pair
from tfkit.cli import app
from tfkit.errors import InputFileError
from tfkit.package import audit


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return signing_pair(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def log(tmp_path, keys):
    path = tmp_path / "audit.jsonl"
    for i in range(4):
        audit.append(path, "extract", keys[0], package=f"P{i}", key_fingerprint="180a39191bd3ca09")
    return path


def codes(report):
    return {p.code for p in report.problems}


def lines_of(log):
    return log.read_text().splitlines()


def write_lines(log, lines):
    log.write_text("".join(line + "\n" for line in lines))


def rehashed(entry: dict, key: Ed25519PrivateKey | None = None) -> str:
    """An attacker's rewrite: the hash recomputed, signed with a key that is not the signer's."""
    entry["hash"] = audit.entry_hash(entry)
    import base64
    entry["sig"] = base64.b64encode((key or Ed25519PrivateKey.generate()).sign(entry["hash"].encode())).decode()
    return json.dumps(entry, sort_keys=True)


def both(log, pub, *expected):
    """The manipulation is caught with the key, and (for each code in `expected`) without it too."""
    with_key = audit.verify_log(log, public_key=pub)
    without = audit.verify_log(log)
    assert not with_key.ok, with_key.problems
    for code in expected:
        assert code in codes(without), without.problems
    return with_key, without


def test_chain_intact(log, keys):
    report = audit.verify_log(log, public_key=keys[1])
    assert report.ok and report.entries == 4 and report.authenticated
    assert report.head == audit.chain_head(log) == json.loads(lines_of(log)[-1])["hash"]
    first = json.loads(lines_of(log)[0])
    assert first["prev"] == audit.GENESIS and first["seq"] == 1 and first["user"] and first["time"] and first["sig"]
    cp = audit.read_checkpoint(log)
    assert cp["entries"] == 4 and cp["head"] == report.head


def test_edited_entry(log, keys):
    lines = lines_of(log)
    lines[1] = lines[1].replace('"P1"', '"PX"')
    write_lines(log, lines)
    with_key, _ = both(log, keys[1], "hash_mismatch")
    assert any("entry 2 (line 2) was edited" in p.message for p in with_key.problems)


def test_edited_last_entry_with_its_hash_recomputed(log, keys):
    lines = lines_of(log)
    entry = json.loads(lines[-1])
    entry["package"] = "PX"
    lines[-1] = rehashed(entry)
    write_lines(log, lines)
    with_key, without = both(log, keys[1], "truncated")  # the checkpoint's head is gone
    assert "bad_signature" in codes(with_key)


def test_removed_middle_entry(log, keys):
    lines = lines_of(log)
    write_lines(log, lines[:1] + lines[2:])
    both(log, keys[1], "broken_chain", "bad_sequence")


def test_reordered_entries(log, keys):
    lines = lines_of(log)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(log, lines)
    both(log, keys[1], "broken_chain")


@pytest.mark.parametrize("keep", [3, 0])
def test_truncated_tail(log, keys, keep):
    write_lines(log, lines_of(log)[:keep])
    _, without = both(log, keys[1], "truncated")
    assert any("entries were removed from its end" in p.message for p in without.problems)


def test_forged_correctly_chained_entry(log, keys):
    last = json.loads(lines_of(log)[-1])
    forged = {"seq": last["seq"] + 1, "time": last["time"], "event": "retention_purge", "user": "x", "host": "y",
              "package": NAME, "prev": last["hash"], "signer": last["signer"]}
    write_lines(log, lines_of(log) + [rehashed(forged)])
    with_key, without = both(log, keys[1], "checkpoint")  # one entry after the signed checkpoint
    assert "bad_signature" in codes(with_key)


def test_forged_entry_and_forged_checkpoint(log, keys):
    last = json.loads(lines_of(log)[-1])
    attacker = Ed25519PrivateKey.generate()
    forged = {"seq": 5, "time": last["time"], "event": "retention_purge", "user": "x", "host": "y",
              "package": NAME, "prev": last["hash"], "signer": last["signer"]}
    write_lines(log, lines_of(log) + [rehashed(forged, attacker)])
    audit._write_checkpoint(log, 5, json.loads(lines_of(log)[-1])["hash"], attacker)
    with_key = audit.verify_log(log, public_key=keys[1])
    assert {"bad_signature", "checkpoint"} <= codes(with_key), with_key.problems


def test_removed_checkpoint(log, keys):
    audit.checkpoint_path(log).unlink()
    both(log, keys[1], "checkpoint")


def test_unsigned_entry_is_refused(tmp_path, keys):
    log = tmp_path / "audit.jsonl"
    entry = {"seq": 1, "time": "t", "event": "extract", "prev": audit.GENESIS}
    entry["hash"] = audit.entry_hash(entry)
    write_lines(log, [json.dumps(entry)])
    assert "bad_signature" in codes(audit.verify_log(log, public_key=keys[1]))
    assert not audit.verify_log(log).ok  # and no checkpoint either


def test_stripped_signature_in_a_signed_log(log, keys):
    lines = lines_of(log)
    entry = json.loads(lines[1])
    entry["sig"] = None
    lines[1] = json.dumps(entry)
    write_lines(log, lines)
    both(log, keys[1], "bad_signature")


def test_unsigned_log_of_a_link_job_is_checked_as_a_chain(tmp_path):
    log = tmp_path / "audit.jsonl"
    for i in range(3):
        audit.append(log, "review_decisions", accepted=i)
    assert audit.verify_log(log).ok
    write_lines(log, lines_of(log)[:2])
    assert "truncated" in codes(audit.verify_log(log))


def test_append_refuses_a_log_that_lost_its_tail(log, keys):
    write_lines(log, lines_of(log)[:2])
    with pytest.raises(InputFileError, match="does not match its signed checkpoint"):
        audit.append(log, "extract", keys[0], package="P9")


def test_pending_entry_is_taken_back_on_failure(log, keys):
    before, checkpoint = log.read_bytes(), audit.checkpoint_path(log).read_bytes()
    with pytest.raises(RuntimeError):
        with audit.pending(log, "extract", keys[0], package="P9") as entry:
            assert entry["seq"] == 5 and json.loads(lines_of(log)[-1])["seq"] == 5
            raise RuntimeError("publish failed")
    assert log.read_bytes() == before and audit.checkpoint_path(log).read_bytes() == checkpoint
    assert audit.verify_log(log, public_key=keys[1]).ok


def _package_root(tmp_path, keys):
    root = tmp_path / "out"
    log = root / "audit.jsonl"
    entry = audit.append(log, "extract", keys[0], package=NAME)
    m = manifest_for()
    m["audit"]["chain_head"] = entry["hash"]
    make_bag(root / NAME, keys[0], manifest=m)
    return root, log


def test_package_anchor_must_be_in_the_log(tmp_path, keys):
    root, log = _package_root(tmp_path, keys)
    assert audit.verify_log(log, packages_root=root, public_key=keys[1]).ok
    log.write_text("")
    audit.checkpoint_path(log).unlink()  # log and checkpoint both emptied
    report = audit.verify_log(log, packages_root=root)
    assert {"empty_log", "missing_entry"} <= codes(report), report.problems
    log.unlink()  # no log at all: the same, not "file not found"
    assert "empty_log" in codes(audit.verify_log(log, packages_root=root))


def test_cli_audit_verify_and_show(log, keys, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", str(log), "--public-key", str(keys[1])])
    assert ok.exit_code == 0, ok.output
    assert "audit log intact" in ok.output
    shown = runner.invoke(app, ["audit", "show", str(log), "--json", "-"])
    assert shown.exit_code == 0, shown.output
    assert [e["package"] for e in json.loads(shown.stdout)["entries"]] == ["P0", "P1", "P2", "P3"]
    table = runner.invoke(app, ["audit", "show", str(log)])
    assert table.exit_code == 0 and "extract" in table.output
    lines = lines_of(log)
    write_lines(log, lines[:1] + lines[2:])
    bad = runner.invoke(app, ["audit", "verify", str(log), "--json", "-"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout[: bad.stdout.rindex("}") + 1])["ok"] is False
    for command in ("verify", "show"):
        missing = runner.invoke(app, ["audit", command, str(tmp_path / "nope.jsonl")])
        assert missing.exit_code == 2, missing.output


def test_run_killed_between_entry_and_checkpoint_is_recovered(log, keys):
    entries = lines_of(log)
    last = json.loads(entries[-1])
    forged_next = {"seq": 5, "time": last["time"], "event": "extract", "package": "P5", "prev": last["hash"]}
    # what pending() leaves when killed after appending: the .next checkpoint and the entry, no swap
    nxt = audit.append(log.with_name("scratch.jsonl"), "x", keys[0])  # (only to build a signed entry below)
    del nxt
    import base64
    forged_next["signer"] = last["signer"]
    forged_next["hash"] = audit.entry_hash(forged_next)
    forged_next["sig"] = base64.b64encode(keys[0].sign(forged_next["hash"].encode())).decode()
    audit._write_checkpoint(log, 5, forged_next["hash"], keys[0], audit.next_checkpoint_path(log))
    write_lines(log, entries + [json.dumps(forged_next, sort_keys=True)])
    assert audit.verify_log(log, public_key=keys[1]).ok  # a crash, told apart from a truncation
    audit.append(log, "extract", keys[0], package="P6")  # promotes .next, then appends
    assert audit.read_checkpoint(log)["entries"] == 6 and not audit.next_checkpoint_path(log).exists()
    assert audit.verify_log(log, public_key=keys[1]).ok


def test_checkpoint_rolled_back_with_the_log_is_caught_by_a_later_package(tmp_path, keys):
    """An attacker who kept an old, validly signed checkpoint and truncates the log back to it:
    every package made after it anchors its own entry, so --root catches it (the documented limit:
    entries no package anchors, e.g. a later retention_purge, are not caught)."""

    root, log = _package_root(tmp_path, keys)  # entry 1: the package's
    saved_log, saved_cp = log.read_bytes(), audit.checkpoint_path(log).read_bytes()
    entry = audit.append(log, "extract", keys[0], package="E09000031_nis_2020-H1")
    m = manifest_for()
    m["period"], m["audit"]["chain_head"] = "2020-H1", entry["hash"]
    make_bag(root / "E09000031_nis_2020-H1", keys[0], manifest=m)
    assert audit.verify_log(log, packages_root=root, public_key=keys[1]).ok
    log.write_bytes(saved_log)
    audit.checkpoint_path(log).write_bytes(saved_cp)
    assert audit.verify_log(log, public_key=keys[1]).ok  # the log alone cannot tell
    report = audit.verify_log(log, packages_root=root, public_key=keys[1])
    assert "missing_entry" in codes(report) and "E09000031_nis_2020-H1" in str(report.problems)
