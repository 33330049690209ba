"""Disclosure control is on by default and part of verification."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.test_extract_pipeline import config, demo_dir  # noqa: F401 (fixtures)
from tests.test_package_fixtures import PERSON, make_bag, manifest_for, signing_pair
from tfkit.cli import app
from tfkit.config import load_config
from tfkit.disclosure import check
from tfkit.disclosure.verification import published_summary
from tfkit.package.verify import verify_package


def _disclosure(report):
    return next(c for c in report.checks if c.code == "disclosure")


def test_init_writes_generalise_and_it_is_the_default(tmp_path):
    path = tmp_path / "tfkit.toml"
    assert CliRunner().invoke(app, ["init", str(path)]).exit_code == 0
    assert 'policy = "generalise"' in path.read_text()
    assert load_config(path).disclosure.policy == "generalise"
    path.write_text(path.read_text().replace('policy = "generalise"', "# no policy"))
    assert load_config(path).disclosure.policy == "generalise"


def test_warn_policy_failure_is_plain_in_summary_report_and_verify(config):  # noqa: F811
    text = config.read_text()
    start = text.index("[disclosure]")
    end = text.find("\n[", start + 1)
    config.write_text(text[:start] + '[disclosure]\npolicy = "warn"\n' + (text[end + 1:] if end >= 0 else ""))
    res = CliRunner().invoke(app, ["extract", "--config", str(config)])
    assert res.exit_code == 0, res.output
    assert "DISCLOSURE CHECK FAILED for person (policy warn)" in res.stdout and "of records in classes below k" in res.stdout
    cfg = load_config(config)
    m = json.loads((cfg.package_dir / "manifest.json").read_text())
    published = m["disclosure"]["published"]
    assert published["k"] == 10 and published["quasi_identifiers"] == ["dob_year", "sex", "postcode_district"]
    assert published["smallest_class"] >= 1 and 0 < published["share_below_k"] <= 1 and not published["k_anonymous"]
    report_html = (cfg.output_root / f"{cfg.package_name}.report.html").read_text()
    assert "NOT SAFE TO SEND" in report_html
    checked = verify_package(cfg.package_dir)
    assert checked.ok and _disclosure(checked).status == "warn" and "NOT k-anonymous" in _disclosure(checked).message
    out = CliRunner().invoke(app, ["verify", str(cfg.package_dir)])
    assert "NOT k-anonymous" in out.output


def test_default_generalise_package_verifies_k_anonymous(config):  # noqa: F811
    from tfkit.pipeline import run_extract

    result = run_extract(load_config(config))
    published = result.manifest["disclosure"]["published"]
    assert published["policy"] == "generalise" and published["k_anonymous"] and published["share_below_k"] == 0
    check_ = _disclosure(verify_package(result.package))
    assert check_.status == "pass" and "k-anonymous as recorded" in check_.message


@pytest.mark.parametrize("change, words", [
    ({"smallest_class": 99}, "smallest_class: manifest.json says 99"),
    ({"share_below_k": 0.0}, "share_below_k"),
    ({"quasi_identifiers": ["no_such_column"]}, "cannot be recomputed"),
])
def test_verify_fails_when_the_recorded_figures_disagree_with_the_data(tmp_path, change, words):
    key, pub = signing_pair(tmp_path / "keys")
    manifest = manifest_for(PERSON.height)
    manifest["disclosure"] = {"published": {**published_summary("warn", check(PERSON), 2), **change}}
    report = verify_package(make_bag(tmp_path / "pkg", key, manifest=manifest), public_key=pub)
    assert not report.ok and _disclosure(report).status == "fail" and words in " ".join(
        [_disclosure(report).message, *_disclosure(report).details])


def test_verify_fails_a_generalise_package_that_is_not_k_anonymous(tmp_path):
    key, pub = signing_pair(tmp_path / "keys")
    manifest = manifest_for(PERSON.height)
    manifest["disclosure"] = {"published": published_summary("generalise", check(PERSON), 2)}
    report = verify_package(make_bag(tmp_path / "pkg", key, manifest=manifest), public_key=pub)
    assert not report.ok and "NOT k-anonymous although the policy is 'generalise'" in _disclosure(report).message


def test_verify_fails_a_package_with_no_disclosure_record(tmp_path):
    key, pub = signing_pair(tmp_path / "keys")
    manifest = manifest_for(PERSON.height)
    manifest["disclosure"] = None
    report = verify_package(make_bag(tmp_path / "pkg", key, manifest=manifest), public_key=pub)
    assert not report.ok and "records no disclosure check" in _disclosure(report).message
    assert pl.read_parquet(tmp_path / "pkg" / "data" / "person.parquet").height == PERSON.height
