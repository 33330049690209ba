"""The default model's blocking plan on a `link` corpus: per rule, the comparisons its blocks would make
and its largest blocks, from block sizes alone (no pair is made), as the skew guard reports them.

    .venv/bin/python bench/blocking_plan.py bench/out/spark_link_1000000 bench/out/spark_link_3000000 ...

Each corpus (`left.parquet`, `right.parquet`: bench/national_corpus.py's layout) is prepared by the
polars engine (`Linker`, the default model), then for each rule: the records holding its key, the
blocks holding records of both sides, the pairs planned (blocks within the rule's `max_block_pairs`,
as `blocking.plan_rule` counts them), the blocks and pairs over that limit (skipped), the largest
blocks (records, and pairs), and against ONS's Census 2021 thresholds: blocks over 100 people and the
pairs they hold. Writes `<corpus>/plan.json` and prints a table; `--compare` prints the growth of
each rule's pairs between the corpora given (exponent k in pairs ~ N^k).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from tfkit.linkage import LinkageModel
from tfkit.linkage.blocking import NULL, _block_key
from tfkit.linkage.linker import Linker

ONS_BLOCK = 100        # Census 2021: a block over 100 people was rewritten
ONS_RULE = 10_000_000  # ... and a rule over 10M comparisons


def _blocks(prepared, rule) -> tuple[np.ndarray, np.ndarray]:
    """Per block holding records of both sides (a cross rule: a-holders and b-holders): the two
    sides' record counts (link mode; a cross rule's one-sided plan, as `_cross_rule` counts it)."""
    if rule.cross:
        a, b = rule.cross
        if rule.on:
            rid_on, key_on = _block_key(prepared, rule.on)
        else:
            rid_on, key_on = np.arange(prepared.n), np.zeros(prepared.n, np.int64)
        sides = []
        for column in (a, b):
            v = prepared.codes(column)[rid_on]
            held = v != NULL
            sides.append(pl.DataFrame({"on": key_on[held], "v": v[held].astype(np.int64)}))
        counts = [s.group_by("on", "v").len(name=f"n{k}") for k, s in enumerate(sides)]
        both = counts[0].join(counts[1], on=["on", "v"])
        return both["n0"].to_numpy().astype(np.int64), both["n1"].to_numpy().astype(np.int64)
    rid, key = _block_key(prepared, rule.on)
    source = prepared.codes("_source")[rid]
    frame = pl.DataFrame({"key": key, "s": source}).group_by("key").agg(
        (pl.col("s") == 0).sum().alias("n0"), (pl.col("s") == 1).sum().alias("n1"))
    frame = frame.filter((pl.col("n0") > 0) & (pl.col("n1") > 0))
    return frame["n0"].to_numpy().astype(np.int64), frame["n1"].to_numpy().astype(np.int64)


def plan(folder: Path) -> dict:
    t = time.perf_counter()
    frames = {s: pl.read_parquet(folder / f"{s}.parquet") for s in ("left", "right")}
    sizes = {s: f.height for s, f in frames.items()}
    model = LinkageModel.default()
    linker = Linker(frames, model, mode="link")
    del frames
    prepared = linker.prepared
    default_limit = model.settings.max_block_pairs
    rules = []
    for rule in linker.model.blocking:
        n0, n1 = _blocks(prepared, rule)
        pairs = n0 * n1
        size = n0 + n1
        limit = rule.max_block_pairs or default_limit
        over = pairs > limit
        ons = size > ONS_BLOCK
        top = np.argsort(-size)[:5]
        rules.append({
            "rule": rule.name, "limit": limit, "blocks": int(len(pairs)),
            "pairs_planned": int(pairs[~over].sum()), "blocks_skipped": int(over.sum()),
            "pairs_skipped": int(pairs[over].sum()),
            "largest_blocks_records": [int(x) for x in size[top]],
            "largest_kept_block_pairs": int(pairs[~over].max(initial=0)),
            "kept_blocks_over_100_people": int((ons & ~over).sum()),
            "pairs_in_kept_blocks_over_100": int(pairs[ons & ~over].sum()),
        })
    result = {"folder": str(folder), "sizes": sizes, "rules": rules,
              "pairs_planned": sum(r["pairs_planned"] for r in rules),
              "seconds": round(time.perf_counter() - t, 1),
              "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)}
    (folder / "plan.json").write_text(json.dumps(result, indent=1))
    return result


def show(result: dict) -> None:
    print(f"\n{result['folder']}: {result['sizes']}, {result['pairs_planned']:,} pairs planned "
          f"({result['seconds']} s, peak RSS {result['peak_rss_gib']} GiB)")
    for r in result["rules"]:
        print(f"  {r['rule'][:48]:48} {r['pairs_planned']:>13,} skipped {r['blocks_skipped']:>7,} blocks "
              f"{r['pairs_skipped']:>13,} pairs; largest {r['largest_blocks_records']}; >100 kept "
              f"{r['kept_blocks_over_100_people']:,} ({r['pairs_in_kept_blocks_over_100']:,} pairs)")


def compare(results: list[dict]) -> None:
    results = sorted(results, key=lambda r: r["sizes"]["left"])
    ns = [r["sizes"]["left"] for r in results]
    print("\nrule, pairs planned at " + " / ".join(f"{n / 1e6:g}M" for n in ns) + ", exponent k (first to last)")
    rows = list(zip(*[r["rules"] for r in results])) + [None]
    for row in rows:
        if row is None:
            name, counts = "ALL RULES", [r["pairs_planned"] for r in results]
        else:
            name, counts = row[0]["rule"], [x["pairs_planned"] for x in row]
        k = math.log(counts[-1] / counts[0]) / math.log(ns[-1] / ns[0]) if counts[0] and counts[-1] else float("nan")
        print(f"  {name[:48]:48} " + " / ".join(f"{c:>13,}" for c in counts) + f"   k={k:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--compare", action="store_true", help="read the plan.json already written, no planning")
    args = ap.parse_args()
    results = []
    for folder in args.folders:
        if args.compare:
            results.append(json.loads((folder / "plan.json").read_text()))
        else:
            results.append(plan(folder))
        show(results[-1])
        sys.stdout.flush()
    if len(results) > 1:
        compare(results)


if __name__ == "__main__":
    main()
