"""Ctrl-C (or a full disk) while a --force rerun writes its quarantine files: the package that
stays keeps its own quarantine files, and nothing is left set aside in `.<package>.replaced`
(seen with SIGINT at ~3 s into a 1,000-person rerun)."""

from __future__ import annotations

import pytest

from tests.test_extract_pipeline import config, demo_dir  # noqa: F401  (the 300-person demo config)
from tfkit.config import load_config
from tfkit.package.verify import verify_package
from tfkit.pipeline import run_extract


@pytest.mark.parametrize("fault", [KeyboardInterrupt, lambda: OSError(28, "No space left on device")])
def test_interrupted_while_writing_quarantine_restores_the_previous_files(config, monkeypatch, fault):  # noqa: F811
    from tfkit.pipeline import extract as extract_mod

    cfg = load_config(config)
    first = run_extract(cfg).package
    folder = cfg.quarantine_dir / cfg.package_name
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert before, "the demo config quarantines some rows"

    def broken(*args, **kwargs):
        raise fault()

    monkeypatch.setattr(extract_mod, "write_quarantine_csv", broken)
    with pytest.raises((KeyboardInterrupt, OSError)):
        run_extract(cfg, force=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not list(cfg.quarantine_dir.glob(".*.replaced")) and verify_package(first).ok
