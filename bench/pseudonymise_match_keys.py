"""Precision and recall of tfkit's hierarchical match-key linkage against the generator's truth.

    .venv/bin/python bench/pseudonymise_match_keys.py [--people 20000] [--seed 7] [--json]

Cohort vs police, school attendance and DWP: both sides validated, pseudonymised under one key
and project (nothing in the clear reaches the linker), linked with `link_on_match_keys`, and the
pairs mapped back to record ids only here, to compare with truth.csv. A true link is a
(cohort person, partner record) pair with the same person_key, among rows that passed validation.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import polars as pl

from tfkit.demo import write_demo
from tfkit.io import read_table
from tfkit.pseudonymise import MasterKey, link_on_match_keys, load_policy, pseudonymise
from tfkit.schemas import load_schema, validate

SOURCES = {"cohort": "nis", "police": "police", "school_attendance": "school_attendance", "dwp": "dwp"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    key = MasterKey(bytes(range(32)))
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_demo(Path(tmp), args.people, seed=args.seed)
        truth = pl.read_csv(paths["truth"], infer_schema=False)
        frames = {}
        for source, schema in SOURCES.items():
            valid = validate(read_table(paths[source]), load_schema(schema)).valid
            ids = valid.select(pl.col("person_id" if schema == "nis" else "record_id").alias("record_id"))
            t0 = time.perf_counter()
            frames[source] = (ids, pseudonymise(valid, key=key, project="nis", policy=load_policy(schema)))
            frames[source] += (time.perf_counter() - t0,)
    results = []
    a_ids, a, _ = frames["cohort"]
    ka = truth.filter(pl.col("source") == "cohort").select("record_id", ka="person_key")
    for source in ("police", "school_attendance", "dwp"):
        b_ids, b, _ = frames[source]
        kb = truth.filter(pl.col("source") == source).select("record_id", kb="person_key")
        true_links = a_ids.join(ka, on="record_id").join(b_ids.join(kb, on="record_id"), left_on="ka", right_on="kb").height
        for one_to_many in (False, True):
            t0 = time.perf_counter()
            pairs, counts = link_on_match_keys(a, b, one_to_many=one_to_many)
            seconds = time.perf_counter() - t0
            found = pl.DataFrame({"a": a_ids["record_id"].gather(pairs["a_row"]),
                                  "b": b_ids["record_id"].gather(pairs["b_row"]), "match_key": pairs["match_key"]})
            found = (found.join(ka, left_on="a", right_on="record_id").join(kb, left_on="b", right_on="record_id")
                     .with_columns(correct=pl.col("ka") == pl.col("kb")))
            per_key = found.group_by("match_key").agg(pairs=pl.len(), correct=pl.col("correct").sum())
            order = pl.DataFrame({"match_key": [c.match_key for c in counts]})
            per_key = order.join(per_key, on="match_key", how="inner", maintain_order="left")
            correct = int(found["correct"].sum())
            results.append({
                "source": source, "one_to_many": one_to_many, "records_a": a.height, "records_b": b.height,
                "true_links": true_links, "pairs": pairs.height, "correct": correct,
                "precision": correct / max(pairs.height, 1), "recall": correct / max(true_links, 1),
                "seconds": round(seconds, 3),
                "per_key": per_key.to_dicts(),
                "ambiguous_values": {c.match_key: c.ambiguous_values for c in counts if c.ambiguous_values},
            })
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"people={args.people} seed={args.seed}; pseudonymise seconds: "
          + ", ".join(f"{s}={frames[s][2]:.2f}" for s in frames))
    print(f"{'source':18s} {'mode':12s} {'true':>7s} {'pairs':>7s} {'precision':>9s} {'recall':>7s} {'link s':>7s}")
    for r in results:
        mode = "one-to-many" if r["one_to_many"] else "one-to-one"
        print(f"{r['source']:18s} {mode:12s} {r['true_links']:7d} {r['pairs']:7d} {r['precision']:9.4f} "
              f"{r['recall']:7.4f} {r['seconds']:7.2f}")
    for r in results:
        if r["one_to_many"]:
            print(f"\n{r['source']} (one-to-many), pairs per key (correct):")
            for k in r["per_key"]:
                print(f"  {k['match_key']:36s} {k['pairs']:7d} ({k['correct']})")


if __name__ == "__main__":
    main()
