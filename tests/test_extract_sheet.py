"""An .xlsx extract whose data is not on its first sheet: extract's sources take `sheet = "NAME"` (or
a 0-based index) as validate takes --sheet, and a first sheet with no data names the workbook's
sheets and how to choose one."""

from __future__ import annotations

import csv

import openpyxl
from typer.testing import CliRunner

from tests.test_extract_pipeline import demo_dir  # noqa: F401  (the 300-person demo inputs and keys)
from tfkit.cli import app
from tfkit.config import load_config


def _workbook(demo_dir, path):
    wb = openpyxl.Workbook()
    wb.active.title = "Notes"
    wb.active.append(["Exported from the case management system"])
    data = wb.create_sheet("Cohort")
    with open(demo_dir / "inputs" / "cohort.csv", encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            data.append(row)
    wb.save(path)
    return path


def _config(demo_dir, tmp_path, sheet_line: str):
    book = _workbook(demo_dir, tmp_path / "cohort.xlsx")
    text = (demo_dir / "tfkit.toml").read_text()
    for rel in ("inputs/", "keys/"):
        text = text.replace(f'"{rel}', f'"{demo_dir}/{rel}')
    text = text.replace(f'"{demo_dir}/inputs/cohort.csv"', f'"{book}"{sheet_line}')
    text = text.replace('root = "packages"', f'root = "{tmp_path / "packages"}"')
    text = text.replace('quarantine_dir = "quarantine"', f'quarantine_dir = "{tmp_path / "quarantine"}"')
    text = text.replace("[disclosure]\n", "[disclosure]\nmax_suppression = 0.5\n", 1)  # a small cohort
    path = tmp_path / "tfkit.toml"
    path.write_text(text)
    return path


def test_a_source_names_its_sheet(demo_dir, tmp_path):
    for sheet in ('"Cohort"', "1"):
        config = _config(demo_dir, tmp_path, f"\nsheet = {sheet}")
        assert load_config(config).sources[0].sheet in ("Cohort", 1)
        res = CliRunner().invoke(app, ["extract", "-c", str(config), "--force"])
        assert res.exit_code == 0, res.output
        assert "cohort: 300 rows in" in res.stdout


def test_the_wrong_sheet_lists_the_sheets_and_the_way_to_choose(demo_dir, tmp_path):
    res = CliRunner().invoke(app, ["extract", "-c", str(_config(demo_dir, tmp_path, ""))])
    assert res.exit_code == 2
    assert "sheets: Notes, Cohort" in res.output and "sheet = " in res.output, res.output
    res = CliRunner().invoke(app, ["validate", str(tmp_path / "cohort.xlsx"), "--schema", "nis"])
    assert res.exit_code == 2 and "sheets: Notes, Cohort" in res.output and "--sheet" in res.output, res.output
    res = CliRunner().invoke(app, ["extract", "-c", str(_config(demo_dir, tmp_path, '\nsheet = "Nope"'))])
    assert res.exit_code == 2 and "has no sheet 'Nope'" in res.output and "Notes, Cohort" in res.output
