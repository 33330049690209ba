"""`tfkit link --engine spark` at N x N: the Python driver's peak memory and the stage times.

    flock /work/notes/heavy.lock .venv/bin/python bench/spark_prepare_bench.py --data DIR [--code CHECKOUT]

DIR holds left.parquet and right.parquet (bench/spark_link_bench.py's corpus). `--code` runs another
checkout of tfkit (e.g. main, for a before/after) with this interpreter. The driver's peak RSS is the
Python process's own (getrusage RUSAGE_SELF: the JVM and the Python workers are other processes);
the whole tree's largest process from /usr/bin/time -v.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = """
import atexit, json, resource, sys
atexit.register(lambda: print("DRIVER_RSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))
from tfkit.cli import app
sys.argv = ["tfkit", *sys.argv[1:]]
app()
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--code", default=None, help="a tfkit checkout to run instead of this one")
    ap.add_argument("--config", default=str(HERE / "spark_local2.toml"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.out)
    env = dict(os.environ)
    if args.code:
        env["PYTHONPATH"] = args.code
    cmd = [sys.executable, "-c", RUN, "--quiet", "link", str(data / "left.parquet"), str(data / "right.parquet"),
           "-o", str(out / "linked"), "--seed", "1", "--json", str(out / "summary.json"), "--engine", "spark",
           "--config", args.config]
    load = os.getloadavg()
    t = time.perf_counter()
    run = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if run.returncode:
        raise SystemExit(run.stderr[-3000:])
    summary = json.loads((out / "summary.json").read_text())
    result = {
        "code": args.code or "this checkout", "wall_s": round(wall, 1),
        "driver_peak_rss_mib": int(re.search(r"DRIVER_RSS_KIB (\d+)", run.stderr).group(1)) // 1024,
        "largest_process_peak_rss_mib": int(re.search(r"Maximum resident set size \(kbytes\): (\d+)",
                                                      run.stderr).group(1)) // 1024,
        "timings_seconds": summary.get("timings_seconds"), "candidate_pairs": summary.get("candidate_pairs"),
        "links": summary.get("links"), "load_before": [round(x, 1) for x in load],
        "load_after": [round(x, 1) for x in os.getloadavg()],
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
