"""A failing machine (issue 14, build 6): a full disk at each write, I/O errors, a read-only
output root, SIGKILL at each stage of extract, concurrent extracts. Every case: one message and
exit 2 (or a clean success), never a traceback or an internal error, never a half-published
package, and an audit log that still verifies."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.test_extract_pipeline import config, demo_dir  # noqa: F401  (shared fixtures)
from tfkit.cli import app
from tfkit.config import load_config
from tfkit.errors import InputFileError
from tfkit.package import audit
from tfkit.package.verify import verify_package

TIMEOUT = 120  # seconds for any subprocess: a hang fails the test instead of stalling CI


def _no_crash(result):
    text = result.output
    assert "Traceback" not in text and "internal error" not in text, text
    return text


def _nothing_half_done(cfg):
    """No package unless it verifies, no staging left published, the audit log intact."""
    root = cfg.output_root
    if cfg.package_dir.exists():
        assert verify_package(cfg.package_dir, scan_identifiers=False).ok
    for staging in root.glob(".tmp-*") if root.is_dir() else []:
        if staging.is_dir():
            try:
                assert not verify_package(staging, scan_identifiers=False).ok  # the marker, or its name
            except InputFileError:
                pass  # not even the start of a bag
    if cfg.audit_log.is_file() and cfg.audit_log.stat().st_size:
        report = audit.verify_log(cfg.audit_log, packages_root=root)
        assert report.ok or {p.code for p in report.problems} == {"checkpoint"}, report.problems


def _enospc_arrow(*_a, **_k):  # pyarrow's shape: errno only in the text, no file name
    raise OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device")


def _enospc_polars(*_a, **_k):  # polars' shape: not even an OSError
    raise pl.exceptions.ComputeError("parquet: File out of specification: underlying IO error: "
                                     "No space left on device (os error 28)")


def _eio(*_a, **_k):
    raise OSError(errno.EIO, "Input/output error")


WRITES = {  # every write extract makes, failing as the real writer fails
    "parquet": ("pyarrow.parquet.ParquetWriter.write_table", _enospc_arrow, "disk is full"),
    "quarantine_csv": ("tfkit.pipeline.extract.write_quarantine_csv", _enospc_polars, "disk is full"),
    "bag_fsync": ("tfkit.package.bag.os.fsync", _eio, "failed to read or write"),
    "audit_checkpoint": ("tfkit.package.audit._write_checkpoint", _enospc_arrow, "disk is full"),
    "report": ("tfkit.pipeline.adapters.render_report", _enospc_polars, "disk is full"),
    "tag_files": ("tfkit.package.build.bag.write_text", _enospc_arrow, "disk is full"),
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_full_disk_at_each_write_is_one_message_and_exit_2(config, monkeypatch, write):  # noqa: F811
    target, fault, words = WRITES[write]
    monkeypatch.setattr(target, fault)
    result = CliRunner().invoke(app, ["extract", "--config", str(config)])
    text = _no_crash(result)
    assert result.exit_code == 2, text
    assert words in text, text
    monkeypatch.undo()
    cfg = load_config(config)
    assert not cfg.package_dir.exists()
    _nothing_half_done(cfg)
    rerun = CliRunner().invoke(app, ["extract", "--config", str(config)])  # the disk freed: it just works
    assert rerun.exit_code == 0, rerun.output


def test_os_error_without_a_file_name_in_any_command(tmp_path, monkeypatch):
    monkeypatch.setattr("tfkit.schemas.load_schema", _enospc_arrow)
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "x.csv"), "--schema", "nis"])
    assert result.exit_code == 2 and "disk is full" in _no_crash(result)


# --------------------------------------------------------------------------- real file systems


def _mount(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, timeout=TIMEOUT).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=TIMEOUT)


def _with_root(config_path: Path, root: Path) -> Path:  # noqa: F811
    text = config_path.read_text()
    cfg = load_config(config_path)
    text = text.replace(str(cfg.output_root), str(root))
    out = config_path.with_name("mounted.toml")
    out.write_text(text)
    return out


@pytest.mark.parametrize("size", ["24k", "64k", "160k"])
def test_small_tmpfs_fills_at_some_write(config, tmp_path, size):  # noqa: F811
    mnt = tmp_path / f"disk{size}"
    if not _mount(mnt, f"size={size}"):
        pytest.skip("cannot mount a tmpfs here (not root, or no mount permission)")
    try:
        cfg_path = _with_root(config, mnt)
        result = CliRunner().invoke(app, ["extract", "--config", str(cfg_path)])
        text = _no_crash(result)
        assert result.exit_code in (0, 2), text
        cfg = load_config(cfg_path)
        if result.exit_code == 2:
            assert "disk is full" in text and not cfg.package_dir.exists(), text
        _nothing_half_done(cfg)
    finally:
        _umount(mnt)


def test_read_only_output_root(config, tmp_path):  # noqa: F811
    mnt = tmp_path / "ro"
    if not _mount(mnt, "ro,size=64k"):
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        result = CliRunner().invoke(app, ["extract", "--config", str(_with_root(config, mnt))])
        text = _no_crash(result)
        assert result.exit_code == 2 and "read-only" in text, text
    finally:
        _umount(mnt)


# --------------------------------------------------------------------------- SIGKILL and concurrency

# Where extract is killed: each a function it calls at that stage (patched to SIGKILL the process).
STAGES = {
    "read": "tfkit.io.read_table",
    "validate": "tfkit.validation.engine.validate",
    "pseudonymise": "tfkit.pipeline.adapters.pseudonymise",
    "write_tables": "tfkit.package.publish.write_tables",
    "audit_entry": "tfkit.package.audit._write_checkpoint",
    "sign": "tfkit.package.publish.finish_bag",
    "report": "tfkit.pipeline.adapters.render_report",
    "publish": "tfkit.package.publish.publish",
}

KILLER = textwrap.dedent("""
    import os, signal, sys
    from unittest import mock
    target = sys.argv[1]
    with mock.patch(target, lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)):
        from tfkit.cli import main
        sys.argv = ["tfkit", "extract", "--config", sys.argv[2]]
        main()
""")


TFKIT = [sys.executable, "-c", "from tfkit.cli import main; main()"]


def _tfkit(*args, timeout=TIMEOUT):
    return subprocess.run([*TFKIT, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("stage", list(STAGES))
def test_sigkill_at_each_stage_leaves_nothing_that_passes_and_a_rerun_recovers(config, stage):  # noqa: F811
    killed = subprocess.run([sys.executable, "-c", KILLER, STAGES[stage], str(config)], capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    cfg = load_config(config)
    assert not cfg.package_dir.exists()
    _nothing_half_done(cfg)
    rerun = _tfkit("extract", "--config", config)
    assert rerun.returncode == 0, rerun.stderr
    assert not list(cfg.output_root.glob(".tmp-*"))  # stale staging removed
    assert verify_package(cfg.package_dir, scan_identifiers=False).ok
    assert audit.verify_log(cfg.audit_log, packages_root=cfg.output_root).ok


def test_concurrent_extracts(config):  # noqa: F811
    procs = [subprocess.Popen([*TFKIT, "extract", "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=TIMEOUT), p.stderr.read()) for p in procs]
    codes = [code for code, _ in results]
    assert set(codes) <= {0, 2} and 0 in codes, results
    for code, err in results:
        assert "Traceback" not in err and "internal error" not in err, err
        if code == 2:
            assert "another tfkit run is writing" in err or "already exists" in err, err
    cfg = load_config(config)
    assert verify_package(cfg.package_dir, scan_identifiers=False).ok
    report = audit.verify_log(cfg.audit_log, packages_root=cfg.output_root)
    assert report.ok and report.entries == 1, report.problems


# --------------------------------------------------------------------------- the other writing commands


def _polars_write_full(self, *_a, **_k):
    _enospc_polars()


@pytest.mark.parametrize("command", ["pseudonymise", "validate_quarantine", "link"])
def test_full_disk_in_the_other_writing_commands(demo_dir, tmp_path, monkeypatch, contract_key_file, command):  # noqa: F811
    monkeypatch.setattr("pyarrow.parquet.ParquetWriter.write_table", _enospc_arrow)
    monkeypatch.setattr("polars.DataFrame.write_parquet", _polars_write_full)
    monkeypatch.setattr("polars.DataFrame.write_csv", _polars_write_full)
    cohort = demo_dir / "inputs" / "cohort.csv"
    args = {
        "pseudonymise": ["pseudonymise", cohort, "--schema", "nis", "--project", "nis", "--key", contract_key_file, "--allow-test-key",
                         "--out", tmp_path / "out.parquet", "--quarantine", tmp_path / "q"],
        "validate_quarantine": ["validate", cohort, "--schema", "nis", "--quarantine", tmp_path / "q"],
        "link": ["link", cohort, demo_dir / "inputs" / "police.csv", "--schema", "nis", "--schema", "police",
                 "--out", tmp_path / "linked"],
    }[command]
    result = CliRunner().invoke(app, [str(a) for a in args])
    text = _no_crash(result)
    assert result.exit_code == 2 and "disk is full" in text, text
    assert str(tmp_path) in text, text  # the output is named
    assert not list(tmp_path.rglob(".*.tmp")), "a temporary file was left behind"
