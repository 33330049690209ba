"""Publish, audit and report are one step (issue 14, build 2): a failure at any point leaves no
package, no audit entry and no report; a rerun never calls an incomplete package "up to date"."""

from __future__ import annotations

import errno
import json

import pytest
from typer.testing import CliRunner

from tests.test_extract_pipeline import config, demo_dir  # noqa: F401  (shared fixtures)
from tfkit.cli import app
from tfkit.config import load_config
from tfkit.errors import UsageError
from tfkit.package import audit, publish
from tfkit.package.publish import report_path_for
from tfkit.pipeline import adapters, run_extract


def _state(cfg):
    """Everything a run may leave in the output root, with the log's and checkpoint's bytes."""
    root = cfg.output_root
    files = sorted(p.name for p in root.iterdir() if p.name != "audit.jsonl" and not p.name.endswith(".lock")) \
        if root.is_dir() else []
    log = (cfg.audit_log.read_bytes() if cfg.audit_log.is_file() else None) or None  # empty = none
    cp = audit.checkpoint_path(cfg.audit_log)
    return files, log, cp.read_bytes() if cp.is_file() else None


def _full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["finish_bag", "render_report", "publish"])
@pytest.mark.parametrize("first", [True, False])
def test_a_failure_at_any_step_takes_everything_back(config, monkeypatch, where, first):  # noqa: F811
    cfg = load_config(config)
    if not first:
        run_extract(cfg)  # a package, its entry and report exist: --force replaces them or leaves them
    before = _state(cfg)
    report_before = report_path_for(cfg.package_dir).read_bytes() if not first else None
    target = {"finish_bag": (publish, "finish_bag"), "render_report": (adapters, "render_report"),
              "publish": (publish, "publish")}[where]
    monkeypatch.setattr(*target, _full)
    with pytest.raises(OSError):
        run_extract(cfg, force=not first)
    after = _state(cfg)
    assert after[1:] == before[1:], "the audit entry and checkpoint were not taken back"
    assert after[0] == before[0], "a package, report or staging file was left behind"
    if not first:
        assert report_path_for(cfg.package_dir).read_bytes() == report_before
    monkeypatch.undo()
    assert audit.verify_log(cfg.audit_log, packages_root=cfg.output_root).ok if cfg.audit_log.exists() else True


def test_unwritable_audit_log_publishes_nothing(config):  # noqa: F811
    cfg = load_config(config)
    cfg.audit_log.parent.mkdir(parents=True, exist_ok=True)
    cfg.audit_log.mkdir()  # a folder where the log goes: the entry cannot be written
    with pytest.raises(OSError):
        run_extract(cfg)
    assert not cfg.package_dir.exists() and not report_path_for(cfg.package_dir).exists()


@pytest.mark.parametrize("lose", ["entry", "report"])
def test_rerun_says_what_is_missing_and_exits_2(config, lose):  # noqa: F811
    cfg = load_config(config)
    run_extract(cfg)
    if lose == "report":
        report_path_for(cfg.package_dir).unlink()
    else:
        cfg.audit_log.unlink()
        audit.checkpoint_path(cfg.audit_log).unlink()
    with pytest.raises(UsageError) as err:
        run_extract(cfg)
    assert ("audit entry" if lose == "entry" else "report") in err.value.message
    result = CliRunner().invoke(app, ["extract", "--config", str(config)])
    assert result.exit_code == 2 and "up to date" not in result.output, result.output
    assert "--force" in result.output
    repaired = run_extract(cfg, force=True)  # the hint works: entry and report written again
    assert report_path_for(repaired.package).is_file()
    anchor = json.loads((repaired.package / "manifest.json").read_text())["audit"]["chain_head"]
    assert anchor in {e["hash"] for e in audit.read_entries(cfg.audit_log)}
    assert run_extract(cfg).up_to_date
