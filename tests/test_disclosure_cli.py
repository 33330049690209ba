"""tfkit disclosure check: exit codes, JSON, and inputs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tests.fixtures.synthetic import person_table

runner = CliRunner()


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "person.parquet"
    person_table(600, seed=9).write_parquet(path)
    return path


def test_exit_1_when_records_are_in_small_classes(table, tmp_path):
    result = runner.invoke(app, ["disclosure", "check", str(table), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    assert "FAIL" in result.stdout and "disclosure check failed" in result.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] is False and data["records_below_k"] > 0 and data["k"] == 10


def test_exit_0_when_it_passes_and_json_to_stdout(table):
    result = runner.invoke(app, ["disclosure", "check", str(table), "--qi", "sex", "--k", "5", "--json", "-"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["passed"] is True and data["quasi_identifiers"] == ["sex"]


def test_sensitive_column_and_csv_input(tmp_path):
    path = tmp_path / "p.csv"
    person_table(200, seed=2).write_csv(path)
    result = runner.invoke(app, ["disclosure", "check", str(path), "--qi", "sex", "--k", "1", "--sensitive", "problem_crime", "--json", "-"])
    data = json.loads(result.stdout)
    assert data["diversity"][0]["column"] == "problem_crime"


def test_quiet_json_logs(table):
    result = runner.invoke(app, ["--log-format", "json", "disclosure", "check", str(table), "--qi", "sex", "--k", "5"])
    assert result.exit_code == 0 and result.stdout == ""
    events = [json.loads(line)["event"] for line in result.stderr.splitlines()]
    assert "disclosure_checked" in events


def test_user_mistakes_exit_2(table, tmp_path):
    assert runner.invoke(app, ["disclosure", "check", str(table), "--qi", "shoe_size"]).exit_code == 2
    assert runner.invoke(app, ["disclosure", "check", str(tmp_path / "none.parquet")]).exit_code == 2
    (tmp_path / "x.txt").write_text("hello")
    assert runner.invoke(app, ["disclosure", "check", str(tmp_path / "x.txt")]).exit_code == 2


def test_a_package_is_checked_on_the_quasi_identifiers_it_published(tmp_path):
    import polars as pl

    package = tmp_path / "E09000031_nis_2019-H2"
    (package / "data").mkdir(parents=True)
    # as extract's generalise policy publishes it: banded years and postcode areas, no dob_year
    pl.DataFrame({"dob_year_band": ["2000-2004"] * 12, "sex": ["F"] * 12, "postcode_area": ["E"] * 12}).write_parquet(
        package / "data" / "person.parquet")
    (package / "manifest.json").write_text(json.dumps({"disclosure": {"published": {
        "k": 10, "quasi_identifiers": ["dob_year_band", "sex", "postcode_area"]}}}))
    result = runner.invoke(app, ["disclosure", "check", str(package), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["quasi_identifiers"] == ["dob_year_band", "sex", "postcode_area"]


def test_an_empty_table_says_no_records_not_none(table, tmp_path):
    import polars as pl

    empty = tmp_path / "police.parquet"
    pl.read_parquet(table).head(0).write_parquet(empty)
    result = runner.invoke(app, ["disclosure", "check", str(empty)])
    assert result.exit_code == 0, result.output
    assert "no records: nothing to check" in result.stdout and "None" not in result.stdout
