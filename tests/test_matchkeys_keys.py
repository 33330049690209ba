"""Hashed match keys: contract vector, components, and hierarchical linking on them."""

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from tfkit.errors import ConfigError
from tfkit.pseudonymise import MasterKey, default_match_keys, link_on_match_keys, match_key, select_match_keys
from tfkit.pseudonymise.match_keys import match_key_string_expr

from .conftest import CONTRACT_KEY_HEX

KEY = MasterKey(bytes.fromhex(CONTRACT_KEY_HEX))


def people(**cols) -> pl.DataFrame:
    base = {"forename": ["Siân"], "surname": ["O'Brien-Smith"], "dob": [dt.date(1984, 1, 2)],
            "sex": ["F"], "postcode": ["sw1a 1aa"], "nino": ["ab 123456 c"]}
    base.update(cols)
    return pl.DataFrame(base)


def key_string(name: str, frame: pl.DataFrame) -> list:
    return frame.select(match_key_string_expr(match_key(name), frame.schema)).to_series().to_list()


def test_contract_match_key_vector():
    frame = people()
    assert key_string("forename_surname_dob_postcode", frame) == ["SIAN|OBRIENSMITH|19840102|SW1A1AA"]
    mk = match_key("forename_surname_dob_postcode")
    assert mk.field == "mk/forename_surname_dob_postcode" and mk.column == "mk_forename_surname_dob_postcode"
    from tfkit.pseudonymise.match_keys import match_key_expr

    got = frame.select(match_key_expr(mk, frame.schema, KEY, "nis")).item()
    assert got == "577032397c7d4ff695ed829cd01488ca3c08e8707258a1496e7969de54ec8701"


def test_components():
    f = people(forename=["Siân", "Bob"], surname=["O'Brien-Smith", "Jones"],
               dob=[dt.date(1984, 1, 2), dt.date(1984, 2, 1)], sex=["F", "U"],
               postcode=["SW1A 1AA", "ZZ99 3VZ"], nino=["AB123456C", "BG123456C"])
    assert key_string("initial_surname_dob_postcode", f) == ["S|OBRIENSMITH|19840102|SW1A1AA", None]
    # day/month swap: 2 Jan and 1 Feb give the same dob_swap
    assert key_string("forename_surname_dobswap_postcode", f)[0] == "SIAN|OBRIENSMITH|19840102|SW1A1AA"
    swapped = f.with_columns(pl.Series("dob", [dt.date(1984, 2, 1), None]), pl.Series("postcode", ["SW1A1AA", None]))
    assert key_string("forename_surname_dobswap_postcode", swapped)[0] == "SIAN|OBRIENSMITH|19840102|SW1A1AA"
    assert key_string("sortednames_dob_postcode", f)[0] == "OBRIENSMITH|SIAN|19840102|SW1A1AA"
    transposed = f.with_columns(forename=pl.col("surname"), surname=pl.col("forename"))
    assert key_string("sortednames_dob_postcode", transposed)[0] == "OBRIENSMITH|SIAN|19840102|SW1A1AA"
    assert key_string("surname_dob_postcode_sex", f) == ["OBRIENSMITH|19840102|SW1A1AA|F", None]  # U is empty
    assert key_string("initial_surname_dob_sector", f)[0] == "S|OBRIENSMITH|19840102|SW1A1"
    assert key_string("forename_surname_yob_postcode", f)[0] == "SIAN|OBRIENSMITH|1984|SW1A1AA"
    assert key_string("nino", f) == ["AB123456C", None]  # never-issued prefix BG: empty


def test_empty_components_make_a_null_key():
    f = people(forename=["!!", None], surname=["X", "Y"], dob=[dt.date(2000, 1, 1)] * 2,
               sex=["M"] * 2, postcode=["E17 4QP"] * 2, nino=[None, None])
    assert key_string("forename_surname_dob_postcode", f) == [None, None]


def test_default_list_is_ordered_and_documented():
    names = [k.name for k in default_match_keys()]
    assert names[:4] == ["nino", "nhs_number", "upn", "forename_surname_dob_postcode"]
    assert len(set(names)) == len(names)
    doc = (Path(__file__).parents[1] / "docs" / "match-keys.md").read_text(encoding="utf-8")
    for name in names:
        assert f"`mk_{name}`" in doc


def test_select_match_keys():
    cols = ["forename", "surname", "dob", "sex", "postcode"]
    assert "nino" not in [k.name for k in select_match_keys("default", cols)]
    with pytest.raises(ConfigError, match="nino"):
        select_match_keys(["nino"], cols)
    with pytest.raises(ConfigError, match="unknown match key"):
        select_match_keys(["shoe_size"], cols)
    assert select_match_keys(None, cols) == ()


# --------------------------------------------------------------------------- linking


def extract(rows: list[tuple], ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"person_id_pseudonym": ids, "mk_k1": [r[0] for r in rows], "mk_k2": [r[1] for r in rows]},
                        schema={"person_id_pseudonym": pl.String, "mk_k1": pl.String, "mk_k2": pl.String})


def test_hierarchical_one_to_one():
    a = extract([("x", "p"), ("y", "q"), ("d", "r"), ("d", "s"), (None, "t")], ["a0", "a1", "a2", "a3", "a4"])
    b = extract([("x", "p"), ("z", "q"), ("d", "r"), ("d", "s"), ("w", "t"), (None, "p")],
                ["b0", "b1", "b2", "b3", "b4", "b5"])
    pairs, counts = link_on_match_keys(a, b, ["k1", "k2"])
    assert pairs.rows() == [
        (0, 0, "a0", "b0", "k1"),       # k1 unique both sides
        (1, 1, "a1", "b1", "k2"),       # k1 differs, k2 agrees
        (2, 2, "a2", "b2", "k2"),       # k1 "d" is many-to-many: not taken; k2 then resolves
        (3, 3, "a3", "b3", "k2"),
        (4, 4, "a4", "b4", "k2"),
    ]
    # b5 shares k2 "p" with a0, but a0 was already matched by k1: not offered again
    k1, k2 = counts
    assert (k1.pairs, k1.ambiguous_values, k1.ambiguous_a, k1.ambiguous_b) == (1, 1, 2, 2)
    assert (k2.offered_a, k2.offered_b, k2.pairs) == (4, 5, 4)


def test_one_to_many_for_event_level_extracts():
    a = extract([("x", "p"), ("y", "q")], ["a0", "a1"])
    b = extract([("x", "p"), ("x", "p"), ("y2", "q"), ("x2", "p")], ["b0", "b1", "b2", "b3"])
    one, _ = link_on_match_keys(a, b, ["k1", "k2"])
    assert one.select("a_row", "b_row").rows() == [(1, 2)]  # x is 1-to-2: ambiguous one-to-one
    many, counts = link_on_match_keys(a, b, ["k1", "k2"], one_to_many=True)
    assert many.select("a_row", "b_row", "match_key").rows() == [(0, 0, "k1"), (0, 1, "k1"), (0, 3, "k2"), (1, 2, "k2")]


def test_link_errors():
    a = extract([("x", "p")], ["a0"])
    with pytest.raises(ConfigError, match="mk_k9"):
        link_on_match_keys(a, a, ["k9"])
    with pytest.raises(ConfigError, match="share no match-key"):
        link_on_match_keys(a, a)  # k1/k2 are not documented keys


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

names = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "M", "Zs", "Pd", "Po")), max_size=12)


@settings(max_examples=25, deadline=None)
@given(names, names, st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2030, 12, 31)))
def test_swap_tolerant_keys_are_symmetric(forename, surname, dob):
    f = people(forename=[forename], surname=[surname], dob=[dob])
    swapped_dob = dob.replace(month=dob.day, day=dob.month) if dob.day <= 12 and not (dob.month == 2 and dob.day > 28) else dob
    g = people(forename=[surname], surname=[forename], dob=[swapped_dob])
    assert key_string("sortednames_dob_postcode", f) == key_string("sortednames_dob_postcode", g.with_columns(dob=f["dob"]))
    same_names = f.with_columns(dob=pl.Series([swapped_dob]))
    assert key_string("forename_surname_dobswap_postcode", f) == key_string("forename_surname_dobswap_postcode", same_names)
    for value in key_string("forename_surname_dob_postcode", f):
        assert value is None or ("||" not in value and not value.startswith("|") and value.isascii())


def test_staged_build_gives_the_same_strings_as_one_key_at_a_time():
    from tfkit.pseudonymise.match_keys import match_key_stages

    f = people(forename=["Siân", "Bob", None, "Zoë"], surname=["O'Brien-Smith", "Jones", "X", "Ng"],
               dob=[dt.date(1984, 1, 2), dt.date(1984, 2, 1), None, dt.date(2001, 12, 3)],
               sex=["F", "U", "M", "F"], postcode=["SW1A 1AA", "ZZ99 3VZ", "E17 4QP", "bad"],
               nino=["AB123456C", "BG123456C", None, "ce 12 34 56 a"])
    keys = select_match_keys("default", f.columns)
    assert len(keys) == 10  # all but nhs_number and upn
    bases, parts, strings = match_key_stages(keys, f.schema)
    staged = f.lazy().with_columns(bases).with_columns(parts).select(
        [e.alias(c) for c, e in strings.items()]).collect()
    for k in keys:
        assert staged[k.column].to_list() == key_string(k.name, f), k.name
