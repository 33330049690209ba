"""Starting (or joining) a SparkSession, with one clear message when Spark cannot start."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from urllib.parse import urlparse

from tfkit.engine import EngineSettings
from tfkit.errors import UsageError

DEFAULT_MASTER = "local[*]"
# Quiet, deterministic defaults for tfkit's jobs; any [engine.spark] setting overrides them.
DEFAULT_CONF = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.parquet.compression.codec": "zstd",
    # The driver collects the records' int32 codes for the kernels that gather by row position
    # (about 55 bytes a record serialized: 1.1 GB at 10M x 10M), more than Spark's 1g default
    # allows; the driver's memory is the bound that matters (set spark.driver.memory).
    "spark.driver.maxResultSize": "0",
}


class SparkUnavailable(UsageError):
    """Spark could not start (no Java, no pyspark, a master that cannot be reached): exit 2."""


def _fail(message: str, hint: str) -> SparkUnavailable:
    return SparkUnavailable(f"the Spark engine cannot start: {message}", hint=hint)


def _check_master(master: str) -> None:
    if master.startswith("local"):
        return
    if master.startswith("spark://"):
        for hostport in master.removeprefix("spark://").split(","):
            parsed = urlparse(f"spark://{hostport}")
            try:
                host, port = parsed.hostname, parsed.port or 7077
            except ValueError:
                host, port = None, None
            if not host:
                raise _fail(f"master URL {master!r} is malformed", "write it as spark://HOST:7077")
            try:
                socket.create_connection((host, port), timeout=5).close()
                return
            except OSError as err:
                last = err
        raise _fail(f"no Spark master answers at {master} ({last.strerror or last})",
                    "check the master URL and that the cluster is up (or use master = \"local[*]\")")
    if master == "yarn":
        if not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
            raise _fail("master 'yarn' needs HADOOP_CONF_DIR or YARN_CONF_DIR set in the environment",
                        "run on a cluster gateway node, or through spark-submit --master yarn")
        return
    if master.startswith(("k8s://", "mesos://")):
        return
    raise _fail(f"unknown master URL {master!r}", "use local[*], local[N], spark://HOST:7077, yarn or k8s://...")


def spark_session(settings: EngineSettings):
    """The SparkSession for a job: an active one (under spark-submit) or a new one from `settings`."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise _fail("pyspark is not installed", "install the extra: pip install 'tfkit[spark]'") from None
    active = SparkSession.getActiveSession()
    if active is not None and settings.master is None:
        return active
    # Under spark-submit (which starts the JVM and sets PYSPARK_GATEWAY_PORT) its --master stands.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    master = settings.master or os.environ.get("MASTER") or (None if submitted else DEFAULT_MASTER)
    if not submitted and not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise _fail("no Java found (neither JAVA_HOME nor java on the PATH)",
                    "install a Java 17 runtime (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME")
    builder = SparkSession.builder.appName(settings.app_name)
    if master is not None:
        _check_master(master)
        builder = builder.master(master)
    conf = dict(DEFAULT_CONF)
    if (master or "").startswith("local") and "spark.pyspark.python" not in settings.conf:
        # Local workers run this interpreter (the one with tfkit, polars and pyarrow installed).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf.update(settings.conf)
    for k, v in conf.items():
        builder = builder.config(k, v)
    try:
        session = builder.getOrCreate()
    except Exception as err:  # py4j / PySparkRuntimeError: the JVM refused the settings or died
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise _fail(first, "check [engine] master and settings, and that Java 17 runs (java -version)") from None
    session.sparkContext.setLogLevel("ERROR")
    return session
