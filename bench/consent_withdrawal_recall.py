"""How well consent withdrawal finds a person's records, on generated data with known truth.

    .venv/bin/python bench/consent_withdrawal_recall.py                         # 1,000 people, 100 withdrawn
    .venv/bin/python bench/consent_withdrawal_recall.py --people 5000 --withdraw 500 --profile hard

For each generator profile: the demo cohort and its police, school and DWP extracts are validated
and linked with the default model (as `extract` does), N cohort people are withdrawn by person id,
and the withdrawal is resolved three ways: exact identifiers and one-to-one links only, then also
the near pairs (pairs scored at or above the link threshold), which is what `extract` uses. The
ground truth says which valid records are theirs: "missed" records of a withdrawn person stay in the
return (a broken promise); "others removed" belong to someone else (a research record lost).
Counts, not timings: the machine's load does not change them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tfkit.demo import generate_frames  # noqa: E402
from tfkit.pipeline import adapters  # noqa: E402
from tfkit.pipeline.consent import SourceRows, load_withdrawals  # noqa: E402

SCHEMAS = {"cohort": "nis", "police": "police", "school_attendance": "school_attendance", "dwp": "dwp"}


def measure(profile: str, people: int, withdraw: int, seed: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        paths = {}
        for name, frame in generate_frames(people, seed=seed, profile=profile).frames().items():
            paths[name] = out / f"{name}.csv"
            frame.write_csv(paths[name], line_terminator="\n", quote_style="necessary", null_value="")
        checked = {s: adapters.read_validated(paths[s], None, adapters.load_source_schema(sc)) for s, sc in SCHEMAS.items()}
        valid = {s: c.valid for s, c in checked.items()}
        linkage = adapters.link_sources(valid, "cohort", None)
        truth = pl.read_csv(paths["truth"], infer_schema=False)
        chosen = truth.filter(pl.col("source") == "cohort").sample(n=withdraw, seed=1)
        listing = out / "withdrawals.csv"
        listing.write_text("person_id\n" + "\n".join(chosen["record_id"]) + "\n")
        withdrawals = load_withdrawals(listing)
        sources = {s: SourceRows(valid[s], checked[s].quarantine, checked[s].canonical_names, linkage.linked.get(s),
                                 person_table=s == "cohort", record_ids=linkage.record_ids[s]) for s in SCHEMAS}
        keys = set(chosen["person_key"])
        rows = []
        for label, near in (("exact ids + links", None), ("+ near pairs (extract)", linkage.near_pairs())):
            resolved = withdrawals.resolve(sources, near=near)
            theirs_total = missed = others = 0
            for s, frame in valid.items():
                id_column = "person_id" if s == "cohort" else "record_id"
                owner = (frame.select(pl.col(id_column).alias("record_id"))
                         .join(truth.filter(pl.col("source") == s), on="record_id", how="left", maintain_order="left")
                         ["person_key"])
                theirs = owner.is_in(list(keys))
                theirs_total += int(theirs.sum())
                missed += int((theirs & ~resolved.valid[s]).sum())
                others += int((~theirs & resolved.valid[s]).sum())
            rows.append({"profile": profile, "method": label, "people": people, "withdrawn": withdraw,
                         "their_records": theirs_total, "missed": missed, "others_removed": others})
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--withdraw", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="append", choices=("standard", "hard", "holdout"))
    args = parser.parse_args()
    rows = [r for p in args.profile or ["standard", "hard", "holdout"]
            for r in measure(p, args.people, args.withdraw, args.seed)]
    print("| profile | method | records of the withdrawn | missed | other people's records removed |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['profile']} | {r['method']} | {r['their_records']} | {r['missed']} | {r['others_removed']} |")


if __name__ == "__main__":
    main()
