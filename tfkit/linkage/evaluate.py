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
                   thresholds: np.ndarray) -> list[Accuracy]:
    """Precision/recall/F1 at each threshold: one sort, then cumulative counts (no loop over pairs)."""
    order = np.argsort(-probability, kind="stable")
    p_sorted = probability[order]
    tp_cum = np.concatenate([[0], np.cumsum(is_match[order])])
    out = []
    # Number of pairs with probability >= t, for every t at once.
    above = np.searchsorted(-p_sorted, -np.asarray(thresholds, dtype=np.float64), side="right")
    for t, k in zip(thresholds, above):
        tp = int(tp_cum[k])
        out.append(Accuracy(float(t), tp, int(k) - tp, int(total_true) - tp))
    return out


def label_pairs(prepared: Prepared, pairs: pl.DataFrame, truth_column: str) -> np.ndarray:
    truth = prepared.frame.get_column(truth_column)
    codes = (truth.rank("dense").fill_null(0)).cast(pl.Int64).to_numpy()  # 0 = unknown
    left = codes[pairs["rid_l"].to_numpy()]
    right = codes[pairs["rid_r"].to_numpy()]
    return (left == right) & (left > 0)


def evaluate(prepared: Prepared, pairs: pl.DataFrame, truth_column: str, mode: str, threshold: float,
             thresholds: np.ndarray | None = None) -> dict:
    """Accuracy at `threshold`, over `thresholds`, and the best F1 over every distinct probability."""
    is_match = label_pairs(prepared, pairs, truth_column)
    total_true = true_pairs(prepared, truth_column, mode).height
    probability = pairs["match_probability"].to_numpy()
    if thresholds is None:
        thresholds = np.round(np.linspace(0.05, 0.99, 48), 4)
    at = accuracy_curve(probability, is_match, total_true, np.array([threshold]))[0]
    curve = accuracy_curve(probability, is_match, total_true, thresholds)
    every = np.unique(probability)[::-1] if len(probability) else np.array([threshold])
    if len(every) > 20_000:
        every = np.quantile(probability, np.linspace(0, 1, 20_001))
    best = max(accuracy_curve(probability, is_match, total_true, every), key=lambda a: a.f1)
    return {
        "truth_column": truth_column,
        "true_pairs": total_true,
        "at_threshold": at.to_dict(),
        "best_f1": best.to_dict(),
        "curve": [a.to_dict() for a in curve],
        "calibration": calibration(probability, is_match),
    }


def calibration(probability: np.ndarray, is_match: np.ndarray, bands: int = 10) -> list[dict]:
    """Predicted against observed match rate per probability band ([0, 0.1), ... [0.9, 1]): the
    pairs in the band, their mean predicted probability and the share that truly match."""
    band = np.minimum((np.asarray(probability) * bands).astype(np.int64), bands - 1)
    pairs = np.bincount(band, minlength=bands)
    predicted = np.bincount(band, weights=probability, minlength=bands)
    observed = np.bincount(band, weights=np.asarray(is_match, dtype=np.float64), minlength=bands)
    return [{"band": f"{k / bands:.1f}–{(k + 1) / bands:.1f}", "low": k / bands, "high": (k + 1) / bands,
             "pairs": int(pairs[k]),
             "predicted": float(predicted[k] / pairs[k]) if pairs[k] else None,
             "observed": float(observed[k] / pairs[k]) if pairs[k] else None}
            for k in range(bands)]
