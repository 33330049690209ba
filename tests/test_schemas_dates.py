"""Date parsing: ISO, day-first, Excel serials and date-times; month-first is never guessed."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tfkit.schemas.parsing import looks_month_first, parse_date, parse_date_scalar

DATES = st.dates(min_value=dt.date(1900, 3, 1), max_value=dt.date(2099, 12, 31))


def parse_all(values: list[str | None]) -> list[dt.date | None]:
    return pl.DataFrame({"t": pl.Series(values, dtype=pl.String)}).select(parse_date(pl.col("t")).alias("d"))["d"].to_list()


def excel_serial(d: dt.date) -> int:
    return (d - dt.date(1899, 12, 30)).days


@st.composite
def spellings(draw, d: dt.date) -> str:
    form = draw(st.sampled_from(["iso", "iso_time", "iso_t", "dmy", "d_m_y", "dmy_dash", "dmy_time", "serial", "serial_time"]))
    return {
        "iso": f"{d:%Y-%m-%d}",
        "iso_time": f"{d:%Y-%m-%d} 00:00:00",
        "iso_t": f"{d:%Y-%m-%d}T13:45:00Z",
        "dmy": f"{d:%d/%m/%Y}",
        "d_m_y": f"{d.day}/{d.month}/{d.year}",
        "dmy_dash": f"{d:%d-%m-%Y}",
        "dmy_time": f"{d:%d/%m/%Y} 09:30",
        "serial": str(excel_serial(d)),
        "serial_time": f"{excel_serial(d)}.25",
    }[form]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), dates=st.lists(DATES, min_size=1, max_size=20))
def test_every_accepted_spelling_gives_the_date(data, dates):
    texts = [data.draw(spellings(d)) for d in dates]
    # A serial of fewer than five digits (before 1927-05-18) cannot hold a year, month and day: refused.
    expected = [None if t.split(".")[0].isdigit() and int(t.split(".")[0]) < 10_000 else d for t, d in zip(texts, dates)]
    assert parse_all(texts) == expected
    assert [parse_date_scalar(t) for t in texts] == expected


@settings(max_examples=200, deadline=None)
@given(DATES.filter(lambda d: d.day > 12))
def test_month_first_is_never_guessed(d):
    text = f"{d.month:02d}/{d.day:02d}/{d.year}"
    assert parse_all([text]) == [None]
    assert parse_date_scalar(text) is None
    flags = pl.DataFrame({"t": [text]}).select(looks_month_first(pl.col("t")).alias("m"))["m"].to_list()
    assert flags == [True]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789/-.: T", max_size=22))
def test_expression_and_scalar_agree_on_any_text(text):
    assert parse_all([text.strip() or None]) == [parse_date_scalar(text.strip() or None)]


def test_known_values():
    values = ["13/25/2001", "02/13/2001", "31/02/2001", "29/02/2001", "29/02/2000", "03/02/01", "60", "61", "1",
              "36925", "1984", "2001-02-03T10:00:00+01:00", "", None, "yesterday", "2001/02/03"]
    assert parse_all(values) == [
        None, None, None, None, dt.date(2000, 2, 29), None, None, None, None,
        dt.date(2001, 2, 3), None, dt.date(2001, 2, 3), None, None, None, dt.date(2001, 2, 3),
    ]


def test_a_date_needs_a_year_month_and_day_and_a_time_must_be_real():
    values = ["1", "59", "9999", "10000", "2010-01-01 25:00:00", "2010-01-01 23:60", "19/06/1976 24:00",
              "19/06/1976 23:59:59", "2010-01-01T00:00:60Z"]
    expected = [None, None, None, dt.date(1927, 5, 18), None, None, None, dt.date(1976, 6, 19), None]
    assert parse_all(values) == expected
    assert [parse_date_scalar(v) for v in values] == expected
