"""What extract says about disclosure control, table by table: every log line and summary line
names its table, a partner table failing under `warn` is shown as plainly as the person table, and a
cohort too small for k at the widest levels says which levels were tried and what is left to do."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.pipeline import prepare_demo


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    prepare_demo(out, people=300, partners=("police",))
    return out


def _config(demo_dir, tmp_path, disclosure: str):
    text = (demo_dir / "tfkit.toml").read_text()
    for rel in ("inputs/", "keys/"):
        text = text.replace(f'"{rel}', f'"{demo_dir}/{rel}')
    text = text.replace('root = "packages"', f'root = "{tmp_path / "packages"}"')
    text = text.replace('quarantine_dir = "quarantine"', f'quarantine_dir = "{tmp_path / "quarantine"}"')
    head, _ = text.split("[disclosure]", 1)
    path = tmp_path / "tfkit.toml"
    path.write_text(head + "[disclosure]\n" + disclosure + "\n")
    return path


def test_warn_names_every_failing_table_in_the_log_and_the_summary(demo_dir, tmp_path):
    res = CliRunner().invoke(app, ["extract", "-c", str(_config(demo_dir, tmp_path, 'policy = "warn"'))])
    assert res.exit_code == 0, res.output
    for table in ("person", "police"):
        assert f"warning: disclosure ({table}): " in res.stderr, res.stderr
        assert f"  DISCLOSURE CHECK FAILED for {table} (policy warn)" in res.stdout, res.stdout


def test_generalise_names_each_table_and_its_levels(demo_dir, tmp_path):
    config = _config(demo_dir, tmp_path, 'policy = "generalise"\nmax_suppression = 0.5')
    res = CliRunner().invoke(app, ["extract", "-c", str(config)])
    assert res.exit_code == 0, res.output
    assert "disclosure (person): generalised dob_year -> dob_year_band_20, postcode_district -> postcode_area" in res.stderr
    assert "disclosure (police): at the person table's levels (dob_year_band_20, sex, postcode_area); suppressed" \
        in res.stderr, res.stderr
    assert "generalised nothing" not in res.stderr
    for table in ("person", "police"):
        assert f"  disclosure, {table}: k-anonymous (k=10 over dob_year_band_20, sex, postcode_area" in res.stdout


def test_too_small_to_reach_k_names_the_best_levels_tried(demo_dir, tmp_path):
    # the 300-person return passes at the default limit (10%); at 1% it cannot
    config = _config(demo_dir, tmp_path, 'policy = "generalise"\nmax_suppression = 0.01')
    res = CliRunner().invoke(app, ["extract", "-c", str(config)])
    assert res.exit_code == 1, res.output
    out = " ".join(res.output.split())
    assert "of police" in out and ("even generalised as far as helps (best levels tried: dob_year_band_20, sex, "
                                   "postcode_district removed)") in out, out
    assert "drop a quasi-identifier" in out and "max_suppression" in out
