"""Files holding raw rows are 0600 in 0700 folders whatever the umask; failed runs leave none behind
outside retention's reach."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.test_extract_pipeline import config, demo_dir  # noqa: F401 (fixtures)
from tfkit.cli import app
from tfkit.config import load_config
from tfkit.errors import DataCheckFailed, TfkitError
from tfkit.pipeline import run_extract
from tfkit.validation import ledger
from tfkit.validation.quarantine import write_quarantine_csv


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def open_umask(request):
    old = os.umask(request.param)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_private(files, folder):
    assert files, "no file was written"
    for f in files:
        assert mode(f) == 0o600, (f, oct(mode(f)))
    assert mode(folder) == 0o700, (folder, oct(mode(folder)))


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def cohort_csv(demo_dir):  # noqa: F811
    return demo_dir / "inputs" / "cohort.csv"  # the demo cohort has a few invalid rows


def test_write_quarantine_csv(tmp_path, open_umask):
    path = write_quarantine_csv(pl.DataFrame({"NI Number": ["AB123456C"]}), tmp_path / "q" / "x.quarantine.csv")
    assert_private([path], tmp_path / "q")


def test_validate_quarantine_writer(tmp_path, cohort_csv, open_umask):
    res = invoke("validate", cohort_csv, "--schema", "nis", "--quarantine", tmp_path / "q")
    assert res.exit_code == 1, res.output
    assert_private(list((tmp_path / "q").iterdir()), tmp_path / "q")
    assert {p.suffix for p in (tmp_path / "q").iterdir()} == {".csv", ".parquet"}


def test_pseudonymise_quarantine_writer(tmp_path, cohort_csv, demo_dir, open_umask):  # noqa: F811
    res = invoke("pseudonymise", cohort_csv, "--schema", "nis", "--project", "nis", "--key",
                 demo_dir / "keys" / "demo-master.key", "--out", tmp_path / "out.parquet", "--quarantine", tmp_path / "q")
    assert res.exit_code == 0, res.output
    assert_private(list((tmp_path / "q").iterdir()), tmp_path / "q")


def test_extract_quarantine_writer(config, open_umask):  # noqa: F811
    cfg = load_config(config)
    result = run_extract(cfg)
    files = [s.quarantine_file for s in result.sources if s.quarantine_file]
    assert_private(files, cfg.quarantine_dir / cfg.package_name)
    assert mode(cfg.quarantine_dir) == 0o700


def test_pseudonymise_that_fails_to_write_its_output_leaves_no_quarantine(tmp_path, cohort_csv, demo_dir):  # noqa: F811
    (tmp_path / "out").mkdir()
    res = invoke("pseudonymise", cohort_csv, "--schema", "nis", "--project", "nis", "--key",
                 demo_dir / "keys" / "demo-master.key", "--out", tmp_path / "out", "--quarantine", tmp_path / "q")
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "q").exists() or not list((tmp_path / "q").iterdir())


def test_extract_that_fails_late_leaves_no_quarantine(config):  # noqa: F811
    config.write_text(config.read_text().replace('la_code = "E09000031"', 'la_code = "E09000032"'))
    cfg = load_config(config)
    with pytest.raises(TfkitError) as err:
        run_extract(cfg)
    assert err.value.exit_code == 2
    assert not list(cfg.quarantine_dir.rglob("*.csv")) and not ledger.entries(cfg.output_root)


def test_quarantine_of_a_failed_extract_is_in_the_ledger_and_retention_purges_it(config):  # noqa: F811
    config.write_text(config.read_text() + "\n[validation]\nfail_on_invalid = true\n")
    cfg = load_config(config)
    with pytest.raises(DataCheckFailed):
        run_extract(cfg)
    folder = cfg.quarantine_dir / cfg.package_name
    assert list(folder.glob("*.quarantine.csv"))
    [entry] = ledger.entries(cfg.output_root)
    assert entry.folder == folder.resolve() and entry.package == cfg.package_name
    assert not ledger.due(cfg.output_root) and ledger.due(cfg.output_root, entry.destroy_after + dt.timedelta(days=1))
    # a month on: retention lists it and purge --yes deletes it, recorded in the audit log
    path = ledger.ledger_path(cfg.output_root)
    path.write_text(path.read_text().replace(entry.destroy_after.isoformat(), "2000-01-01"))
    listed = invoke("retention", "--config", config, "--json", "-")
    assert listed.exit_code == 0 and json.loads(listed.stdout)["quarantine_due"][0]["package"] == cfg.package_name
    purged = invoke("retention", "purge", "--config", config, "--yes")
    assert purged.exit_code == 0, purged.output
    assert not folder.exists() and not ledger.entries(cfg.output_root)
    assert "retention_purge_quarantine" in cfg.audit_log.read_text()


def test_link_output_writer(tmp_path, demo_dir, open_umask):  # noqa: F811
    inputs = demo_dir / "inputs"
    res = invoke("link", inputs / "police.csv", inputs / "school_attendance.csv", "--schema", "police",
                 "--schema", "school_attendance", "--out", tmp_path / "linked")
    assert res.exit_code == 0, res.output
    parquets = list((tmp_path / "linked").glob("*.parquet"))
    assert_private(parquets, tmp_path / "linked")
    # The review files (names and dates side by side) are listed for retention under --out, and
    # `retention purge` deletes them once due.
    review = tmp_path / "linked" / "review"
    assert_private(list(review.iterdir()), review)
    [entry] = ledger.entries(tmp_path / "linked")
    assert entry.folder == review.resolve() and entry.kind == "link review"
    assert entry.destroy_after == dt.date.today() + dt.timedelta(days=ledger.REVIEW_DAYS)
    path = ledger.ledger_path(tmp_path / "linked")
    path.write_text(path.read_text().replace(entry.destroy_after.isoformat(), "2000-01-01"))
    listed = invoke("retention", "--root", tmp_path / "linked")
    assert listed.exit_code == 0 and "clerical review files of a link run" in listed.output
    gone = ledger.purge_due(tmp_path / "linked", tmp_path / "audit.jsonl", _signing_key())
    assert [g.folder for g in gone] == [review.resolve()] and not review.exists()
    assert (tmp_path / "linked" / "pairs.parquet").is_file()


def _signing_key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def test_demo_data_is_kept_like_real_extracts(tmp_path, open_umask):
    res = invoke("demo-data", "--out", tmp_path / "ex", "--people", "100")
    assert res.exit_code == 0, res.output
    assert_private(list((tmp_path / "ex").glob("*.csv")), tmp_path / "ex")
