"""The declared model: comparisons, blocking rules, training settings and (once trained) parameters.

Loaded from TOML (`data/default_model.toml` is the default for English person data) and validated
once, with errors naming the file, the key and the fix. Fellegi-Sunter scoring:

    match weight  w = log2(lambda / (1 - lambda)) + sum_k log2(m_k[level] / u_k[level])
    probability   p = 2^w / (1 + 2^w)

with a comparison's null level contributing nothing, and, for term-frequency comparisons, the exact
level's u replaced by the frequency of the value itself (common names weigh less, rare ones more).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Mapping

import numpy as np
import polars as pl

from tfkit import tomlfile
from tfkit.errors import ConfigError

from .blocking import DEFAULT_MAX_BLOCK_PAIRS, MAX_RULE_PAIRS, MAX_RULE_PAIRS_PER_RECORD, MODES, BlockingRule
from .comparisons import Comparison, build_comparison

PROBABILITY_FLOOR = 1e-6
DEFAULT_SOURCE = "tfkit/linkage/data/default_model.toml"


@dataclass
class Settings:
    mode: str = "link"
    name_variants: str | None = None
    seed: int = 42
    u_sample_pairs: int = 1_000_000
    em_max_iterations: int = 100
    em_tolerance: float = 1e-6
    em_max_pairs: int = 5_000_000
    deterministic_rules: list[list[str]] = field(default_factory=lambda: [["forename", "surname", "dob"]])
    deterministic_recall: float = 0.8
    refine_prior: bool = True  # re-estimate lambda on the candidates once m and u are trained
    threshold: float = 0.9
    review_lower: float = 0.5
    tf_minimum: float = 1e-6
    batch_pairs: int = 100_000
    max_block_pairs: int = DEFAULT_MAX_BLOCK_PAIRS  # a blocking rule's block making more pairs is skipped (warned)
    # A rule's comparison budget, max(max_rule_pairs, max_rule_pairs_per_record x records): past it
    # the rule's largest blocks are left out (warned), so pairs grow linearly with national data.
    max_rule_pairs: int = MAX_RULE_PAIRS
    max_rule_pairs_per_record: float = MAX_RULE_PAIRS_PER_RECORD
    # Level patterns that make a pair a non-link whatever its weight, each a list of
    # "comparison=level label" (all must hold; "comparison=null": a value missing on either side).
    # A rule naming a comparison the model lacks is idle.
    non_link_when: list[list[str]] = field(default_factory=list)


NULL_LEVEL = "null"  # a non_link_when term's level for "missing on either side" (level -1)


def _settings(t: tomlfile.Table) -> Settings:
    """[settings], each key typed as its default (a missing key keeps it), then checked together."""
    defaults = Settings()
    t.unknown(set(Settings.__dataclass_fields__))
    values = {}
    for name in Settings.__dataclass_fields__:
        if name in t:
            default = getattr(defaults, name)
            values[name] = t.get(name, str if default is None else type(default))
    settings = Settings(**values)
    if settings.mode not in MODES:
        raise t.fail("mode", f"settings.mode must be one of {', '.join(MODES)}")
    if not 0 < settings.deterministic_recall <= 1:
        raise t.fail("deterministic_recall", "settings.deterministic_recall must be in (0, 1]",
                     "the share of true matches the deterministic rules catch, e.g. 0.85")
    for key in ("u_sample_pairs", "batch_pairs", "em_max_pairs", "em_max_iterations", "max_block_pairs",
                "max_rule_pairs"):
        if getattr(settings, key) < 1:
            raise t.fail(key, f"settings.{key} must be at least 1")
    if settings.max_rule_pairs_per_record < 0:
        raise t.fail("max_rule_pairs_per_record", "settings.max_rule_pairs_per_record must be 0 or more")
    if settings.seed < 0:
        raise t.fail("seed", "settings.seed must be 0 or more")
    if not 0 < settings.review_lower <= settings.threshold < 1:
        raise t.fail("threshold", "need 0 < settings.review_lower <= settings.threshold < 1")
    return settings


@dataclass
class LinkageModel:
    comparisons: list[Comparison]
    blocking: list[BlockingRule]
    settings: Settings
    source: str = "default"
    training: list[BlockingRule] = field(default_factory=list)  # EM session rules
    # Trained parameters: level probabilities indexed by level (0 = best); prior lambda.
    m: dict[str, np.ndarray] = field(default_factory=dict)
    u: dict[str, np.ndarray] = field(default_factory=dict)
    prior: float | None = None
    training_log: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)  # {"code", "message", ...}: shown by the CLI
    u_counts: dict[str, np.ndarray] = field(default_factory=dict)  # random pairs seen at each level
    # The random pairs' comparison vectors and counts (training.patterns), kept by estimate_u so
    # refine_prior can take the matches among them out of u. Not saved with the model.
    u_patterns: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ loading

    @classmethod
    def default(cls) -> "LinkageModel":
        text = resources.files("tfkit.linkage").joinpath("data/default_model.toml").read_text("utf-8")
        return cls.from_toml(text, source=DEFAULT_SOURCE)

    @classmethod
    def load(cls, path: str | Path | None) -> "LinkageModel":
        if path is None:
            return cls.default()
        doc = tomlfile.read(path, what="model file", missing_hint="check the model file's path (`tfkit link --model`, or "
                                                                   "`[linkage] model` in the config), or leave it out "
                                                                   "for the built-in model")
        return cls.from_table(doc.table, source=str(path))

    @classmethod
    def from_toml(cls, text: str, source: str = "<model>") -> "LinkageModel":
        return cls.from_table(tomlfile.parse(text, file=source), source=source)

    @classmethod
    def from_dict(cls, data: dict, source: str = "<model>") -> "LinkageModel":
        return cls.from_table(tomlfile.Table(data, source), source=source)

    @classmethod
    def from_table(cls, doc: tomlfile.Table, source: str = "<model>") -> "LinkageModel":
        extra = sorted(set(doc.data) - {"settings", "comparison", "blocking", "training"})
        if extra:
            raise doc.fail(extra[0], f"unknown top-level key(s): {', '.join(extra)}",
                           "a model has [settings], [[comparison]], [[blocking]] and [[training]]")
        settings = _settings(doc.table("settings"))
        data = {k: [t.data for t in doc.tables(k)] for k in ("comparison", "blocking", "training") if k in doc}
        if not {"comparison", "blocking", "training"} <= set(data) and source != DEFAULT_SOURCE:
            # A model file may override only some parts: the rest comes from the default model.
            base = tomlfile.parse(resources.files("tfkit.linkage").joinpath("data/default_model.toml").read_text("utf-8"))
            data = {**{k: base.data[k] for k in ("comparison", "blocking", "training")}, **data}
        try:
            comparisons = [build_comparison(c, where=f"comparison {i + 1}")
                           for i, c in enumerate(data.get("comparison", []))]
            blocking = [BlockingRule.from_spec(b, where=f"blocking rule {i + 1}")
                        for i, b in enumerate(data.get("blocking", []))]
            training = [BlockingRule.from_spec(b, where=f"training rule {i + 1}")
                        for i, b in enumerate(data.get("training", []))]
        except ConfigError as err:
            err.file = source
            raise
        if not comparisons:
            raise ConfigError("the model declares no [[comparison]]", file=source)
        labels = {c.name: c.labels for c in comparisons}
        for rule in settings.non_link_when:
            for term in rule:
                name, _, label = str(term).partition("=")
                if name not in labels or label not in (*labels[name], NULL_LEVEL):
                    raise ConfigError(f"settings.non_link_when: {term!r} is not comparison=level", file=source,
                                      hint=f"e.g. \"forename=else\"; levels of {name}: "
                                           + ", ".join(labels.get(name, ())) if name in labels else
                                           f"comparisons: {', '.join(labels)}")
        if not blocking:
            raise ConfigError("the model declares no [[blocking]] rule", file=source)
        names = [c.name for c in comparisons]
        if len(set(names)) != len(names):
            raise ConfigError("comparison names must be unique", file=source)
        return cls(comparisons, blocking, settings, source=source, training=training)

    # ------------------------------------------------------------------ fields

    def field_kinds(self) -> dict[str, str]:
        kinds: dict[str, str] = {}
        for c in self.comparisons:
            for column, kind in c.field_kinds().items():
                if kinds.get(column, kind) != kind:
                    raise ConfigError(f"column {column!r} is compared as both {kinds[column]} and {kind}",
                                      file=self.source)
                kinds[column] = kind
        return kinds

    def input_columns(self) -> list[str]:
        return list(self.field_kinds())

    def optional_columns(self) -> tuple[str, ...]:
        """Columns only optional comparisons (`required = false`) use: a source may lack them."""
        required = {c.column for c in self.comparisons if c.required}
        return tuple(c.column for c in self.comparisons if not c.required and c.column not in required)

    def warn(self, code: str, message: str, **details) -> None:
        """Record a warning for the summary and say it on the console now."""
        from tfkit import console

        self.warnings.append({"code": code, "message": message, **details})
        console.log(code, f"warning: {message}", level="warning", **details)

    def without_absent_optional(self, frames: Mapping[str, pl.DataFrame]) -> "LinkageModel":
        """A copy without the optional comparisons (`required = false`) whose column is missing or
        empty in every source: they could carry no evidence, so they are dropped with a warning
        (FEBRL and DWP-style extracts carry no sex). Blocking rules on their columns go too."""
        absent = {c.column for c in self.comparisons if not c.required
                  and all(c.column not in f.columns or f.get_column(c.column).null_count() == f.height
                          for f in frames.values())}
        if not absent:
            return self
        model = copy.copy(self)
        model.comparisons = [c for c in self.comparisons if c.column not in absent]
        model.blocking = [r for r in self.blocking if not _uses(r, absent)]
        model.training = [r for r in self.training if not _uses(r, absent)]
        model.warnings = list(self.warnings)
        for column in sorted(absent):
            names = [c.name for c in self.comparisons if c.column == column]
            model.warn("optional_comparison_dropped",
                       f"no source has values in {column!r}; comparison {', '.join(names)} dropped", column=column)
        if not model.comparisons:
            raise ConfigError("every comparison of the model is optional and no source has its column", file=self.source)
        return model

    # ------------------------------------------------------------------ scoring

    def non_link_rules(self) -> list[list[tuple[str, int]]]:
        """settings.non_link_when as (comparison, level index) lists; rules on absent comparisons drop."""
        index = {c.name: c for c in self.comparisons}
        out = []
        for rule in self.settings.non_link_when:
            terms = [str(t).partition("=")[::2] for t in rule]
            if all(name in index for name, _ in terms):
                out.append([(name, -1 if label == NULL_LEVEL else index[name].labels.index(label))
                            for name, label in terms])
        return out

    def vetoed(self, levels: Mapping[str, np.ndarray], n: int, exact: tuple[str, ...] | list[str] = ()) -> np.ndarray:
        """Which of `n` pairs (or comparison patterns) a non-link rule makes non-matches: `levels`,
        each comparison's level per row. `exact`: comparisons absent from `levels` but known to agree
        exactly (an EM session's own columns); a rule on any other absent comparison is not applied."""
        out = np.zeros(n, dtype=bool)
        for rule in self.non_link_rules():
            hit = np.ones(n, dtype=bool)
            for name, level in rule:
                if name in levels:
                    hit &= levels[name] == level
                elif name in exact:
                    hit &= level == 0
                else:
                    break
            else:
                out |= hit
        return out

    @property
    def trained(self) -> bool:
        return self.prior is not None and all(c.name in self.m and c.name in self.u for c in self.comparisons)

    def level_weights(self, name: str) -> np.ndarray:
        """log2(m/u) per level, with index 0 the null level (weight 0) and index i+1 level i."""
        m = np.clip(self.m[name], PROBABILITY_FLOOR, 1.0)
        u = np.clip(self.u[name], PROBABILITY_FLOOR, 1.0)
        return np.concatenate([[0.0], np.log2(m / u)])

    @property
    def prior_weight(self) -> float:
        return math.log2(self.prior / (1.0 - self.prior))

    def parameters(self) -> dict:
        """Trained parameters as plain data (for the report and `model.json`)."""
        return {
            "prior": self.prior,
            "prior_weight": self.prior_weight if self.prior else None,
            "comparisons": [
                {
                    "name": c.name, "column": c.column, "term_frequency": c.term_frequency,
                    "levels": [
                        {"level": i, "label": label, "m": float(self.m[c.name][i]), "u": float(self.u[c.name][i]),
                         "weight": float(self.level_weights(c.name)[i + 1])}
                        for i, label in enumerate(c.labels)
                    ],
                }
                for c in self.comparisons if c.name in self.m
            ],
            "training": self.training_log,
        }

    def to_json(self) -> str:
        return json.dumps(self.parameters(), indent=2, sort_keys=False)


def _uses(rule: BlockingRule, columns: set[str]) -> bool:
    return any(col == c or col.startswith(c + "_") for col in rule.columns for c in columns)
