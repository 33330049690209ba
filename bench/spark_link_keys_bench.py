"""`tfkit link-keys` at national size: an LA's extract against a national file, 12 match keys.

One command generates an N x M pair of hashed extracts and runs link-keys on each engine, each in
its own process, recording per-pass times, peak memory (the driver process and the JVM: psutil over
the process tree, sampled every 0.5 s), Spark's shuffle and spill bytes per pass (from its event
log), pair counts and the load average, and checks the two engines' pairs are equal:

    nice -n 5 .venv/bin/python bench/spark_link_keys_bench.py scale --la 1000000 --national 1000000 \
        --data /work/scale-data/1m --engines spark,polars          # writes <data>/results.json

The older two-step form (1M LA x 20.4M national, each engine through the CLI):

    .venv/bin/python bench/spark_link_keys_bench.py generate --la 1000000 --national 20000000
    /usr/bin/time -v .venv/bin/tfkit link-keys bench/out/lk/la bench/out/lk/national \
        --out bench/out/lk/pairs.parquet --json                       # polars engine (streams)
    /usr/bin/time -v .venv/bin/tfkit link-keys ... --out bench/out/lk/pairs_spark --engine spark \
        --config bench/spark_link_keys_local2.toml                     # Spark, local[2]
    .venv/bin/python bench/spark_link_keys_bench.py check            # the two engines' pairs agree

The data are what `tfkit pseudonymise` writes (64-hex HMACs in mk_<key> columns, one id pseudonym),
generated directly so that 20M people take minutes, not hours. Person p of the national file holds,
for key j, HMAC(key j, p // g_j): the first keys identify a person (g = 1), later ones are coarser
(for 30% of people, g up to 16: a value shared by up to 16 people, as surname + year of birth + district can be), so
later keys meet ambiguity. The LA's records are national people (`--overlap`, default all; the rest
are people the national file does not hold), each key's value
missing (null) or disagreeing (a typo, a move: a value no one holds) with its own rate, so each
key resolves some of what earlier keys left. 2% of national people appear twice (a duplicate
registration): both copies are ambiguous on every key, and nothing links to them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import polars_hash  # noqa: F401

from tfkit.pseudonymise.match_keys import default_match_keys

OUT = Path(__file__).resolve().parent / "out" / "lk"
KEYS = [k.name for k in default_match_keys()]
GROUP = [1, 1, 1, 1, 1, 1, 2, 2, 2, 4, 8, 16]  # people sharing one value of key j
NULL = [0.6, 0.5, 0.7, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.02, 0.02, 0.02]  # LA side: unknown
WRONG = [0.02, 0.02, 0.02, 0.15, 0.12, 0.10, 0.10, 0.10, 0.10, 0.05, 0.05, 0.05]  # LA side: disagrees


def _keys(person: pl.Expr, null: list[float] | None, wrong: list[float] | None, seed: int) -> list[pl.Expr]:
    exprs = []
    for j, name in enumerate(KEYS):
        shared = pl.when(person % 10 < 3).then(person // GROUP[j]).otherwise(person)  # 30% share a value
        base = pl.lit(f"{name}:") + shared.cast(pl.String)
        if wrong is not None:
            u = pl.int_range(pl.len()).hash(seed * 100 + j) % 1_000_000 / 1_000_000
            base = (pl.when(u < null[j]).then(None)
                    .when(u < null[j] + wrong[j]).then(base + pl.lit("~typo"))
                    .otherwise(base))
        exprs.append(base.chash.sha2_256().alias(f"mk_{name}"))
    return exprs


def generate(out: Path, la: int, national: int, parts: int, seed: int, overlap: float = 1.0) -> None:
    """National file of `national` people (+2% duplicate registrations) in `parts` parts, and an LA
    extract of `la` records in parts of at most 1M rows: `overlap` of them national people, the rest
    people the national file does not hold (they can only fail to link, or link wrongly)."""
    (out / "national").mkdir(parents=True, exist_ok=True)
    (out / "la").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dup = national // 50
    per = -(-(national + dup) // parts)
    people = np.concatenate([np.arange(national), rng.choice(national, dup, replace=False)])
    people = people[rng.permutation(people.size)]
    t = time.perf_counter()
    for i in range(parts):
        chunk = pl.DataFrame({"p": people[i * per:(i + 1) * per]})
        (chunk.select((pl.lit("nat:") + pl.col("p").cast(pl.String)).chash.sha2_256().alias("person_id_pseudonym"),
                      *_keys(pl.col("p"), None, None, seed))
         .write_parquet(out / "national" / f"part-{i:05d}.parquet", compression="zstd", statistics=False))
        print(f"national part {i + 1}/{parts} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    inside = round(la * overlap)
    la_people = np.concatenate([rng.choice(national, inside, replace=False),
                                national + np.arange(la - inside)])  # outside: ids no national person has
    la_people = la_people[rng.permutation(la_people.size)]
    la_per = 1_000_000
    for i in range(-(-la // la_per)):
        chunk = pl.DataFrame({"p": la_people[i * la_per:(i + 1) * la_per]})
        (chunk.select((pl.lit("la:") + pl.col("p").cast(pl.String)).chash.sha2_256().alias("person_id_pseudonym"),
                      *_keys(pl.col("p"), NULL, WRONG, seed + i))
         .write_parquet(out / "la" / f"part-{i:05d}.parquet", compression="zstd", statistics=False))
    print(f"done in {time.perf_counter() - t:.0f} s: {out}", file=sys.stderr)


def check(out: Path = OUT) -> bool:
    a = pl.read_parquet(out / "pairs.parquet")
    b = pl.read_parquet(out / "pairs_spark" / "*.parquet")
    equal = a.equals(b)
    print(f"polars {a.height:,} pairs, spark {b.height:,} pairs, equal: {equal}")
    print(a.group_by("match_key", maintain_order=True).len())
    return equal


def one(data: Path, engine: str, config: Path) -> None:
    """One engine's link-keys run in this process: a JSON line per finished pass, then the run."""
    from dataclasses import replace

    from tfkit.engine import EngineSettings, engine_from_file
    from tfkit.pseudonymise.link_keys import link_keys_files

    t0 = time.perf_counter()

    def on_key(c) -> None:
        print(json.dumps({"pass": c.match_key, "t": time.perf_counter() - t0, **c.as_dict()}), flush=True)

    if engine == "spark":
        settings = engine_from_file(config)
        (data / "events").mkdir(exist_ok=True)
        conf = {**settings.conf, "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": (data / "events").resolve().as_uri(),
                "spark.eventLog.compress": "false", "spark.eventLog.rolling.enabled": "false",
                "spark.local.dir": str((data / "spark-local").resolve())}
        settings = replace(settings, conf=conf)
        out = data / "pairs_spark"
    else:
        settings, out = EngineSettings(), data / "pairs.parquet"
    run = link_keys_files(data / "la", data / "national", out, engine=settings, on_key=on_key)
    print(json.dumps({"done": time.perf_counter() - t0, "run": run.to_dict()}), flush=True)


class Tree:
    """Peak RSS of a process and its descendants (the JVM under PySpark), CPU seconds, load average."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root, self.peak_total, self.peak_root, self.peak_java = psutil.Process(pid), 0, 0, 0
        self.cpu: dict[int, float] = {}
        self.load: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        import psutil

        while not self.stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total, java = 0, set()
            for p in procs:  # parents before children
                try:
                    rss, t = p.memory_info().rss, p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system
                    name, parent = p.name(), p.ppid()
                except psutil.NoSuchProcess:
                    continue
                if name == "java":
                    java.add(p.pid)
                if parent in java:  # a fork of the JVM (Hadoop's shell calls): its RSS is the JVM's pages
                    continue
                total += rss
                if p.pid == self.root.pid:
                    self.peak_root = max(self.peak_root, rss)
                elif name == "java":
                    self.peak_java = max(self.peak_java, rss)
            self.peak_total = max(self.peak_total, total)
            self.load.append(os.getloadavg()[0])
            self.stop.wait(0.5)

    def finish(self) -> dict:
        self.stop.set()
        self.thread.join()
        gib = 2 ** 30
        return {"peak_rss_total_gib": self.peak_total / gib, "peak_rss_driver_gib": self.peak_root / gib,
                "peak_rss_jvm_gib": self.peak_java / gib, "cpu_s": sum(self.cpu.values()),
                "load_min": min(self.load, default=0), "load_max": max(self.load, default=0),
                "load_mean": sum(self.load) / max(len(self.load), 1)}


def spark_events(events: Path) -> dict:
    """Shuffle, spill and input bytes, task time and task CPU time per job description (a pass, or the
    final pairs; "other": row numbering). Job times overlap (AQE runs a join's two sides at once)."""
    logs = sorted((p for p in events.rglob("*") if p.is_file() and not p.name.startswith((".", "appstatus"))),
                  key=lambda p: p.stat().st_mtime)
    if not logs:
        return {}
    stage_desc: dict[int, str] = {}
    job_start: dict[int, tuple[str, int]] = {}
    per: dict[str, dict[str, float]] = {}
    zero = {"shuffle_write": 0, "shuffle_read": 0, "spill_memory": 0, "spill_disk": 0, "input": 0, "task_s": 0,
            "tasks": 0, "cpu_s": 0, "job_s": 0, "jobs": 0}
    with open(logs[-1]) as f:
        for line in f:
            e = json.loads(line)
            kind = e.get("Event")
            if kind == "SparkListenerJobStart":
                desc = (e.get("Properties") or {}).get("spark.job.description") or "other"
                for sid in e.get("Stage IDs", []):
                    stage_desc[sid] = desc
                job_start[e["Job ID"]] = (desc, e.get("Submission Time", 0))
            elif kind == "SparkListenerJobEnd" and e.get("Job ID") in job_start:
                desc, t0 = job_start.pop(e["Job ID"])
                d = per.setdefault(desc, dict(zero))
                d["job_s"] += (e.get("Completion Time", t0) - t0) / 1000
                d["jobs"] += 1
            elif kind == "SparkListenerTaskEnd":
                m = e.get("Task Metrics") or {}
                d = per.setdefault(stage_desc.get(e.get("Stage ID"), "other"), dict(zero))
                sw, sr = m.get("Shuffle Write Metrics") or {}, m.get("Shuffle Read Metrics") or {}
                d["shuffle_write"] += sw.get("Shuffle Bytes Written", 0)
                d["shuffle_read"] += sr.get("Remote Bytes Read", 0) + sr.get("Local Bytes Read", 0)
                d["spill_memory"] += m.get("Memory Bytes Spilled", 0)
                d["spill_disk"] += m.get("Disk Bytes Spilled", 0)
                d["input"] += (m.get("Input Metrics") or {}).get("Bytes Read", 0)
                d["task_s"] += m.get("Executor Run Time", 0) / 1000
                d["cpu_s"] += m.get("Executor CPU Time", 0) / 1e9
                d["tasks"] += 1
    return per


def run_engine(data: Path, engine: str, config: Path) -> dict:
    if engine == "spark":
        shutil.rmtree(data / "events", ignore_errors=True)
    start, passes, final = time.perf_counter(), [], None
    proc = subprocess.Popen([sys.executable, __file__, "one", "--data", str(data), "--engine", engine,
                             "--config", str(config)], stdout=subprocess.PIPE, text=True)
    tree = Tree(proc.pid)
    for line in proc.stdout:
        if line.startswith("{"):
            rec = json.loads(line)
            if "pass" in rec:
                passes.append(rec)
                print(f"  {engine} pass {rec['pass']}: {rec['t']:.0f} s, {rec['pairs']:,} pairs, "
                      f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
            else:
                final = rec
    code = proc.wait()
    result = {"engine": engine, "exit": code, "wall_s": time.perf_counter() - start, **tree.finish(),
              "passes": passes, "run": final and final["run"], "done_s": final and final["done"]}
    if engine == "spark":
        result["spark"] = spark_events(data / "events")
    return result


def scale(args) -> None:
    data: Path = args.data
    if not (data / "national").exists() or args.regenerate:
        t = time.perf_counter()
        generate(data, args.la, args.national, args.parts, args.seed, args.overlap)
        print(f"generated in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    results_path = data / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["sizes"] = {"la": args.la, "national": args.national, "overlap": args.overlap}
    for engine in args.engines.split(","):
        print(f"{engine}: start {time.strftime('%H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}",
              file=sys.stderr, flush=True)
        results[engine] = res = run_engine(data, engine, args.config)
        results_path.write_text(json.dumps(results, indent=1))
        print(f"{engine}: exit {res['exit']}, {res['wall_s']:.0f} s, peak RSS total "
              f"{res['peak_rss_total_gib']:.2f} GiB (JVM {res['peak_rss_jvm_gib']:.2f}), "
              f"load {res['load_min']:.1f}-{res['load_max']:.1f}", file=sys.stderr, flush=True)
    if (data / "pairs.parquet").exists() and (data / "pairs_spark").exists() and args.check:
        results["equal"] = check(data)
        results_path.write_text(json.dumps(results, indent=1))


def report(datas: list[Path]) -> None:
    """Markdown tables from `scale` runs' results.json: totals, then per-pass time and shuffle."""
    runs = [(d, json.loads((d / "results.json").read_text())) for d in datas]
    for d, r in runs:
        if "spark" in r and (d / "events").exists():
            r["spark"]["spark"] = spark_events(d / "events")  # this script's current reading of the log
    mib = 2 ** 20
    print("| size (LA x national) | engine | wall | CPU | peak RSS driver / JVM / total | load (min-max) | pairs | equal |")
    print("|---|---|---:|---:|---|---|---:|---|")
    for _, r in runs:
        size = f"{r['sizes']['la'] / 1e6:g}M x {r['sizes']['national'] * 1.02 / 1e6:g}M"
        for e in ("spark", "polars"):
            if e not in r:
                continue
            x = r[e]
            pairs = f"{x['run']['pairs']:,}" if x.get("run") else f"exit {x['exit']}"
            print(f"| {size} | {e} | {x['wall_s']:.0f} s | {x['cpu_s']:.0f} s | {x['peak_rss_driver_gib']:.2f} / "
                  f"{x['peak_rss_jvm_gib']:.2f} / {x['peak_rss_total_gib']:.2f} GiB | "
                  f"{x['load_min']:.1f}-{x['load_max']:.1f} | {pairs} | {r.get('equal', '')} |")
    print()
    print("| size | engine | stage | wall s | Spark task CPU s | shuffle written MiB | spilled (disk) MiB | pairs |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for _, r in runs:
        size = f"{r['sizes']['la'] / 1e6:g}M"
        for e in ("spark", "polars"):
            if e not in r or not r[e].get("passes"):
                continue
            x, prev = r[e], 0.0
            ev = x.get("spark", {})
            stages = []
            for i, p in enumerate(x["passes"], start=1):
                label = f"pass {i:02d} {p['pass']}" + (" (with start-up, row numbers)" if i == 1 else "")
                stages.append((label, f"tfkit link-keys pass {i:02d} {p['pass']}", p["t"] - prev, p["pairs"]))
                prev = p["t"]
            stages.append(("pairs: ids, sort, write, counts", "tfkit link-keys pairs", (x["done_s"] or 0) - prev, None))
            for label, desc, t, n in stages:
                m = ev.get(desc, {}) if desc else {}
                extra = ev.get("other", {}) if label.startswith("pass 01") else {}
                task = m.get("cpu_s", 0) + extra.get("cpu_s", 0)
                sw = (m.get("shuffle_write", 0) + extra.get("shuffle_write", 0)) / mib
                sp = (m.get("spill_disk", 0) + extra.get("spill_disk", 0)) / mib
                cells = f"{task:.0f} | {sw:.0f} | {sp:.0f}" if e == "spark" else "- | - | -"
                print(f"| {size} | {e} | {label} | {t:.1f} | {cells} | {'' if n is None else f'{n:,}'} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--la", type=int, default=1_000_000)
    g.add_argument("--national", type=int, default=20_000_000)
    g.add_argument("--parts", type=int, default=20)
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--overlap", type=float, default=1.0, help="share of LA records that are national people")
    g.add_argument("--out", type=Path, default=OUT)
    c = sub.add_parser("check")
    c.add_argument("--out", type=Path, default=OUT)
    o = sub.add_parser("one")  # one engine's run, started by `scale` in its own process
    o.add_argument("--data", type=Path, required=True)
    o.add_argument("--engine", choices=["polars", "spark"], required=True)
    o.add_argument("--config", type=Path, required=True)
    s = sub.add_parser("scale")
    s.add_argument("--la", type=int, required=True)
    s.add_argument("--national", type=int, required=True)
    s.add_argument("--parts", type=int, default=10)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--overlap", type=float, default=0.9)
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--engines", default="spark,polars")
    s.add_argument("--config", type=Path, default=Path(__file__).resolve().parent / "spark_link_keys_local2.toml")
    s.add_argument("--regenerate", action="store_true")
    s.add_argument("--no-check", dest="check", action="store_false")
    r = sub.add_parser("report")
    r.add_argument("data", type=Path, nargs="+")
    args = ap.parse_args()
    if args.cmd == "generate":
        generate(args.out, args.la, args.national, args.parts, args.seed, args.overlap)
    elif args.cmd == "check":
        check(args.out)
    elif args.cmd == "report":
        report(args.data)
    elif args.cmd == "one":
        one(args.data, args.engine, args.config)
    else:
        scale(args)


if __name__ == "__main__":
    main()
