"""The engine's NHS-number and UPN failure codes (integer arithmetic on shared intermediate
columns) agree with the reference expressions of tfkit.identifiers on arbitrary text."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tfkit import identifiers
from tfkit.schemas.engine import _failure, _identifier_parts, _v
from tfkit.schemas.model import Field

_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ -"


def _engine_failures(kind: str, values: list[str | None]) -> list[str | None]:
    field = Field(name="x", type="string", identifier=kind)
    normalised = identifiers.NORMALISERS[kind](pl.col("raw"))
    lf = pl.LazyFrame({"raw": values}, schema={"raw": pl.String}).with_columns(normalised.alias(_v("x")))
    lf = lf.with_columns(_identifier_parts(field))
    return lf.select(_failure(field, None)).collect().to_series().to_list()  # type: ignore[arg-type]


def _reference(kind: str, values: list[str | None]) -> list[str | None]:
    n = identifiers.NORMALISERS[kind](pl.col("raw"))
    if kind == "upn":
        codes = {"format": "invalid_upn", "la_number": "upn_la_number", "check_letter": "upn_check_letter"}
        expr = identifiers.upn_failure(n).replace_strict(codes, default=None, return_dtype=pl.String)
    else:
        expr = (
            pl.when(~n.str.contains(r"^[0-9]{10}$")).then(pl.lit("invalid_nhs_number"))
            .when(~identifiers.nhs_number_is_valid(n)).then(pl.lit("nhs_number_check_digit"))
        )
    return pl.DataFrame({"raw": values}, schema={"raw": pl.String}).select(expr).to_series().to_list()


def _near_valid(kind: str) -> st.SearchStrategy[str]:
    if kind == "nhs_number":
        return st.text("0123456789", min_size=9, max_size=11)
    la = st.sampled_from(sorted(str(n) for n in identifiers.UPN_LA_NUMBERS) + ["000", "999"])
    return st.builds(
        lambda first, la_, mid, last: first + la_ + mid + last,
        st.sampled_from(identifiers.UPN_ALPHABET + "IOS1"), la, st.text("0123456789", min_size=8, max_size=8),
        st.sampled_from(identifiers.UPN_ALPHABET + "0123456789IOS"),
    )


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_engine_identifier_failures_match_reference(data: st.DataObject) -> None:
    for kind in ("nhs_number", "upn"):
        values = data.draw(st.lists(
            st.one_of(st.none(), st.text(_CHARS, max_size=14), _near_valid(kind)), min_size=1, max_size=30,
        ))
        assert _engine_failures(kind, values) == _reference(kind, values)


def test_engine_identifier_failures_known_values() -> None:
    upns = ["B801200005001", "A801200005001", "E000200005001", "X80120000A001", None, ""]
    assert _engine_failures("upn", upns) == _reference("upn", upns)
    nhs = ["943 476 5919", "9434765918", "12345", "999-000-0018", None, "", "0000000000"]
    assert _engine_failures("nhs_number", nhs) == _reference("nhs_number", nhs)


def test_upn_character_values_from_bytes_match_the_table() -> None:
    from tfkit.schemas.engine import _upn_char_value

    chars = list(identifiers._UPN_CHAR_VALUE)
    got = pl.DataFrame({"c": chars}).select(_upn_char_value(pl.col("c"))).to_series().to_list()
    assert got == [identifiers._UPN_CHAR_VALUE[c] for c in chars]
