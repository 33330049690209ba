"""Stage 6, evaluate: pairwise precision, recall and F1 against a truth column, at one threshold or many.

A predicted link is a candidate pair at or above the threshold; a true link is any pair of records in
the mode's scope sharing a truth id (pairs the blocking never produced count as missed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from .blocking import true_pairs
from .standardise import Prepared


@dataclass(frozen=True)
class Accuracy:
    threshold: float
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 1.0

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if (p + r) else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


def accuracy_curve(probability: np.ndarray, is_match: np.ndarray, total_true: int,
                   thresholds: np.ndarray, pairs: np.ndarray | None = None) -> list[Accuracy]:
    """Precision/recall/F1 at each threshold: one sort, then cumulative counts (no loop over pairs).

    Per pair (`is_match` booleans), or per distinct probability (`pairs` at it, `is_match` the true
    matches among them: `probability_counts`)."""
    order = np.argsort(-probability, kind="stable")
    p_sorted = probability[order]
    tp_cum = np.concatenate([[0], np.cumsum(np.asarray(is_match, dtype=np.int64)[order])])
    n_cum = None if pairs is None else np.concatenate([[0], np.cumsum(np.asarray(pairs, dtype=np.int64)[order])])
    out = []
    # Number of pairs with probability >= t, for every t at once.
    above = np.searchsorted(-p_sorted, -np.asarray(thresholds, dtype=np.float64), side="right")
    for t, k in zip(thresholds, above):
        tp = int(tp_cum[k])
        predicted = int(k) if n_cum is None else int(n_cum[k])
        out.append(Accuracy(float(t), tp, predicted - tp, int(total_true) - tp))
    return out


def label_pairs(prepared: Prepared, pairs: pl.DataFrame, truth_column: str) -> np.ndarray:
    left, right = pairs["rid_l"].to_numpy(), pairs["rid_r"].to_numpy()
    return same_truth(truth_codes(prepared, truth_column), left, right)


def truth_codes(prepared: Prepared, truth_column: str) -> np.ndarray:
    """Per record, its truth id as an integer (0 = unknown): what labelling a pair needs (the Spark
    engine broadcasts it)."""
    truth = prepared.frame.get_column(truth_column)
    return (truth.rank("dense").fill_null(0)).cast(pl.Int64).to_numpy()


def same_truth(codes: np.ndarray, rid_l: np.ndarray, rid_r: np.ndarray) -> np.ndarray:
    left, right = codes[rid_l], codes[rid_r]
    return (left == right) & (left > 0)


def probability_counts(probability: np.ndarray, is_match: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct probabilities (ascending), the pairs at each, and the true matches among them: all
    that evaluation reads (the Spark engine counts them on the cluster)."""
    values, inverse, pairs = np.unique(probability, return_inverse=True, return_counts=True)
    matches = np.bincount(inverse.ravel(), weights=is_match, minlength=len(values)).astype(np.int64)
    return values, pairs.astype(np.int64), matches


def evaluate(prepared: Prepared, pairs: pl.DataFrame, truth_column: str, mode: str, threshold: float,
             thresholds: np.ndarray | None = None) -> dict:
    """Accuracy at `threshold`, over `thresholds`, and the best F1 over every distinct probability."""
    is_match = label_pairs(prepared, pairs, truth_column)
    counted = probability_counts(pairs["match_probability"].to_numpy(), is_match)
    return evaluate_counts(*counted, true_pairs(prepared, truth_column, mode).height, truth_column, threshold,
                           thresholds)


def evaluate_counts(probability: np.ndarray, pairs: np.ndarray, matches: np.ndarray, total_true: int,
                    truth_column: str, threshold: float, thresholds: np.ndarray | None = None) -> dict:
    """`evaluate` from `probability_counts`: distinct probabilities (ascending), pairs and true
    matches at each; `total_true`: the pairs in the mode's scope sharing a truth id."""
    if thresholds is None:
        thresholds = np.round(np.linspace(0.05, 0.99, 48), 4)
    curve_at = lambda ts: accuracy_curve(probability, matches, total_true, ts, pairs=pairs)  # noqa: E731
    at = curve_at(np.array([threshold]))[0]
    curve = curve_at(thresholds)
    every = probability[::-1] if len(probability) else np.array([threshold])
    if len(every) > 20_000:
        every = _quantiles(probability, pairs, np.linspace(0, 1, 20_001))
    best = max(curve_at(every), key=lambda a: a.f1)
    return {
        "truth_column": truth_column,
        "true_pairs": int(total_true),
        "at_threshold": at.to_dict(),
        "best_f1": best.to_dict(),
        "curve": [a.to_dict() for a in curve],
        "calibration": calibration(probability, matches, pairs=pairs),
    }


def _quantiles(values: np.ndarray, counts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """np.quantile (linear) of the pairs' probabilities, from the distinct values and their counts."""
    ends = np.cumsum(counts)
    position = q * (ends[-1] - 1)
    below = np.floor(position)
    t = position - below
    a = values[np.searchsorted(ends, below, side="right")]
    b = values[np.searchsorted(ends, np.minimum(below + 1, ends[-1] - 1), side="right")]
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def calibration(probability: np.ndarray, is_match: np.ndarray, bands: int = 10,
                pairs: np.ndarray | None = None) -> list[dict]:
    """Predicted against observed match rate per probability band ([0, 0.1), ... [0.9, 1]): the
    pairs in the band, their mean predicted probability and the share that truly match. Per pair,
    or per distinct probability (`pairs` at it, `is_match` the true matches among them)."""
    probability = np.asarray(probability)
    weight = np.ones(len(probability)) if pairs is None else np.asarray(pairs, dtype=np.float64)
    band = np.minimum((probability * bands).astype(np.int64), bands - 1)
    pairs = np.bincount(band, weights=weight, minlength=bands).astype(np.int64)
    predicted = np.bincount(band, weights=probability * weight, minlength=bands)
    observed = np.bincount(band, weights=np.asarray(is_match, dtype=np.float64), minlength=bands)
    return [{"band": f"{k / bands:.1f}–{(k + 1) / bands:.1f}", "low": k / bands, "high": (k + 1) / bands,
             "pairs": int(pairs[k]),
             "predicted": float(predicted[k] / pairs[k]) if pairs[k] else None,
             "observed": float(observed[k] / pairs[k]) if pairs[k] else None}
            for k in range(bands)]


# Levels seen fewer times than this among the random pairs weigh what the pseudo-count says, not
# evidence (FEBRL's postcodes never reach the UK sector level): they are not held against the order.
UNSEEN_COUNT = 5


# A closer level must weigh this much less than a looser one (in bits: a Bayes factor of 2) to be
# flagged: EM's m for a rare disagreement level is a noisy estimate, and two levels of evidence
# against a match a fraction of a bit apart (say "within a month" -3.7, "within a year" -2.8) decide
# nothing. Seen on every corpus of bench/linkage_bench.py before this margin: 3-4 such warnings each.
ORDER_MARGIN_BITS = 1.0


def weights_out_of_order(model, margin: float = ORDER_MARGIN_BITS) -> list[dict]:
    """Levels weighing materially less (by `margin` bits) than a looser level of the same ladder: a
    closer agreement should never count for less. Term-frequency adjustments aside (the levels' own
    weights are compared); a comparison's side levels (another kind of agreement, not a looser one:
    names swapped, an initial only) and levels (almost) never seen among random pairs are left out."""
    found = []
    for c in model.comparisons:
        if c.name not in model.m:
            continue
        weights = model.level_weights(c.name)[1:].copy()
        seen = getattr(model, "u_counts", {}).get(c.name)
        if seen is not None:
            weights[np.asarray(seen) < UNSEEN_COUNT] = np.nan
        weights[list(c.side_levels)] = np.nan
        for i in range(len(weights) - 1):  # a loop over a comparison's few levels
            if np.isnan(weights[i]) or np.isnan(weights[i + 1:]).all():
                continue
            j = i + 1 + int(np.nanargmax(weights[i + 1:]))
            if weights[i] < weights[j] - margin:
                found.append({"comparison": c.name, "closer": c.labels[i], "closer_weight": float(weights[i]),
                              "looser": c.labels[j], "looser_weight": float(weights[j])})
    return found


def training_problems(model) -> list[dict]:
    """What a linker must hear about the trained model: EM sessions that stopped without
    converging, and weights running the wrong way. Each as {"code", "message", ...details}."""
    found = []
    for t in model.training_log:
        if t.get("converged") is False:
            what = f"{t.get('step', 'EM')}" + (f" ({t['session']})" if t.get("session") else "")
            found.append({"code": "em_not_converged", "step": what, "iterations": t.get("iterations"),
                          "message": f"EM for {what} stopped at {t.get('iterations', 'its maximum')} iterations "
                                     "without converging: its m values may be off; check the weights, or train on labels"})
    for w in weights_out_of_order(model):
        found.append({"code": "weights_out_of_order", **w,
                      "message": f"{w['comparison']}: '{w['closer']}' weighs {w['closer_weight']:+.2f}, less than the "
                                 f"looser '{w['looser']}' at {w['looser_weight']:+.2f}; a closer agreement should "
                                 "count for more (check the level's m and u)"})
    return found
