"""A national-sized `link` corpus: the demo cohort x partners corpus over several local authorities.

    .venv/bin/python bench/national_corpus.py --size 10000000 --folder bench/out/spark_link_10000000

`tfkit.demo.generate_frames` makes one LA's extracts and stops at 1M people (the 999 NHS range). A
national file is many LAs' people, so a corpus of N people a side is ceil(N / 1M) independent
generations ("chunks"), each of N / chunks people with its own seed and LA (the generator's eight
LAs in turn: postcodes, communities and sectors differ per LA; chunks 9 and 10 reuse the first two
LAs with other seeds, as a large LA would hold more people). Each chunk is
`bench/linkage_bench.corpus_data("demo", ...)`'s corpus (cohort x partners, partners sampled to the
chunk's size); chunk 0 is exactly that corpus at 1M (seed 1, Waltham Forest), so the 1M runs compare
with the earlier ones. Record ids and truth keys of chunk k > 0 carry the prefix `k-`, so both stay
unique over the corpus; dates of birth and names are drawn from the same national distributions in
every chunk, so date-of-birth blocks grow with N as in a real national file.

Chunks are generated one at a time into `<cache>/chunk_NN/` (kept: a 3M corpus reuses the 10M
corpus' first three chunks) and streamed into `left.parquet`, `right.parquet` and `truth.parquet`
(polars' `sink_parquet`), so the memory needed is one chunk's (~3 GiB), whatever N.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # the test fixtures, from the repository
from linkage_bench import _write  # noqa: E402

CHUNK_PEOPLE = 1_000_000  # generate_frames' limit
CACHE = HERE / "out" / "national_chunks"
FIELDS = ["forename", "surname", "dob", "postcode", "sex"]


def chunk_plan(size: int) -> list[tuple[int, int, str]]:
    """(seed, people, LA code) of each chunk of a `size`-person corpus."""
    from tfkit.demo import DEFAULT_LA_CODE, reference

    las = [DEFAULT_LA_CODE] + [c for c in reference.local_authorities() if c != DEFAULT_LA_CODE]
    n = max(1, math.ceil(size / CHUNK_PEOPLE))
    people = [size // n + (k < size % n) for k in range(n)]
    return [(1 + k, people[k], las[k % len(las)]) for k in range(n)]


def make_chunk(k: int, seed: int, people: int, la_code: str, cache: Path = CACHE) -> Path:
    """Chunk k's left, right and truth Parquet files (made once, then reused)."""
    from tests.fixtures.demo_frames import cohort_and_partners
    from tfkit.demo import generate_frames

    folder = cache / f"chunk_{k:02d}_{people}_{la_code}_{seed}"
    if (folder / "truth.parquet").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    frames = cohort_and_partners(generate_frames(people, seed=seed, la_code=la_code), n_right=people, seed=k)
    prefix = f"{k}-" if k else ""
    frames = {name: f.with_columns(pl.concat_str(pl.lit(prefix), "record_id").alias("record_id"),
                                   pl.concat_str(pl.lit(prefix), "person_key").alias("key")).drop("person_key")
              for name, f in frames.items()}
    _write(folder, frames, "link", FIELDS, clean=("left",))
    print(f"chunk {k}: {people:,} people, {la_code}, seed {seed}: {time.perf_counter() - t:.0f} s", flush=True)
    return folder


def national_corpus(folder: Path, size: int, cache: Path = CACHE) -> dict:
    """`left.parquet`, `right.parquet`, `truth.parquet` and `clean.json` for `size` people a side in
    `folder`, the layout of `linkage_bench.corpus_data`."""
    chunks = [make_chunk(k, *plan, cache=cache) for k, plan in enumerate(chunk_plan(size))]
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("left", "right", "truth"):
        pl.scan_parquet([c / f"{name}.parquet" for c in chunks]).sink_parquet(folder / f"{name}.parquet")
    (folder / "clean.json").write_text(json.dumps(["left"]))
    return {"mode": "link", "fields": FIELDS, "chunks": len(chunks), "clean": ["left"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, required=True, help="people a side")
    ap.add_argument("--folder", type=Path, required=True)
    args = ap.parse_args()
    t = time.perf_counter()
    print(national_corpus(args.folder, args.size), f"{time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
