"""`tfkit link` at 1M, 3M and 10M people a side, one engine a run: per-stage wall, task CPU and shuffle.

    flock /work/notes/heavy.lock .venv/bin/python bench/spark_link_scale.py run --size 3000000 --engine spark
    .venv/bin/python bench/spark_link_scale.py report bench/out/spark_link_1000000 bench/out/spark_link_3000000

The corpus is bench/spark_link_bench.py's (`bench/out/spark_link_<size>`, made by
bench/national_corpus.py when missing). The run is `tfkit --quiet link left right -o ... --seed 1
--json ...` in a child process, as the CLI runs it, with two additions for measurement only:

- Spark writes its event log (`<folder>/events_<engine>`), and every Spark job is labelled with the
  `link` stage that ran it (prepare, block_and_compare, train, predict, cluster, write: the stage functions of
  `tfkit.engine.spark.link` wrapped to set the job description), so task CPU, shuffle and spill are
  per stage (`spark_link_keys_bench.spark_events`);
- peak RSS of the driver (the Python process) and of the JVM, CPU seconds of the process tree and
  the load average, sampled every 0.5 s (`spark_link_keys_bench.Tree`).

The summary's stage timings, pair and link counts are kept; `--score` adds precision/recall/F1
against the generator's truth (reads every pair: minutes at 10M). Results: `<folder>/scale_<engine>.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from spark_link_keys_bench import Tree, spark_events  # noqa: E402

STAGES = {"candidate_levels_spark": "block_and_compare", "train_spark": "train", "score_spark": "predict",
          "constrained_links_spark": "cluster"}


def child(cli: list[str]) -> None:
    """The CLI in this process, with the stage functions labelling their Spark jobs."""
    import functools

    from tfkit.engine.spark import link as spark_link

    def labelled(fn, stage):
        @functools.wraps(fn)
        def run(spark, *a, **k):
            spark.sparkContext.setJobDescription(f"link {stage}")
            return fn(spark, *a, **k)
        return run

    def labelled_linker(fn, stage):  # train_spark takes the linker first, not the session
        @functools.wraps(fn)
        def run(*a, **k):
            from pyspark.sql import SparkSession

            SparkSession.getActiveSession().sparkContext.setJobDescription(f"link {stage}")
            return fn(*a, **k)
        return run

    for name, stage in STAGES.items():
        fn = getattr(spark_link, name)
        wrap = labelled_linker if name == "train_spark" else labelled
        setattr(spark_link, name, wrap(fn, stage))
    outer = spark_link.link_spark

    @functools.wraps(outer)
    def link_spark(spark, *a, **k):
        spark.sparkContext.setJobDescription("link prepare")
        result = outer(spark, *a, **k)
        spark.sparkContext.setJobDescription("link write")
        return result

    spark_link.link_spark = link_spark
    from tfkit.cli import app

    sys.argv = ["tfkit", *cli]
    app()


def config_with_events(base: Path, events: Path, out: Path) -> Path:
    """`base`'s engine table plus Spark's event log in `events`."""
    conf = tomllib.loads(base.read_text())
    spark = {**conf["engine"].get("spark", {}), "spark.eventLog.enabled": "true",
             "spark.eventLog.dir": events.resolve().as_uri(), "spark.eventLog.compress": "false",
             "spark.eventLog.rolling.enabled": "false"}
    lines = ["[engine]"] + [f"{k} = {json.dumps(v)}" for k, v in conf["engine"].items() if k != "spark"]
    lines += ["[engine.spark]"] + [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in spark.items()]
    out.write_text("\n".join(lines) + "\n")
    return out


def run(args) -> None:
    folder = HERE / "out" / f"spark_link_{args.size}"
    if not (folder / "truth.parquet").exists():
        from linkage_bench import corpus_data
        from national_corpus import CHUNK_PEOPLE, national_corpus

        folder.mkdir(parents=True, exist_ok=True)
        national_corpus(folder, args.size) if args.size > CHUNK_PEOPLE else corpus_data("demo", folder, args.size)
    engine = args.engine
    out, summary_path = folder / engine, folder / f"{engine}.json"
    shutil.rmtree(out, ignore_errors=True)
    cli = ["--quiet", "link", str(folder / "left.parquet"), str(folder / "right.parquet"), "-o", str(out),
           "--seed", "1", "--json", str(summary_path)]
    events = folder / f"events_{engine}"
    if engine == "spark":
        shutil.rmtree(events, ignore_errors=True)
        events.mkdir()
        config = config_with_events(Path(args.config), events, folder / "spark_events.toml")
        cli += ["--engine", "spark", "--config", str(config)]
    start = time.perf_counter()
    print(f"{engine} {args.size:,}: start {time.strftime('%H:%M:%S', time.gmtime())} UTC, load {os.getloadavg()}",
          file=sys.stderr, flush=True)
    proc = subprocess.Popen([sys.executable, __file__, "child", *cli])
    tree = Tree(proc.pid)
    code = proc.wait()
    result = {"engine": engine, "size": args.size, "config": args.config if engine == "spark" else None,
              "exit": code, "wall_s": round(time.perf_counter() - start, 1), **tree.finish(),
              "started_utc": time.strftime("%H:%M:%S", time.gmtime(time.time() - (time.perf_counter() - start)))}
    if code == 0:
        summary = json.loads(summary_path.read_text())
        result["timings"] = summary.get("timings_seconds")
        result["summary"] = {k: summary.get(k) for k in ("pairs", "links", "clusters", "threshold", "blocking",
                                                         "training", "clustering", "warnings") if k in summary}
        if args.score:
            import polars as pl
            from linkage_bench import score

            pattern = out / ("pairs.parquet" if engine == "polars" else "pairs.parquet/*.parquet")
            pl.scan_parquet(pattern).select("record_id_l", "record_id_r", "match_probability").sink_parquet(
                folder / f"{engine}_pairs.parquet")
            result["accuracy"] = score(folder, engine, summary["threshold"])
    if engine == "spark":
        result["spark"] = spark_events(events)
    (folder / f"scale_{engine}.json").write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps({k: v for k, v in result.items() if k not in ("summary", "spark")}, indent=1, default=str))


def report(folders: list[Path]) -> None:
    """Per-stage wall, task CPU and shuffle at each size, and the growth exponents (first to last)."""
    rows = []
    for f in folders:
        p = f / "scale_spark.json"
        if p.exists():
            rows.append(json.loads(p.read_text()))
    rows.sort(key=lambda r: r["size"])
    stages = ["prepare", "block_and_compare", "train", "predict", "cluster", "write"]
    gib = 2 ** 30
    for r in rows:
        print(f"\n{r['size']:,} a side: wall {r['wall_s']:.0f} s, process-tree CPU {r['cpu_s']:.0f} s, driver "
              f"{r['peak_rss_driver_gib']:.2f} GiB, JVM {r['peak_rss_jvm_gib']:.2f} GiB, load "
              f"{r['load_min']:.1f}-{r['load_max']:.1f} (mean {r['load_mean']:.1f}), timings {r.get('timings')}")
        for s in stages:
            e = r.get("spark", {}).get(f"link {s}")
            if e:
                print(f"  {s:17} task CPU {e['cpu_s']:8.0f} s  task time {e['task_s']:8.0f} s  shuffle write "
                      f"{e['shuffle_write'] / gib:7.2f} GiB  spill disk {e['spill_disk'] / gib:6.2f} GiB  jobs {e['jobs']}")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        ratio = math.log(b["size"] / a["size"])
        print(f"\nexponent k (cost ~ N^k), {a['size']:,} to {b['size']:,}:")
        for s in stages:
            ea, eb = a.get("spark", {}).get(f"link {s}"), b.get("spark", {}).get(f"link {s}")
            ta, tb = (a.get("timings") or {}).get(s), (b.get("timings") or {}).get(s)
            parts = []
            if ta and tb:
                parts.append(f"wall {math.log(tb / ta) / ratio:.2f}")
            if ea and eb and ea["cpu_s"] and eb["cpu_s"]:
                parts.append(f"task CPU {math.log(eb['cpu_s'] / ea['cpu_s']) / ratio:.2f}")
            if ea and eb and ea["shuffle_write"] and eb["shuffle_write"]:
                parts.append(f"shuffle {math.log(eb['shuffle_write'] / ea['shuffle_write']) / ratio:.2f}")
            print(f"  {s:17} " + ", ".join(parts))


def main() -> None:
    if sys.argv[1:2] == ["child"]:  # the CLI's own arguments follow
        return child(sys.argv[2:])
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--size", type=int, required=True)
    r.add_argument("--engine", choices=("spark", "polars"), default="spark")
    r.add_argument("--config", default=str(HERE / "spark_local2.toml"))
    r.add_argument("--score", action="store_true")
    p = sub.add_parser("report")
    p.add_argument("folders", nargs="+", type=Path)
    args = ap.parse_args()
    {"run": run, "report": lambda a: report(a.folders)}[args.cmd](args)


if __name__ == "__main__":
    main()
