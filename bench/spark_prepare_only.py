"""`prepare` alone at N x N: the Spark engine's `prepare_spark` against the polars engine's `prepare`.

    flock /work/notes/heavy.lock .venv/bin/python bench/spark_prepare_only.py --data DIR [--code CHECKOUT]

DIR holds left.parquet and right.parquet (bench/spark_link_bench.py's corpus). Reports wall time and
the CPU seconds of the whole process tree (the driver, the JVM and the Python workers: utime + stime
of each live descendant, plus what finished children left in cutime/cstime), the Spark jobs run,
and `SparkPrepared.timings`. `--code` imports tfkit from another checkout (a before/after).
Spark `local[2]`, 64 shuffle partitions unless `--partitions`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and every live descendant (with their reaped children's)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            stats[int(entry)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            f = stats[p]
            total += sum(int(x) for x in f[11:15]) / tick
        todo += children.get(p, [])
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--code", default=None)
    ap.add_argument("--partitions", default="64")
    ap.add_argument("--polars", action="store_true", help="also time the polars engine's prepare")
    args = ap.parse_args()
    if args.code:
        sys.path.insert(0, args.code)
    import polars as pl

    from tfkit.engine import EngineSettings
    from tfkit.engine.spark.io import read_sources_spark
    from tfkit.engine.spark.prepare import prepare_spark
    from tfkit.engine.spark.session import spark_session
    from tfkit.linkage import LinkageModel
    from tfkit.linkage.standardise import NameVariants, prepare

    data = Path(args.data)
    paths = [data / "left.parquet", data / "right.parquet"]
    fields = LinkageModel.default().field_kinds()
    out = {"code": args.code or "this checkout", "load_before": os.getloadavg()}
    if args.polars:
        frames = [pl.read_parquet(p).with_columns(pl.all().cast(pl.String)) for p in paths]
        c0, t0 = tree_cpu(os.getpid()), time.perf_counter()
        prepare(frames, ["left", "right"], fields, id_column="record_id", variants=NameVariants.load())
        out["polars"] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(tree_cpu(os.getpid()) - c0, 1)}
    spark = spark_session(EngineSettings(kind="spark", master="local[2]", conf={
        "spark.sql.shuffle.partitions": args.partitions, "spark.driver.memory": "10g", "spark.ui.enabled": "false"}))
    spark.range(10).count()  # the JVM started and warm before the clock
    tracker = spark.sparkContext.statusTracker()
    jobs0 = len(tracker.getJobIdsForGroup(None))
    c0, t0 = tree_cpu(os.getpid()), time.perf_counter()
    sources = read_sources_spark(spark, paths)
    got = prepare_spark(spark, sources, fields, id_columns={s: "record_id" for s in sources},
                        variants=NameVariants.load())
    out["spark"] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(tree_cpu(os.getpid()) - c0, 1),
                    "jobs": len(tracker.getJobIdsForGroup(None)) - jobs0, "records": got.n, "timings": got.timings}
    out["load_after"] = os.getloadavg()
    print(json.dumps(out))
    spark.stop()


if __name__ == "__main__":
    main()
