"""Config loading: typed, checked once, errors naming the file, the key and the fix."""

from __future__ import annotations

import pytest

from tfkit.config import STARTER_CONFIG, load_config
from tfkit.disclosure.settings import DisclosureSettings
from tfkit.errors import ConfigError, UsageError

BASE = '''
la_code = "E09000031"
return = "nis"
period = "2019-H2"
[[sources]]
name = "cohort"
path = "cohort.csv"
schema = "nis"
'''


def load(tmp_path, text):
    path = tmp_path / "tfkit.toml"
    path.write_text(text)
    return load_config(path)


def test_defaults_and_relative_paths(tmp_path):
    cfg = load(tmp_path, BASE)
    assert cfg.package_name == "E09000031_nis_2019-H2"
    assert cfg.sources[0].path == tmp_path.resolve() / "cohort.csv" and cfg.sources[0].table == "person"
    assert cfg.output_root == tmp_path.resolve() / "packages"
    assert cfg.audit_log == cfg.output_root / "audit.jsonl"
    assert cfg.project == "nis" and cfg.retention_days == 1826 and not cfg.demo
    assert cfg.with_period("2020-H1").package_name == "E09000031_nis_2020-H1"
    assert len(cfg.sha256) == 64


@pytest.mark.parametrize("text, key, words", [
    (BASE.replace('"E09000031"', '"Hackney"'), "la_code", "not a GSS code"),
    (BASE.replace('"nis"\nperiod', '"xyz"\nperiod'), "return", "unknown return"),
    (BASE.replace('"2019-H2"', '"autumn"'), "period", "is not a period"),
    (BASE + "\n[retention]\ndays = \"five years\"\n", "retention.days", "must be a whole number"),
    (BASE + "\n[output]\nroot = \"out\"\nquarantine_dir = \"out/q\"\n", "output.quarantine_dir", "must not be inside"),
    ("colour = \"blue\"\n" + BASE, "colour", "unknown key"),
    (BASE.replace('schema = "nis"', ''), "sources[1].schema", "required key is missing"),
    (BASE + "\n[disclosure]\npolicy = \"ignore\"\n", "disclosure.policy", "unknown policy"),
    (BASE + "\n[disclosure]\nk = 1\n", "disclosure.k", "at least 2"),
    (BASE + "\n[disclosure]\nquasi_identifiers = []\n", "disclosure.quasi_identifiers", "distinct column names"),
    (BASE + "\n[disclosure]\nquasi_identifiers = [\"sex\", \"sex\"]\n", "disclosure.quasi_identifiers", "distinct"),
    (BASE + "\n[disclosure]\nl = 2\n", "disclosure.l", "needs the sensitive"),
    (BASE + "\n[disclosure]\nmax_suppression = 1.5\n", "disclosure.max_suppression", "between 0 and 1"),
    (BASE + "\n[disclosure]\nepsilon = 1\n", "disclosure.epsilon", "unknown key"),
])
def test_errors_name_file_and_key(tmp_path, text, key, words):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert err.value.key == key and words in err.value.message
    assert str(tmp_path / "tfkit.toml") in str(err.value)


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path, "la_code = ")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_period_override_checked(tmp_path):
    with pytest.raises(UsageError, match="not a period"):
        load(tmp_path, BASE).with_period("2019/20")


def test_starter_config_loads(tmp_path):
    cfg = load(tmp_path, STARTER_CONFIG)
    assert cfg.withdrawals.name == "consent_withdrawals.csv" and cfg.signing_key.name == "signing.key"


def test_disclosure_settings(tmp_path):
    assert load(tmp_path, BASE).disclosure == DisclosureSettings()
    cfg = load(tmp_path, BASE + """
[disclosure]
policy = "generalise"
k = 5
quasi_identifiers = ["dob_year", "sex"]
sensitive = "problem_health"
l = 2
max_suppression = 0.1
""")
    assert cfg.disclosure == DisclosureSettings(policy="generalise", k=5, quasi_identifiers=("dob_year", "sex"),
                                                sensitive="problem_health", l=2, max_suppression=0.1)
