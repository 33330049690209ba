"""`tfkit audit show` off a terminal (80 columns) shows every value whole, folded over lines, never
cut to 'E09000031_ni…' or '2026-12-04T1…': an auditor must be able to read the package and time."""

from __future__ import annotations

from typer.testing import CliRunner

from tests.test_extract_pipeline import config, demo_dir  # noqa: F401  (the 300-person demo config)
from tfkit.cli import app
from tfkit.config import load_config
from tfkit.pipeline import run_extract


def test_audit_show_never_cuts_a_value(config):  # noqa: F811
    run_extract(load_config(config))
    res = CliRunner().invoke(app, ["audit", "show", "--config", str(config)], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    assert "…" not in res.stdout and "extract" in res.stdout
