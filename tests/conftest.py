import os

import pytest

from tfkit import console


@pytest.fixture(autouse=True)
def _reset_output_mode():
    console.configure(quiet=False, log_format="text")
    yield
    console.configure(quiet=False, log_format="text")


CONTRACT_KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"


@pytest.fixture
def contract_key_file(tmp_path):
    """The contract's test-vector master key in a 0600 key file."""
    path = tmp_path / "master.key"
    path.write_text(CONTRACT_KEY_HEX + "\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture(scope="session")
def spark():
    """One small local[2] SparkSession for every Spark test (started once: ~10 s)."""
    from tfkit.engine import EngineSettings
    from tfkit.engine.spark.session import spark_session

    session = spark_session(EngineSettings(kind="spark", master="local[2]", conf={
        "spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2",
        "spark.ui.enabled": "false", "spark.driver.memory": "1g"}))
    yield session
    session.stop()
