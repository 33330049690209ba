"""The run report's disclosure section shows every published table's check, not the person table's
alone: a partner table left unsafe under `warn` is flagged there as plainly as the person table."""

from __future__ import annotations

from tfkit.report import render_run_report


def _table(name: str, ok: bool, records: int = 700) -> dict:
    return {"policy": "warn", "k": 10, "l": 2, "quasi_identifiers": ["dob_year", "sex", "postcode_district"],
            "records": records, "smallest_class": 10 if ok else 1, "records_below_k": 0 if ok else 300,
            "share_below_k": 0.0 if ok else 0.43, "fully_suppressed": 0, "k_anonymous": ok,
            "records_suppressed": 0, "share_suppressed": 0.0}


def _disclosure(police_ok: bool) -> dict:
    after = {"k": 10, "records": 980, "records_at_risk": 0, "passed": True, "quasi_identifiers": ["dob_year"]}
    return {"policy": "warn", "passed": True, "before": after, "after": after, "changed": False,
            "tables": {"person": _table("person", True), "police": _table("police", police_ok),
                       "school_attendance": _table("school_attendance", True, records=0)}}


def test_every_table_is_listed_with_its_check():
    page = render_run_report({"disclosure": _disclosure(True)})
    assert "Every published table" in page
    for name in ("person", "police", "school_attendance"):
        assert f"<td>{name}</td>" in page
    assert "NOT SAFE TO SEND" not in page


def test_an_unsafe_partner_table_is_flagged():
    page = render_run_report({"disclosure": _disclosure(False)})
    assert "NOT SAFE TO SEND" in page and "police" in page.split("NOT SAFE TO SEND", 1)[1].split("</p>", 1)[0]
    assert "status warn" in page.split("id=\"disclosure\"", 1)[1][:400]


def test_when_the_person_table_fails_too_the_banner_lists_every_unsafe_table():
    disclosure = _disclosure(False)
    disclosure["passed"] = False
    disclosure["after"] = {**disclosure["after"], "records_at_risk": 500, "passed": False}
    disclosure["tables"]["person"] = _table("person", False)
    banner = render_run_report({"disclosure": disclosure}).split("NOT SAFE TO SEND", 1)[1].split("</p>", 1)[0]
    assert "Tables not k-anonymous: person, police." in banner


def test_an_empty_source_is_called_empty_not_valid():
    validation = {"police": {"file": "police.csv", "schema": {"name": "police"}, "valid": True,
                             "rows": {"in": 0, "valid": 0, "quarantined": 0}, "problems": []}}
    page = render_run_report({"validation": validation})
    assert "empty: no rows this period" in page
