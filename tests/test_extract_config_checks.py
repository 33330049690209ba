"""Config mistakes caught before any work: a return labelled as another kind (return = "fpd" with the
nis schema, or the reverse), and a mistyped quasi-identifier or sensitive column in [disclosure]
(named with the key, the value and the valid columns, before any source is read)."""

from __future__ import annotations

import importlib.resources as res

import pytest
from typer.testing import CliRunner

from tests.test_extract_config import BASE, load
from tfkit.cli import app
from tfkit.errors import ConfigError
from tfkit.pipeline import prepare_demo


@pytest.mark.parametrize("text, words", [
    (BASE.replace('return = "nis"', 'return = "fpd"'), ['return = "fpd"', "'nis' schema", 'return = "nis"']),
    (BASE.replace('schema = "nis"', 'schema = "fpd"'), ['return = "nis"', "'fpd' schema", 'return = "fpd"']),
    (BASE.replace('schema = "nis"', 'schema = "police"'), ["'police' schema", "partner source"]),
])
def test_a_return_labelled_as_another_is_refused(tmp_path, text, words):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert err.value.key == "return" and err.value.exit_code == 2
    assert all(w in str(err.value) for w in words), str(err.value)


def test_a_schema_file_is_judged_by_the_name_it_declares(tmp_path):
    own = tmp_path / "my_fpd.toml"
    own.write_text(res.files("tfkit.schemas.builtin").joinpath("fpd.toml").read_text())
    with pytest.raises(ConfigError, match="'fpd' schema"):
        load(tmp_path, BASE.replace('schema = "nis"', 'schema = "my_fpd.toml"'))
    assert load(tmp_path, BASE.replace('schema = "nis"', 'schema = "my_fpd.toml"')
                .replace('return = "nis"', 'return = "fpd"')).return_type == "fpd"
    own.write_text(own.read_text().replace('name = "fpd"', 'name = "our_progress_data"'))
    assert load(tmp_path, BASE.replace('schema = "nis"', 'schema = "my_fpd.toml"')).return_type == "nis"


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    prepare_demo(out, people=50, partners=())
    return out


@pytest.mark.parametrize("setting, key, words", [
    ('quasi_identifiers = ["dob_yaer", "sex", "postcode_district"]', "disclosure.quasi_identifiers",
     ["'dob_yaer'", "did you mean 'dob_year'?", "valid columns:", "postcode_district", "dob_year_month"]),
    ('sensitive = "problem_helth"', "disclosure.sensitive", ["'problem_helth'", "did you mean 'problem_health'?"]),
])
def test_a_mistyped_disclosure_column_stops_the_run_before_any_work(demo_dir, tmp_path, setting, key, words):
    text = (demo_dir / "tfkit.toml").read_text()
    for rel in ("inputs/", "keys/"):
        text = text.replace(f'"{rel}', f'"{demo_dir}/{rel}')
    text = text.replace('root = "packages"', f'root = "{tmp_path / "packages"}"')
    text = text.replace('quarantine_dir = "quarantine"', f'quarantine_dir = "{tmp_path / "quarantine"}"')
    text = text.replace("[disclosure]\n", f"[disclosure]\n{setting}\n", 1)
    (tmp_path / "tfkit.toml").write_text(text)
    res = CliRunner().invoke(app, ["extract", "-c", str(tmp_path / "tfkit.toml")])
    assert res.exit_code == 2, res.output
    out = " ".join(res.output.split())
    assert f"key '{key}'" in out and all(w in out for w in words), out
    assert "read cohort" not in res.output and "Traceback" not in res.output  # before any source is read
    assert not (tmp_path / "packages").exists() and not (tmp_path / "quarantine").exists()
