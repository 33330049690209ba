"""`tfkit keys` and key handling of every key-taking command: exit 2, clear message, key never shown."""

import json
import os

import pytest
from typer.testing import CliRunner

from tfkit.cli import app

from .conftest import CONTRACT_KEY_HEX

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, list(args), env=env)


def test_generate_and_fingerprint(tmp_path):
    key = tmp_path / "master.key"
    res = invoke("keys", "generate", "--out", str(key), "--json", "-")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert os.stat(key).st_mode & 0o777 == 0o600
    secret = key.read_text().strip()
    assert len(secret) == 64 and secret not in res.output
    res = invoke("keys", "fingerprint", str(key))
    assert res.exit_code == 0 and res.stdout.strip() == info["fingerprint"]
    res = invoke("keys", "generate", "--out", str(key))
    assert res.exit_code == 2 and "refusing to overwrite" in res.output
    assert key.read_text().strip() == secret


def test_contract_fingerprint(contract_key_file):
    res = invoke("keys", "fingerprint", str(contract_key_file))
    assert res.stdout.strip() == "180a39191bd3ca09"
    assert CONTRACT_KEY_HEX not in res.output


def test_signing_pair(tmp_path):
    res = invoke("keys", "generate", "--signing", "--out", str(tmp_path / "sign.key"))
    assert res.exit_code == 0, res.output
    fp = res.stdout.strip().splitlines()[-1].split(": ")[1]
    assert os.stat(tmp_path / "sign.key").st_mode & 0o777 == 0o600
    for f in ("sign.key", "sign.pub"):
        res = invoke("keys", "fingerprint", str(tmp_path / f), "--json", "-")
        assert json.loads(res.stdout)["fingerprint"] == fp
    assert "PRIVATE" not in invoke("keys", "fingerprint", str(tmp_path / "sign.key")).output


@pytest.fixture
def demo_csv(tmp_path):
    from tfkit.demo import write_demo

    return write_demo(tmp_path / "demo", 100, seed=3, error_rate=0.0)["police"]


def pseudonymise_args(demo_csv, tmp_path):
    return ["pseudonymise", str(demo_csv), "--schema", "police", "--project", "nis", "--allow-test-key",
            "--out", str(tmp_path / "out.parquet")]


def test_missing_key(demo_csv, tmp_path, monkeypatch):
    monkeypatch.delenv("TFKIT_KEY_FILE", raising=False)
    res = invoke(*pseudonymise_args(demo_csv, tmp_path))
    assert res.exit_code == 2 and "no key file given" in res.output and "TFKIT_KEY_FILE" in res.output
    res = invoke(*pseudonymise_args(demo_csv, tmp_path), "--key", str(tmp_path / "nope.key"))
    assert res.exit_code == 2 and "key file not found" in res.output


def test_malformed_and_too_open_keys(demo_csv, tmp_path, contract_key_file):
    bad = tmp_path / "bad.key"
    bad.write_text(CONTRACT_KEY_HEX[:-2] + "zz\n")
    os.chmod(bad, 0o600)
    res = invoke(*pseudonymise_args(demo_csv, tmp_path), "--key", str(bad))
    assert res.exit_code == 2 and "malformed key file" in res.output
    assert CONTRACT_KEY_HEX[:-2] not in res.output
    os.chmod(contract_key_file, 0o644)
    res = invoke(*pseudonymise_args(demo_csv, tmp_path), env={"TFKIT_KEY_FILE": str(contract_key_file)})
    assert res.exit_code == 2 and "too open" in res.output and "chmod 600" in res.output
    assert not (tmp_path / "out.parquet").exists()


def test_key_from_environment(demo_csv, tmp_path, contract_key_file):
    res = invoke(*pseudonymise_args(demo_csv, tmp_path), "--json", "-", env={"TFKIT_KEY_FILE": str(contract_key_file)})
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["key_fingerprint"] == "180a39191bd3ca09"
    assert CONTRACT_KEY_HEX not in res.output


def test_key_never_in_json_logs(demo_csv, tmp_path, contract_key_file):
    res = invoke("--log-format", "json", *pseudonymise_args(demo_csv, tmp_path), "--key", str(contract_key_file))
    assert res.exit_code == 0
    assert CONTRACT_KEY_HEX not in res.output and "180a39191bd3ca09" in res.output
