"""Quiet on Spark: with --quiet (or off a terminal, as in cron) Spark's start-up warnings, log level
notice and stage progress bars stay off stderr; real errors still reach it."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl

from tfkit.engine.spark.session import QUIET_LOG4J2, quiet_conf


def test_quiet_conf_keeps_the_users_logging_config():
    conf = quiet_conf({"spark.ui.showConsoleProgress": "true", "spark.driver.extraJavaOptions": "-Xss4m"})
    assert conf["spark.ui.showConsoleProgress"] == "false"
    assert conf["spark.driver.extraJavaOptions"] == f"-Xss4m -Dlog4j2.configurationFile={QUIET_LOG4J2.as_uri()}"
    assert QUIET_LOG4J2.is_file()
    own = "-Dlog4j2.configurationFile=file:/etc/spark/log4j2.properties"
    assert quiet_conf({"spark.driver.extraJavaOptions": own})["spark.driver.extraJavaOptions"] == own


def test_spark_run_with_quiet_prints_nothing_on_stderr(tmp_path):
    keys = ["mk_a", "mk_b"]
    a = pl.DataFrame({"person_id_pseudonym": ["a1", "a2", "a3"], "mk_a": ["x", "y", None], "mk_b": ["p", "q", "r"]})
    b = pl.DataFrame({"person_id_pseudonym": ["b1", "b2"], "mk_a": ["x", None], "mk_b": ["p", "r"]})
    a.write_parquet(tmp_path / "a.parquet")
    b.write_parquet(tmp_path / "b.parquet")
    config = tmp_path / "tfkit.toml"
    config.write_text(f'[engine]\nkind = "spark"\nmaster = "local[2]"\ncheckpoint_dir = "{tmp_path / "ck"}"\n'
                      '[engine.spark]\n"spark.ui.enabled" = "false"\n"spark.sql.shuffle.partitions" = 2\n')
    cli = [sys.executable, "-c", "import sys; from tfkit.entry import main; sys.argv[0] = 'tfkit'; main()", "--quiet"]
    run = subprocess.run([*cli, "link-keys", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"),
                          "--keys", ",".join(keys), "--out", str(tmp_path / "pairs"), "--engine", "spark",
                          "--config", str(config), "--json", "-"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["ok"] is True
    assert run.stderr == "", run.stderr  # no WARN NativeCodeLoader, no "Setting default log level", no bars
