"""`--sheet`: one option, one meaning, in every command that reads extracts (.xlsx among them).

validate had it, extract has `sheet` per source in its config; link and pseudonymise read .xlsx
too but could only read a workbook's first sheet.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.demo import generate_frames

from tests.fixtures.demo_frames import cohort_and_partners

runner = CliRunner()
READERS = ("validate", "link", "pseudonymise")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def workbook(frame: pl.DataFrame, path: Path) -> Path:
    """`frame` on a second sheet, "Data", behind a "Notes" sheet (as LAs' exports often are)."""
    book = Workbook()
    book.active.title = "Notes"
    book.active.append(["Extract for the Supporting Families return; data on the next sheet"])
    data = book.create_sheet("Data")
    data.append(frame.columns)
    for row in frame.cast(pl.String).iter_rows():
        data.append(list(row))
    book.save(path)
    return path


def test_sheet_is_one_option_with_one_meaning():
    from tests.test_cli_shape import _commands

    options = {name: (tuple(p.opts), p.metavar, p.help) for name, command in _commands() for p in command.params
               if "--sheet" in getattr(p, "opts", ())}
    assert set(READERS) <= set(options) and len(set(options.values())) == 1, options


@pytest.fixture(scope="module")
def linked_workbooks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sheets")
    frames = cohort_and_partners(generate_frames(150, seed=5), n_right=150, seed=0)
    return frames, [workbook(f.drop("person_key"), folder / f"{name}.xlsx") for name, f in frames.items()]


@pytest.mark.parametrize("sheet", ["Data", "1"])
def test_link_reads_the_sheet_named(linked_workbooks, tmp_path, sheet):
    frames, paths = linked_workbooks
    r = invoke("link", *paths, "--sheet", sheet, "--out", tmp_path / "out", "--json", "-")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert [i["rows_read"] for i in summary["inputs"]] == [f.height for f in frames.values()]
    assert summary["links"] > 0


def test_link_names_a_missing_sheet(linked_workbooks, tmp_path):
    _, paths = linked_workbooks
    r = invoke("link", *paths, "--sheet", "Offences", "--out", tmp_path / "out")
    assert r.exit_code == 2, r.output
    assert "no sheet 'Offences'" in r.output and "Notes, Data" in r.output and "Traceback" not in r.output


def test_pseudonymise_reads_the_sheet_named(tmp_path):
    assert invoke("demo-data", "--out", tmp_path / "extracts", "--people", 40).exit_code == 0
    assert invoke("keys", "generate", "--out", tmp_path / "master.key").exit_code == 0
    cohort = pl.read_csv(tmp_path / "extracts" / "cohort.csv", infer_schema=False)
    book = workbook(cohort, tmp_path / "cohort.xlsx")
    r = invoke("pseudonymise", book, "--sheet", "Data", "-s", "nis", "--project", "nis", "--key",
               tmp_path / "master.key", "--quarantine", tmp_path / "q", "--out", tmp_path / "c.parquet", "--json", "-")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows_in"] == cohort.height
    # Without it the first sheet is read: the notes, which are not the extract (a clear refusal).
    r = invoke("pseudonymise", book, "-s", "nis", "--project", "nis", "--key", tmp_path / "master.key",
               "--out", tmp_path / "d.parquet")
    assert r.exit_code in (1, 2) and "Traceback" not in r.output and "Data" in r.output, r.output
