"""Identifier rules as validate applies them: each raw value is judged in the pass on its raw text,
and rows whose raw text breaks the format are trimmed, normalised and judged again afterwards.
Whatever the path, each row's reason and typed value must be what the oracles say: python-stdnum
for NHS numbers and UPNs (its exceptions name the reason), the scalar twins in tfkit.identifiers
for the normalised value and NI numbers."""

from __future__ import annotations

import re

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import exceptions as stdnum_errors
from stdnum.gb import nhs as stdnum_nhs
from stdnum.gb import upn as stdnum_upn

from tfkit import identifiers
from tfkit.io import SOURCE_LINE, RawTable
from tfkit.validation import engine
from tfkit.schemas.model import Field, Schema

KINDS = ("nino", "upn", "nhs_number")


def _validate(kind: str, values: list[str | None]) -> tuple[list[str | None], list[str | None]]:
    """(reason code or None, typed value) per row, from validate() on a one-column table."""
    schema = Schema(name="t", title="t", version=1, fields=(Field(name="x", type="string", identifier=kind),))
    frame = pl.DataFrame({"X": values}, schema={"X": pl.String}).with_columns(
        pl.int_range(2, len(values) + 2, dtype=pl.Int64).alias(SOURCE_LINE))
    result = engine.validate(RawTable(path="t.csv", frame=frame, columns=("X",), format="csv"), schema)
    reasons = dict(zip(result.quarantine[SOURCE_LINE], result.quarantine["_reasons"], strict=True))
    reasons = [reasons.get(line) for line in frame[SOURCE_LINE]]
    typed = result._typed["x"].to_list()
    return [r.split(":")[0] if r else None for r in reasons], typed


def _stdnum_reason(kind: str, value: str | None) -> str | None:
    """The rule code python-stdnum's exceptions give (stdnum strips spaces only, as the tests' text
    has). Text that breaks the documented format is a format failure first (stdnum may look at a
    UPN's LA number before its first letter)."""
    if value is None or not value.strip():
        return None
    pattern = {"upn": identifiers.UPN_PATTERN, "nhs_number": r"^[0-9]{10}$"}[kind]
    if not re.match(pattern, stdnum_upn.compact(value) if kind == "upn" else stdnum_nhs.compact(value)):
        return {"upn": "invalid_upn", "nhs_number": "invalid_nhs_number"}[kind]
    module, codes = {
        "upn": (stdnum_upn, {"format": "invalid_upn", "component": "upn_la_number", "checksum": "upn_check_letter"}),
        "nhs_number": (stdnum_nhs, {"format": "invalid_nhs_number", "checksum": "nhs_number_check_digit"}),
    }[kind]
    try:
        module.validate(value)
    except stdnum_errors.InvalidChecksum:
        return codes["checksum"]
    except stdnum_errors.InvalidComponent:
        return codes["component"]
    except stdnum_errors.ValidationError:
        return codes["format"]
    return None


def _expected(kind: str, value: str | None) -> tuple[str | None, str | None]:
    scalar = identifiers.SCALAR_CLEANERS[kind]
    blank = value is None or not value.strip()
    normalised = None if blank else {"nino": lambda v: "".join(v.upper().split()),
                                     "upn": lambda v: "".join(v.upper().split()),
                                     "nhs_number": lambda v: "".join(v.split()).replace("-", "")}[kind](value)
    if kind == "nino":
        reason = None if blank or scalar(value) else "invalid_nino"
    else:
        reason = _stdnum_reason(kind, value)
        assert (reason is None) == (blank or scalar(value) is not None)  # the two oracles agree
    return reason, normalised


def _near_valid(kind: str) -> st.SearchStrategy[str]:
    if kind == "nhs_number":
        body = st.text("0123456789", min_size=9, max_size=9)
        valid = body.filter(lambda b: identifiers.nhs_check_digit(b) is not None).map(
            lambda b: b + str(identifiers.nhs_check_digit(b)))
        return st.one_of(valid, st.text("0123456789", min_size=9, max_size=11),
                         valid.map(lambda v: f"{v[:3]} {v[3:6]} {v[6:]}"))
    if kind == "upn":
        la = st.sampled_from(sorted(str(n) for n in identifiers.UPN_LA_NUMBERS) + ["000", "999"])
        body = st.builds(lambda la_, mid, last: la_ + mid + last, la, st.text("0123456789", min_size=8, max_size=8),
                         st.sampled_from(identifiers.UPN_ALPHABET + "0123456789"))
        valid = body.map(lambda b: identifiers.upn_check_letter(b) + b)
        return st.one_of(
            valid, valid.map(str.lower), valid.map(lambda v: f" {v[:4]} {v[4:]} "),
            st.builds(lambda first, b: first + b, st.sampled_from(identifiers.UPN_ALPHABET + "IOS1"), body),
        )
    letters = st.sampled_from(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    return st.builds(
        lambda a, b, d, s, spaced: f"{a}{b} {d[:2]} {d[2:4]} {d[4:]} {s}" if spaced else a + b + d + s,
        letters, letters, st.text("0123456789", min_size=6, max_size=6), st.sampled_from(list("ABCDE")), st.booleans(),
    ).flatmap(lambda v: st.sampled_from([v, v.lower()]))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_validate_identifier_reasons_and_values_match_the_oracles(data: st.DataObject) -> None:
    for kind in KINDS:
        values = data.draw(st.lists(
            st.one_of(st.none(), st.just("   "), st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZab -", max_size=14),
                      _near_valid(kind)),
            min_size=1, max_size=30,
        ), label=kind)
        reasons, typed = _validate(kind, values)
        expected = [_expected(kind, v) for v in values]
        assert reasons == [e[0] for e in expected], kind
        assert typed == [e[1] for e in expected], kind


@pytest.mark.parametrize("kind,values,reasons", [
    ("upn", ["B801200005001", "b801200005001", " B801 2000 05001", "A801200005001", "E000200005001",
             "X80120000A001", "", None],
     [None, None, None, "upn_check_letter", "upn_la_number", "invalid_upn", None, None]),
    ("nhs_number", ["9434765919", "943 476 5919", "943-476-5919", "9434765918", "12345", "0000000000", "-"],
     [None, None, None, "nhs_number_check_digit", "invalid_nhs_number", None, "invalid_nhs_number"]),
    ("nino", ["AB123456C", "ab 12 34 56 c", "BG123456C", "AO123456C", "AB123456E", "  "],
     [None, None, "invalid_nino", "invalid_nino", "invalid_nino", None]),
])
def test_validate_identifier_known_values(kind, values, reasons) -> None:
    assert _validate(kind, values)[0] == reasons


def test_engine_rule_codes_line_up_with_the_identifier_failures() -> None:
    assert engine.IDENTIFIER_CODES.keys() == identifiers.FAILURES.keys()
    for kind, names in identifiers.FAILURES.items():
        assert len(engine.IDENTIFIER_CODES[kind]) == len(names)
        assert engine.IDENTIFIER_CODES[kind][0].startswith("invalid_")  # code 1 is the format everywhere
