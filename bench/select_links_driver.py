"""What `--clean` costs the Spark engine's driver: `clustering.select_links` (which the Spark engine
runs on the driver over the links above the threshold) on synthetic links to a clean source.

    .venv/bin/python bench/select_links_driver.py --records 10000000 --links 5000000

Half the records are the clean source (cohort), half another source; each link joins a random
cohort record to a random partner record (so many partners link to several cohort records: the
constraint has conflicts to resolve). Prints the time and the peak RSS over the driver's base.
"""

from __future__ import annotations

import argparse
import resource
import time
import types

import numpy as np
import polars as pl

from tfkit.linkage.clustering import select_links


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--links", type=int, default=1_000_000)
    args = ap.parse_args()
    side, n_links = args.records // 2, args.links
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"_rid": np.arange(2 * side), "_source": np.repeat([0, 1], side).astype(np.int32),
                          "_record_id": pl.Series(np.arange(2 * side)).cast(pl.String)})
    prepared = types.SimpleNamespace(frame=frame, sources=["cohort", "partners"], n=2 * side)
    links = pl.DataFrame({"rid_l": rng.integers(0, side, n_links), "rid_r": rng.integers(side, 2 * side, n_links),
                          "match_weight": rng.normal(10, 3, n_links), "match_probability": np.full(n_links, 0.99)})
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    _, stats = select_links(prepared, links, 0.9, clean=("cohort",))
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"records {2 * side:,}, links {n_links:,}: {seconds:.1f} s, links frame "
          f"{links.estimated_size() / 2**20:.0f} MiB, peak RSS {peak / 2**20:.2f} GiB "
          f"({(peak - base) / 2**20:.2f} GiB over the base), conflicts resolved {stats.conflicts_resolved:,}")


if __name__ == "__main__":
    main()
