"""What a new user met following the README (qa9): each a defect found by hand, fixed, and kept fixed here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.errors import Terminated

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def return_made(tmp_path_factory) -> Path:
    """The README's "A real return, step by step" on demo extracts, up to a written package."""
    root = tmp_path_factory.mktemp("readme")
    assert invoke("keys", "generate", "--out", root / "keys" / "master.key").exit_code == 0
    assert invoke("keys", "generate", "--signing", "--out", root / "keys" / "signing.key").exit_code == 0
    assert invoke("init", root / "tfkit.toml").exit_code == 0
    assert invoke("demo-data", "--out", root / "extracts", "--people", 300).exit_code == 0
    r = invoke("extract", "--config", root / "tfkit.toml")
    assert r.exit_code == 0, r.output
    return root


def test_a_mistyped_source_path_is_named_not_taken_for_a_rerun(return_made):
    """Next period the user mistyped the extract's path in tfkit.toml. The package of the last run
    was there, so extract said "the package already exists ... pass --force": the wrong fix (with
    --force it then said file not found). The missing file is named first, whatever is there."""
    config = return_made / "typo.toml"
    config.write_text((return_made / "tfkit.toml").read_text().replace("extracts/cohort.csv", "extracts/cohrt.csv"))
    r = invoke("extract", "--config", config)
    assert r.exit_code == 2, r.output
    assert "cohrt.csv: file not found" in r.output and "--force" not in r.output and "Traceback" not in r.output
    withdrawals = return_made / "no_list.toml"
    withdrawals.write_text((return_made / "tfkit.toml").read_text().replace(
        "extracts/consent_withdrawals.csv", "extracts/withdrawals.csv"))
    r = invoke("extract", "--config", withdrawals)
    assert r.exit_code == 2 and "withdrawals.csv: file not found" in r.output, r.output
    # The unchanged config still finds its package up to date (the check reads no file twice).
    r = invoke("extract", "--config", return_made / "tfkit.toml", "--json", "-")
    assert r.exit_code == 0 and '"up_to_date": true' in r.stdout, r.output


def test_review_apply_says_how_the_decisions_are_applied(tmp_path):
    """After `tfkit review apply FILE --config tfkit.toml` the user ran `tfkit extract --config
    tfkit.toml`, as the README says, and met "the package already exists ... pass --force": the
    decisions are new inputs, so the period's package is remade only with --force. review apply now
    says so itself."""
    import csv

    assert invoke("extract", "--demo", "--out", tmp_path / "demo").exit_code == 0
    config = tmp_path / "demo" / "tfkit.toml"
    [review] = (tmp_path / "demo" / "quarantine").glob("*/review.csv")
    rows = list(csv.DictReader(review.open(encoding="utf-8-sig")))
    rows[0]["decision"] = "accept"
    decided = tmp_path / "decided.csv"
    with decided.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    r = invoke("review", "apply", decided, "--config", config)
    assert r.exit_code == 0, r.output
    assert f"apply them: tfkit extract --config {config} --force" in r.output
    r = invoke("extract", "--config", config, "--force", "--json", "-")
    assert r.exit_code == 0, r.output
    manifest = json.loads((Path(json.loads(r.stdout)["package"]) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["linkage"]["forced_links"] == 1


def test_a_withdrawal_with_an_unreadable_date_of_birth_is_named(return_made):
    """A withdrawal list naming someone by forename, surname and a date of birth that is no date
    (31/02/1990) stopped the run with "1 consent-withdrawal entry matched no record in any source:
    line 2: ;": nothing to say which entry or why. The entry is named now, with its line, column and
    masked value, before anything is written."""
    entries = return_made / "withdrawn_by_name.csv"
    entries.write_text("forename,surname,dob\nJohn,Smith,31/02/1990\n")
    config = return_made / "by_name.toml"
    config.write_text((return_made / "tfkit.toml").read_text().replace(
        "extracts/consent_withdrawals.csv", str(entries)))
    r = invoke("extract", "--config", config, "--force")
    assert r.exit_code == 2, r.output
    assert "line 2, column 'dob'" in r.output and "31********" in r.output and "31/02/1990" not in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("stop, code", [(KeyboardInterrupt, 130), (Terminated, 143)])
def test_a_stopped_run_replaces_the_last_runs_json_result(return_made, monkeypatch, stop, code):
    """Cron runs `tfkit extract -c tfkit.toml --json run.json` and reads run.json. A run stopped by
    Ctrl-C or a cron timeout (SIGTERM) exited 130/143 but left last period's {"ok": true} in
    run.json, which the README promises never happens ("so cron never reads the last run's result
    as this one's"). It now writes {"ok": false, "exit_code": 130 or 143, "error": ...} there."""
    import tfkit.pipeline

    def stopped(*_, **__):
        raise stop()

    monkeypatch.setattr(tfkit.pipeline, "run_extract", stopped)
    result = return_made / f"run_{code}.json"
    result.write_text('{"ok": true, "package": "last period"}')
    r = invoke("extract", "--config", return_made / "tfkit.toml", "--force", "--json", result)
    assert r.exit_code == code, r.output
    written = json.loads(result.read_text())
    assert (written["ok"], written["exit_code"], written["error"]["type"]) == (
        False, code, "Interrupted" if code == 130 else "Terminated")
