"""What a new user met on their own files (qa8): each a defect found by hand, fixed, and kept fixed here."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tfkit.io import read_table
from tfkit.schemas import load_schema, validate

TODAY = dt.date(2026, 1, 1)
DOB = load_schema("nis").field("dob")
births = st.dates(min_value=dt.date(1930, 1, 1), max_value=dt.date(2020, 12, 31))


def _dob_only_schema(tmp_path):
    path = tmp_path / "people.toml"
    path.write_text('[schema]\nname = "people"\nversion = 1\n[fields.person_id]\ntype = "string"\nrequired = true\n'
                    '[fields.dob]\ntype = "date"\nrequired = true\n')
    return load_schema(path)


def _validated(tmp_path, texts: list[str]):
    path = tmp_path / "people.csv"
    pl.DataFrame({"person_id": [f"P{i}" for i in range(len(texts))], "dob": texts}).write_csv(path)
    return validate(read_table(path), _dob_only_schema(tmp_path), today=TODAY)


@settings(max_examples=60, deadline=None)
@given(st.lists(births, min_size=1, max_size=40), st.lists(births.filter(lambda d: d.day > 12), min_size=3, max_size=10, unique=True))
def test_a_month_first_export_never_gives_a_wrong_date_that_looks_valid(tmp_path_factory, dates, telling):
    """An analyst exported dates of birth as mm/dd/yyyy (US settings in Excel). The rows whose day
    is over 12 were refused, but 03/04/2001 was read as 3 April, silently, a wrong date passing as
    valid. Now, in a column that is mostly month-first, a date that reads both ways is refused too
    (ambiguous_date): every date that passes is the one the file meant."""
    every = dates + telling
    result = _validated(tmp_path_factory.mktemp("us"), [d.strftime("%m/%d/%Y") for d in every])
    meant = dict(zip([f"P{i}" for i in range(len(every))], every, strict=True))
    for person, dob in result.valid.select("person_id", "dob").iter_rows():
        assert dob == meant[person]
    codes = {p.code for p in result.report.problems}
    assert "month_first_date" in codes
    both_ways = [d for d in every if d.day <= 12 and d.day != d.month]
    assert ("ambiguous_date" in codes) == bool(both_ways)


@settings(max_examples=60, deadline=None)
@given(st.lists(births, min_size=1, max_size=40))
def test_a_day_first_export_is_read_as_before(tmp_path_factory, dates):
    result = _validated(tmp_path_factory.mktemp("uk"), [d.strftime("%d/%m/%Y") for d in dates])
    assert result.report.ok and result.valid["dob"].to_list() == dates


def test_one_month_first_typo_in_a_day_first_file_leaves_its_other_dates_alone(tmp_path):
    texts = ["03/02/1984", "02/13/1984", "25/12/1990", "04/05/2000"]
    result = _validated(tmp_path, texts)
    assert result.valid["person_id"].to_list() == ["P0", "P2", "P3"]
    assert [p.code for p in result.report.problems] == ["month_first_date"]
