"""`tfkit -q verify` from cron: a package that fails says why on stderr (as validate and audit verify
do under --quiet), not just exit 1 with nothing printed."""

from __future__ import annotations

from typer.testing import CliRunner

from tests.test_extract_pipeline import config, demo_dir  # noqa: F401  (the 300-person demo config)
from tfkit.cli import app
from tfkit.config import load_config
from tfkit.pipeline import run_extract


def test_quiet_verify_of_a_tampered_package_names_the_failing_checks(config, demo_dir):  # noqa: F811
    pkg = run_extract(load_config(config)).package
    pub = str(demo_dir / "keys" / "demo-signing.pub")
    ok = CliRunner().invoke(app, ["-q", "verify", str(pkg), "--public-key", pub])
    assert ok.exit_code == 0 and ok.stdout == "" and ok.stderr == "", ok.output
    data = pkg / "data" / "person.parquet"
    raw = bytearray(data.read_bytes())
    raw[200] ^= 1
    data.write_bytes(bytes(raw))
    bad = CliRunner().invoke(app, ["-q", "verify", str(pkg), "--public-key", pub])
    assert bad.exit_code == 1 and bad.stdout == ""
    assert "bag.payload" in bad.stderr and "person.parquet" in bad.stderr, bad.stderr
