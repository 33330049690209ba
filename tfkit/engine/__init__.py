"""Choosing the engine a job runs on: the embedded polars engine (default) or Apache Spark.

This module is pure configuration and never imports pyspark: `import tfkit` and every polars code
path stay free of it. The Spark engine lives in `tfkit.engine.spark` and is imported only when a
job asks for it (`--engine spark` or `[engine] kind = "spark"` in the config).

    [engine]
    kind = "spark"                  # or "polars" (the default)
    master = "local[*]"             # local[N] | spark://host:7077 | yarn | k8s://...
    checkpoint_dir = "hdfs:///tmp/tfkit"   # where each link-keys pass is checkpointed (optional)
    prepare = "auto"                # link: standardise on the "driver", the "cluster", or "auto"
    [engine.spark]                  # any Spark setting, passed through unchanged
    "spark.executor.memory" = "8g"
    "spark.sql.shuffle.partitions" = 400
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tfkit import tomlfile
from tfkit.errors import ConfigError, UsageError

ENGINES = ("polars", "spark")
ENGINE_KEYS = {"kind", "master", "app_name", "checkpoint_dir", "prepare", "spark"}
# Where `link` on Spark standardises the records (tfkit.engine.spark.link._prepared_linker): "auto"
# puts it on the cluster for a Parquet folder or Hadoop path, or above AUTO_CLUSTER_RECORDS records.
PREPARE = ("auto", "driver", "cluster")


@dataclass(frozen=True)
class EngineSettings:
    """Which engine runs a job and, for Spark, where and with which settings."""

    kind: str = "polars"
    master: str | None = None  # None: spark-submit's or the environment's master, else local[*]
    app_name: str = "tfkit"
    checkpoint_dir: str | None = None  # None: a folder next to the output
    prepare: str = "auto"  # link: where standardisation runs (PREPARE)
    conf: dict[str, str] = field(default_factory=dict)

    @property
    def is_spark(self) -> bool:
        return self.kind == "spark"


def engine_from_table(table: "dict[str, Any] | tomlfile.Table", *, file: str | Path | None = None) -> EngineSettings:
    """Check and type an `[engine]` TOML table (errors name the file and the dotted key)."""
    t = table if isinstance(table, tomlfile.Table) else tomlfile.Table({"engine": table}, file).table("engine")
    t.unknown(ENGINE_KEYS)
    kind = t.get("kind", str, "polars")
    if kind not in ENGINES:
        raise t.fail("kind", f"unknown engine {kind!r}", f"use one of: {', '.join(ENGINES)}")
    prepare = t.get("prepare", str, "auto")
    if prepare not in PREPARE:
        raise t.fail("prepare", f"unknown value {prepare!r}", f"use one of: {', '.join(PREPARE)}")
    conf = t.table("spark").data
    if any(isinstance(v, (dict, list)) for v in conf.values()):
        raise t.fail("spark", "must be a table of Spark settings (name = value)", 'e.g. "spark.executor.memory" = "8g"')
    return EngineSettings(
        kind=kind, master=t.get("master", str, None), app_name=t.get("app_name", str, "tfkit"),
        checkpoint_dir=t.get("checkpoint_dir", str, None), prepare=prepare,
        conf={str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in conf.items()},
    )


def engine_from_file(path: str | Path) -> EngineSettings:
    """The `[engine]` table of a TOML file (the run config `tfkit.toml`, or a file holding only it);
    other tables are left to their own readers."""
    doc = tomlfile.read(path, what="config file", missing_hint="give the tfkit.toml that holds the [engine] table")
    return engine_from_table(doc.table.table("engine"), file=path)


def choose_engine(engine: str | None, config: str | Path | None) -> EngineSettings:
    """The engine for a command: `--engine` wins over the config's `[engine] kind`; default polars."""
    settings = engine_from_file(config) if config is not None else EngineSettings()
    if engine is not None:
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}", hint=f"use --engine {' or --engine '.join(ENGINES)}")
        settings = replace(settings, kind=engine)
    if settings.is_spark:
        import importlib.util

        if importlib.util.find_spec("pyspark") is None:  # before any work: one message, exit 2
            raise UsageError("the Spark engine needs pyspark, which is not installed",
                             hint="install the extra: pip install 'tfkit[spark]' (and Java 17), or use --engine polars")
    return settings
