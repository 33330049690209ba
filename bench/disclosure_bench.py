"""Benchmark: `tfkit disclosure check` and `tfkit summarise` on a 1,000,000-person package-shaped table,
side by side with a plain pandas groupby of the same k-anonymity count (and pycanon on a sample).

    .venv/bin/python bench/disclosure_bench.py                     # 1,000,000 people
    .venv/bin/python bench/disclosure_bench.py --people 200000 --sample 50000

What runs (each side in its own subprocess; wall time and peak RSS of that subprocess):
  1. tfkit CLI:  tfkit --quiet disclosure check person.parquet --json check.json
     (k = 10 over dob_year (derived from dob_year_month), sex, postcode_district: class-size
     distribution, records below k; the whole CLI process, imports included)
  2. tfkit CLI:  tfkit --quiet summarise person.parquet --out DIR --reference-date 2019-12-31
     (all programme tables, primary + secondary suppression, CSV + xlsx + notes)
  3. pandas:     read the three columns with pandas, derive dob_year, groupby(...).size(), count the
     classes and the records below k. The same count as 1 (the script checks the numbers agree),
     without the distribution, l-diversity or reporting.
  4. pycanon:    pycanon.anonymity.k_anonymity (a pandas groupby inside; it returns only k), on all
     rows by default; with --sample N on the first N rows, and then its full-size time is EXTRAPOLATED
     linearly from the sample, and the table says so. pycanon pins old numpy/typer versions, so it runs from its own virtual
     environment (bench/out/pycanon-venv, made on first use with `python3 -m venv` + pip; pass
     --no-pycanon to skip it).

The data, by default, is a real package: `tfkit extract` on tfkit.demo's cohort of --people people
(no partner sources, match_keys = "none" to save time, disclosure policy "warn" so the table keeps
dob_year_month and postcode_district as the extract's own check sees them); about 2 % of the rows are
quarantined or withdrawn, so the package holds ~980,000 people. It is made once (~30 s) and cached
in bench/out/disclosure/. With --synthetic the table comes instead from
tests.fixtures.synthetic.person_table (the columns of a package's
data/person.parquet before the extract's disclosure policy: la_code, 64-hex person/family/nino/upn/
nhs_number pseudonyms, sex, dob_year_month, postcode_district, six problem flags, intervention fields;
a Zipf-like spread of districts so small classes occur). The mk_* match-key columns are left out: neither
command reads them and Parquet reads only the columns asked for. Cached in bench/out/disclosure/.
Target for tfkit on 1,000,000 people: < 5 s each for check and summarise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "disclosure"
PYTHON = sys.executable
TFKIT = [str(Path(PYTHON).parent / "tfkit")] if (Path(PYTHON).parent / "tfkit").exists() else [PYTHON, "-m", "tfkit.cli"]
PYCANON_VENV = HERE / "out" / "pycanon-venv"
QI = ["dob_year", "sex", "postcode_district"]
K = 10

PANDAS_SIDE = r"""
import json, sys, time
import pandas as pd
t = time.perf_counter()
df = pd.read_parquet(sys.argv[1], columns=["dob_year_month", "sex", "postcode_district"])
df["dob_year"] = df["dob_year_month"].str.slice(0, 4)
sizes = df.groupby(["dob_year", "sex", "postcode_district"], dropna=False, observed=True).size()
k = int(sys.argv[2])
out = {"records": int(sizes.sum()), "classes": int(len(sizes)), "records_below_k": int(sizes[sizes < k].sum()),
       "smallest_class": int(sizes.min()), "seconds": time.perf_counter() - t}
print(json.dumps(out))
"""

PYCANON_SIDE = r"""
import json, sys, time
import pandas as pd
from pycanon import anonymity
df = pd.read_parquet(sys.argv[1], columns=["dob_year_month", "sex", "postcode_district"]).head(int(sys.argv[2]))
df["dob_year"] = df["dob_year_month"].str.slice(0, 4)
df = df[["dob_year", "sex", "postcode_district"]]
t = time.perf_counter()
k = anonymity.k_anonymity(df, ["dob_year", "sex", "postcode_district"])
print(json.dumps({"k": int(k), "rows": len(df), "seconds": time.perf_counter() - t}))
"""


def make_table(people: int) -> Path:
    path = OUT / f"person_{people}.parquet"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    code = (
        "import sys; from pathlib import Path\n"
        "import polars as pl, polars_hash as plh\n"
        "from tests.fixtures.synthetic import person_table\n"
        "from tfkit.parquet import write_parquet\n"
        f"frame = person_table({people}, seed=7)\n"
        # the package's 64-hex pseudonyms (the synthetic table has short ones and no identifier columns)
        "hexed = lambda c, salt: plh.concat_str(pl.lit(salt), pl.col(c).cast(pl.String)).chash.sha2_256()\n"
        "frame = frame.with_columns(hexed('person_id_pseudonym', 'p').alias('person_id_pseudonym'),\n"
        "    hexed('family_id_pseudonym', 'f').alias('family_id_pseudonym'),\n"
        "    *[hexed('person_id_pseudonym', f).alias(f + '_pseudonym') for f in ('nino', 'upn', 'nhs_number')])\n"
        f"write_parquet(frame, Path({str(path)!r}))\n"
    )
    subprocess.run([PYTHON, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)  # tests.fixtures
    return path


EXTRACT_SIDE = r"""
import re, sys
from pathlib import Path
from tfkit.config import load_config
from tfkit.pipeline import prepare_demo, run_extract
out, people = Path(sys.argv[1]), int(sys.argv[2])
config = prepare_demo(out, people=people, partners=())
(out / "policy-no-match-keys.toml").write_text('schema = "nis"\nmatch_keys = "none"\n')
text = config.read_text()
text = text.replace('key_file = "keys/demo-master.key"', 'key_file = "keys/demo-master.key"\npolicy = "policy-no-match-keys.toml"')
text = re.sub(r'(?m)^policy = "generalise".*$', 'policy = "warn"', text)  # keep dob_year_month, postcode_district
config.write_text(text)
print(run_extract(load_config(config), force=True).package)
"""


def make_package(people: int) -> Path:
    """A real package: `tfkit extract` on tfkit.demo's cohort (no partners, no match keys, policy warn)."""
    out = OUT / f"extract_{people}"
    package = out / "packages" / "E09000031_nis_2019-H2"
    if not (package / "data" / "person.parquet").exists():
        print(f"making a {people:,}-person package with tfkit extract (demo cohort; once, cached) ...", file=sys.stderr)
        subprocess.run([PYTHON, "-c", EXTRACT_SIDE, str(out), str(people)], check=True, capture_output=True)
    return package


def run(label: str, command: list[str], ok_codes: tuple[int, ...] = (0,)) -> dict:
    """Run one side in a child process: wall time and that child's peak RSS (fresh reading per run)."""
    wrapper = (
        "import resource, subprocess, sys, json, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'rc': p.returncode, 'wall': wall, 'rss_kib': rss, 'stdout': p.stdout[-4000:], 'stderr': p.stderr[-2000:]}))\n"
    )
    done = subprocess.run([PYTHON, "-c", wrapper, *command], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    if result["rc"] not in ok_codes:
        raise SystemExit(f"{label} failed (exit {result['rc']}):\n{result['stderr']}")
    result["label"] = label
    return result


def ensure_pycanon() -> Path | None:
    python = PYCANON_VENV / "bin" / "python"
    if not python.exists():
        print("making bench/out/pycanon-venv (pycanon pins old numpy and typer: kept out of the tfkit venv) ...",
              file=sys.stderr)
        subprocess.run(["python3", "-m", "venv", str(PYCANON_VENV)], check=True)
        subprocess.run([str(PYCANON_VENV / "bin" / "pip"), "install", "-q", "pycanon", "pyarrow"], check=False)
    probe = subprocess.run([str(python), "-c", "import pycanon, pyarrow"], capture_output=True)
    return python if probe.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=0, help="rows given to pycanon (0: all)")
    parser.add_argument("--no-pycanon", action="store_true")
    parser.add_argument("--synthetic", action="store_true",
                        help="use tests.fixtures.synthetic.person_table instead of a real extract (faster to make)")
    args = parser.parse_args()

    source = make_table(args.people) if args.synthetic else make_package(args.people)
    table = source if args.synthetic else source / "data" / "person.parquet"
    check_json = OUT / "check.json"
    summaries = OUT / "summaries"
    rows = []

    check = run("tfkit disclosure check (CLI)", [*TFKIT, "--quiet", "disclosure", "check", str(source),
                                                  "--k", str(K), "--json", str(check_json)], ok_codes=(0, 1))
    report = json.loads(check_json.read_text())
    n = report["records"]
    rows.append((check["label"], n, check["wall"], check["rss_kib"], "measured"))

    summ = run("tfkit summarise (CLI)", [*TFKIT, "--quiet", "summarise", str(source), "--out", str(summaries),
                                         "--reference-date", "2019-12-31"])
    rows.append((summ["label"], n, summ["wall"], summ["rss_kib"], "measured"))

    pandas = run("pandas groupby k-anonymity", [PYTHON, "-c", PANDAS_SIDE, str(table), str(K)])
    counts = json.loads(pandas["stdout"])
    rows.append((pandas["label"], n, pandas["wall"], pandas["rss_kib"],
                 f"measured (groupby itself {counts['seconds']:.2f} s)"))
    for key in ("records", "classes", "records_below_k", "smallest_class"):
        if report.get(key) != counts[key]:
            raise SystemExit(f"tfkit and pandas disagree on {key}: {report.get(key)} != {counts[key]}")

    if not args.no_pycanon:
        python = ensure_pycanon()
        if python is None:
            rows.append(("pycanon k_anonymity", args.sample, float("nan"), 0, "not installed: skipped"))
        else:
            sample = min(args.sample or n, n)
            canon = run("pycanon k_anonymity", [str(python), "-c", PYCANON_SIDE, str(table), str(sample)])
            got = json.loads(canon["stdout"])
            rate = got["seconds"] / got["rows"]
            rows.append((f"pycanon k_anonymity ({'all rows' if sample == n else f'sample {sample:,}'})", sample, canon["wall"], canon["rss_kib"],
                         f"measured; k = {got['k']} ({got['seconds']:.2f} s in k_anonymity)"))
            if sample < n:
                rows.append((f"pycanon k_anonymity, {n:,} rows", n, rate * n, 0,
                             "EXTRAPOLATED linearly from the sample (compute only)"))

    made = "synthetic person table" if args.synthetic else "package from tfkit extract on the demo cohort"
    print(f"\nDisclosure benchmark: {report['records']:,} records ({made}), k = {K} over {', '.join(QI)}; "
          f"{report['classes']:,} classes, {report['records_below_k']:,} records below k (tfkit and pandas agree)\n")
    print(f"{'side':48} {'rows':>10} {'wall s':>8} {'peak RSS MiB':>13}  note")
    for label, n, wall, rss, note in rows:
        rss_text = f"{rss / 1024:,.0f}" if rss else "-"
        print(f"{label:48} {n:>10,} {wall:>8.2f} {rss_text:>13}  {note}")
    print("\ntarget: tfkit check and summarise < 5 s each on 1,000,000 people")


if __name__ == "__main__":
    main()
