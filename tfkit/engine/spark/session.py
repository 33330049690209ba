"""Starting (or joining) a SparkSession, with one clear message when Spark cannot start."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from pathlib import Path
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


# The driver's log4j2 configuration when tfkit is quiet: errors only (see the file).
QUIET_LOG4J2 = Path(__file__).with_name("log4j2-quiet.properties")


def quiet_conf(conf: dict) -> dict:
    """`conf` for a quiet run (--quiet, --log-format json, or not at a terminal: a cron job): no
    stage progress bars, and the driver's JVM logging errors only from its first line (setLogLevel
    comes too late for Spark's start-up warnings). A logging configuration of the user's own stands."""
    conf = {**conf, "spark.ui.showConsoleProgress": "false"}
    options = str(conf.get("spark.driver.extraJavaOptions", ""))
    if "log4j2.configurationFile" not in options and "log4j.configuration" not in options:
        conf["spark.driver.extraJavaOptions"] = f"{options} -Dlog4j2.configurationFile={QUIET_LOG4J2.as_uri()}".strip()
    return conf


# The JVM's own start-up line (Spark's launcher adds --add-modules=jdk.incubator.vector, and Java
# prints this for it whatever the logging configuration): not an error, so quiet drops it.
JVM_NOTICES = (b"WARNING: Using incubator modules",)


def _launch_quiet_gateway(conf: dict) -> None:
    """Start the driver's JVM (as SparkContext would) with its stderr relayed through a filter that
    drops `JVM_NOTICES`; everything else, real errors included, still reaches stderr. Nothing when
    a JVM is running already."""
    import threading

    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return
    read_end, write_end = os.pipe()
    try:
        gateway = launch_gateway(SparkConf(loadDefaults=False).setAll([(k, str(v)) for k, v in conf.items()]),
                                 popen_kwargs={"stderr": write_end})
    finally:
        os.close(write_end)
    threading.Thread(target=_relay, args=(read_end,), name="tfkit-spark-stderr", daemon=True).start()
    SparkContext._ensure_initialized(gateway=gateway)


def _relay(fd: int) -> None:
    with os.fdopen(fd, "rb") as lines:
        for line in lines:
            if not line.startswith(JVM_NOTICES):
                os.write(2, line)


class SparkUnavailable(UsageError):
    """Spark could not start (no Java, no pyspark, a master that cannot be reached): exit 2."""


def _fail(message: str, hint: str) -> SparkUnavailable:
    return SparkUnavailable(f"the Spark engine cannot start: {message}", hint=hint)


def _check_master(master: str) -> None:
    if master.startswith("local"):  # local, local[N], local[*], local[N,F], local-cluster[N,C,M]
        if re.fullmatch(r"local(\[(\*|\d+)(,\s*\d+)?\])?|local-cluster\[\d+,\s*\d+,\s*\d+\]", master):
            return
        raise _fail(f"master URL {master!r} is malformed", "write it as local[*] (every core) or local[N] (N cores)")
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
    from tfkit import console

    quiet = not console.interactive()
    if quiet:
        conf = quiet_conf(conf)
    for k, v in conf.items():
        builder = builder.config(k, v)
    try:
        if quiet and not submitted:
            _launch_quiet_gateway({**conf, "spark.app.name": settings.app_name,
                                   **({"spark.master": master} if master else {})})
        session = builder.getOrCreate()
    except Exception as err:  # py4j / PySparkRuntimeError: the JVM refused the settings or died
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise _fail(first, "check [engine] master and settings, and that Java 17 runs (java -version)") from None
    session.sparkContext.setLogLevel("ERROR")
    return session
