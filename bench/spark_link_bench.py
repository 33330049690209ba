"""`tfkit link`: the Spark engine (local[2]) against the polars engine, side by side in one run.

    .venv/bin/python bench/spark_link_bench.py --size 1000000      # demo cohort x partners, 1M each
    .venv/bin/python bench/spark_link_bench.py --size 100000 --clean-and-report   # with --clean, --report
    .venv/bin/python bench/spark_link_bench.py --size 10000000   # ten LAs' 1M generations (national_corpus.py)

Both run the CLI in their own process on the same Parquet files (bench/linkage_bench.py's corpus
and scorer: demo generator, seed 1; above 1M people, bench/national_corpus.py's corpus of several
LAs' generations, streamed chunk by chunk), with the default model and seed: wall time and peak RSS from
/usr/bin/time -v (for Spark, the Python driver's and the JVM's are reported apart: the JVM is a
child of the driver), F1 against the generator's truth. The engines' pairs must be equal; the
script checks it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from linkage_bench import corpus_data, score  # noqa: E402
from national_corpus import CHUNK_PEOPLE, national_corpus  # noqa: E402

TFKIT = str(Path(sys.executable).with_name("tfkit"))


def timed(cmd: list[str]) -> dict:
    """Wall, CPU and peak RSS of `cmd`, and the machine's 1-minute load average every 5 s while it
    ran (min, mean, max: the machine may be shared)."""
    loads, done = [], threading.Event()

    def sample():
        while not done.wait(5):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t = time.perf_counter()
    run = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t
    done.set()
    sampler.join()
    loads = loads or [os.getloadavg()[0]]
    if run.returncode:
        raise SystemExit(f"{cmd[1]} failed:\n{run.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", run.stderr).group(1)) for k in ("User", "System"))
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mib": rss // 1024,
            "load_min_mean_max": [round(min(loads), 1), round(sum(loads) / len(loads), 1), round(max(loads), 1)]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--config", default=str(HERE / "spark_local2.toml"))
    ap.add_argument("--clean-and-report", action="store_true",
                    help="both engines with --clean left (the demo cohort) and --report (and the review folder)")
    ap.add_argument("--engines", default="polars,spark",
                    help="run only these (comma-separated); the comparison reads the other's last pairs")
    args = ap.parse_args()
    folder = HERE / "out" / f"spark_link_{args.size}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "truth.parquet").exists():
        if args.size > CHUNK_PEOPLE:  # more than one LA's generation
            national_corpus(folder, args.size)
        else:
            corpus_data("demo", folder, args.size)
    inputs = [str(folder / "left.parquet"), str(folder / "right.parquet")]
    results = {}
    for engine in args.engines.split(","):
        out = folder / engine
        extra = ["--engine", "spark", "--config", args.config] if engine == "spark" else []
        if args.clean_and_report:
            extra += ["--clean", "left", "--report", str(folder / f"{engine}.html")]
        results[engine] = timed([TFKIT, "--quiet", "link", *inputs, "-o", str(out), "--seed", "1",
                                 "--json", str(folder / f"{engine}.json"), *extra])
        pairs = pl.read_parquet(out / ("pairs.parquet" if engine == "polars" else "pairs.parquet/*.parquet"))
        # in one order for both (Spark's parts are each in a fixed order, not globally sorted)
        pairs.select("record_id_l", "record_id_r", "match_probability").sort("record_id_l", "record_id_r").write_parquet(
            folder / f"{engine}_pairs.parquet")
        summary = json.loads((folder / f"{engine}.json").read_text())
        results[engine].update(score(folder, engine, summary["threshold"]), pairs=pairs.height,
                               timings=summary.get("timings_seconds"))
    a = pl.read_parquet(folder / "polars_pairs.parquet")
    b = pl.read_parquet(folder / "spark_pairs.parquet")
    results["pairs_equal"] = a.select("record_id_l", "record_id_r").equals(b.select("record_id_l", "record_id_r"))
    results["max_probability_difference"] = float((a["match_probability"] - b["match_probability"]).abs().max())
    if args.clean_and_report:
        both = [json.loads((folder / f"{e}.json").read_text()) for e in ("polars", "spark")]
        results["constraints_equal"] = both[0]["constraints"] == both[1]["constraints"]
        results["constraints"] = both[1]["constraints"]
        results["reports_equal"] = (folder / "polars.html").read_bytes() == (folder / "spark.html").read_bytes()
        results["clusters_equal"] = pl.read_parquet(folder / "polars" / "clusters.parquet").select(
            "cluster_id").equals(pl.read_parquet(folder / "spark" / "clusters.parquet" / "*.parquet").select("cluster_id"))
    if "polars" in results and "spark" in results:
        results["spark_over_polars_wall"] = round(results["spark"]["wall_s"] / results["polars"]["wall_s"], 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
