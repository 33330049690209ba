"""Text-to-type parsers as polars expressions, with scalar twins for tests.

Each `parse_X(text)` takes an expression of trimmed text (null for blank) and returns the typed
value, null where the text does not parse. Failure classification lives in tfkit.schemas.validate.

Dates accept, and only accept, forms whose meaning is certain:
  * ISO `yyyy-mm-dd` (also `yyyy/mm/dd`), optionally followed by a time (`2001-02-03 10:00:00`,
    `2001-02-03T10:00:00Z`): what Parquet, databases and Excel date cells give;
  * UK day-first `dd/mm/yyyy`, `d/m/yyyy` (also with `-` or `.`), optionally with a time;
  * Excel serial day numbers of five or more digits (`36925` = 2001-02-03, fractional part = time
    of day; 10000 is 1927-05-18), 1900 date system. A shorter number cannot carry a year, month and
    day: `1` is not 1900-01-01, and a bare 4-digit number (a year?) is refused too.
A time, where given, must be a real one: hours 0-23, minutes and seconds 0-59 (`25:00` is refused).
`mm/dd/yyyy` is never guessed: `02/13/2001` is refused (code month_first_date), not swapped; and in
a column whose dates are mostly month-first, a date that reads both ways (`03/04/2001`) is refused
too (code ambiguous_date): read day-first it would be a wrong date that looks valid.
Two-digit years are refused (the century would be a guess).
"""

from __future__ import annotations

import datetime as dt
import re

import polars as pl

_TIME = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?"
ISO_DATE = rf"^(\d{{4}})[-/](\d{{1,2}})[-/](\d{{1,2}})(?:[T ]{_TIME}(?:Z|[+-]\d{{2}}:?\d{{2}})?)?$"
DAY_FIRST_DATE = rf"^(\d{{1,2}})[/.-](\d{{1,2}})[/.-](\d{{4}})(?:[T ]{_TIME})?$"
EXCEL_SERIAL = r"^(\d{1,7})(?:\.\d+)?$"
# A value of nothing but white space and invisible format characters (zero-width spaces and
# joiners, direction marks, BOMs, soft hyphens: Unicode category Cf) is missing, not present.
BLANK_TEXT = r"^[\s\p{Cf}]*$"
_MIN_EXCEL_SERIAL = 10_000  # 1927-05-18: fewer digits cannot hold a year, month and day
_EXCEL_EPOCH_SERIAL = 25569  # serial number of 1970-01-01 in Excel's 1900 date system
_MAX_EXCEL_SERIAL = 2_958_465  # 9999-12-31


def _ymd(y: pl.Expr, m: pl.Expr, d: pl.Expr) -> pl.Expr:
    return pl.concat_str([y, m, d], separator="-").str.to_date("%Y-%m-%d", strict=False)


def parse_date(text: pl.Expr) -> pl.Expr:
    """Date from ISO, day-first or Excel-serial text; null where none applies or the date is impossible."""
    iso = text.str.extract_groups(ISO_DATE)
    dmy = text.str.extract_groups(DAY_FIRST_DATE)
    serial = text.str.extract(EXCEL_SERIAL, 1).cast(pl.Int64, strict=False)
    serial_date = (
        pl.when(serial.is_between(_MIN_EXCEL_SERIAL, _MAX_EXCEL_SERIAL))
        .then(serial - _EXCEL_EPOCH_SERIAL)
        .otherwise(None)
        .cast(pl.Int32)
        .cast(pl.Date)
    )
    return pl.coalesce(
        _ymd(iso.struct.field("1"), iso.struct.field("2"), iso.struct.field("3")),
        _ymd(dmy.struct.field("3"), dmy.struct.field("2"), dmy.struct.field("1")),
        serial_date,
    )


def _slash_parts(text: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """The first and second numbers of a slash (or dot, dash) date, as integers; null otherwise."""
    dmy = text.str.extract_groups(DAY_FIRST_DATE)
    return dmy.struct.field("1").cast(pl.Int32, strict=False), dmy.struct.field("2").cast(pl.Int32, strict=False)


def looks_month_first(text: pl.Expr) -> pl.Expr:
    """True where a slash date can only be read month-first (second number 13-31, first 1-12)."""
    first, second = _slash_parts(text)
    return (first.is_between(1, 12) & second.is_between(13, 31)).fill_null(False)


def looks_day_first(text: pl.Expr) -> pl.Expr:
    """True where a slash date can only be read day-first (first number 13-31, second 1-12)."""
    first, second = _slash_parts(text)
    return (first.is_between(13, 31) & second.is_between(1, 12)).fill_null(False)


def reads_both_ways(text: pl.Expr) -> pl.Expr:
    """True where a slash date means two different dates day-first and month-first (both numbers
    1-12 and unequal: 03/04/2001), so only the column's other dates can tell which it is."""
    first, second = _slash_parts(text)
    return (first.is_between(1, 12) & second.is_between(1, 12) & (first != second)).fill_null(False)


def parse_date_scalar(value: str | None) -> dt.date | None:
    """The same rules as parse_date, for one value (tests and one-off use)."""
    if value is None:
        return None
    text = value.strip()
    if m := re.fullmatch(ISO_DATE, text):
        y, mo, d = m.groups()
    elif m := re.fullmatch(DAY_FIRST_DATE, text):
        d, mo, y = m.groups()
    elif m := re.fullmatch(EXCEL_SERIAL, text):
        serial = int(m.group(1))
        if _MIN_EXCEL_SERIAL <= serial <= _MAX_EXCEL_SERIAL:
            return dt.date(1899, 12, 30) + dt.timedelta(days=serial)
        return None
    else:
        return None
    try:
        return dt.date(int(y), int(mo), int(d))
    except ValueError:
        return None


def parse_integer(text: pl.Expr) -> pl.Expr:
    """Whole numbers; '12.0' (as Excel writes them) is 12, '12.5' is not an integer."""
    return text.str.replace(r"^([+-]?\d+)\.0*$", "$1").cast(pl.Int64, strict=False)


def parse_boolean(text: pl.Expr, true_values: tuple[str, ...], false_values: tuple[str, ...]) -> pl.Expr:
    mapping = {v: True for v in true_values} | {v: False for v in false_values}
    return text.str.to_uppercase().replace_strict(mapping, default=None, return_dtype=pl.Boolean)


def code_key(expr: pl.Expr) -> pl.Expr:
    """How code values are compared: ignoring case, spaces and punctuation (as header_key)."""
    return expr.str.to_lowercase().str.replace_all(r"[\W_]+", "")


def parse_code(text: pl.Expr, mapping: dict[str, str]) -> pl.Expr:
    """The canonical code for text, via `mapping` {code_key: canonical code}; null if unknown."""
    return code_key(text).replace_strict(mapping, default=None, return_dtype=pl.String)
