"""Benchmark: `tfkit extract` end to end vs the plain pandas + hmac script, and verify's hashing.

    .venv/bin/python bench/extract_bench.py [--people 1000000]

1. Generates a 1,000,000-person NIS return with tfkit.demo (cached in bench/out/extract/).
2. Runs, each in its own subprocess (wall time and that process's peak RSS):
   - tfkit extract (validate, withdraw consent, pseudonymise, disclosure check, reconcile, bag, sign,
     audit), once with the default NIS policy (5 pseudonyms + 12 hashed match keys) and once with
     match_keys = "none" (the same five hashed columns the script writes: the like-for-like row),
   - bench/extract_analyst.py (read CSV, hash five identifiers, generalise DOB and postcode, drop names, Parquet).
3. Hashes the package's data files with tfkit's verifier hashing and with `sha256sum`, and times the
   whole `tfkit verify` (which also reads every Parquet footer and scans every string column for raw
   identifiers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "extract"
PY = sys.executable
TFKIT = [PY, "-m", "tfkit.cli"]

# Runs one command and reports its own wall time and peak RSS (RUSAGE_CHILDREN of a fresh runner).
RUNNER = textwrap.dedent("""
    import json, resource, subprocess, sys, time
    t = time.perf_counter()
    rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t
    print(json.dumps({"rc": rc, "wall": wall, "rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
""")


def measure(cmd: list[str]) -> dict:
    proc = subprocess.run([PY, "-c", RUNNER, *cmd], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"command failed ({result['rc']}): {' '.join(cmd)}\n{proc.stderr}")
    return result


def prepare(people: int) -> tuple[Path, Path]:
    from tfkit.demo import generate_frames
    from tfkit.package.signing import generate_signing_key_pair
    from tfkit.pseudonymise.contract import generate_key_file

    data_dir = OUT / f"inputs-{people}"
    cohort = data_dir / "cohort.csv"
    if not cohort.exists():
        print(f"generating a {people:,}-person return ...", flush=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        frames = generate_frames(people, seed=7).frames()
        for name in ("cohort", "consent_withdrawals"):
            frames[name].write_csv(data_dir / f"{name}.csv", line_terminator="\n", null_value="")
    keys = OUT / "keys"
    if not keys.exists():
        keys.mkdir(parents=True, mode=0o700)
        generate_key_file(keys / "master.key")
        generate_signing_key_pair(keys / "signing.key")
    (OUT / "no-match-keys.toml").write_text('schema = "nis"\nmatch_keys = "none"\n')
    return _config(people, cohort, keys, data_dir, "", "default"), _config(
        people, cohort, keys, data_dir, f'policy = "{OUT / "no-match-keys.toml"}"', "none"), cohort


def _config(people, cohort, keys, data_dir, policy_line, label) -> Path:
    config = OUT / f"tfkit-{people}-{label}.toml"
    config.write_text(textwrap.dedent(f"""
        la_code = "E09000031"
        return = "nis"
        period = "2019-H2"
        [[sources]]
        name = "cohort"
        path = "{cohort}"
        schema = "nis"
        [pseudonymise]
        project = "nis"
        {policy_line}
        key_file = "{keys / 'master.key'}"
        [signing]
        key_file = "{keys / 'signing.key'}"
        [consent]
        withdrawals = "{data_dir / 'consent_withdrawals.csv'}"
        [output]
        root = "{OUT / 'packages'}"
        quarantine_dir = "{OUT / 'quarantine'}"
    """))
    return config


def sha256sum_throughput(files: list[Path]) -> tuple[float, float]:
    from tfkit.package.bag import sha256_file

    size = sum(f.stat().st_size for f in files)
    for f in files:  # warm the page cache for both sides
        f.read_bytes()
    t = time.perf_counter()
    for f in files:
        sha256_file(f)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run(["sha256sum", *map(str, files)], check=True, stdout=subprocess.DEVNULL)
    theirs = time.perf_counter() - t
    mib = size / 2**20
    return mib / ours, mib / theirs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    args = parser.parse_args()
    config_mk, config_plain, cohort = prepare(args.people)
    pkg = OUT / "packages" / "E09000031_nis_2019-H2"

    tfkit_mk = measure([*TFKIT, "--quiet", "extract", "--config", str(config_mk), "--force"])
    tfkit = measure([*TFKIT, "--quiet", "extract", "--config", str(config_plain), "--force"])
    analyst = measure([PY, str(HERE / "extract_analyst.py"), str(cohort), str(OUT / "keys" / "master.key"),
                       str(OUT / "analyst.parquet")])
    verify = measure([*TFKIT, "--quiet", "verify", str(pkg), "--public-key", str(OUT / "keys" / "signing.pub"),
                      "--json", str(OUT / "verify.json")])
    data_files = sorted((pkg / "data").glob("*.parquet"))
    ours, theirs = sha256sum_throughput(data_files)
    manifest = json.loads((pkg / "manifest.json").read_text())
    rows_out = sum(o["rows"] for o in manifest["outputs"])
    size = sum(f.stat().st_size for f in data_files) / 2**20

    print(f"\n{args.people:,}-person NIS return ({cohort.stat().st_size / 2**20:.0f} MiB CSV), package {rows_out:,} rows, {size:.0f} MiB Parquet (no-match-key run)")
    print(f"{'run':<46}{'wall s':>9}{'peak RSS MiB':>14}")
    print(f"{'tfkit extract, default policy + 12 match keys':<46}{tfkit_mk['wall']:>9.1f}{tfkit_mk['rss_mib']:>14.0f}")
    print(f"{'tfkit extract, same output as script (no mk)':<46}{tfkit['wall']:>9.1f}{tfkit['rss_mib']:>14.0f}")
    print(f"{'pandas + hmac analyst script':<46}{analyst['wall']:>9.1f}{analyst['rss_mib']:>14.0f}")
    print(f"{'ratio tfkit / script':<46}{tfkit['wall'] / analyst['wall']:>9.2f}{tfkit['rss_mib'] / analyst['rss_mib']:>14.2f}")
    print(f"{'tfkit verify (hash + footers + identifier scan)':<46}{verify['wall']:>9.1f}{verify['rss_mib']:>14.0f}")
    print(f"SHA-256 of the data files: tfkit {ours:,.0f} MiB/s, sha256sum {theirs:,.0f} MiB/s (page cache warm)")


if __name__ == "__main__":
    main()
