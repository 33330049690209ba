"""A file checked against the wrong schema: one header-level problem per missing field, and a hint."""

from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.demo import write_demo
from tfkit.io import read_table
from tfkit.schemas import load_schema, validate


def test_wrong_schema_is_a_header_problem_with_a_suggestion(tmp_path):
    files = write_demo(tmp_path / "demo", 50, 7, "E09000031", 0.0)
    result = validate(read_table(files["police"]), load_schema("nis"))
    missing = [p for p in result.report.problems if p.code == "missing_column"]
    assert missing and all(p.lines == () for p in missing)
    assert all("--schema police" in p.message for p in missing)
    assert result.valid.height + result.quarantine.height == read_table(files["police"]).n_rows

    out = CliRunner().invoke(app, ["validate", str(files["police"]), "--schema", "nis"])
    assert out.exit_code == 1
    assert "is --schema police meant?" in out.output
    assert "required column(s) missing" in out.output and "source system" not in out.output


def test_no_suggestion_when_nothing_fits(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("Colour,Shape\nred,round\n")
    result = validate(read_table(path), load_schema("nis"))
    assert all("is --schema" not in p.message for p in result.report.problems)
