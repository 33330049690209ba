"""--json on a failed run: cron reads the JSON, so a failure writes {"ok": false, ...} there too. Before,
a failed `extract --json run.json` left the previous run's {"ok": true} in place (a stale success) and
`--json -` printed nothing. A target refused by its own check (inside the package, over an input) is
never written."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.test_extract_pipeline import config, demo_dir  # noqa: F401  (the 300-person demo config)
from tfkit.cli import app


def _refusing(config):  # noqa: F811
    """The demo config asking k = 100 with at most 1% blanked: this small cohort is refused (exit 1)."""
    config.write_text(config.read_text().replace("max_suppression = 0.5\n", "k = 100\nmax_suppression = 0.01\n"))
    return config


def test_a_failed_extract_replaces_a_stale_json_file(config, tmp_path):  # noqa: F811
    out = tmp_path / "run.json"
    out.write_text('{"ok": true, "from": "the last run"}')
    res = CliRunner().invoke(app, ["extract", "-c", str(_refusing(config)), "--json", str(out)])
    assert res.exit_code == 1
    doc = json.loads(out.read_text())
    assert doc["ok"] is False and doc["exit_code"] == 1 and "max_suppression" in doc["error"]["message"]
    assert doc["error"]["type"] == "DisclosureRiskTooHigh" and doc["error"]["hint"]


def test_json_dash_on_failure_is_one_json_document_on_stdout(config):  # noqa: F811
    res = CliRunner().invoke(app, ["extract", "-c", str(_refusing(config)), "--json", "-"])
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 1


def test_a_user_error_is_written_too_but_a_refused_target_never(tmp_path):
    out = tmp_path / "v.json"
    res = CliRunner().invoke(app, ["validate", str(tmp_path / "missing.csv"), "--schema", "nis", "--json", str(out)])
    assert res.exit_code == 2 and json.loads(out.read_text())["error"]["message"] == "file not found"
    extract = tmp_path / "cohort.csv"
    extract.write_text("person_id\n1\n")
    res = CliRunner().invoke(app, ["validate", str(extract), "--schema", "nis", "--json", str(extract)])
    assert res.exit_code == 2 and extract.read_text() == "person_id\n1\n"  # the input, untouched


def test_a_command_that_wrote_its_json_keeps_it(tmp_path):
    extract = tmp_path / "cohort.csv"
    extract.write_text("person_id,forename\n1,Ann\n")
    out = tmp_path / "v.json"
    res = CliRunner().invoke(app, ["validate", str(extract), "--schema", "nis", "--json", str(out)])
    assert res.exit_code == 1
    assert "problems" in json.dumps(json.loads(out.read_text()))  # the validation report, not an error stub
