"""A --force rerun killed while replacing a package leaves its staging folder beside the (old,
still valid) package. The next cron run finds the package up to date; it must still clear what the
killed run left, not leave it until someone passes --force."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.test_extract_pipeline import config, demo_dir  # noqa: F401  (the 300-person demo config)
from tfkit.config import load_config
from tfkit.package.publish import output_lock
from tfkit.pipeline import run_extract


def _killed_forced_rerun(config):  # noqa: F811
    code = textwrap.dedent(f"""
        import os
        import tfkit.package.build as build
        from tfkit.config import load_config
        from tfkit.pipeline import run_extract
        build.sign = lambda *a, **k: os._exit(9)  # killed after the data is staged, before signing
        run_extract(load_config({str(config)!r}), force=True)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert proc.returncode == 9, proc.stderr


def test_an_up_to_date_rerun_clears_a_killed_runs_staging(config):  # noqa: F811
    cfg = load_config(config)
    run_extract(cfg)
    _killed_forced_rerun(config)
    assert list(cfg.output_root.glob(".tmp-*"))
    again = run_extract(cfg)
    assert again.up_to_date and not list(cfg.output_root.glob(".tmp-*"))


def test_while_another_run_holds_the_lock_staging_is_left_alone(config):  # noqa: F811
    cfg = load_config(config)
    run_extract(cfg)
    _killed_forced_rerun(config)
    with output_lock(cfg.output_root, cfg.package_name):  # as if another run were writing it
        code = f"from tfkit.config import load_config; from tfkit.pipeline import run_extract; " \
               f"assert run_extract(load_config({str(config)!r})).up_to_date"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert list(cfg.output_root.glob(".tmp-*"))
