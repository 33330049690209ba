"""What a new user met in the init -> extract -> verify pass (each a fix with its test)."""

from __future__ import annotations

from typer.testing import CliRunner

from tfkit.cli import app


def test_a_missing_key_file_says_the_command_that_makes_it_there(tmp_path):
    config = tmp_path / "tfkit.toml"
    assert CliRunner().invoke(app, ["init", str(config)]).exit_code == 0
    res = CliRunner().invoke(app, ["extract", "-c", str(config)])
    assert res.exit_code == 2 and "key file not found" in res.output
    assert "tfkit keys generate --out " in res.output and "keys/master.key" in res.output.split("hint:")[1]
    # a key pasted where the path belongs is never echoed, not even in the hint
    key = "ab" * 32
    res = CliRunner().invoke(app, ["keys", "fingerprint", key])
    assert res.exit_code == 2 and key not in res.output and "--out FILE" in res.output


def test_every_json_result_says_ok_first_as_a_failure_does(tmp_path):
    import json

    import polars as pl

    from tfkit.keys import generate_key_file

    runner = CliRunner()
    key = tmp_path / "master.key"
    generate_key_file(key)
    res = runner.invoke(app, ["keys", "fingerprint", str(key), "--json", "-"])
    assert res.exit_code == 0 and list(json.loads(res.stdout))[0] == "ok" and json.loads(res.stdout)["ok"] is True
    # a check that finds problems exits 1 and says ok: false, like a failed command
    table = tmp_path / "people.parquet"
    pl.DataFrame({"dob_year": [1980] * 3, "sex": ["F"] * 3, "postcode_district": ["E17"] * 3}).write_parquet(table)
    res = runner.invoke(app, ["disclosure", "check", str(table), "--json", "-"])
    assert res.exit_code == 1 and json.loads(res.stdout)["ok"] is False and json.loads(res.stdout)["passed"] is False
    bad = tmp_path / "cohort.csv"
    bad.write_text("person_id\n1\n")
    out = tmp_path / "v.json"
    res = runner.invoke(app, ["validate", str(bad), "--schema", "nis", "--json", str(out)])
    assert res.exit_code == 1 and json.loads(out.read_text())["ok"] is False
