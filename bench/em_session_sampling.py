"""The EM sessions' pairs at national size: sampled without making every pair (a proposal, measured).

    .venv/bin/python bench/em_session_sampling.py --size 500000

`training.estimate_m_em_sessions` makes every pair of each `[[training]]` rule (`blocking.rule_pairs`,
no block limit) and then samples `em_max_pairs` (5M) of them. The "date of birth" session's pairs grow
as N²: 60.7M at 1M people a side, 545M at 3M (the 3M Spark run's driver peaked at 14.5 GiB there),
6.04 billion at 10M (docs/scaling.md). `sampled_rule_pairs` below draws the same number of pairs
uniformly from the rule's pairs without making them: each record's partners are one run of the
sorted order (`blocking.sorted_runs`, the kernel `rule_pairs` uses), so a pair is a position in the
concatenation of those runs; `em_max_pairs` positions are drawn without replacement (numpy's
Floyd sampling: O(sample) memory), each mapped to its record by a binary search over the runs'
cumulative lengths and to its partner inside the run. Memory O(records + sample) whatever N;
below `em_max_pairs` it returns every pair, exactly as `rule_pairs` does.

The script runs `estimate_m_em_sessions` on the demo corpus (bench/national_corpus.py's) both ways
in separate processes and reports time, the sessions' peak RSS (VmHWM reset before them) and the largest difference in the m estimates (a
different sample of the same distribution: within sampling noise, not equal).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent


def sampled_rule_pairs(prepared, rule, mode: str, max_pairs: int, seed: int) -> pl.DataFrame:
    """`blocking.rule_pairs(prepared, rule, mode)` when it has at most `max_pairs` pairs; else
    `max_pairs` of them drawn uniformly without replacement, sorted, never making the others."""
    from tfkit.linkage.blocking import _block_key, rule_pairs, sorted_runs

    if rule.cross:  # not in the default sessions
        return rule_pairs(prepared, rule, mode)
    n_sources = len(prepared.sources)
    rid, key = _block_key(prepared, rule.on)
    source = prepared.codes("_source")[rid].astype(np.int64) if n_sources > 1 else np.zeros(len(rid), np.int64)
    rid_bits = max(1, prepared.n.bit_length())
    key = np.unique(key, return_inverse=True)[1].astype(np.int64).ravel()
    code = np.sort(((key * n_sources + source) << rid_bits) | rid)
    rid, group = code & ((1 << rid_bits) - 1), code >> rid_bits
    block = group // n_sources
    _, _, lo, hi = sorted_runs(block, group, mode)
    runs = hi - lo
    ends = np.cumsum(runs)
    total = int(ends[-1]) if len(ends) else 0
    if total <= max_pairs:
        return rule_pairs(prepared, rule, mode)
    picks = np.sort(np.random.default_rng(seed).choice(total, size=max_pairs, replace=False))
    row = np.searchsorted(ends, picks, side="right")
    partner = lo[row] + (picks - (ends[row] - runs[row]))
    a, b = rid[row], rid[partner]
    frame = pl.DataFrame({"rid_l": np.minimum(a, b), "rid_r": np.maximum(a, b)},
                         schema={"rid_l": pl.Int64, "rid_r": pl.Int64})
    return frame.sort("rid_l", "rid_r")


def _rss(field: str) -> int:
    """This process' VmRSS or VmHWM in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def worker(folder: Path, how: str) -> None:
    from tfkit.linkage import LinkageModel, training
    from tfkit.linkage.linker import Linker

    frames = {s: pl.read_parquet(folder / f"{s}.parquet") for s in ("left", "right")}
    linker = Linker(frames, LinkageModel.default(), mode="link")
    del frames
    model = linker.model
    if how == "sampled":
        s = model.settings
        calls = iter(range(len(model.training)))
        # the session's own seed, as estimate_m_em_sessions samples with seed + k
        training.rule_pairs = lambda prepared, rule, mode: sampled_rule_pairs(
            prepared, rule, mode, s.em_max_pairs, linker.seed + next(calls))
    linker.training.estimate_u_using_random_sampling()
    base = _rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) from here: the sessions' own
    t = time.perf_counter()
    m = training.estimate_m_em_sessions(linker.prepared, model, mode="link", seed=linker.seed)
    seconds = time.perf_counter() - t
    sessions = [{k: e.get(k) for k in ("session", "pairs", "iterations")} for e in model.training_log
                if e.get("method") == "expectation maximisation"]
    print(json.dumps({"how": how, "seconds": round(seconds, 1),
                      "peak_rss_gib": round(_rss("VmHWM") / 2 ** 20, 2),
                      "rss_before_sessions_gib": round(base / 2 ** 20, 2), "sessions": sessions,
                      "m": {k: [float(x) for x in v] for k, v in m.items()}}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=500_000)
    ap.add_argument("--worker", choices=("all", "sampled"))
    ap.add_argument("--folder", type=Path)
    args = ap.parse_args()
    if args.worker:
        return worker(args.folder, args.worker)
    folder = HERE / "out" / f"spark_link_{args.size}"
    if not (folder / "truth.parquet").exists():
        from national_corpus import national_corpus

        national_corpus(folder, args.size)
    out = {}
    for how in ("all", "sampled"):
        run = subprocess.run([sys.executable, __file__, "--worker", how, "--folder", str(folder)],
                             capture_output=True, text=True, check=True)
        out[how] = json.loads(run.stdout.strip().splitlines()[-1])
    diff = max(abs(a - b) for k in out["all"]["m"] for a, b in zip(out["all"]["m"][k], out["sampled"]["m"][k]))
    for how in ("all", "sampled"):
        r = out[how]
        print(f"{how:8} {r['seconds']:7.1f} s  peak RSS {r['peak_rss_gib']:.2f} GiB (before the sessions "
              f"{r['rss_before_sessions_gib']:.2f})  sessions {r['sessions']}")
    print(f"largest |m difference| over all comparison levels: {diff:.4f}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
