"""Masking for reports and logs: enough to recognise a value you already hold, not to learn one."""

from __future__ import annotations

import re

import polars as pl

# Six digits in a row (NHS number, NI number, UPN, a person id, a date) or a postcode, separators ignored.
_VALUE_SHAPES = re.compile(r"[0-9]{6}|^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$", re.IGNORECASE)


def mask(value: object) -> str | None:
    """'AB123456C' -> 'AB*******'; short values are fully masked."""
    if value is None:
        return None
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    return text[:2] + "*" * (len(text) - 2)


def mask_expr(expr: pl.Expr) -> pl.Expr:
    text = expr.cast(pl.String)
    n = text.str.len_chars()
    stars = pl.lit("*").repeat_by(n).list.join("")
    return (
        pl.when(n <= 4)
        .then(stars)
        .otherwise(text.str.slice(0, 2) + pl.lit("*").repeat_by(n - 2).list.join(""))
    )


def identifier_shaped(value: object) -> bool:
    """True for text shaped like an identifier or a date of birth (spaces, /, . and - ignored)."""
    return bool(_VALUE_SHAPES.search(re.sub(r"[\s/.-]", "", str(value))))


# A whole cell that is a value, not a name: a number of 6+ digits (an id, an NHS number, a date
# without its separators), an NI number, a UPN or a postcode.
_WHOLE_VALUE = re.compile(r"[0-9]{6,}|[A-Z]{2}[0-9]{6}[A-D]|[A-Z][0-9]{11}[0-9A-Z]|[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}",
                          re.IGNORECASE)


def header_looks_like_data(headers: "tuple[str, ...] | list[str]") -> bool:
    """A header row with two or more cells that are whole identifier values is a record: the file
    has no header row (its first record would otherwise be printed as column names)."""
    return sum(bool(_WHOLE_VALUE.fullmatch(re.sub(r"[\s/.-]", "", str(h)))) for h in headers) >= 2


def safe_headers(headers: "tuple[str, ...] | list[str]", *, all_headers=None) -> tuple[str, ...]:
    """Headers fit to print: when the header row (`all_headers`, default `headers`) looks like data,
    every one of them masked (names sit beside the identifiers); else identifier-shaped ones masked."""
    if header_looks_like_data(all_headers if all_headers is not None else headers):
        return tuple(mask(h) for h in headers)
    return tuple(mask(h) if identifier_shaped(h) else h for h in headers)
