"""Equivalence classes count people, not records: a person with three police records is one person
in their class. Who is who comes from the table's person keys (person pseudonym first, then the
table's own identifier pseudonyms, the hashed name-and-date-of-birth match key, the record pseudonym)."""

from __future__ import annotations

import polars as pl

from tfkit.disclosure import apply_policy, check
from tfkit.disclosure.partners import control_tables
from tfkit.disclosure.risk import PERSON_KEYS, person_key_columns

QIS = ("dob_year", "sex")


def _police(n_people: int, records_each: int, *, linked: bool = True) -> pl.DataFrame:
    """`n_people` people of one class (born 1980, F), each with `records_each` police records."""
    rows = [(f"r{p}-{r}", f"p{p}" if linked else None, f"mk{p}", "1980-01", "F")
            for p in range(n_people) for r in range(records_each)]
    return pl.DataFrame(rows, schema={"record_id_pseudonym": pl.String, "person_id_pseudonym": pl.String,
                                      "mk_forename_surname_dob": pl.String, "dob_year_month": pl.String,
                                      "sex": pl.String}, orient="row")


def test_a_class_of_ten_records_of_four_people_is_below_k():
    police = _police(4, 3)  # 12 records, 4 people
    report = check(police, QIS, k=10)
    assert report.records == 12 and report.people == 4 and report.smallest_class == 4
    assert not report.passed and report.records_below_k == 12 and report.records_at_risk == 12
    assert report.person_key == ("person_id_pseudonym", "mk_forename_surname_dob", "record_id_pseudonym")
    # the old reading (every record a person) would have passed it
    assert check(police, QIS, k=10, person_key=()).passed
    assert report.to_dict()["person_key"] == list(report.person_key) and report.to_dict()["people"] == 4


def test_unlinked_records_of_one_person_are_one_person_by_their_match_key():
    police = _police(4, 3, linked=False)  # no person pseudonym: the hashed name and date of birth tell
    report = check(police, QIS, k=10)
    assert report.people == 4 and not report.passed
    # a linked row and an unlinked row sharing the match key are one person too
    mixed = pl.concat([_police(5, 1), _police(5, 1, linked=False).with_columns(
        pl.col("record_id_pseudonym") + "u")])
    assert check(mixed, QIS, k=10).people == 5
    # without any key, each row is a person
    assert check(police.drop(PERSON_KEYS, strict=False), QIS, k=10).people == 12


def test_the_person_table_counts_each_person_id_once():
    person = pl.DataFrame({"person_id_pseudonym": [f"p{i}" for i in range(12)], "dob_year_month": ["1980-01"] * 12,
                           "sex": ["F"] * 12, "mk_forename_surname_dob": ["same"] * 12})
    assert person_key_columns(person.columns)[0] == "person_id_pseudonym"
    assert check(person, QIS, k=10).people == 12  # person ids on every row: the match key joins nobody


def test_generalise_suppresses_a_class_of_too_few_people():
    police = pl.concat([_police(12, 1), _police(4, 3).with_columns(
        pl.col("record_id_pseudonym") + "x", pl.col("person_id_pseudonym") + "x", pl.col("mk_forename_surname_dob") + "x",
        sex=pl.lit("M"))])  # 12 women with a record each; 4 men with three each
    out, outcome = apply_policy(police, "generalise", quasi_identifiers=QIS, k=10, max_suppression=0.5)
    assert outcome.passed and outcome.records_suppressed == 12  # the men's 12 records: 4 people
    assert out.filter(pl.col("person_id_pseudonym").str.ends_with("x"))["sex"].null_count() == 12


def test_control_tables_counts_people_in_partner_tables():
    person = pl.DataFrame({"person_id_pseudonym": [f"p{i}" for i in range(20)],
                           "dob_year_month": ["1980-01"] * 20, "sex": ["F"] * 10 + ["M"] * 10})
    police = _police(4, 3)  # 4 of the women, 12 records
    tables, _, records = control_tables({"person": person, "police": police}, "person", "generalise",
                                        quasi_identifiers=QIS, k=10, sensitive=None, l=2, max_suppression=1.0)
    assert records["police"]["people"] == 4 and records["police"]["records_suppressed"] == 12
    assert records["police"]["k_anonymous"] and tables["police"]["sex"].null_count() == 12


def test_verify_warns_on_a_package_made_when_classes_counted_records(tmp_path):
    from tests.test_package_fixtures import make_bag, manifest_for, signing_pair
    from tfkit.disclosure.verification import published_summary, verify_published

    police = _police(4, 3)  # 12 records of 4 people: k-anonymous for k=10 only by records
    old = {k: v for k, v in published_summary("generalise", check(police, QIS, k=10, person_key=()), 2).items()
           if k not in ("person_key", "people")}
    assert old["k_anonymous"]
    key, _ = signing_pair(tmp_path / "keys")
    package = make_bag(tmp_path / "pkg", key, manifest=manifest_for(police.height))
    police.write_parquet(package / "data" / "person.parquet")
    status, message, _ = verify_published(package, {"disclosure": {"published": old, "tables": {"person": old}}})
    assert status == "warn" and "counting people" in message and "12 records" in message, message
    # recorded with its person key, the same data is judged by people: not k-anonymous, as recorded
    new = published_summary("generalise", check(police, QIS, k=10), 2)
    status, message, _ = verify_published(package, {"disclosure": {"published": new, "tables": {"person": new}}})
    assert status == "fail" and "NOT k-anonymous" in message
