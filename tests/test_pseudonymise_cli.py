"""`tfkit pseudonymise` and `tfkit link-keys` end to end."""

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.demo import write_demo

runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo(tmp_path_factory.mktemp("demo"), 300, seed=9)  # 1% invalid cohort rows


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_invalid_rows_refuse_or_quarantine(demo, tmp_path, contract_key_file):
    out = tmp_path / "cohort.parquet"
    base = ("pseudonymise", demo["cohort"], "--schema", "nis", "--project", "nis", "--key", contract_key_file, "--allow-test-key",
            "--out", out)
    res = run(*base)
    assert res.exit_code == 1
    assert "failed validation" in res.output and "tfkit validate" in res.output and "--quarantine" in res.output
    assert not out.exists()
    res = run(*base, "--quarantine", tmp_path / "q", "--json", "-")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["rows_in"] == 300 == summary["rows_out"] + summary["rows_quarantined"]
    assert summary["rows_quarantined"] > 0
    assert pl.read_csv(summary["quarantine_file"], infer_schema=False).height == summary["rows_quarantined"]
    assert [p.name for p in (tmp_path / "q").iterdir()] == ["cohort.quarantine.csv"]  # no raw copy of valid rows
    df = pl.read_parquet(out)
    assert df.height == summary["rows_out"]
    assert {"forename", "surname", "postcode", "nino", "person_id"}.isdisjoint(df.columns)
    assert "person_id_pseudonym" in df.columns and "mk_nino" in df.columns


def test_policy_refuses_unknown_column(demo, tmp_path, contract_key_file):
    policy = tmp_path / "p.toml"
    policy.write_text('[columns]\nrecord_id = "hash"\n')
    res = run("pseudonymise", demo["police"], "--schema", "police", "--project", "nis", "--key", contract_key_file, "--allow-test-key",
              "--out", tmp_path / "o.parquet", "--policy", policy)
    assert res.exit_code == 0  # built-in police policy + override
    res = run("pseudonymise", demo["police"], "--schema", tmp_path / "nope.toml", "--project", "nis",
              "--key", contract_key_file, "--allow-test-key", "--out", tmp_path / "o.parquet")
    assert res.exit_code == 2


def test_link_keys(demo, tmp_path, contract_key_file):
    for name, schema in (("cohort", "nis"), ("police", "police")):
        res = run("pseudonymise", demo[name], "--schema", schema, "--project", "nis", "--key", contract_key_file, "--allow-test-key",
                  "--out", tmp_path / f"{name}.parquet", "--quarantine", tmp_path / "q")
        assert res.exit_code == 0, res.output
    res = run("link-keys", tmp_path / "cohort.parquet", tmp_path / "police.parquet", "--out", tmp_path / "pairs.parquet",
              "--one-to-many", "--json", "-")
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    pairs = pl.read_parquet(tmp_path / "pairs.parquet")
    assert result["pairs"] == pairs.height == sum(k["pairs"] for k in result["keys"]) > 0
    assert pairs.columns == ["a_row", "b_row", "a_id", "b_id", "match_key"]
    text = run("link-keys", tmp_path / "cohort.parquet", tmp_path / "police.parquet", "--out", tmp_path / "p2.parquet")
    assert "forename_surname_dob_postcode" in text.output
    res = run("link-keys", demo["police"], tmp_path / "police.parquet", "--out", tmp_path / "x.parquet")
    assert res.exit_code == 2 and "Parquet" in res.output


def test_link_keys_refuses_a_folder_holding_two_extracts(demo, tmp_path, contract_key_file):
    import shutil

    folder = tmp_path / "mixed"
    folder.mkdir()
    pl.DataFrame({"person_id_pseudonym": ["a"], "mk_forename_surname_dob": ["x"]}).write_parquet(folder / "a.parquet")
    pl.DataFrame({"record_id_pseudonym": ["b"], "mk_nino": ["y"]}).write_parquet(folder / "b.parquet")
    shutil.copy(folder / "a.parquet", tmp_path / "one.parquet")
    r = run("link-keys", tmp_path / "one.parquet", folder, "--out", tmp_path / "pairs.parquet")
    assert r.exit_code == 2 and "different columns" in r.output and "internal error" not in r.output


@pytest.mark.parametrize("command", ["pseudonymise", "link-keys"])
def test_out_named_as_another_format_is_refused(demo, tmp_path, contract_key_file, command):
    out = tmp_path / "cohort.csv"
    if command == "pseudonymise":
        args = ("pseudonymise", demo["police"], "--schema", "police", "--project", "nis", "--key", contract_key_file,
                "--allow-test-key", "--out", out)
    else:
        args = ("link-keys", demo["police"], demo["police"], "--out", out)
    res = run(*args)
    assert res.exit_code == 2 and "writes Parquet" in res.output and "cohort.parquet" in res.output
    assert not out.exists()


def test_link_keys_refuses_extracts_of_different_projects(demo, tmp_path, contract_key_file):
    for name, schema, project in (("cohort", "nis", "nis"), ("police", "police", "my proj")):
        res = run("pseudonymise", demo[name], "--schema", schema, "--project", project, "--key", contract_key_file,
                  "--allow-test-key", "--out", tmp_path / f"{name}.parquet", "--quarantine", tmp_path / "q")
        assert res.exit_code == 0, res.output
    res = run("link-keys", tmp_path / "cohort.parquet", tmp_path / "police.parquet", "--out", tmp_path / "pairs.parquet")
    assert res.exit_code == 2 and "different project" in res.output and "--project" in res.output
    assert not (tmp_path / "pairs.parquet").exists()
