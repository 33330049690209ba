"""Stage 4b, predict: match weight and probability for every candidate pair.

Weights are table look-ups (numpy `take` on each comparison's per-level weight vector) summed over
comparisons, plus term-frequency adjustments where the exact level of a TF comparison was reached.
"""

from __future__ import annotations

import numpy as np
import polars as pl

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
          levels: dict[str, np.ndarray]) -> pl.DataFrame:
    """Pairs with match_weight, match_probability, and one `<comparison>_level` (and `_tf`) column each."""
    weight = np.full(len(rid_l), model.prior_weight, dtype=np.float64)
    columns: dict[str, np.ndarray] = {}
    for c in model.comparisons:
        lv = levels[c.name]
        weight += model.level_weights(c.name)[lv + 1]  # int8 indices: no million-pair int64 copies
        columns[f"{c.name}_level"] = lv
        if c.term_frequency and c.column in prepared.tf:
            adj = tf_adjustment(prepared, model, c.name, c.column, c.tf_level, lv, rid_l, rid_r)
            weight += adj
            columns[f"{c.name}_tf_adjustment"] = adj.astype(np.float32)
    for first, second in name_partners(model):
        # One adjustment per pair for the names taken together (FULL_NAME column): the full name's
        # own frequency, and names swapped counted once (one event, seen by both comparisons).
        adj = np.zeros(len(rid_l), dtype=np.float64)
        if first.term_frequency and second.term_frequency and first.column in prepared.tf \
                and second.column in prepared.tf:
            adj += full_name_adjustment(prepared, model, first, second, levels, rid_l, rid_r)
        for mine, theirs in zip(first.swap_levels, second.swap_levels):
            both = (levels[first.name] == mine) & (levels[second.name] == theirs)
            adj[both] -= model.level_weights(second.name)[theirs + 1]
        weight += adj
        columns[FULL_NAME] = adj.astype(np.float32)
    # 1 / (1 + 2^-clip(w)), in place: one array instead of four million-pair temporaries.
    probability = np.clip(weight, -1000, 1000)
    np.negative(probability, out=probability)
    np.exp2(probability, out=probability)
    probability += 1.0
    np.divide(1.0, probability, out=probability)
    vetoed = model.vetoed(levels, len(rid_l))
    if vetoed.any():
        # Relatives at one address (twins, a son named after his father's surname and DOB day...):
        # a different forename and a different sex say "another person" whatever else agrees.
        probability[vetoed] = 0.0
        columns["non_link_rule"] = vetoed
    return pl.DataFrame({
        "rid_l": rid_l, "rid_r": rid_r,
        "match_weight": weight, "match_probability": probability,
        **{k: pl.Series(k, v, dtype=pl.Int8 if k.endswith("_level") else pl.Boolean if k == "non_link_rule"
                        else pl.Float32) for k, v in columns.items()},
    })


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
