"""tfkit summarise: the tables, their protection, the files written, and the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.disclosure import open_person_table, summarise
from tfkit.disclosure.summaries import period_end
from tests.fixtures.synthetic import person_table
from tfkit.disclosure.tables import SUPPRESSED

from tests.test_summarise_suppression import assert_safe

runner = CliRunner()


def make_package(root: Path, n: int, seed: int, period: str = "2019-H2", demo: bool = True) -> Path:
    package = root / f"E09000031_nis_{period}"
    (package / "data").mkdir(parents=True)
    person_table(n, seed=seed).write_parquet(package / "data" / "person.parquet")
    (package / "manifest.json").write_text(json.dumps({"period": period, "demo": demo, "la_code": "E09000031"}))
    return package


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("pkg"), 400, seed=5)


def test_tables_count_what_the_person_table_holds(package):
    people = pl.read_parquet(package / "data" / "person.parquet")
    summary = summarise(open_person_table(package), threshold=1)  # threshold 1: nothing hidden but zeros
    tables = {t.name: t for t in summary.tables}
    assert list(tables) == ["by_headline_problem", "by_number_of_problems", "by_intervention_status",
                            "by_age_band_and_sex", "by_period"]
    families = people["family_id_pseudonym"].n_unique()
    assert tables["by_period"].grid() == [[families, 400]]
    assert tables["by_intervention_status"].grid()[-1] == [families, 400]
    assert tables["by_age_band_and_sex"].grid()[-1][-1] == 400
    crime = tables["by_headline_problem"].grid()[0]
    assert crime == [people.filter(pl.col("problem_crime"))["family_id_pseudonym"].n_unique(), people["problem_crime"].sum()]
    status_people = dict(zip(tables["by_intervention_status"].rows, (r[1] for r in tables["by_intervention_status"].grid())))
    assert status_people["Waiting"] == (people["intervention_status"] == "waiting").sum()
    assert summary.reference_date == dt.date(2019, 12, 31)


def test_every_table_is_protected_against_recomputation(package):
    summary = summarise(open_person_table(package), threshold=10)
    assert sum(t.primary_count for t in summary.tables) > 0
    for table in summary.tables:
        assert_safe(table)


def test_files_written_and_rounding(package, tmp_path):
    summary = summarise(open_person_table(package), threshold=10, rounding=5)
    written = summary.write(tmp_path / "out")
    names = sorted(p.name for p in written)
    assert "summaries.xlsx" in names and "notes.txt" in names and "by_age_band_and_sex.csv" in names
    rows = list(csv.reader((tmp_path / "out" / "by_age_band_and_sex.csv").open()))
    assert rows[0] == ["Age band", "Female", "Male", "Unknown or other", "Total"]
    for row in rows[1:]:
        for value in row[1:]:
            assert value == SUPPRESSED or int(value) % 5 == 0
    from openpyxl import load_workbook

    wb = load_workbook(tmp_path / "out" / "summaries.xlsx")
    assert wb.sheetnames[0] == "Notes"
    notes = " ".join(str(c.value) for c in wb["Notes"]["A"] if c.value)
    assert "below 10" in notes and "nearest 5" in notes and "DEMO" in notes
    again = summary.write(tmp_path / "again")
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in again], "byte-identical outputs"


def test_several_periods_add_up(tmp_path):
    a = make_package(tmp_path / "a", 120, seed=1, period="2019-H1")
    b = make_package(tmp_path / "b", 150, seed=2, period="2019-H2")
    summary = summarise([open_person_table(a), open_person_table(b)], threshold=1)
    by_period = next(t for t in summary.tables if t.name == "by_period")
    assert by_period.rows == ["2019-H1", "2019-H2"] and by_period.grid()[-1][1] == 270
    assert summary.reference_date == dt.date(2019, 12, 31)


@pytest.mark.parametrize("label,end", [("2019-H2", dt.date(2019, 12, 31)), ("2019-H1", dt.date(2019, 6, 30)),
                                       ("2024-Q1", dt.date(2024, 3, 31)), ("2024-02", dt.date(2024, 2, 29)),
                                       ("2023", dt.date(2023, 12, 31)), ("2023-05-04", dt.date(2023, 5, 4)),
                                       ("spring", None), (None, None)])
def test_period_end(label, end):
    assert period_end(label) == end


def test_summarise_cli(package, tmp_path):
    result = runner.invoke(app, ["summarise", str(package), "--out", str(tmp_path / "s"), "--round", "5", "--json", "-"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["threshold"] == 10 and data["rounding"] == 5 and len(data["tables"]) == 5
    assert (tmp_path / "s" / "summaries.xlsx").is_file()


def test_summarise_cli_errors(tmp_path):
    result = runner.invoke(app, ["summarise", str(tmp_path / "missing"), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "no such file" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["summarise", str(tmp_path / "empty"), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "person.parquet is missing" in result.output
    result = runner.invoke(app, ["summarise", str(tmp_path / "empty"), "--out", str(tmp_path / "s"), "--reference-date", "soon"])
    assert result.exit_code == 2


@pytest.mark.parametrize("band", ["dob_year_band", "dob_year_band_20"])  # any rung of the ladder
def test_a_package_with_birth_year_bands_only_says_why_ages_are_missing(tmp_path, band):
    package = make_package(tmp_path, 60, seed=3)
    path = package / "data" / "person.parquet"
    people = pl.read_parquet(path)
    banded = people.with_columns(
        (pl.col("dob_year_month").str.slice(0, 3) + "0s").alias(band)).drop(
        [c for c in people.columns if c.startswith("dob")])
    banded.write_parquet(path)
    summary = summarise(open_person_table(package), threshold=1)
    notes = " ".join(summary.notes)
    assert "dob_year_band" in notes and "no date-of-birth column" not in notes
