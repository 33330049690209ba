"""Benchmark: `tfkit validate` against frictionless-py on a generated NIS cohort, the same file.

    .venv/bin/python bench/validate_bench.py                      # 1,000,000 rows, both on the full file
    .venv/bin/python bench/validate_bench.py --sample 50000       # quicker: frictionless on the first 50,000

What runs (each side in its own subprocess; wall time, CPU time and peak RSS of that subprocess):
  1. tfkit CLI, full file:  tfkit --quiet validate cohort.csv --schema nis --json report.json
     (all checks: types, dates, code lists, NI number, UPN check letter + LA number, NHS check digit,
     postcode, uniqueness, family rules; identifier values masked in the report). Start-up included.
  2. frictionless-py `validate` on the same file with a pattern-only Table Schema (regex constraints,
     an enum and a unique id; it cannot check check digits, and its report prints raw identifiers).
     By default on the full file (about 40 s). With --sample N it runs on the first N rows, tfkit
     runs on them too for a like-for-like small-file rate, and frictionless' full-file time is
     extrapolated from its rate (the table says so).

The cohort comes from tfkit.demo (seed 42, 1% invalid rows) and is cached in bench/out/validate/.
Targets for tfkit on 1,000,000 rows: < 5 s wall, < 2 GiB peak RSS, >= 20x frictionless' rate.
The machine is shared and noisy (+-20% between minutes): run it several times and report the spread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "validate"
PYTHON = sys.executable
TFKIT = [PYTHON, "-m", "tfkit.cli"] if not (Path(PYTHON).parent / "tfkit").exists() else [str(Path(PYTHON).parent / "tfkit")]

# Pattern-only Table Schema for the demo cohort's headers: the most frictionless can express.
FRICTIONLESS_SCHEMA = {
    "fields": [
        {"name": "LA Code", "type": "string", "constraints": {"required": True, "pattern": "[ENSW][0-9]{8}"}},
        {"name": "Family ID", "type": "string", "constraints": {"required": True}},
        {"name": "Person ID", "type": "string", "constraints": {"required": True, "unique": True}},
        {"name": "Forename", "type": "string", "constraints": {"required": True}},
        {"name": "Surname", "type": "string", "constraints": {"required": True}},
        {"name": "Date of Birth", "type": "string", "constraints": {"required": True, "pattern": "[0-3][0-9]/[01][0-9]/(19|20)[0-9]{2}"}},
        {"name": "Gender", "type": "string", "constraints": {"required": True, "enum": ["M", "F", "U"]}},
        {"name": "Postcode", "type": "string", "constraints": {"pattern": "[A-Za-z]{1,2}[0-9][A-Za-z0-9]? ?[0-9][A-Za-z]{2}"}},
        {"name": "NI Number", "type": "string", "constraints": {"pattern": "[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]"}},
        {"name": "UPN", "type": "string", "constraints": {"pattern": "[A-Z][0-9]{11}[0-9A-Z]"}},
        {"name": "NHS Number", "type": "string", "constraints": {"pattern": "[0-9]{3} ?[0-9]{3} ?[0-9]{4}"}},
        *[{"name": n, "type": "string", "constraints": {"required": True, "enum": ["Y", "N"]}}
          for n in ("Crime/ASB", "Education", "Children Who Need Help", "Worklessness", "Domestic Abuse", "Health")],
        {"name": "Intervention Status", "type": "string", "constraints": {"required": True, "enum": ["waiting", "in_progress", "completed", "disengaged"]}},
        {"name": "Intervention Start", "type": "string", "constraints": {"pattern": "[0-3][0-9]/[01][0-9]/20[0-9]{2}"}},
        {"name": "Intervention End", "type": "string", "constraints": {"pattern": "[0-3][0-9]/[01][0-9]/20[0-9]{2}"}},
        {"name": "Comparison Group", "type": "string", "constraints": {"required": True, "enum": ["Y", "N"]}},
    ]
}

FRICTIONLESS_RUN = """
import json, os, sys
from frictionless import Resource, Schema, validate
path, schema_path = sys.argv[1], sys.argv[2]
# frictionless refuses absolute paths as unsafe: give it a base path and a relative name.
resource = Resource(path=os.path.basename(path), basepath=os.path.dirname(path),
                    schema=Schema.from_descriptor(json.load(open(schema_path))))
report = validate(resource, limit_errors=10**9)
task = report.tasks[0]
print(json.dumps({"rows": task.stats["rows"], "errors": len(task.errors), "valid": report.valid,
                  "first_error": task.errors[0].message if task.errors else None}))
"""

MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
peak, cpu = usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime
print(json.dumps({"wall": wall, "peak": peak, "cpu": cpu, "rc": proc.returncode, "stdout": proc.stdout[-2000:], "stderr": proc.stderr[-2000:]}))
"""


def measure(cmd: list[str]) -> dict:
    """Run `cmd` under a fresh wrapper process so its peak RSS is its own."""
    out = subprocess.run([PYTHON, "-c", MEASURE, *cmd], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def make_cohort(rows: int, seed: int) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"cohort_{rows}_{seed}.csv"
    if path.exists():
        return path
    from tfkit.demo import write_demo

    target = OUT / f"demo_{rows}_{seed}"
    start = time.perf_counter()
    paths = write_demo(target, n_people=rows, seed=seed, force=True)
    os.replace(paths["cohort"], path)
    print(f"generated {path.name} with tfkit.demo in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return path


def head(path: Path, rows: int) -> Path:
    sample = path.with_name(f"{path.stem}_head{rows}.csv")
    if not sample.exists():
        with path.open("rb") as src, sample.open("wb") as dst:
            for i, line in enumerate(src):
                if i > rows:
                    break
                dst.write(line)
    return sample


def count_rows(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=None, help="rows given to frictionless (and to tfkit for a like-for-like rate); default: the full file")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-frictionless", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="tfkit runs; the median is reported")
    args = parser.parse_args()

    # Byte-compile tfkit first, as `pip install` does for a regular install: an editable install under
    # PYTHONDONTWRITEBYTECODE=1 (as on this machine) would otherwise compile tfkit's modules on every run.
    import compileall

    import tfkit

    compileall.compile_dir(Path(tfkit.__file__).parent, quiet=1)
    full = make_cohort(args.rows, args.seed)
    n_full = count_rows(full)
    whole = args.sample is None or args.sample >= n_full
    sample = full if whole else head(full, args.sample)
    n_sample = n_full if whole else count_rows(sample)
    schema_path = OUT / "frictionless_schema.json"
    schema_path.write_text(json.dumps(FRICTIONLESS_SCHEMA))

    results = []
    runs = [("tfkit (full file)", full, n_full)] + ([] if whole else [("tfkit (sample)", sample, n_sample)])
    for label, path, n in runs:
        report = OUT / f"report_{path.stem}.json"
        runs_of_tfkit = []
        for _ in range(args.repeat):  # the median run: the machine is shared and noisy
            m = measure([*TFKIT, "--quiet", "validate", str(path), "--schema", "nis", "--json", str(report)])
            if m["rc"] not in (0, 1):
                sys.exit(f"tfkit failed ({m['rc']}): {m['stderr']}")
            runs_of_tfkit.append(m)
        runs_of_tfkit.sort(key=lambda r: r["wall"])
        m = runs_of_tfkit[len(runs_of_tfkit) // 2]
        spread = ", ".join(f"{r['wall']:.2f}" for r in runs_of_tfkit)
        summary = json.loads(report.read_text())["summary"]
        results.append({"tool": label, "rows": n, "wall": m["wall"], "peak": m["peak"], "cpu": m["cpu"],
                        "note": f"{summary['rows_quarantined']:,} rows quarantined; median of {args.repeat} ({spread} s)"})
    if not args.skip_frictionless:
        m = measure([PYTHON, "-c", FRICTIONLESS_RUN, str(sample), str(schema_path)])
        if m["rc"] != 0:
            sys.exit(f"frictionless failed: {m['stderr']}")
        out = json.loads(m["stdout"].strip().splitlines()[-1])
        results.append({"tool": "frictionless (full file)" if whole else "frictionless (sample)", "rows": n_sample,
                        "wall": m["wall"], "peak": m["peak"], "cpu": m["cpu"],
                        "note": f"{out['errors']:,} errors, pattern-only schema"})
        if not whole:
            rate = n_sample / m["wall"]
            results.append({"tool": "frictionless (full, extrapolated)", "rows": n_full, "wall": n_full / rate,
                            "peak": None, "cpu": None, "note": f"extrapolated from the sample rate ({rate:,.0f} rows/s)"})

    print(f"\nvalidate benchmark: {n_full:,}-row NIS cohort from tfkit.demo (seed {args.seed}); "
          f"sample = first {n_sample:,} rows\n")
    print(f"{'tool':36} {'rows':>10} {'wall s':>8} {'CPU s':>7} {'rows/s':>11} {'peak MiB':>9}  note")
    for r in results:
        peak = f"{r['peak'] / 2**20:,.0f}" if r["peak"] else "-"
        cpu = f"{r['cpu']:.2f}" if r["cpu"] is not None else "-"
        print(f"{r['tool']:36} {r['rows']:>10,} {r['wall']:>8.2f} {cpu:>7} {r['rows'] / r['wall']:>11,.0f} {peak:>9}  {r['note']}")
    tf = results[0]
    print(f"\ntargets (tfkit, full file): wall {tf['wall']:.2f} s (< 5), peak {tf['peak'] / 2**30:.2f} GiB (< 2)", end="")
    if not args.skip_frictionless:
        fr = next(r for r in results if r["tool"].startswith("frictionless"))
        fr_rate = fr["rows"] / fr["wall"]
        small = "" if whole else f"; sample-to-sample {results[1]['rows'] / results[1]['wall'] / fr_rate:.1f}x"
        print(f", rate {tf['rows'] / tf['wall'] / fr_rate:.1f}x frictionless (>= 20x{small})")
    else:
        print()
    print("machine load (1/5/15 min):", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
