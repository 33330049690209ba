"""Keys are never echoed, weak keys are refused, and the keys module tells key kinds apart."""

from __future__ import annotations

import os
import secrets

import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.errors import KeyFileError
from tfkit.keys import generate_key_file, key_kind, load_key_file, parse_fingerprint, weakness
from tfkit.errors import UsageError

from .conftest import CONTRACT_KEY_HEX

HEX_KEY = secrets.token_hex(32)
PEM = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----"


def invoke(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def _pseudonymise(tmp_path):
    data = tmp_path / "x.csv"
    data.write_text("Record ID\nR1\n")
    return ["pseudonymise", data, "--schema", "police", "--project", "nis", "--out", tmp_path / "o.parquet"]


@pytest.mark.parametrize("secret", [HEX_KEY, HEX_KEY.upper(), f"keys/{HEX_KEY}", PEM])
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_key_put_where_a_path_belongs_is_never_echoed(tmp_path, secret, log_format):
    runs = [
        invoke("--log-format", log_format, *_pseudonymise(tmp_path), env={"TFKIT_KEY_FILE": secret}),
        invoke("--log-format", log_format, *_pseudonymise(tmp_path), "--key", secret),
        invoke("--log-format", log_format, "keys", "fingerprint", secret),
    ]
    for res in runs:
        assert res.exit_code == 2, res.output
        for part in (secret, HEX_KEY, HEX_KEY.upper(), "MC4CAQAwBQYDK2VwBCIEIJ1h"):
            assert part not in res.output
        assert "shaped like a key: not shown" in " ".join(res.output.replace("│", " ").split())


def test_expect_key_fingerprint_must_be_a_fingerprint_and_a_key_there_is_not_echoed(tmp_path):
    for value in (HEX_KEY, "zz"):
        res = invoke("verify", tmp_path, "--expect-key-fingerprint", value)
        assert res.exit_code == 2 and "is not a key fingerprint" in res.output
        assert HEX_KEY not in res.output
    assert parse_fingerprint(" 180A39191BD3CA09 ") == "180a39191bd3ca09"
    with pytest.raises(UsageError):
        parse_fingerprint(HEX_KEY)


@pytest.mark.parametrize("secret, why", [
    (bytes(32), "every byte is the same"),
    (b"\xab" * 32, "every byte is the same"),
    (b"\x01\x02" * 16, "repeats a 2-byte pattern"),
    (bytes(range(5, 37)), "count up or down"),
    (bytes.fromhex(CONTRACT_KEY_HEX), "published test key"),
    (bytes([1, 2, 3, 4, 5] * 6 + [1, 2]), "distinct byte values"),
])
def test_low_entropy_master_keys_are_refused_unless_allowed(tmp_path, secret, why):
    path = tmp_path / "weak.key"
    path.write_text(secret.hex() + "\n")
    os.chmod(path, 0o600)
    assert why in weakness(secret)
    with pytest.raises(KeyFileError, match="low entropy") as err:
        load_key_file(path)
    assert secret.hex() not in str(err.value) and "--allow-test-key" in str(err.value)
    assert load_key_file(path, allow_test_key=True).fingerprint
    res = invoke(*_pseudonymise(tmp_path), "--key", path)
    assert res.exit_code == 2 and "low entropy" in res.output and secret.hex() not in res.output


def test_generated_keys_are_never_weak(tmp_path):
    for i in range(50):
        key = generate_key_file(tmp_path / f"k{i}.key")
        assert load_key_file(tmp_path / f"k{i}.key").fingerprint == key.fingerprint


def test_keys_generate_makes_its_folder_private_and_refuses_a_folder(tmp_path):
    res = invoke("keys", "generate", "--out", tmp_path / "keys" / "master.key")
    assert res.exit_code == 0, res.output
    assert os.stat(tmp_path / "keys").st_mode & 0o777 == 0o700
    res = invoke("keys", "generate", "--out", tmp_path / "keys")
    assert res.exit_code == 2 and "is a folder" in res.output and "already exists" not in res.output


def test_key_kinds_are_told_apart_and_a_data_file_is_not_a_key(tmp_path):
    assert invoke("keys", "generate", "--signing", "--out", tmp_path / "s.key").exit_code == 0
    generate_key_file(tmp_path / "m.key")
    assert [key_kind(tmp_path / n) for n in ("m.key", "s.key", "s.pub")] == ["master", "signing", "public"]
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("Person ID,NI Number\n1,AB123456C\n")
    os.chmod(cohort, 0o644)
    res = invoke("keys", "fingerprint", cohort)
    assert res.exit_code == 2 and "is not a key file" in res.output and "chmod" not in res.output
    assert "AB123456C" not in res.output
