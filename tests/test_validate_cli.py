"""`tfkit validate` and `tfkit schemas`: exit codes, JSON report, quarantine outputs, clear errors."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.validation import REPORT_FORMAT

from tests.test_io_read_table import BAD_FILES
from tests.test_validate_engine import GOOD

runner = CliRunner()


def cohort(path, *changes):
    rows = [{**GOOD, "Person ID": f"P{i}", **c} for i, c in enumerate(changes)]
    pl.DataFrame(rows, schema={k: pl.String for k in GOOD}).write_csv(path)
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_all_valid_exits_0(tmp_path):
    path = cohort(tmp_path / "cohort.csv", {}, {})
    result = invoke("validate", path, "--schema", "nis")
    assert result.exit_code == 0, result.output
    assert "2 rows, 2 valid, 0 quarantined" in result.output


def test_failing_rows_exit_1_with_json_and_quarantine(tmp_path):
    path = cohort(tmp_path / "cohort.csv", {}, {"NI Number": "TN123456C"}, {"Gender": "Q"})
    out = tmp_path / "q"
    result = invoke("validate", path, "--schema", "nis", "--json", tmp_path / "r.json", "--quarantine", out)
    assert result.exit_code == 1, result.output
    assert "2 row(s) failed validation" in result.output
    assert "TN123456C" not in result.output  # masked in the table
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["format"] == REPORT_FORMAT and doc["valid"] is False
    assert doc["summary"] == {"files": 1, "rows_in": 3, "rows_valid": 1, "rows_quarantined": 2}
    assert "TN123456C" not in json.dumps(doc)
    assert {p["code"] for p in doc["files"][0]["problems"] if p["severity"] == "error"} == {"invalid_nino", "invalid_code"}
    valid = pl.read_parquet(out / "cohort.valid.parquet")
    quarantine = pl.read_csv(out / "cohort.quarantine.csv", infer_schema=False)
    assert valid.height + quarantine.height == 3
    assert quarantine["NI Number"].to_list()[0] == "TN123456C"  # raw values kept (LA-internal)
    assert quarantine["_reasons"].to_list() == ["invalid_nino:nino", "invalid_code:sex"]


def test_show_values_and_json_to_stdout(tmp_path):
    path = cohort(tmp_path / "cohort.csv", {"NI Number": "TN123456C"})
    result = invoke("validate", path, "--schema", "nis", "--json", "-", "--show-values")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["files"][0]["problems"][0]["examples"] == ["TN123456C"]


def test_several_files_and_a_user_schema_file(tmp_path):
    schema = tmp_path / "mine.toml"
    schema.write_text('[schema]\nname = "mine"\n[fields.person_id]\ntype = "string"\nrequired = true\n'
                      'aliases = ["Person ID"]\nunique = true\n')
    a = cohort(tmp_path / "a.csv", {})
    b = cohort(tmp_path / "b.csv", {}, {})
    result = invoke("validate", a, b, "--schema", schema, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [f["rows"]["in"] for f in doc["files"]] == [1, 2]
    assert doc["files"][0]["columns"]["unmatched"][0] == "LA Code"


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_exit_2_naming_the_file(tmp_path, case):
    content, expected = BAD_FILES[case]
    path = tmp_path / f"{case}.csv"
    path.write_bytes(content)
    result = invoke("validate", path, "--schema", "nis")
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and expected in result.output
    assert "Traceback" not in result.output


def test_usage_errors_exit_2(tmp_path):
    path = cohort(tmp_path / "cohort.csv", {})
    assert invoke("validate", tmp_path / "missing.csv", "--schema", "nis").exit_code == 2
    assert invoke("validate", path, "--schema", "no_such_schema").exit_code == 2
    assert invoke("validate", path).exit_code == 2  # --schema is required
    same_stem = tmp_path / "x"
    same_stem.mkdir()
    other = cohort(same_stem / "cohort.csv", {})
    result = invoke("validate", path, other, "--schema", "nis", "--quarantine", tmp_path / "q")
    assert result.exit_code == 2 and "stem" in result.output


def test_windows_1252_file_via_cli(tmp_path):
    path = tmp_path / "cp.csv"
    cohort(tmp_path / "tmp.csv", {"Forename": "Zoë"})
    path.write_bytes((tmp_path / "tmp.csv").read_text(encoding="utf-8").encode("windows-1252"))
    result = invoke("validate", path, "--schema", "nis", "--quarantine", tmp_path / "q")
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(tmp_path / "q" / "cp.valid.parquet")["forename"].to_list() == ["Zoë"]
    wrong = invoke("validate", tmp_path / "tmp.csv", "--schema", "nis", "--encoding", "windows-1252")
    assert wrong.exit_code == 2 and "garble" in wrong.output


def test_json_log_format_and_quiet(tmp_path):
    path = cohort(tmp_path / "cohort.csv", {"NI Number": "TN123456C"})
    result = invoke("--log-format", "json", "validate", path, "--schema", "nis")
    assert result.exit_code == 1
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    validated = next(e for e in events if e["event"] == "validated")
    assert validated["rows_quarantined"] == 1 and "TN123456C" not in result.stderr
    quiet = invoke("--quiet", "validate", path, "--schema", "nis")
    assert quiet.exit_code == 1 and "severity" not in quiet.stdout


def test_schemas_list_and_show():
    listed = invoke("schemas", "list")
    assert listed.exit_code == 0
    for name in ("nis", "fpd", "police", "school_attendance", "dwp"):
        assert name in listed.output
    shown = invoke("schemas", "show", "nis")
    assert shown.exit_code == 0 and "problem_crime" in shown.output and "Crime/ASB" in shown.output
    as_json = json.loads(invoke("schemas", "show", "school_attendance", "--json", "-").output)
    assert next(f for f in as_json["fields"] if f["name"] == "forename")["aliases"][0] == "GIVEN_NAME"
    assert invoke("schemas", "show", "nope").exit_code == 2


def test_xlsx_and_parquet_extracts(tmp_path):
    import openpyxl

    path = tmp_path / "cohort.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "NIS"
    wb.active.append(list(GOOD))
    wb.active.append([GOOD[k] for k in GOOD])
    wb.active.append([{"NHS Number": "9434765918"}.get(k, GOOD[k]) for k in GOOD])
    wb.save(path)
    result = invoke("validate", path, "--schema", "nis", "--sheet", "NIS", "--json", tmp_path / "x.json")
    assert result.exit_code == 1, result.output
    doc = json.loads((tmp_path / "x.json").read_text())["files"][0]
    assert doc["source"] == {"format": "xlsx", "encoding": None, "sheet": "NIS", "line_label": "row", "blank_lines": 0}
    assert doc["problems"][0]["code"] == "nhs_number_check_digit" and doc["problems"][0]["lines"] == [3]
    parquet = tmp_path / "cohort.parquet"
    pl.DataFrame([GOOD]).write_parquet(parquet)
    assert invoke("validate", parquet, "--schema", "nis").exit_code == 0


def test_values_and_headers_are_not_rich_markup(tmp_path):
    path = tmp_path / "[odd] cohort.csv"
    cohort(path, {"Gender": "[bold]"})
    result = invoke("validate", path, "--schema", "nis")
    assert result.exit_code == 1, result.output
    assert "[bold]" in result.output and "[odd] cohort.csv" in result.output


def test_a_fixed_quarantine_file_validates_again(tmp_path):
    path = cohort(tmp_path / "cohort.csv", {}, {"Gender": "X"})
    assert invoke("validate", path, "--schema", "nis", "--quarantine", tmp_path / "q").exit_code == 1
    quarantined = tmp_path / "q" / "cohort.quarantine.csv"
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(quarantined.read_text(encoding="utf-8-sig").replace(",X,", ",F,"), encoding="utf-8")
    result = invoke("validate", fixed, "--schema", "nis", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "r.json").read_text())["files"][0]
    assert doc["columns"]["unmatched"] == ["_source_line_in_file", "_reasons"]


def test_validate_at_a_terminal_shows_progress_and_still_reports(tmp_path, monkeypatch):
    from tfkit import console

    monkeypatch.setattr(console, "interactive", lambda: True)  # as if stderr were a terminal
    good = tmp_path / "cohort.csv"
    pl.DataFrame([GOOD], schema={k: pl.String for k in GOOD}).write_csv(good)
    result = CliRunner().invoke(app, ["validate", str(good), "--schema", "nis"])
    assert result.exit_code == 0, result.output
    assert "cohort.csv" in result.output and "1" in result.output
