"""Pseudonymisation policies and the vectorised pseudonymise(): contract, rules, refusals."""

import datetime as dt
import hashlib
import hmac

import polars as pl
import pytest

from tfkit.errors import ConfigError
from tfkit.pseudonymise import MasterKey, builtin_policy, load_policy, pseudonymise
from tfkit.pseudonymise.policy import builtin_policy_names, parse_policy

from .conftest import CONTRACT_KEY_HEX

KEY = MasterKey(bytes.fromhex(CONTRACT_KEY_HEX))


def nis_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "la_code": ["E09000031", "E09000031", "E09000031"],
            "family_id": ["F1", "F1", "F2"],
            "person_id": ["12345", " P2 ", "P3"],
            "forename": ["Siân", "Bob", "Al"],
            "surname": ["O'Brien-Smith", "Jones", "X"],
            "dob": [dt.date(1984, 1, 2), dt.date(1990, 5, 6), None],
            "sex": ["F", "M", "U"],
            "postcode": ["SW1A 1AA", "E17 4QP", "ZZ99 3VZ"],
            "nino": ["AB123456C", "ce 12 34 56 a", None],
            "upn": ["B801200005001", None, None],
            "nhs_number": ["9434765919", None, None],
            "problem_crime": [True, False, None],
            "problem_health": [False, False, True],
            "intervention_status": ["waiting", "completed", "in_progress"],
            "intervention_start": [None, dt.date(2016, 1, 1), dt.date(2017, 1, 1)],
            "intervention_end": [None, dt.date(2017, 1, 1), None],
            "comparison_group": [True, False, False],
        }
    )


def test_contract_vectors_through_pseudonymise():
    out = pseudonymise(nis_frame(), key=KEY, project="nis", policy=load_policy("nis"))
    row = out.row(0, named=True)
    assert row["nino_pseudonym"] == "064c5ad0b6d0173f2f23f3290da7519ac29daea0fa3d12c013e966eb382d68c0"
    assert row["nhs_number_pseudonym"] == "c9f0e1a90e949ac50f6ba6103fa9e99b9a5414d0506577a53b88e1eca11fbc48"
    assert row["upn_pseudonym"] == "296fe8f71d08f59bf42392c62950224777844991f2bde74626368a2c9dd1a543"
    assert row["person_id_pseudonym"] == "cdc61b678255e90dc584ba72af41d489077411073000de2a00532bb48cafe27f"
    assert row["mk_forename_surname_dob_postcode"] == "577032397c7d4ff695ed829cd01488ca3c08e8707258a1496e7969de54ec8701"
    other = pseudonymise(nis_frame(), key=KEY, project="fpd-2019h2", policy=load_policy("nis"))
    assert other["nino_pseudonym"][0] == "da3860f36d56bb31bea82364bc9b44cd27fbb063bf5733fb369c205355690945"


def test_default_nis_policy_columns_and_values():
    out = pseudonymise(nis_frame(), key=KEY, project="nis", policy=load_policy("nis"), match_keys=None)
    assert out.columns == [
        "la_code", "family_id_pseudonym", "person_id_pseudonym", "dob_year_month", "sex", "postcode_district",
        "nino_pseudonym", "upn_pseudonym", "nhs_number_pseudonym", "problem_crime", "problem_health",
        "intervention_status", "intervention_start", "intervention_end", "comparison_group",
    ]
    assert out["dob_year_month"].to_list() == ["1984-01", "1990-05", None]
    assert out["postcode_district"].to_list() == ["SW1A", "E17", "ZZ99"]
    # person ids are "<la_code>:<id>", trimmed; a spaced NI number is normalised before hashing
    assert out["person_id_pseudonym"][1] == KEY.pseudonym("E09000031:P2", "nis", "person_id")
    assert out["nino_pseudonym"][1] == KEY.pseudonym("CE123456A", "nis", "nino")
    assert out["family_id_pseudonym"][0] == out["family_id_pseudonym"][1] != out["family_id_pseudonym"][2]
    assert out["nino_pseudonym"][2] is None  # null stays null, never a hash of ""
    assert out.height == 3


def test_hash_distinct_path_gives_the_same_frame():
    frame = pl.concat([nis_frame()] * 50)
    a = pseudonymise(frame, key=KEY, project="nis", policy=load_policy("nis"), hash_distinct=True)
    b = pseudonymise(frame.lazy(), key=KEY, project="nis", policy=load_policy("nis"), hash_distinct=False)
    assert a.equals(b)


def test_stdlib_hmac_agrees_on_random_like_values():
    frame = nis_frame().with_columns(person_id=pl.Series([f"id-{i}" for i in range(3)]))
    out = pseudonymise(frame, key=KEY, project="p", policy=load_policy("nis"), match_keys=None)
    dk = KEY.domain_key("p", "person_id").hex().encode()
    for i in range(3):
        want = hmac.new(dk, f"E09000031:id-{i}".encode(), hashlib.sha256).hexdigest()
        assert out["person_id_pseudonym"][i] == want


def test_unknown_column_is_refused_naming_it():
    frame = nis_frame().with_columns(pl.lit("07700 900123").alias("mobile"))
    with pytest.raises(ConfigError, match="mobile") as info:
        pseudonymise(frame, key=KEY, project="nis", policy=load_policy("nis"))
    assert info.value.column == "mobile"


def test_user_override_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('match_keys = ["forename_surname_dob_postcode"]\n[columns]\nmobile = "drop"\n'
                    'dob = "generalise:age_at:2019-10-01"\npostcode = "generalise:sector"\nsex = "drop"\n')
    policy = load_policy("nis", path)
    frame = nis_frame().with_columns(pl.lit("x").alias("mobile"))
    out = pseudonymise(frame, key=KEY, project="nis", policy=policy)
    assert "mobile" not in out.columns and "sex" not in out.columns
    assert out["age_at_20191001"].to_list() == [35, 29, None]
    assert out["postcode_sector"].to_list() == ["SW1A 1", "E17 4", "ZZ99 3"]
    assert [c for c in out.columns if c.startswith("mk_")] == ["mk_forename_surname_dob_postcode"]


def test_generalise_year_and_area():
    policy = parse_policy({"columns": {"dob": "generalise:year", "postcode": "generalise:area"}}, name="t")
    out = pseudonymise(nis_frame().select("dob", "postcode"), key=KEY, project="nis", policy=policy)
    assert out["dob_year"].to_list() == [1984, 1990, None]
    assert out["postcode_area"].to_list() == ["SW", "E", "ZZ"]
    assert not any(c.startswith("mk_") for c in out.columns)  # a policy without names builds no keys


@pytest.mark.parametrize("rule", ["hash:x", "encrypt", "generalise:decade", "generalise:age_at:soon", 3])
def test_bad_rules_are_config_errors(rule):
    with pytest.raises(ConfigError, match="dob"):
        parse_policy({"columns": {"dob": rule}}, name="t")


def test_bad_policy_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[columns\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_policy("nis", bad)
    bad.write_text('colums = {}\n')
    with pytest.raises(ConfigError, match="unknown policy setting 'colums'"):
        load_policy("nis", bad)
    with pytest.raises(ConfigError, match="no built-in pseudonymisation policy"):
        builtin_policy("nope")
    with pytest.raises(ConfigError, match="not found"):
        load_policy("nis", tmp_path / "missing.toml")


def test_person_id_needs_la_code():
    frame = nis_frame().drop("la_code")
    policy = load_policy("nis")
    with pytest.raises(ConfigError, match="LA code"):
        pseudonymise(frame, key=KEY, project="nis", policy=policy)
    out = pseudonymise(frame, key=KEY, project="nis", policy=policy, la_code="E09000031")
    assert out["person_id_pseudonym"][0] == "cdc61b678255e90dc584ba72af41d489077411073000de2a00532bb48cafe27f"
    with pytest.raises(ConfigError, match="E08000001"):
        pseudonymise(nis_frame(), key=KEY, project="nis", policy=policy, la_code="E08000001")


def test_project_name_rules():
    with pytest.raises(ConfigError, match="project"):
        pseudonymise(nis_frame(), key=KEY, project="", policy=load_policy("nis"))


def test_every_builtin_schema_has_a_policy_covering_it():
    from tfkit.schemas import load_schema

    for name in builtin_policy_names():
        schema = load_schema(name)
        builtin_policy(name).check_columns(list(schema.field_names))


def test_source_line_is_bookkeeping_and_dropped():
    out = pseudonymise(nis_frame().with_row_index("_source_line"), key=KEY, project="nis",
                       policy=load_policy("nis"), match_keys=None)
    assert "_source_line" not in out.columns


def test_row_order_is_the_inputs_on_the_streaming_engine():
    n = 200_000
    frame = pl.DataFrame({"person_id": [f"P{i}" for i in range(n)]})
    policy = parse_policy({"columns": {"person_id": "hash"}}, name="t")
    out = pseudonymise(frame.lazy(), key=KEY, project="nis", policy=policy, la_code="E09000031")
    for i in (0, 1, 65_536, 131_071, 199_999):
        assert out["person_id_pseudonym"][i] == KEY.pseudonym(f"E09000031:P{i}", "nis", "person_id")


def test_output_name_clash_is_a_config_error():
    frame = nis_frame().with_columns(pl.lit("x").alias("nino_pseudonym"))
    policy = load_policy("nis").merged(parse_policy({"columns": {"nino_pseudonym": "keep"}}, name="t"))
    with pytest.raises(ConfigError, match="two columns named 'nino_pseudonym'"):
        pseudonymise(frame, key=KEY, project="nis", policy=policy)


@pytest.mark.parametrize("column", ["forename", "nhs_number", "postcode", "person_id"])
def test_a_policy_keeping_a_direct_identifier_is_refused(tmp_path, column):
    override = tmp_path / "policy.toml"
    override.write_text(f'[columns]\n{column} = "keep"\n')
    policy = load_policy("nis", override)
    with pytest.raises(ConfigError, match="direct identifier") as info:
        pseudonymise(nis_frame(), key=KEY, project="nis", policy=policy)
    assert info.value.column == column
