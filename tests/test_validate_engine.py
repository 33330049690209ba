"""tfkit.schemas.validate: typed valid rows, quarantine with reasons, masked typed reports."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from tests.fixtures.contract import pandera_schema

from tfkit.io import SOURCE_LINE, read_table
from tfkit.schemas import load_schema, validate
from tfkit.validation import REPORT_FORMAT

NIS = load_schema("nis")
TODAY = dt.date(2020, 1, 1)
GOOD = {
    "LA Code": "E09000031", "Family ID": "F1", "Person ID": "P1", "Forename": "Siân", "Surname": "O'Brien",
    "Date of Birth": "03/02/1984", "Gender": "F", "Postcode": "sw1a1aa", "NI Number": "ab 12 34 56 c",
    "UPN": "b801200005001", "NHS Number": "943 476 5919", "Crime/ASB": "Y", "Education": "N",
    "Children Who Need Help": "N", "Worklessness": "Y", "Domestic Abuse": "N", "Health": "N",
    "Intervention Status": "In Progress", "Intervention Start": "2016-04-01", "Intervention End": "",
    "Comparison Group": "N",
}


def cohort(tmp_path, *changes: dict, name="cohort.csv"):
    rows = []
    for i, change in enumerate(changes):
        row = {**GOOD, "Person ID": f"P{i + 1}", **change}
        rows.append(row)
    path = tmp_path / name
    pl.DataFrame(rows, schema={k: pl.String for k in GOOD}).write_csv(path)
    return path


def run(tmp_path, *changes: dict, **kwargs):
    return validate(read_table(cohort(tmp_path, *changes)), NIS, today=TODAY, **kwargs)


def test_clean_row_is_typed_and_normalised(tmp_path):
    result = run(tmp_path, {})
    assert result.report.ok and result.quarantine.height == 0
    row = result.valid.row(0, named=True)
    assert row == {
        "la_code": "E09000031", "family_id": "F1", "person_id": "P1", "forename": "Siân", "surname": "O'Brien",
        "dob": dt.date(1984, 2, 3), "sex": "F", "postcode": "SW1A 1AA", "nino": "AB123456C", "upn": "B801200005001",
        "nhs_number": "9434765919", "problem_crime": True, "problem_education": False,
        "problem_children_in_need": False, "problem_worklessness": True, "problem_domestic_abuse": False,
        "problem_health": False, "intervention_status": "in_progress", "intervention_start": dt.date(2016, 4, 1),
        "intervention_end": None, "comparison_group": False, SOURCE_LINE: 2,
    }
    pandera_schema(NIS).validate(result.valid)  # the full pandera contract, values included


RULE_CASES = [
    ({"Date of Birth": ""}, "missing_value", "dob"),
    ({"Date of Birth": "31/02/1984"}, "invalid_date", "dob"),
    ({"Date of Birth": "02/13/1984"}, "month_first_date", "dob"),
    ({"Date of Birth": "2021-01-01"}, "date_in_future", "dob"),
    ({"Date of Birth": "1899-12-31"}, "date_too_early", "dob"),
    ({"Gender": "X"}, "invalid_code", "sex"),
    ({"Health": "maybe"}, "invalid_boolean", "problem_health"),
    ({"LA Code": "Waltham Forest"}, "pattern_mismatch", "la_code"),
    ({"NI Number": "BG123456C"}, "invalid_nino", "nino"),
    ({"UPN": "B80120000500"}, "invalid_upn", "upn"),
    ({"UPN": "A999200005001"}, "upn_la_number", "upn"),
    ({"UPN": "A801200005001"}, "upn_check_letter", "upn"),
    ({"NHS Number": "94347659"}, "invalid_nhs_number", "nhs_number"),
    ({"NHS Number": "9434765918"}, "nhs_number_check_digit", "nhs_number"),
    ({"Postcode": "QQ1 1AA"}, "invalid_postcode", "postcode"),
    ({"Intervention End": "01/01/2016"}, "end_before_start", "intervention_start+intervention_end"),
]


@pytest.mark.parametrize("change,code,field", RULE_CASES, ids=[c[1] for c in RULE_CASES])
def test_each_rule_quarantines_with_its_code(tmp_path, change, code, field):
    result = run(tmp_path, {}, change)
    assert result.valid["person_id"].to_list() == ["P1"]
    assert result.quarantine[SOURCE_LINE].to_list() == [3]
    assert result.quarantine[REASONS := "_reasons"].to_list() == [f"{code}:{field}"], REASONS
    problem = next(p for p in result.report.problems if p.code == code)
    assert (problem.field, problem.count, problem.lines, problem.severity) == (field, 1, (3,), "error")
    # Raw values are kept in the quarantine file, under the file's own headers.
    column = next(iter(change))
    assert result.quarantine[column].to_list() in ([change[column]], [None])


def test_special_postcodes_accepted_by_name(tmp_path):
    result = run(tmp_path, {"Postcode": "GIR 0AA"}, {"Postcode": "bfpo 123"}, {"Postcode": "ZZ99 3VZ"})
    assert result.valid["postcode"].to_list() == ["GIR 0AA", "BFPO 123", "ZZ99 3VZ"]


def test_table_rules(tmp_path):
    result = run(
        tmp_path,
        {"Person ID": "P1"}, {"Person ID": "P1", "Family ID": "F2"},  # duplicate person in two families
        {"Person ID": "P3", "Family ID": "F3", "Crime/ASB": "N", "Worklessness": "N"},  # family with no problem
    )
    codes = {p.code: p for p in result.report.problems}
    assert codes["duplicate_key"].lines == (2, 3)
    assert codes["person_in_several_families"].count == 2
    assert codes["too_few_headline_problems"].severity == "warning"
    assert codes["too_few_headline_problems"].lines == (4,)
    assert result.valid["person_id"].to_list() == ["P3"]  # a warning keeps its row


def test_counts_reconcile_and_row_order_is_kept(tmp_path):
    changes = [{}, {"Gender": "?"}, {}, {"NHS Number": "1"}, {"Date of Birth": "x"}, {}]
    result = run(tmp_path, *changes)
    r = result.report
    assert r.rows_in == 6 == r.rows_valid + r.rows_quarantined == result.valid.height + result.quarantine.height
    assert sorted(result.valid[SOURCE_LINE].to_list() + result.quarantine[SOURCE_LINE].to_list()) == list(range(2, 8))
    assert result.valid[SOURCE_LINE].to_list() == [2, 4, 7]


def test_identifier_values_are_masked_unless_asked(tmp_path):
    bad = {"NI Number": "TN123456C", "NHS Number": "9434765918", "Date of Birth": "2030-01-01"}
    masked = run(tmp_path, {}, bad).report
    text = json.dumps(masked.to_dict())
    for raw in ("TN123456C", "9434765918", "2030-01-01"):
        assert raw not in text
    nino = next(p for p in masked.problems if p.code == "invalid_nino")
    assert nino.examples == ("TN*******",)
    shown = run(tmp_path, {}, bad, show_values=True).report
    assert next(p for p in shown.problems if p.code == "invalid_nino").examples == ("TN123456C",)
    assert shown.to_dict()["values_shown"] is True


def test_on_invalid_null_blanks_value_and_warns(tmp_path):
    path = tmp_path / "police.csv"
    path.write_text("Record ID,First Name,Post Code,DOB\nR1,Ann,not a postcode,2001-02-03\nR2,Bob,e17 4aa,\n")
    result = validate(read_table(path), load_schema("police"), today=TODAY)
    assert result.report.ok and result.valid["postcode"].to_list() == [None, "E17 4AA"]
    problem = result.report.problems[0]
    assert (problem.code, problem.severity, problem.lines) == ("invalid_postcode", "warning", (2,))
    assert "blanked" in problem.message
    assert result.report.absent_fields == ("surname", "sex", "offence_date", "offence_category")


def test_missing_required_column_quarantines_every_row(tmp_path):
    path = tmp_path / "c.csv"
    pl.DataFrame([GOOD]).drop("Date of Birth").write_csv(path)
    result = validate(read_table(path), NIS, today=TODAY)
    assert result.valid.height == 0 and result.quarantine.height == 1
    problem = result.report.problems[0]
    assert problem.code == "missing_column" and problem.field == "dob" and "'Date of Birth'" in problem.message


def test_report_dict_structure(tmp_path):
    result = run(tmp_path, {}, {"Gender": "X"})
    d = result.report.to_dict()
    assert set(d) == {"file", "schema", "source", "valid", "rows", "columns", "values_shown", "problems"}
    assert d["rows"] == {"in": 2, "valid": 1, "quarantined": 1}
    assert d["columns"]["matched"]["sex"] == "Gender"
    assert d["problems"][0] == {
        "code": "invalid_code", "title": "not in the code list", "severity": "error", "field": "sex",
        "column": "Gender", "count": 1, "lines": [3], "examples": ["X"], "message": "sex must be one of M, F, U",
    }
    doc = json.loads(result.report.to_json())
    assert doc["format"] == REPORT_FORMAT and doc["version"] == 1 and doc["summary"]["rows_quarantined"] == 1


def test_write_outputs(tmp_path):
    result = run(tmp_path, {}, {"Gender": "X"})
    valid_path, quarantine_path = result.write(tmp_path / "out")
    assert valid_path.name == "cohort.valid.parquet" and quarantine_path.name == "cohort.quarantine.csv"
    assert pl.read_parquet(valid_path).equals(result.valid)
    back = read_table(quarantine_path)  # UTF-8 with BOM, read back with its reasons
    assert back.frame["_reasons"].to_list() == ["invalid_code:sex"]
    assert back.frame["Forename"].to_list() == ["Siân"]
    first = valid_path.read_bytes()
    result.write(tmp_path / "out")
    assert valid_path.read_bytes() == first  # deterministic


def test_demo_cohort_injected_errors_all_quarantined(tmp_path):
    demo = pytest.importorskip("tfkit.demo")
    paths = demo.write_demo(tmp_path / "demo", n_people=1500, seed=11)
    result = validate(read_table(paths["cohort"]), NIS)
    errors = pl.read_csv(paths["injected_errors"], infer_schema=False).filter(pl.col("source") == "cohort")
    invalid = errors.filter(pl.col("kind") != "duplicate_person")
    assert invalid.height
    quarantined = set(result.quarantine["Person ID"].to_list())
    assert set(invalid["record_id"].to_list()) <= quarantined
    # People registered twice are valid rows, but reported as possible duplicates.
    twice = errors.filter(pl.col("kind") == "duplicate_person")["record_id"].to_list()
    possible = next(p for p in result.report.problems if p.code == "possible_duplicate")
    flagged = set(result.valid.filter(pl.col(SOURCE_LINE).is_in(list(possible.lines)))["person_id"].to_list())
    assert possible.severity == "warning" and set(twice) & flagged
    report = result.report
    assert report.rows_in == result.valid.height + result.quarantine.height == pl.read_csv(paths["cohort"]).height
    for name, schema in (("police", "police"), ("school_attendance", "school_attendance"), ("dwp", "dwp")):
        partner = validate(read_table(paths[name]), load_schema(schema))
        assert partner.report.rows_in == partner.valid.height + partner.quarantine.height
        assert not partner.report.unmatched_columns


def test_surrounding_spaces_are_ignored_and_blank_is_missing(tmp_path):
    result = run(tmp_path, {"Gender": " m ", "Health": " y", "Date of Birth": " 03/02/1984 ", "Postcode": " e17 4aa "},
                 {"Gender": "   "}, {"Date of Birth": " 02/13/1984 "})
    assert result.valid.select("sex", "problem_health", "dob", "postcode").row(0) == (
        "M", True, dt.date(1984, 2, 3), "E17 4AA")
    assert result.quarantine["_reasons"].to_list() == ["missing_value:sex", "month_first_date:dob"]


def test_keep_valid_false_gives_the_same_report_and_quarantine(tmp_path):
    from tfkit.demo import write_demo

    paths = write_demo(tmp_path / "demo", n_people=2000, seed=7, force=True)
    raw = read_table(paths["cohort"])
    full = validate(raw, NIS, today=TODAY)
    lean = validate(raw, NIS, today=TODAY, keep_valid=False)
    assert lean.report.to_dict() == full.report.to_dict()
    assert lean.quarantine.equals(full.quarantine)
    assert full.valid.height == full.report.rows_valid
    with pytest.raises(AttributeError, match="keep_valid"):
        lean.valid


def test_code_columns_read_as_categorical_give_the_same_result(tmp_path):
    """Flag and code columns read as Categorical (read_table's `codes`) validate exactly as text:
    the demo's recording errors, blanks and padded values, and a flag column with more distinct
    values than the equality-test path handles."""
    from tfkit.demo import write_demo
    from tfkit.schemas import code_columns

    paths = write_demo(tmp_path / "demo", n_people=2000, seed=5, force=True)
    frame = pl.read_csv(paths["cohort"], infer_schema=False)
    junk = pl.Series([f" x{i} " if i % 3 else ("  " if i % 2 else None) for i in range(40)])
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) < 40).then(junk.extend_constant(None, frame.height - 40)).otherwise(pl.col("Health")).alias("Health"),
        pl.when(pl.int_range(pl.len()) % 97 == 0).then(pl.lit(" f ")).otherwise(pl.col("Gender")).alias("Gender"),
    )
    path = tmp_path / "cohort.csv"
    frame.write_csv(path)
    as_text, as_codes = read_table(path), read_table(path, codes=code_columns(NIS))
    assert as_codes.frame.schema["Health"] == pl.Categorical and as_codes.frame.schema["Surname"] == pl.String
    assert as_text.frame.schema["Health"] == pl.String
    text, codes = validate(as_text, NIS, today=TODAY), validate(as_codes, NIS, today=TODAY)
    assert codes.report.to_dict() == text.report.to_dict()
    assert codes.quarantine.equals(text.quarantine)
    assert codes.valid.equals(text.valid)
    assert text.report.rows_quarantined > 40


def test_few_value_and_many_value_paths_agree(tmp_path, monkeypatch):
    """Fields with a few values are judged once per value through equality tests (an LA code,
    flags, codes), others by lookup or row by row: forcing every field down the general path
    (_Distinct.FEW = 0) must give the same report, quarantine and typed rows."""
    from tfkit.demo import write_demo
    from tfkit.schemas import code_columns
    from tfkit.validation.engine import _Distinct

    paths = write_demo(tmp_path / "demo", n_people=1500, seed=9, force=True)
    frame = pl.read_csv(paths["cohort"], infer_schema=False)
    odd = {0: " E09000031 ", 1: "e09000031", 2: "   ", 3: "E0900003", 4: "X09000031", 5: "E09000031 "}
    frame = frame.with_columns(
        pl.int_range(pl.len()).replace_strict(odd, default=None).fill_null(pl.col("LA Code")).alias("LA Code"))
    path = tmp_path / "cohort.csv"
    frame.write_csv(path)
    raw = read_table(path, codes=code_columns(NIS))
    few = validate(raw, NIS, today=TODAY)
    monkeypatch.setattr(_Distinct, "FEW", 0)
    general = validate(raw, NIS, today=TODAY)
    assert few.report.to_dict() == general.report.to_dict()
    assert few.quarantine.equals(general.quarantine)
    assert few.valid.equals(general.valid)
    assert {"pattern_mismatch", "missing_value"} <= {p.code for p in few.report.problems if p.field == "la_code"}
