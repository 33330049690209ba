"""Stage 4b, predict: match weight and probability for every candidate pair.

Weights are table look-ups (numpy `take` on each comparison's per-level weight vector) summed over
comparisons, plus term-frequency adjustments where the exact level of a TF comparison was reached.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from . import background
from .model import LinkageModel
from .standardise import Prepared


def tf_adjustment(prepared: Prepared, model: LinkageModel, name: str, column: str, level: int,
                  levels: np.ndarray, rid_l: np.ndarray, rid_r: np.ndarray) -> np.ndarray:
    """log2(u_level / tf(value)) where the pair reached `level` (0 elsewhere): rare values weigh more.

    Splink's rule: the value's frequency replaces the average u of the exact level; both records hold
    the same value at that level, the larger of the two frequencies is used for safety.
    """
    adjust = np.zeros(len(levels), dtype=np.float64)
    hit = np.flatnonzero(levels == level)
    if not len(hit):
        return adjust
    # Per value (a vocabulary, not a million pairs): the adjustment its frequency gives. The larger
    # frequency of the two gives the smaller adjustment (x -> log2(u / x) falls as x grows), so
    # each pair takes the smaller of its two values' adjustments.
    by_value = np.log2(np.clip(model.u[name][level], 1e-12, 1.0)
                       / np.clip(prepared.tf[column], model.settings.tf_minimum, 1.0))
    codes = prepared.codes(column)
    adjust[hit] = np.minimum(by_value[np.take(codes, np.take(rid_l, hit))],
                             by_value[np.take(codes, np.take(rid_r, hit))])
    return adjust


FULL_NAME = "full_name_adjustment"


def name_partners(model: LinkageModel) -> list[tuple]:
    """Comparisons declaring each other `swap_with` (forename and surname), first one first."""
    by_column = {c.column: c for c in model.comparisons}
    out = []
    for c in model.comparisons:
        partner = by_column.get(c.options.get("swap_with") or "")
        if partner is not None and partner.options.get("swap_with") == c.column \
                and model.comparisons.index(c) < model.comparisons.index(partner):
            out.append((c, partner))
    return out


def full_name_adjustment(prepared: Prepared, model: LinkageModel, first, second, levels: dict[str, np.ndarray],
                         rid_l: np.ndarray, rid_r: np.ndarray) -> np.ndarray:
    """Where both names agree exactly: log2(tf(forename) x tf(surname) / u(full name)).

    The two names' term-frequency adjustments assume a forename is chosen independently of the
    surname. It is not: in a city's name mix, forenames and surnames cluster by language (Simran with
    Kaur, Mehmet with Yilmaz), so two strangers share a full name far more often than the product of
    the two frequencies says. This replaces the product by the full name's own frequency among the
    *other* records (the pair itself leaves out two), shrunk towards the product by one expected
    occurrence, so a rare full name with no other bearer keeps its independence weight:
    u = (others + 1) / (N + 1 / (tf_f x tf_s)). On names drawn independently (FEBRL) it is about 0.
    """
    adjust = np.zeros(len(rid_l), dtype=np.float64)
    hit = (levels[first.name] == first.tf_level) & (levels[second.name] == second.tf_level)
    if not hit.any():
        return adjust
    lo = model.settings.tf_minimum
    left = rid_l[hit]
    tf_f = np.clip(prepared.tf[first.column][prepared.codes(first.column)[left]], lo, 1.0)
    tf_s = np.clip(prepared.tf[second.column][prepared.codes(second.column)[left]], lo, 1.0)
    counts, n = prepared.joint_counts(first.column, second.column)
    independent = tf_f * tf_s
    others = np.maximum(np.maximum(counts[left], counts[rid_r[hit]]) - 2, 0)
    u = (others + 1.0) / (n + 1.0 / independent)
    adjust[hit] = np.log2(independent / u)
    return adjust


def score(prepared: Prepared, model: LinkageModel, rid_l: np.ndarray, rid_r: np.ndarray,
          levels: dict[str, np.ndarray], *, parts: int = 1) -> pl.DataFrame:
    """Pairs with match_weight, match_probability, and one `<comparison>_level` (and `_tf`) column each.

    `parts`: threads sharing the pairs (`link` uses two). Every value is computed per pair, the same
    way whatever the split: numpy's operations on each part release the GIL, so the parts run at
    once, into the output arrays allocated here (no more memory than one part: the temporaries of
    a part are its share of the pairs)."""
    n = len(rid_l)
    tf_comparisons = {c.name for c in model.comparisons if c.term_frequency and c.column in prepared.tf}
    partners = name_partners(model)
    weight = np.empty(n, dtype=np.float64)
    probability = np.empty(n, dtype=np.float64)
    vetoed = np.empty(n, dtype=bool)
    columns: dict[str, np.ndarray] = {}  # in the order of the frame's columns
    for c in model.comparisons:
        columns[f"{c.name}_level"] = levels[c.name]
        if c.name in tf_comparisons:
            columns[f"{c.name}_tf_adjustment"] = np.empty(n, dtype=np.float32)
    if partners:
        columns[FULL_NAME] = np.empty(n, dtype=np.float32)

    def part(start: int, stop: int) -> None:
        # A thread's share a chunk at a time: each chunk's temporaries (the gathered codes and
        # adjustments of the term-frequency levels, the veto's masks) are freed before the next,
        # so they are a chunk's size, not half the pairs' (every value is per pair: the same).
        for a in range(start, stop, SCORE_CHUNK_PAIRS):
            chunk(a, min(a + SCORE_CHUNK_PAIRS, stop))

    def chunk(start: int, stop: int) -> None:
        at = slice(start, stop)
        lv_part = {k: v[at] for k, v in levels.items()}
        left, right = rid_l[at], rid_r[at]
        w = weight[at]
        w[:] = model.prior_weight
        for c in model.comparisons:
            lv = lv_part[c.name]
            w += model.level_weights(c.name)[lv + 1]  # int8 indices: no million-pair int64 copies
            if c.name in tf_comparisons:
                adj = tf_adjustment(prepared, model, c.name, c.column, c.tf_level, lv, left, right)
                w += adj
                columns[f"{c.name}_tf_adjustment"][at] = adj
        for first, second in partners:
            # One adjustment per pair for the names taken together (FULL_NAME column): the full name's
            # own frequency, and names swapped counted once (one event, seen by both comparisons).
            adj = np.zeros(stop - start, dtype=np.float64)
            if first.name in tf_comparisons and second.name in tf_comparisons:
                adj += full_name_adjustment(prepared, model, first, second, lv_part, left, right)
            for mine, theirs in zip(first.swap_levels, second.swap_levels):
                both = (lv_part[first.name] == mine) & (lv_part[second.name] == theirs)
                adj[both] -= model.level_weights(second.name)[theirs + 1]
            w += adj
            columns[FULL_NAME][at] = adj
        # 1 / (1 + 2^-clip(w)), in place: no million-pair temporaries.
        p = probability[at]
        np.clip(w, -1000, 1000, out=p)
        np.negative(p, out=p)
        np.exp2(p, out=p)
        p += 1.0
        np.divide(1.0, p, out=p)
        # Relatives at one address (twins, a son named after his father's surname and DOB day...):
        # a different forename and a different sex say "another person" whatever else agrees.
        v = vetoed[at]
        v[:] = model.vetoed(lv_part, stop - start)
        p[v] = 0.0

    parts = max(1, min(parts, n // MIN_PART_PAIRS))
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    waits = [background.start(part, int(a), int(b), name="tfkit-score") for a, b in zip(bounds[1:-1], bounds[2:])]
    part(0, int(bounds[1]))
    for wait in waits:
        wait()
    if vetoed.any():
        columns["non_link_rule"] = vetoed
    return pl.DataFrame({
        "rid_l": rid_l, "rid_r": rid_r,
        "match_weight": weight, "match_probability": probability,
        **{k: pl.Series(k, v, dtype=pl.Int8 if k.endswith("_level") else pl.Boolean if k == "non_link_rule"
                        else pl.Float32) for k, v in columns.items()},
    })


MIN_PART_PAIRS = 50_000  # fewer pairs a thread cost more to start than they save
SCORE_CHUNK_PAIRS = 65_536  # pairs a thread scores at a time (see `part`)


def with_record_ids(prepared: Prepared, pairs: pl.DataFrame, *, sources: bool = True) -> pl.DataFrame:
    """Replace row positions with (source, record_id) for both sides; keeps everything else.
    `sources=False`: the record ids only (a dedupe job's single source, or a bench's scoring).

    A row position is the record's index in `prepared.frame`, so ids are gathered, not joined (two
    joins of a million pairs copied every column twice: about 80 MiB at 100k x 100k)."""
    names = pl.Series("source", prepared.sources, dtype=pl.String)
    source = prepared.frame.get_column("_source")
    record_id = prepared.frame.get_column("_record_id")
    ids = {}
    for side in ("l", "r"):
        rid = pairs.get_column(f"rid_{side}")
        if sources:
            ids[f"source_{side}"] = names.gather(source.gather(rid)).alias(f"source_{side}")
        ids[f"record_id_{side}"] = record_id.gather(rid).alias(f"record_id_{side}")
    rest = [c for c in pairs.columns if c not in ("rid_l", "rid_r")]
    return pairs.select(rest).with_columns(**ids).select(*ids, *rest)
