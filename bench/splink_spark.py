"""Splink 5 on Apache Spark (local[2]): the peer for `tfkit link --engine spark` (issue 15).

    .venv/bin/python bench/splink_spark.py --folder DIR --mode link     # a worker: DIR/left.parquet, right.parquet

Runs the model an expert would write for the same fields, as bench/linkage_bench.py's Splink-on-DuckDB
worker does (`splink_model`: the same comparisons, blocking rules, prior, u sampling and EM sessions),
but on Splink's Spark backend with its Scala similarity UDFs, and writes the pairs it scores
(p >= 0.001) to DIR/splink_spark_pairs.parquet. The expert's cleaning is written in Spark SQL.

`measure(cmd)` runs a command and samples the resident memory of its whole process tree (the
Python driver and the JVM it starts) every 0.2 s: /usr/bin/time sees only the driver.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from linkage_bench import DETERMINISTIC, RECALL, SEED, SPLINK_FLOOR, U_PAIRS, splink_model  # noqa: E402


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Wall time, CPU and the peak summed RSS of `cmd`'s process tree."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    root = psutil.Process(proc.pid)
    peak, cpu = 0, {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                        t = p.cpu_times()
                        cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
                    except psutil.Error:
                        pass
                peak = max(peak, total)
            except psutil.Error:
                pass
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    done.set()
    thread.join()
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{cmd[:3]} failed:\n{err[-3000:]}")
    return {"wall_s": round(wall, 1), "cpu_s": round(sum(cpu.values()), 1), "peak_tree_rss_mib": peak // 2**20,
            "stdout": out}


def run(folder: Path, mode: str, master: str = "local[2]", driver_memory: str = "10g") -> dict:
    from pyspark.sql import SparkSession
    from splink import Linker, SettingsCreator, SparkAPI, block_on
    from splink.internals.spark.jar_location import similarity_jar_location

    scratch = tempfile.mkdtemp(prefix="splink-spark-")
    spark = (SparkSession.builder.master(master).appName("splink-bench")
             .config("spark.driver.memory", driver_memory)
             .config("spark.jars", similarity_jar_location())
             .config("spark.sql.shuffle.partitions", "64")
             .config("spark.local.dir", scratch)
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(str(Path(scratch) / "checkpoints"))
    timings = {}
    t = time.perf_counter()
    names = ["left", "right"] if mode == "link" else ["records"]
    tables = []
    for name in names:
        df = spark.read.parquet(str(folder / f"{name}.parquet"))
        has_sex = "sex" in df.columns
        # The expert's cleaning of linkage_bench.run_splink, in Spark SQL (try_to_date: Spark 4 is ANSI).
        df = df.selectExpr(
            "record_id AS unique_id",
            "nullif(split(trim(regexp_replace(lower(forename), '[^a-z ]', '')), ' ')[0], '') AS forename",
            "nullif(regexp_replace(lower(surname), '[^a-z]', ''), '') AS surname",
            "coalesce(try_to_date(trim(dob), 'yyyyMMdd'), try_to_date(trim(dob), 'yyyy-MM-dd'), "
            "try_to_date(trim(dob), 'dd/MM/yyyy')) AS dob",
            "nullif(regexp_replace(upper(regexp_replace(postcode, '\\\\s', '')), '^(.+)(...)$', '$1 $2'), '') AS postcode",
            *(["nullif(upper(trim(sex)), 'U') AS sex"] if has_sex else []),
        )
        tables.append(df)
    db_api = SparkAPI(spark_session=spark)
    comparisons, blocking, sessions = splink_model(has_sex, sum(t.count() for t in tables))
    settings = SettingsCreator(link_type="link_only" if mode == "link" else "dedupe_only", comparisons=comparisons,
                               blocking_rules_to_generate_predictions=blocking, retain_matching_columns=False)
    linker = Linker([db_api.register(df, table_name=f"tbl_{n}") for n, df in zip(names, tables)], settings,
                    log_level=30)
    timings["setup"] = time.perf_counter() - t
    t = time.perf_counter()
    linker.training.estimate_probability_two_random_records_match([block_on(*r) for r in DETERMINISTIC], recall=RECALL)
    linker.training.estimate_u_using_random_sampling(max_pairs=U_PAIRS, seed=SEED)
    for session in sessions:
        linker.training.estimate_parameters_using_expectation_maximisation(session)
    timings["train"] = time.perf_counter() - t
    t = time.perf_counter()
    predictions = linker.inference.predict(threshold_match_probability=SPLINK_FLOOR)
    parts = Path(scratch) / "pairs"
    (predictions.as_spark_dataframe()
     .selectExpr("unique_id_l AS record_id_l", "unique_id_r AS record_id_r", "match_probability")
     .write.parquet(str(parts)))
    timings["predict"] = time.perf_counter() - t
    import polars as pl

    pl.read_parquet(str(parts / "*.parquet")).write_parquet(folder / "splink_spark_pairs.parquet")
    spark.stop()
    return {k: round(v, 1) for k, v in timings.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", required=True)
    ap.add_argument("--mode", default="link")
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()
    print(json.dumps(run(Path(args.folder), args.mode, args.master)))


if __name__ == "__main__":
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    main()
