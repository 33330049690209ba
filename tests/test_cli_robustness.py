"""Users' mistakes, cron runs and leaks, driven through the CLI as people and cron jobs drive it.

Each test is a defect found by trying to break tfkit: one clear message, the right exit code
(2: usage/config/input/key; 1: data failed a check), never a traceback or an "internal error".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tfkit
from tfkit.cli import app

runner = CliRunner()


def invoke(*args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def assert_user_error(result, code=2, *words):
    text = result.output
    assert result.exit_code == code, text
    assert "internal error" not in text and "Traceback" not in text, text
    for word in words:
        assert word in text, text


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A small demo cohort, a master key, a signing key and a starter config using them."""
    root = tmp_path_factory.mktemp("qa")
    assert invoke("demo-data", "--out", root / "extracts", "--people", 40).exit_code == 0
    (root / "keys").mkdir()
    assert invoke("keys", "generate", "--out", root / "keys" / "master.key").exit_code == 0
    assert invoke("keys", "generate", "--signing", "--out", root / "keys" / "signing.key").exit_code == 0
    assert invoke("init", root / "tfkit.toml").exit_code == 0
    return root


def config(workdir: Path, name: str, *edits: tuple[str, str]) -> Path:
    text = (workdir / "tfkit.toml").read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    path = workdir / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- outputs the OS refuses


def test_pseudonymise_out_is_a_directory(workdir, tmp_path):
    result = invoke("pseudonymise", workdir / "extracts" / "cohort.csv", "-s", "nis", "--project", "nis",
                    "--out", tmp_path, "--key", workdir / "keys" / "master.key", "--quarantine", tmp_path / "q")
    assert_user_error(result, 2, str(tmp_path))


def test_init_into_missing_folder(tmp_path):
    result = invoke("init", tmp_path / "no" / "such" / "tfkit.toml")
    assert_user_error(result, 2, "tfkit.toml")


def test_json_summary_into_a_directory(workdir, tmp_path):
    result = invoke("retention", "--root", tmp_path, "--json", tmp_path)
    assert_user_error(result, 2, str(tmp_path))


def test_extract_output_root_is_a_file(workdir):
    cfg = config(workdir, "root_file.toml", ('root = "packages"', 'root = "tfkit.toml"'))
    result = invoke("extract", "-c", cfg)
    assert_user_error(result, 2, "tfkit.toml")


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("period", ["2019-13", "2019-00", "0000", "2190-H1"])
def test_period_month_out_of_range(workdir, period):
    cfg = config(workdir, "period.toml", ('period = "2019-H2"', f'period = "{period}"'))
    assert_user_error(invoke("extract", "-c", cfg), 2, period, "period")
    assert_user_error(invoke("extract", "-c", workdir / "tfkit.toml", "--period", period), 2, period)


# --------------------------------------------------------------------------- cron: JSON logs


def test_json_logs_usage_errors_are_json():
    result = invoke("--log-format", "json", "validate", "x.csv")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines, result.output
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert records[-1]["level"] == "error" and "--schema" in records[-1]["message"]


def test_json_logs_unknown_option_in_subgroup_is_json():
    result = invoke("--log-format", "json", "disclosure", "check", "x", "--nope")
    assert result.exit_code == 2
    assert all(json.loads(line) for line in result.stderr.strip().splitlines())


# --------------------------------------------------------------------------- auditor


def test_audit_verify_on_a_file_that_is_not_an_audit_log(workdir):
    result = invoke("audit", "verify", workdir / "extracts" / "cohort.csv")
    assert_user_error(result, 2, "cohort.csv", "not an audit log")
    assert len(result.output.strip().splitlines()) <= 3, result.output


def test_verify_on_a_file_says_it_is_a_file(workdir):
    result = invoke("verify", workdir / "tfkit.toml")
    assert_user_error(result, 2, "tfkit.toml", "not a folder")


def test_retention_warns_about_unreadable_destroy_after(tmp_path):
    package = tmp_path / "E09000031_nis_2019-H2"
    package.mkdir()
    (package / "manifest.json").write_text(json.dumps({"retention": {"destroy_after": "soon"}}))
    result = invoke("retention", "--root", tmp_path)
    assert result.exit_code == 1  # a package that does not verify: listed, never purged, and cron hears of it
    assert "E09000031_nis_2019-H2" in result.output and "destroy_after" in result.output
    assert "warning" in result.stderr


# --------------------------------------------------------------------------- link


def test_audit_show_refuses_a_file_that_is_not_an_audit_log(workdir):
    assert_user_error(invoke("audit", "show", workdir / "tfkit.toml"), 2, "is not an audit log")


def test_link_schema_rejecting_every_row_says_so(workdir, tmp_path):
    ex = workdir / "extracts"
    # One --schema for both files: the police schema fits no school-attendance row.
    result = invoke("link", ex / "police.csv", ex / "school_attendance.csv", "-o", tmp_path / "out",
                    "-s", "police")
    assert_user_error(result, 1, "school_attendance", "police")
    assert "has no records" not in result.output


@pytest.mark.parametrize("make", ["empty", "extracts"])
def test_verify_on_a_folder_that_is_no_package(workdir, tmp_path, make):
    folder = tmp_path if make == "empty" else workdir / "extracts"
    result = invoke("verify", folder)
    assert_user_error(result, 2, "not a tfkit package")
    assert len(result.output.strip().splitlines()) <= 3, result.output


# --------------------------------------------------------------------------- keys


def test_key_file_mistakes_each_get_a_hint(workdir, tmp_path):
    assert_user_error(invoke("keys", "fingerprint", tmp_path), 2, "is a folder")
    signing = invoke("keys", "fingerprint", workdir / "keys" / "signing.key")
    assert signing.exit_code == 0  # a signing key has a fingerprint too
    extract = workdir / "extracts" / "cohort.csv"
    swapped = invoke("pseudonymise", extract, "-s", "nis", "--project", "nis", "--out", tmp_path / "p.parquet",
                     "--key", workdir / "keys" / "signing.key")
    assert_user_error(swapped, 2, "signing.key", "PEM", "hint")
    upper = tmp_path / "upper.key"
    upper.write_text((workdir / "keys" / "master.key").read_text().upper())
    os.chmod(upper, 0o600)
    result = invoke("keys", "fingerprint", upper)
    assert_user_error(result, 2, "lowercase", "hint")
    assert (workdir / "keys" / "master.key").read_text().strip().upper() not in result.output


def test_signing_and_public_key_mix_ups_get_a_hint(workdir, tmp_path):
    cfg = config(workdir, "sig_swap.toml", ('key_file = "keys/signing.key"', 'key_file = "keys/master.key"'))
    assert_user_error(invoke("extract", "-c", cfg, "--period", "2001"), 2, "master.key", "hint", "--signing")
    package = tmp_path / "pkg"
    (package / "data").mkdir(parents=True)
    result = invoke("verify", package, "--public-key", workdir / "keys" / "signing.key")
    assert_user_error(result, 2, "PRIVATE", ".pub")


# --------------------------------------------------------------------------- extract --demo


def test_demo_never_overwrites_a_real_config(tmp_path):
    real = tmp_path / "tfkit.toml"
    invoke("init", real)
    before = real.read_text()
    result = invoke("extract", "--demo", "--out", tmp_path)
    assert_user_error(result, 2, "tfkit.toml", "--out")
    assert real.read_text() == before


def test_extract_la_code_mismatch_names_the_config_not_a_flag(workdir):
    cfg = config(workdir, "la.toml", ('la_code = "E09000031"', 'la_code = "E08000001"'))
    result = invoke("extract", "-c", cfg, "--period", "2002")
    assert_user_error(result, 2, "E08000001", "config")


def test_config_errors_name_a_key_not_a_column(workdir):
    cfg = config(workdir, "nola.toml", ('la_code = "E09000031"', 'la_code = "Tower Hamlets"'))
    result = invoke("extract", "-c", cfg)
    assert_user_error(result, 2, "nola.toml, key 'la_code'")


def test_config_schema_and_policy_files_are_relative_to_the_config(workdir, monkeypatch, tmp_path):
    from tfkit.config import load_config

    cfg = config(workdir, "rel.toml", ('schema = "nis"', 'schema = "schemas/my.toml"'),
                 ('# policy = "policy.toml"', 'policy = "policy.toml"'))
    monkeypatch.chdir(tmp_path)  # cron runs from elsewhere
    loaded = load_config(cfg)
    assert loaded.sources[0].schema == str(workdir / "schemas" / "my.toml")
    assert loaded.policy == str(workdir / "policy.toml")
    assert load_config(workdir / "tfkit.toml").sources[0].schema == "nis"


# --------------------------------------------------------------------------- --help


def test_retention_help_says_what_the_bare_command_does():
    assert "List packages" in invoke("retention", "--help").output
    assert "Exit 0" in invoke("verify", "--help").output


# --------------------------------------------------------------------------- summarise


def test_summarise_refuses_the_same_package_twice(tmp_path):
    import polars as pl

    table = tmp_path / "person.parquet"
    pl.DataFrame({"person_id_pseudonym": ["a" * 64], "family_id_pseudonym": ["b" * 64]}).write_parquet(table)
    result = invoke("summarise", table, tmp_path / "." / "person.parquet", "--out", tmp_path / "out")
    assert_user_error(result, 2, "twice")
    assert not (tmp_path / "out").exists()


def test_link_keys_never_overwrites_an_input(tmp_path):
    import polars as pl

    a = tmp_path / "a.parquet"
    pl.DataFrame({"mk_nino": ["x"]}).write_parquet(a)
    before = a.read_bytes()
    result = invoke("link-keys", a, a, "--out", a)
    assert_user_error(result, 2, "overwrite the input")
    assert a.read_bytes() == before


def test_validate_json_never_overwrites_the_extract(workdir, tmp_path):
    extract = tmp_path / "cohort.csv"
    extract.write_bytes((workdir / "extracts" / "cohort.csv").read_bytes())
    before = extract.read_bytes()
    result = invoke("validate", extract, "-s", "nis", "--json", extract)
    assert_user_error(result, 2, "overwrite")
    assert extract.read_bytes() == before


# --------------------------------------------------------------------------- retention


def test_retention_purge_destroys_report_and_quarantine_too(workdir):
    import datetime as dt

    from tfkit.config import load_config
    from tfkit.pipeline import run_extract

    # 40 people: every record would need blanking to reach k=10, past the default max_suppression
    cfg = config(workdir, "purge.toml", ("days = 1826", "days = 1"), ("[disclosure]\n", "[disclosure]\nmax_suppression = 1.0\n"))
    # made in 2020 with one day's retention: due now, by its signed date
    run_extract(load_config(cfg).with_period("2003"), now=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    name = "E09000031_nis_2003"
    package, quarantine = workdir / "packages" / name, workdir / "quarantine" / name
    assert package.with_name(f"{name}.report.html").is_file()
    quarantine.mkdir(parents=True, exist_ok=True)  # 40 clean people may quarantine no row
    (quarantine / "cohort.quarantine.csv").write_text("raw rows\n")
    result = invoke("retention", "purge", "-c", cfg, "--yes")
    assert result.exit_code == 0, result.output
    assert not package.exists() and not quarantine.exists()
    assert not package.with_name(f"{name}.report.html").exists()
    last = json.loads((workdir / "packages" / "audit.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "retention_purge" and last["quarantine_deleted"] is True


# --------------------------------------------------------------------------- link model TOML


@pytest.mark.parametrize("text", ["settings = 3\n", "comparison = 3\n", "comparison = [1]\n", "blocking = [1]\n",
                                  "training = 1\n", "settings = {name_variants = 3}\n", "settings = {seed = -1}\n",
                                  'comparison = [{type = "forename", column = 5}]\n',
                                  'comparison = [{type = "forename", column = "forename", jaro_winkler = "x"}]\n'])
def test_link_model_of_the_wrong_shape(workdir, tmp_path, text):
    model = tmp_path / "model.toml"
    model.write_text(text)
    ex = workdir / "extracts"
    result = invoke("link", ex / "police.csv", ex / "school_attendance.csv", "-o", tmp_path / "out",
                    "-s", "police", "-s", "school_attendance", "--model", model)
    assert_user_error(result, 2, "model.toml")


def test_permission_denied_on_output_is_a_usage_error(monkeypatch, tmp_path):
    import errno

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "ro" / "tfkit.toml"))

    monkeypatch.setattr(Path, "write_text", refuse)
    result = invoke("init", tmp_path / "ro" / "tfkit.toml")
    assert_user_error(result, 2, "Permission denied", "permissions")


def test_verify_lists_each_missing_tag_file_once(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    result = invoke("verify", package)
    assert result.exit_code == 1, result.output
    assert result.output.count("bag-info.txt is missing") == 1, result.output
    assert result.output.count("data/ is missing") == 1, result.output


def test_folders_given_for_files_are_named_as_folders(tmp_path):
    assert_user_error(invoke("extract", "-c", tmp_path), 2, "is a folder")
    assert_user_error(invoke("audit", "verify", tmp_path), 2, "is a folder", "audit.jsonl")
    result = invoke("init", tmp_path)  # DIR means DIR/tfkit.toml
    assert result.exit_code == 0 and (tmp_path / "tfkit.toml").is_file()


def test_extract_never_signs_an_empty_return(workdir):
    # The police extract given as the cohort: the nis schema rejects every row.
    cfg = config(workdir, "allbad.toml", ('path = "extracts/cohort.csv"', 'path = "extracts/police.csv"'))
    result = invoke("extract", "-c", cfg, "--period", "2004")
    # (the header tells: named at read, before any raw row is written)
    assert_user_error(result, 1, "no column for required field(s) la_code", "nothing was written")
    assert "fit the built-in schema 'police'" in result.output
    assert not (workdir / "packages" / "E09000031_nis_2004").exists()


def test_pseudonymise_writes_no_empty_output_when_every_row_fails(workdir, tmp_path):
    result = invoke("pseudonymise", workdir / "extracts" / "police.csv", "-s", "nis", "--project", "nis",
                    "--out", tmp_path / "p.parquet", "--key", workdir / "keys" / "master.key",
                    "--quarantine", tmp_path / "q")
    assert_user_error(result, 1, "no column for required field(s)", "nothing was written")
    assert not (tmp_path / "p.parquet").exists() and not (tmp_path / "q").exists()  # the header says why: no raw copy


def test_extract_without_master_key_names_the_config_key(workdir, monkeypatch):
    monkeypatch.delenv("TFKIT_KEY_FILE", raising=False)
    cfg = config(workdir, "nokey.toml", ('key_file = "keys/master.key"', '# key_file = "keys/master.key"'))
    result = invoke("extract", "-c", cfg, "--period", "2005")
    assert_user_error(result, 2, "nokey.toml", "pseudonymise.key_file")
    assert "--key" not in result.output


@pytest.mark.parametrize("command", [["demo-data", "--out", "x"], ["link", "a.csv", "-o", "x"]])
def test_negative_seed_is_a_usage_error(command):
    assert_user_error(invoke(*command, "--seed", "-1"), 2, "--seed")


def test_public_key_given_as_master_key_is_not_told_to_chmod(workdir, tmp_path):
    result = invoke("pseudonymise", workdir / "extracts" / "cohort.csv", "-s", "nis", "--project", "nis",
                    "--out", tmp_path / "p.parquet", "--key", workdir / "keys" / "signing.pub")
    assert_user_error(result, 2, "signing.pub", "PEM")
    assert "chmod" not in result.output


# --------------------------------------------------------------------------- leaks


def test_internal_error_never_prints_the_exception_text(monkeypatch):
    import polars as pl

    import tfkit.commands.keys as keys_module

    def boom(*args, **kwargs):
        pl.Series(["QQ123456C"]).cast(pl.Int64)  # polars quotes the failing value

    monkeypatch.setattr(keys_module, "key_fingerprint", boom)
    monkeypatch.delenv("TFKIT_DEBUG", raising=False)
    result = invoke("keys", "fingerprint", "x.key")
    assert result.exit_code == 3
    assert "QQ123456C" not in result.output and "internal error" in result.output
    assert "tfkit/" in result.output  # where it broke, for the bug report


def test_json_logs_bare_group_has_a_message():
    result = invoke("--log-format", "json", "keys")
    assert result.exit_code == 2
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["error"]


def test_identifier_in_a_code_column_is_masked(workdir, tmp_path):
    cohort = (workdir / "extracts" / "cohort.csv").read_text(encoding="utf-8-sig").splitlines()
    header, row = cohort[0].split(","), cohort[1].split(",")
    row[header.index("Intervention Status")] = "9990000018"  # a shifted NHS number
    row[header.index("Gender")] = "SW1A 1AA"  # a shifted postcode
    path = tmp_path / "shifted.csv"
    path.write_text("\n".join([cohort[0], ",".join(row)]) + "\n")
    result = invoke("validate", path, "-s", "nis", "--json", "-")
    assert result.exit_code == 1
    assert "9990000018" not in result.output and "SW1A 1AA" not in result.output
    shown = invoke("validate", path, "-s", "nis", "--json", "-", "--show-values")
    assert "9990000018" in shown.output


def test_schema_folder_is_named_as_a_folder(tmp_path):
    folder = tmp_path / "schema.toml"
    folder.mkdir()
    assert_user_error(invoke("schemas", "show", folder), 2, "is a folder")


def test_wrong_output_root_is_an_error_not_a_pass(tmp_path):
    log = tmp_path / "audit.jsonl"
    log.write_text("")
    assert_user_error(invoke("audit", "verify", log, "--root", tmp_path / "nope"), 2, "not found")
    package = tmp_path / "E09000031_nis_2019-H2"
    package.mkdir()
    (package / "manifest.json").write_text("{}")
    assert_user_error(invoke("audit", "verify", log, "--root", package), 2, "is a package")
    assert_user_error(invoke("retention", "--root", package), 2, "is a package")


def test_toml_files_saved_with_a_bom_load(workdir, tmp_path):
    from tfkit.config import load_config
    from tfkit.schemas import load_schema

    bom = b"\xef\xbb\xbf"
    cfg = tmp_path / "tfkit.toml"
    cfg.write_bytes(bom + (workdir / "tfkit.toml").read_bytes())
    assert load_config(cfg).la_code == "E09000031"
    schema = tmp_path / "s.toml"
    schema.write_bytes(bom + b'[schema]\nname = "x"\n[fields.a]\ntype = "string"\n')
    assert load_schema(str(schema)).name == "x"
    model = tmp_path / "m.toml"
    model.write_bytes(b"\xff\xfe[settings]")
    ex = workdir / "extracts"
    result = invoke("link", ex / "police.csv", ex / "school_attendance.csv", "-o", tmp_path / "o",
                    "-s", "police", "-s", "school_attendance", "--model", model)
    assert_user_error(result, 2, "UTF-8")


def test_windows_path_in_double_quotes_gets_a_hint(workdir):
    cfg = config(workdir, "win.toml", ('path = "extracts/cohort.csv"', 'path = "C:\\data\\cohort.csv"'))
    assert_user_error(invoke("extract", "-c", cfg), 2, "win.toml", "single quotes")


def test_summarise_never_writes_into_a_package(tmp_path):
    package = tmp_path / "E09000031_nis_2019-H2"
    (package / "data").mkdir(parents=True)
    result = invoke("summarise", package, "--out", package / "data")
    assert_user_error(result, 2, "inside this package")
    assert list((package / "data").iterdir()) == []


def test_ctrl_c_while_starting_up_exits_130_without_a_traceback(monkeypatch, capsys):
    import tfkit.cli
    from tfkit import entry

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tfkit.cli, "main", interrupted)
    assert entry.run() == 130
    err = capsys.readouterr().err
    assert err == "interrupted\n" and "Traceback" not in err


def test_console_script_exit_codes_and_flushed_output(tmp_path):
    """The console script leaves without the interpreter's teardown: exit statuses and everything
    written to stdout, stderr and files must still arrive."""
    script = [sys.executable, "-c", "from tfkit.entry import main; main()"]
    version = subprocess.run([*script, "--version"], capture_output=True, text=True)
    assert (version.returncode, version.stdout.strip()) == (0, f"tfkit {tfkit.__version__}")
    extract = tmp_path / "cohort.csv"
    extract.write_text("a,b\n1,2\n", encoding="utf-8")
    failed = subprocess.run([*script, "validate", str(extract), "--schema", "nis", "--json", "-"],
                            capture_output=True, text=True)
    assert failed.returncode == 1 and "error:" in failed.stderr
    assert json.loads(failed.stdout)["summary"]["rows_in"] == 1
    usage = subprocess.run([*script, "validate", str(tmp_path / "missing.csv"), "--schema", "nis"],
                           capture_output=True, text=True)
    assert usage.returncode == 2 and "file not found" in usage.stderr


def test_console_script_sets_polars_allocator_before_polars_loads_and_keeps_the_users(tmp_path):
    """`tfkit` sets polars' allocator options (tfkit.entry.POLARS_ALLOCATOR) before polars loads,
    since jemalloc reads them only then; a value the user set is left as it is."""
    from tfkit import entry

    probe = ("import os, sys; from tfkit import entry; entry.configure_runtime(); "
             "print('polars' in sys.modules, os.environ['_RJEM_MALLOC_CONF'])")
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env).stdout.split()
    assert out == ["False", entry.POLARS_ALLOCATOR["_RJEM_MALLOC_CONF"]]
    mine = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**env, "_RJEM_MALLOC_CONF": "narenas:2"}).stdout.split()
    assert mine == ["False", "narenas:2"]
    # What a parent that imported polars hands down (polars' own defaults) is amended, not kept as is.
    inherited = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               env={**env, "_RJEM_MALLOC_CONF": "dirty_decay_ms:500"}).stdout.split()
    assert inherited == ["False", "dirty_decay_ms:500," + entry.POLARS_ALLOCATOR["_RJEM_MALLOC_CONF"]]
