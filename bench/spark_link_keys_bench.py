"""`tfkit link-keys` at national size: an LA's extract against a national file, 12 match keys.

    .venv/bin/python bench/spark_link_keys_bench.py generate --la 1000000 --national 20000000
    /usr/bin/time -v .venv/bin/tfkit link-keys bench/out/lk/la.parquet bench/out/lk/national \
        --out bench/out/lk/pairs.parquet --json                       # polars engine (streams)
    /usr/bin/time -v .venv/bin/tfkit link-keys ... --out bench/out/lk/pairs_spark --engine spark \
        --config bench/spark_local2.toml                                # Spark, local[2]
    .venv/bin/python bench/spark_link_keys_bench.py check            # the two engines' pairs agree

The data are what `tfkit pseudonymise` writes (64-hex HMACs in mk_<key> columns, one id pseudonym),
generated directly so that 20M people take minutes, not hours. Person p of the national file holds,
for key j, HMAC(key j, p // g_j): the first keys identify a person (g = 1), later ones are coarser
(for 30% of people, g up to 16: a value shared by up to 16 people, as surname + year of birth + district can be), so
later keys meet ambiguity. The LA's records are national people (a random 1M), each key's value
missing (null) or disagreeing (a typo, a move: a value no one holds) with its own rate, so each
key resolves some of what earlier keys left. 2% of national people appear twice (a duplicate
registration): both copies are ambiguous on every key, and nothing links to them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import polars_hash  # noqa: F401

from tfkit.pseudonymise.match_keys import default_match_keys

OUT = Path(__file__).resolve().parent / "out" / "lk"
KEYS = [k.name for k in default_match_keys()]
GROUP = [1, 1, 1, 1, 1, 1, 2, 2, 2, 4, 8, 16]  # people sharing one value of key j
NULL = [0.6, 0.5, 0.7, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.02, 0.02, 0.02]  # LA side: unknown
WRONG = [0.02, 0.02, 0.02, 0.15, 0.12, 0.10, 0.10, 0.10, 0.10, 0.05, 0.05, 0.05]  # LA side: disagrees


def _keys(person: pl.Expr, null: list[float] | None, wrong: list[float] | None, seed: int) -> list[pl.Expr]:
    exprs = []
    for j, name in enumerate(KEYS):
        shared = pl.when(person % 10 < 3).then(person // GROUP[j]).otherwise(person)  # 30% share a value
        base = pl.lit(f"{name}:") + shared.cast(pl.String)
        if wrong is not None:
            u = pl.int_range(pl.len()).hash(seed * 100 + j) % 1_000_000 / 1_000_000
            base = (pl.when(u < null[j]).then(None)
                    .when(u < null[j] + wrong[j]).then(base + pl.lit("~typo"))
                    .otherwise(base))
        exprs.append(base.chash.sha2_256().alias(f"mk_{name}"))
    return exprs


def generate(la: int, national: int, parts: int, seed: int) -> None:
    (OUT / "national").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dup = national // 50
    per = -(-(national + dup) // parts)
    people = np.concatenate([np.arange(national), rng.choice(national, dup, replace=False)])
    people = people[rng.permutation(people.size)]
    t = time.perf_counter()
    for i in range(parts):
        chunk = pl.DataFrame({"p": people[i * per:(i + 1) * per]})
        (chunk.select((pl.lit("nat:") + pl.col("p").cast(pl.String)).chash.sha2_256().alias("person_id_pseudonym"),
                      *_keys(pl.col("p"), None, None, seed))
         .write_parquet(OUT / "national" / f"part-{i:05d}.parquet", compression="zstd", statistics=False))
        print(f"national part {i + 1}/{parts} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    la_people = rng.choice(national, la, replace=False)
    (pl.DataFrame({"p": la_people})
     .select((pl.lit("la:") + pl.col("p").cast(pl.String)).chash.sha2_256().alias("person_id_pseudonym"),
             *_keys(pl.col("p"), NULL, WRONG, seed))
     .write_parquet(OUT / "la.parquet", compression="zstd", statistics=False))
    print(f"done in {time.perf_counter() - t:.0f} s: {OUT}", file=sys.stderr)


def check() -> None:
    a = pl.read_parquet(OUT / "pairs.parquet")
    b = pl.read_parquet(OUT / "pairs_spark" / "*.parquet")
    print(f"polars {a.height:,} pairs, spark {b.height:,} pairs, equal: {a.equals(b)}")
    print(a.group_by("match_key", maintain_order=True).len())


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--la", type=int, default=1_000_000)
    g.add_argument("--national", type=int, default=20_000_000)
    g.add_argument("--parts", type=int, default=20)
    g.add_argument("--seed", type=int, default=7)
    sub.add_parser("check")
    args = ap.parse_args()
    if args.cmd == "generate":
        generate(args.la, args.national, args.parts, args.seed)
    else:
        check()


if __name__ == "__main__":
    main()
