"""The default model's blocking plan on a `link` corpus: per rule, the comparisons its blocks would make
and its largest blocks, from block sizes alone (no pair is made), as the skew guard reports them.

    .venv/bin/python bench/blocking_plan.py bench/out/spark_link_1000000 bench/out/spark_link_3000000 ...

Each corpus (`left.parquet`, `right.parquet`: bench/national_corpus.py's layout) is prepared by the
polars engine (`Linker`, the default model), then for each rule: the records holding its key, the
blocks holding records of both sides, the pairs planned (blocks within the rule's `max_block_pairs`,
as `blocking.plan_rule` counts them), the blocks and pairs over that limit (skipped), the largest
blocks (records, and pairs), and against ONS's Census 2021 thresholds: blocks over 100 people and the
pairs they hold.

It also tries a per-rule comparison budget B = max(10M, c x records) for each c of `--per-record`
(docs/scaling.md's proposal: a rule over B has its block limit lowered to the largest L with the
pairs of blocks making <= L within B), and reports each setting's pairs and blocking recall: the
share of the generator's true pairs (truth.parquet) lying in a kept block of some rule, found from
the true pairs' own block keys, so no pair is made.

Writes `<corpus>/plan.json` and prints a table; `--compare` prints the growth of each rule's pairs
between the corpora given (exponent k in pairs ~ N^k). At 10M a side it needs ~8.5 GiB and the
heavy-run lock.
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


def _blocks(prepared, rule) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """The rule's blocks holding records of both sides (a cross rule: a-holders and b-holders), as
    (k1, k2, n0, n1): the two sides' record counts (link mode; a cross rule's one-sided plan, as
    `_cross_rule` counts it); and per record its block (k1, k2) (a cross rule: one frame per
    orientation, the record as a-holder and as b-holder), -1 where it has none."""
    n = prepared.n
    if rule.cross:
        if rule.on:
            rid_on, key_on = _block_key(prepared, rule.on)
        else:
            rid_on, key_on = np.arange(n), np.zeros(n, np.int64)
        on = np.full(n, -1, np.int64)
        on[rid_on] = key_on
        keys, counts = [], []
        for k, column in enumerate(rule.cross):
            v = prepared.codes(column).astype(np.int64)
            v = np.where((v != NULL) & (on >= 0), v, -1)
            keys.append(pl.DataFrame({"k1": np.where(v >= 0, on, -1), "k2": v}))
            counts.append(keys[-1].filter(pl.col("k2") >= 0).group_by("k1", "k2").len(name=f"n{k}"))
        return counts[0].join(counts[1], on=["k1", "k2"]), keys
    rid, key = _block_key(prepared, rule.on)
    k1 = np.full(n, -1, np.int64)
    k1[rid] = key
    source = prepared.codes("_source")[rid]
    frame = pl.DataFrame({"k1": key, "s": source}).group_by("k1").agg(
        (pl.col("s") == 0).sum().cast(pl.UInt32).alias("n0"), (pl.col("s") == 1).sum().cast(pl.UInt32).alias("n1"))
    frame = frame.filter((pl.col("n0") > 0) & (pl.col("n1") > 0)).with_columns(pl.lit(0, pl.Int64).alias("k2"))
    return frame, [pl.DataFrame({"k1": k1, "k2": np.where(k1 >= 0, 0, -1)})]


def budget_cap(pairs: np.ndarray, budget: int) -> int:
    """The largest per-block pair limit L keeping the rule's pairs (blocks making at most L) within
    `budget`: the rule's blocks skipped largest first until it fits."""
    values, counts = np.unique(pairs, return_counts=True)
    total = np.cumsum(values * counts)
    fit = np.flatnonzero(total <= budget)
    return int(values[fit[-1]]) if len(fit) else 0


def true_pairs(folder: Path, prepared) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (left, right) of the generator's true pairs."""
    truth = pl.read_parquet(folder / "truth.parquet").with_columns(
        pl.col("side").replace_strict({"left": 0, "right": 1}, return_dtype=pl.Int64).alias("_source"))
    ids = prepared.frame.select("_rid", pl.col("_source").cast(pl.Int64), "_record_id")
    t = truth.join(ids, left_on=["_source", "record_id"], right_on=["_source", "_record_id"])
    pairs = t.filter(pl.col("_source") == 0).join(t.filter(pl.col("_source") == 1), on="key")
    return pairs["_rid"].to_numpy(), pairs["_rid_right"].to_numpy()


def _found(blocks: pl.DataFrame, keys: list[pl.DataFrame], a: np.ndarray, b: np.ndarray) -> pl.DataFrame:
    """Per true pair (a, b), the pairs of the block holding both (0: none)."""
    if len(keys) == 1:
        orientations = [(keys[0][a], keys[0][b])]
    else:  # a as a-holder and b as b-holder of one value, or the other way round
        orientations = [(keys[0][a], keys[1][b]), (keys[1][a], keys[0][b])]
    lookup = blocks.select("k1", "k2", (pl.col("n0").cast(pl.Int64) * pl.col("n1")).alias("p"))
    out = np.zeros(len(a), np.int64)
    for x, y in orientations:
        same = ((x["k1"] == y["k1"]) & (x["k2"] == y["k2"]) & (x["k2"] >= 0)).to_numpy()
        p = x.with_columns(pl.Series("same", same)).join(lookup, on=["k1", "k2"], how="left", maintain_order="left")
        p = np.where(same, p["p"].fill_null(0).to_numpy(), 0)
        out = np.where(out > 0, np.minimum(out, np.where(p > 0, p, out)), p)
    return out


def plan(folder: Path, per_record: list[float]) -> dict:
    t = time.perf_counter()
    frames = {s: pl.read_parquet(folder / f"{s}.parquet") for s in ("left", "right")}
    sizes = {s: f.height for s, f in frames.items()}
    model = LinkageModel.default()
    linker = Linker(frames, model, mode="link")
    del frames
    prepared = linker.prepared
    a, b = true_pairs(folder, prepared)
    default_limit = model.settings.max_block_pairs
    records = sum(sizes.values())
    budgets = {c: max(ONS_RULE, int(c * records)) for c in per_record}
    found = np.zeros(len(a), bool)
    found_budget = {c: np.zeros(len(a), bool) for c in per_record}
    rules = []
    for rule in linker.model.blocking:
        blocks, keys = _blocks(prepared, rule)
        n0, n1 = blocks["n0"].to_numpy().astype(np.int64), blocks["n1"].to_numpy().astype(np.int64)
        pairs = n0 * n1
        size = n0 + n1
        limit = rule.max_block_pairs or default_limit
        over = pairs > limit
        ons = size > ONS_BLOCK
        top = np.argsort(-size)[:5]
        block_of_true = _found(blocks, keys, a, b)
        hit = (block_of_true > 0) & (block_of_true <= limit)
        found |= hit
        row = {
            "rule": rule.name, "limit": limit, "blocks": int(len(pairs)),
            "pairs_planned": int(pairs[~over].sum()), "blocks_skipped": int(over.sum()),
            "pairs_skipped": int(pairs[over].sum()),
            "largest_blocks_records": [int(x) for x in size[top]],
            "largest_kept_block_pairs": int(pairs[~over].max(initial=0)),
            "kept_blocks_over_100_people": int((ons & ~over).sum()),
            "pairs_in_kept_blocks_over_100": int(pairs[ons & ~over].sum()),
            "true_pairs_in_kept_blocks": int(hit.sum()),
            "budget": {},
        }
        for c, budget in budgets.items():
            cap = min(limit, budget_cap(pairs[~over], budget))
            kept = pairs <= cap
            hit_c = (block_of_true > 0) & (block_of_true <= cap)
            found_budget[c] |= hit_c
            row["budget"][str(c)] = {"budget": budget, "limit": cap, "pairs": int(pairs[kept].sum()),
                                     "blocks_skipped": int((~kept).sum()), "true_pairs": int(hit_c.sum())}
        rules.append(row)
    result = {"folder": str(folder), "sizes": sizes, "rules": rules,
              "pairs_planned": sum(r["pairs_planned"] for r in rules),
              "true_pairs": len(a), "blocking_recall_planned": float(found.mean()) if len(a) else None,
              "budgets": {str(c): {"per_rule": budget, "pairs": sum(r["budget"][str(c)]["pairs"] for r in rules),
                                   "blocking_recall": float(found_budget[c].mean()) if len(a) else None}
                          for c, budget in budgets.items()},
              "seconds": round(time.perf_counter() - t, 1),
              "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)}
    (folder / "plan.json").write_text(json.dumps(result, indent=1))
    return result


def show(result: dict) -> None:
    print(f"\n{result['folder']}: {result['sizes']}, {result['pairs_planned']:,} pairs planned "
          f"({result['seconds']} s, peak RSS {result['peak_rss_gib']} GiB); true pairs {result.get('true_pairs')}, "
          f"in a kept block of some rule: {result.get('blocking_recall_planned')}")
    for c, b in result.get("budgets", {}).items():
        print(f"  budget {c} pairs a record a rule (at least {ONS_RULE:,}): {b['per_rule']:,} a rule, "
              f"{b['pairs']:,} pairs planned, true pairs in a kept block {b['blocking_recall']:.4f}")
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
    ap.add_argument("--per-record", default="1,2,4", help="rule budgets to try: pairs a record (at least 10M a rule)")
    args = ap.parse_args()
    results = []
    for folder in args.folders:
        if args.compare:
            results.append(json.loads((folder / "plan.json").read_text()))
        else:
            results.append(plan(folder, [float(x) for x in args.per_record.split(",")]))
        show(results[-1])
        sys.stdout.flush()
    if len(results) > 1:
        compare(results)


if __name__ == "__main__":
    main()
