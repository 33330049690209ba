"""Schemas: built-ins, TOML loading with clear ConfigErrors, aliases, problems as data."""

from __future__ import annotations

import string

import polars as pl
import pytest

from tests.fixtures.contract import pandera_schema
from hypothesis import given, settings
from hypothesis import strategies as st

from tfkit.errors import ConfigError
from tfkit.io import RawTable, SOURCE_LINE
from tfkit.schemas import (
    builtin_schema_names, header_key, list_schemas, load_schema, match_columns, schema_from_toml, validate,
)

DEMO_HEADERS = {
    "nis": ["LA Code", "Family ID", "Person ID", "Forename", "Surname", "Date of Birth", "Gender", "Postcode",
            "NI Number", "UPN", "NHS Number", "Crime/ASB", "Education", "Children Who Need Help", "Worklessness",
            "Domestic Abuse", "Health", "Intervention Status", "Intervention Start", "Intervention End",
            "Comparison Group"],
    "police": ["Record ID", "First Name", "Last Name", "DOB", "Sex", "Post Code", "Offence Date", "Offence Category"],
    "school_attendance": ["Pupil Ref", "UPN", "GIVEN_NAME", "FAMILY_NAME", "BIRTH_DATE", "GENDER", "POSTCODE",
                          "School URN", "Sessions Possible", "Sessions Missed"],
    "dwp": ["Claim Ref", "NINO", "Forename", "Surname", "DOB", "Postcode", "Benefit", "Claim Start"],
}
NIS_FIELDS = ["la_code", "family_id", "person_id", "forename", "surname", "dob", "sex", "postcode", "nino", "upn",
              "nhs_number", "problem_crime", "problem_education", "problem_children_in_need", "problem_worklessness",
              "problem_domestic_abuse", "problem_health", "intervention_status", "intervention_start",
              "intervention_end", "comparison_group"]


def raw_table(columns: dict[str, list], path="t.csv") -> RawTable:
    n = len(next(iter(columns.values())))
    frame = pl.DataFrame({k: pl.Series(v, dtype=pl.String) for k, v in columns.items()}).with_columns(
        pl.int_range(2, n + 2, dtype=pl.Int64).alias(SOURCE_LINE))
    return RawTable(path=path, frame=frame, columns=tuple(columns), format="csv")


def test_builtins_load_and_list():
    assert builtin_schema_names() == ["dwp", "fpd", "nis", "police", "school_attendance"]
    assert [s.name for s in list_schemas()] == builtin_schema_names()
    nis = load_schema("nis")
    assert list(nis.field_names) == NIS_FIELDS
    assert [f.name for f in nis.headline_problems] == NIS_FIELDS[11:17]
    assert nis.headline_problem_minimum == 2
    assert nis.identifier_fields == {"postcode": "postcode", "nino": "nino", "upn": "upn", "nhs_number": "nhs_number"}
    assert nis.polars_schema["dob"] == pl.Date and nis.polars_schema["problem_crime"] == pl.Boolean


@pytest.mark.parametrize("name", sorted(DEMO_HEADERS))
def test_demo_headers_match_every_field_of_their_schema(name):
    schema = load_schema(name)
    match = match_columns(raw_table({h: ["x"] for h in DEMO_HEADERS[name]}), schema)
    assert match.unmatched == ()
    expected_absent = ("sex",) if name == "dwp" else ()
    assert match.absent == expected_absent


def test_fpd_says_its_measure_list_is_a_default():
    fpd = load_schema("fpd")
    assert "not public" in (fpd.description or "")
    assert fpd.group("measure")


TEN_OUTCOMES = ["education", "early_years", "mental_health", "substance_use", "crime", "domestic_abuse",
                "safe_children", "financial_stability", "housing", "family_relationships"]


def ten_outcome_toml() -> str:
    lines = ['[schema]\nname = "supporting_families"\ntitle = "Supporting Families (ten outcomes)"\n'
             "headline_problem_minimum = 3\n",
             '[fields.family_id]\ntype = "string"\nrequired = true\naliases = ["Family Ref"]\n',
             '[fields.person_id]\ntype = "string"\nrequired = true\nunique = true\n']
    for outcome in TEN_OUTCOMES:
        lines.append(f'[fields.outcome_{outcome}]\ntype = "boolean"\nrequired = true\ngroup = "headline_problem"\n'
                     f'title = "{outcome}"\n')
    lines.append('[[rules]]\ntype = "headline_problem_minimum"\nfields = ["family_id"]\n')
    return "\n".join(lines)


def test_supporting_families_ten_outcomes_need_no_code_change(tmp_path):
    path = tmp_path / "sf.toml"
    path.write_text(ten_outcome_toml())
    schema = load_schema(path)
    assert len(schema.headline_problems) == 10
    flags = {f"outcome_{o}": ["Y", "N", "N"] for o in TEN_OUTCOMES}
    flags["outcome_housing"] = ["Y", "Y", "N"]
    flags["outcome_crime"] = ["N", "N", "Y"]
    raw = raw_table({"Family Ref": ["F1", "F1", "F2"], "person_id": ["1", "2", "3"], **flags})
    result = validate(raw, schema)
    assert result.valid.height == 3 and result.valid["outcome_housing"].to_list() == [True, True, False]
    # Family F1 meets all ten outcomes (row 1 says Y to each); F2 meets one only.
    warning = [p for p in result.report.problems if p.code == "too_few_headline_problems"]
    assert warning and warning[0].severity == "warning" and warning[0].lines == (4,)
    assert "fewer than 3" in warning[0].message


def test_pandera_contract_describes_each_builtin_output_frame():
    for schema in list_schemas():
        frame = pl.DataFrame({f.name: pl.Series([], dtype=f.dtype) for f in schema.fields}).with_columns(
            pl.lit(None, dtype=pl.Int64).alias(SOURCE_LINE))
        pandera_schema(schema).validate(frame)


BAD_SCHEMAS = {
    "not toml": ("[schema\n", "not valid TOML", None),
    "unknown section": ('[schema]\nname="x"\n[fieldz.a]\ntype="string"\n', "key 'fieldz'", None),
    "no name": ('[fields.a]\ntype="string"\n', "key 'schema.name'", None),
    "no fields": ('[schema]\nname="x"\n', "key 'fields'", None),
    "bad type": ('[schema]\nname="x"\n[fields.a]\ntype="text"\n', "key 'fields.a.type'", "use one of"),
    "missing type": ('[schema]\nname="x"\n[fields.a]\nrequired=true\n', "key 'fields.a.type'", None),
    "wrong value type": ('[schema]\nname="x"\n[fields.a]\ntype="string"\nrequired="yes"\n', "key 'fields.a.required'", None),
    "unknown key": ('[schema]\nname="x"\n[fields.a]\ntype="string"\nrequird=true\n', "key 'fields.a.requird'", "known keys here"),
    "bad identifier": ('[schema]\nname="x"\n[fields.a]\ntype="string"\nidentifier="ssn"\n', "key 'fields.a.identifier'", None),
    "code without codes": ('[schema]\nname="x"\n[fields.a]\ntype="code"\n', "key 'fields.a.codes'", None),
    "alias to unknown code": ('[schema]\nname="x"\n[fields.a]\ntype="code"\ncodes=["M"]\ncode_aliases={Male="X"}\n', "code_aliases.Male", None),
    "key for other type": ('[schema]\nname="x"\n[fields.a]\ntype="string"\ncodes=["M"]\n', "applies to code fields", None),
    "bad pattern": ('[schema]\nname="x"\n[fields.a]\ntype="string"\npattern="(["\n', "key 'fields.a.pattern'", None),
    "bad date": ('[schema]\nname="x"\n[fields.a]\ntype="date"\nearliest="1/1/1900"\n', "key 'fields.a.earliest'", "YYYY-MM-DD"),
    "clashing aliases": ('[schema]\nname="x"\n[fields.a]\ntype="string"\naliases=["First Name"]\n'
                         '[fields.b]\ntype="string"\naliases=["first_name"]\n', "also matches field", None),
    "rule unknown field": ('[schema]\nname="x"\n[fields.a]\ntype="string"\n[[rules]]\ntype="unique"\nfields=["b"]\n',
                           "key 'rules[1].fields'", None),
    "rule unknown type": ('[schema]\nname="x"\n[fields.a]\ntype="string"\n[[rules]]\ntype="sorted"\nfields=["a"]\n',
                          "key 'rules[1].type'", None),
    "problem not boolean": ('[schema]\nname="x"\n[fields.a]\ntype="string"\ngroup="headline_problem"\n', "key 'fields.a.group'", None),
    "null on required": ('[schema]\nname="x"\n[fields.a]\ntype="string"\nrequired=true\non_invalid="null"\n', "on_invalid", None),
}


@pytest.mark.parametrize("case", sorted(BAD_SCHEMAS))
def test_schema_errors_name_file_key_and_fix(tmp_path, case):
    text, expected, hint = BAD_SCHEMAS[case]
    path = tmp_path / "my_schema.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_schema(path)
    message = str(err.value)
    assert str(path) in message and expected in message
    assert err.value.hint and (hint is None or hint in err.value.hint)


def test_unknown_schema_name_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown schema 'nope'"):
        load_schema("nope")
    with pytest.raises(ConfigError, match="not found"):
        load_schema(tmp_path / "missing.toml")


def test_two_headers_for_one_field_is_an_input_error():
    from tfkit.errors import InputFileError

    with pytest.raises(InputFileError, match="both match schema field 'forename'"):
        match_columns(raw_table({"Forename": ["a"], "First Name": ["b"]}), load_schema("nis"))


# ---------------------------------------------------------------- alias matching (property tests)

_SEPARATORS = st.sampled_from([" ", "_", "-", "", "  ", ".", "/"])


@st.composite
def spelled(draw, alias: str) -> str:
    """The alias as another export might spell it: any case, any separators between words."""
    words = [w for w in "".join(c if c.isalnum() else " " for c in alias).split()]
    out = []
    for i, word in enumerate(words):
        out.append("".join(draw(st.sampled_from([c.lower(), c.upper()])) for c in word))
        if i < len(words) - 1:
            out.append(draw(_SEPARATORS))
    return draw(st.sampled_from(["", " "])) + "".join(out) + draw(st.sampled_from(["", " "]))


NIS = load_schema("nis")
ALIASES = [(f.name, a) for f in NIS.fields for a in (f.name, *f.aliases)]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), pair=st.sampled_from(ALIASES))
def test_any_spelling_of_an_alias_matches_its_field(data, pair):
    field, alias = pair
    header = data.draw(spelled(alias))
    match = match_columns(raw_table({header.strip() or "x": ["v"]}), NIS)
    assert match.fields == {field: header.strip()}


@given(st.text(alphabet=string.ascii_letters + " _-", min_size=1, max_size=20))
def test_header_key_ignores_case_and_separators(text):
    assert header_key(text) == header_key(text.upper().replace(" ", "_")) == header_key(text.lower().replace("-", " "))
