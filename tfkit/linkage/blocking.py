"""Stage 2, block: candidate pairs are the union of declared equi-join rules, each pair generated once.

A rule is a list of standardised columns that must be equal and non-null on both records
(`["surname_dm", "dob"]`). Rule k keeps only pairs that no earlier rule already produced (the pair
fails at least one equality of every earlier rule), so the union needs no global de-duplication and
the report can say how many pairs each rule *adds*.

Pairs are oriented `rid_l < rid_r` (row positions in the stacked input). In `link` mode only pairs
from different sources are kept, in `dedupe` mode only pairs within a source, in `both` all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tfkit.errors import ConfigError

from .standardise import NULL, Prepared

MODES = ("link", "dedupe", "both")


@dataclass(frozen=True)
class BlockingRule:
    name: str
    on: tuple[str, ...]

    @classmethod
    def from_spec(cls, spec: dict, where: str = "blocking") -> "BlockingRule":
        on = spec.get("on")
        if not on or not isinstance(on, list) or not all(isinstance(c, str) for c in on):
            raise ConfigError(f"{where}: `on` must be a non-empty list of column names",
                              hint='e.g. on = ["surname_dm", "dob"]')
        return cls(name=str(spec.get("name") or " & ".join(on)), on=tuple(on))


@dataclass
class RuleCount:
    rule: str
    pairs_added: int


@dataclass
class BlockingReport:
    rules: list[RuleCount]
    total_pairs: int
    comparisons_possible: int
    true_pairs: int | None = None
    true_pairs_found: int | None = None

    @property
    def recall(self) -> float | None:
        if not self.true_pairs:
            return None
        return self.true_pairs_found / self.true_pairs

    @property
    def reduction_ratio(self) -> float:
        return 1.0 - self.total_pairs / self.comparisons_possible if self.comparisons_possible else 0.0

    def to_dict(self) -> dict:
        return {
            "rules": [{"rule": r.rule, "pairs_added": r.pairs_added} for r in self.rules],
            "total_pairs": self.total_pairs,
            "comparisons_possible": self.comparisons_possible,
            "reduction_ratio": self.reduction_ratio,
            "true_pairs": self.true_pairs,
            "true_pairs_found": self.true_pairs_found,
            "recall": self.recall,
        }


def comparisons_possible(sizes: list[int], mode: str) -> int:
    total = sum(sizes)
    within = sum(n * (n - 1) // 2 for n in sizes)
    every = total * (total - 1) // 2
    return {"link": every - within, "dedupe": within, "both": every}[mode]


def check_rules(prepared: Prepared, rules: list[BlockingRule]) -> None:
    for rule in rules:
        missing = [c for c in rule.on if c not in prepared.frame.columns]
        if missing:
            raise ConfigError(
                f"blocking rule {rule.name!r} uses {', '.join(missing)}, which the comparisons do not produce",
                hint="block on a compared column or its derived forms (_dm, _canon, _year, _sector, ...)",
            )


def _mode_filter(mode: str) -> pl.Expr:
    same = pl.col("_source") == pl.col("_source_r")
    return {"link": ~same, "dedupe": same, "both": pl.lit(True)}[mode]


def rule_pairs(prepared: Prepared, rule: BlockingRule, mode: str) -> pl.DataFrame:
    """Every pair (rid_l < rid_r) in the mode's scope that agrees on all of the rule's columns."""
    keys = prepared.frame.select("_rid", "_source", *rule.on).drop_nulls(list(rule.on))
    if mode == "link":
        # Join each source with the later sources only: no mirrored pairs to throw away.
        parts = []
        for s in range(len(prepared.sources)):
            left = keys.filter(pl.col("_source") == s)
            right = keys.filter(pl.col("_source") > s)
            if left.height and right.height:
                parts.append(
                    left.join(right, on=list(rule.on), how="inner", suffix="_r")
                    .select(pl.col("_rid").alias("rid_l"), pl.col("_rid_r").alias("rid_r"))
                )
        if not parts:
            return pl.DataFrame(schema={"rid_l": pl.Int64, "rid_r": pl.Int64})
        return pl.concat(parts)
    return (
        keys.lazy()
        .join(keys.lazy(), on=list(rule.on), how="inner", suffix="_r")
        .filter((pl.col("_rid") < pl.col("_rid_r")) & _mode_filter(mode))
        .select(pl.col("_rid").alias("rid_l"), pl.col("_rid_r").alias("rid_r"))
        .collect()
    )


def _produced_by(prepared: Prepared, rule: BlockingRule, rid_l: np.ndarray, rid_r: np.ndarray) -> np.ndarray:
    """Whether each pair satisfies `rule` (all its columns equal and non-null)."""
    hit = np.ones(len(rid_l), dtype=bool)
    for column in rule.on:
        codes = prepared.codes(column)
        left = codes[rid_l]
        hit &= (left == codes[rid_r]) & (left != NULL)
    return hit


def candidate_pairs(prepared: Prepared, rules: list[BlockingRule], mode: str) -> tuple[pl.DataFrame, BlockingReport]:
    """All candidate pairs (rid_l, rid_r, rule index), sorted, and how many pairs each rule added."""
    if mode not in MODES:
        raise ConfigError(f"unknown link mode {mode!r}", hint=f"use one of: {', '.join(MODES)}")
    check_rules(prepared, rules)
    parts, counts = [], []
    for k, rule in enumerate(rules):
        pairs = rule_pairs(prepared, rule, mode)
        rid_l = pairs["rid_l"].to_numpy()
        rid_r = pairs["rid_r"].to_numpy()
        keep = np.ones(len(rid_l), dtype=bool)
        for earlier in rules[:k]:
            keep &= ~_produced_by(prepared, earlier, rid_l, rid_r)
        added = pairs.filter(pl.Series(keep)).with_columns(pl.lit(k, dtype=pl.Int8).alias("rule"))
        parts.append(added)
        counts.append(RuleCount(rule.name, added.height))
    schema = {"rid_l": pl.Int64, "rid_r": pl.Int64, "rule": pl.Int8}
    pairs = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
    pairs = pairs.sort("rid_l", "rid_r")
    report = BlockingReport(counts, pairs.height, comparisons_possible(prepared.source_sizes(), mode))
    return pairs, report


def true_pairs(prepared: Prepared, truth_column: str, mode: str) -> pl.DataFrame:
    """Every pair of records sharing a truth id, within the mode's scope (rid_l < rid_r)."""
    keys = prepared.frame.select("_rid", "_source", truth_column).drop_nulls(truth_column)
    return (
        keys.lazy()
        .join(keys.lazy(), on=truth_column, how="inner", suffix="_r")
        .filter((pl.col("_rid") < pl.col("_rid_r")) & _mode_filter(mode))
        .select(pl.col("_rid").alias("rid_l"), pl.col("_rid_r").alias("rid_r"))
        .collect()
    )


def blocking_recall(prepared: Prepared, pairs: pl.DataFrame, truth_column: str, mode: str,
                    report: BlockingReport) -> BlockingReport:
    """Fill in how many truly matching pairs the blocking rules let through."""
    truth = true_pairs(prepared, truth_column, mode)
    found = truth.join(pairs.select("rid_l", "rid_r"), on=["rid_l", "rid_r"], how="semi").height
    report.true_pairs = truth.height
    report.true_pairs_found = found
    return report


def scope_blocks(n_sources: int, mode: str) -> list[tuple[int, int]]:
    """The (left source, right source) pairs a mode compares: i < j across sources, i == j within."""
    return [(i, j) for i in range(n_sources) for j in range(i, n_sources)
            if (i == j and mode in ("dedupe", "both")) or (i != j and mode in ("link", "both"))]


def sample_records(prepared: Prepared, n_pairs: int, mode: str, seed: int | list[int]) -> list[np.ndarray]:
    """Splink's u-sampling design: the same proportion p of every source's records (seeded, without
    replacement), with p chosen so that the pairs among the sampled records in the mode's scope
    number about `n_pairs`; p = 1 (every pair) when the inputs have no more pairs than that.

    Returns each source's sampled row positions (`_rid`), sorted.
    """
    rng = np.random.default_rng(seed)
    sizes = prepared.source_sizes()
    possible = comparisons_possible(sizes, mode)
    p = min(1.0, (n_pairs / possible) ** 0.5) if possible else 0.0
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    out = []
    for size, start in zip(sizes, starts):
        k = min(size, max(1, round(p * size))) if size and p > 0 else 0
        out.append(np.sort(rng.choice(size, k, replace=False)).astype(np.int64) + start)
    return out
