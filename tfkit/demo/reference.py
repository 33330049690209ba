"""Reference data shipped with the generator (tfkit/demo/data/), loaded once.

- forenames.csv (community, sex, name, era) and surnames.csv (community, name): hand-written lists of
  common names in England's communities, each community's names in rough order of frequency. The
  generator turns rank into a Zipf-like weight, so common names are common and the tail is long.
  A forename's era ("any", "before_1998", "from_1998") keeps Tracey among mothers and Isla among
  daughters. No real people: these are only frequent given names and family names.
- nicknames.csv (name, variants "A|B|C"): nicknames and spelling variants a partner system may
  record instead of the formal name (Bill for William, Muhammad for Mohammed).
- local_authorities.csv: the LAs the generator knows (GSS code, name, DfE LA number used in UPNs,
  plausible postcode sectors, community mix in per cent).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np
import polars as pl

from tfkit.errors import UsageError


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("tfkit.demo").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def zipf_weights(n: int, exponent: float = 0.8, offset: float = 5.0) -> np.ndarray:
    """Probabilities for ranks 0..n-1: the first name about 5% of a 100-name list, a long tail."""
    w = 1.0 / (np.arange(n) + offset) ** exponent
    return w / w.sum()


@dataclass(frozen=True)
class NameList:
    names: tuple[str, ...]
    p: np.ndarray


@dataclass(frozen=True)
class LocalAuthority:
    la_code: str
    la_name: str
    dfe_number: int
    sectors: tuple[str, ...]
    communities: tuple[str, ...]
    community_p: np.ndarray

    @property
    def community_codes(self) -> np.ndarray:
        return np.array([communities().index(c) for c in self.communities])


@dataclass(frozen=True)
class NameTable:
    """Name lists for groups 0..k-1 (communities, or community x sex), concatenated for fast lookup.

    `draw` returns positions in `names`: people are handled as integer codes until the very end,
    when one `gather` turns codes into strings.
    """

    keys: tuple
    names: pl.Series
    offsets: np.ndarray
    weights: tuple[np.ndarray, ...]
    name_ids: np.ndarray  # the same id wherever the same name appears in several groups

    @classmethod
    def build(cls, keys: tuple, lists: dict) -> NameTable:
        missing = [k for k in keys if k not in lists]
        if missing:
            raise ValueError(f"name lists missing for {missing}")
        sizes = [len(lists[k].names) for k in keys]
        flat = [n for k in keys for n in lists[k].names]
        ids = {name: i for i, name in enumerate(dict.fromkeys(flat))}
        return cls(
            keys,
            pl.Series(flat, dtype=pl.String),
            np.concatenate([[0], np.cumsum(sizes)[:-1]]),
            tuple(lists[k].p for k in keys),
            np.array([ids[n] for n in flat]),
        )

    def draw(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A position in `names` for each entry of `groups` (group codes), by rank weight."""
        out = np.zeros(len(groups), dtype=np.int64)
        for code, p in enumerate(self.weights):  # fixed order: deterministic
            idx = np.flatnonzero(groups == code)
            if len(idx):
                out[idx] = self.offsets[code] + rng.choice(len(p), size=len(idx), p=p)
        return out

    def lookup(self, positions: np.ndarray) -> pl.Series:
        return self.names.gather(positions)


# Fashions change: forenames tagged "before_1998" or "from_1998" are given only to people born then.
ERA_SPLIT_YEAR = 1998
ERAS = ("before_1998", "from_1998")


@functools.cache
def _forename_lists() -> dict[tuple[str, str, str], NameList]:
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for row in _rows("forenames.csv"):
        for era in ERAS:
            if row["era"] in ("any", era):
                grouped.setdefault((row["community"], row["sex"], era), []).append(row["name"])
    return {k: NameList(tuple(v), zipf_weights(len(v))) for k, v in grouped.items()}


@functools.cache
def _surname_lists() -> dict[str, NameList]:
    grouped: dict[str, list[str]] = {}
    for row in _rows("surnames.csv"):
        grouped.setdefault(row["community"], []).append(row["name"])
    return {k: NameList(tuple(v), zipf_weights(len(v), exponent=0.9, offset=3.0)) for k, v in grouped.items()}


@functools.cache
def communities() -> tuple[str, ...]:
    """Every community with name lists, in a fixed order: a person's community is an index into it."""
    return tuple(sorted(_surname_lists()))


SEXES = ("F", "M")


@functools.cache
def forenames() -> NameTable:
    """Group code = (community code * 2 + (1 if male else 0)) * 2 + (1 if born from 1998 else 0)."""
    keys = tuple((c, s, e) for c in communities() for s in SEXES for e in ERAS)
    return NameTable.build(keys, _forename_lists())


@functools.cache
def surnames() -> NameTable:
    """Group code = community code."""
    return NameTable.build(communities(), _surname_lists())


@functools.cache
def nicknames() -> dict[str, list[str]]:
    return {row["name"]: row["variants"].split("|") for row in _rows("nicknames.csv")}


@functools.cache
def local_authorities() -> dict[str, LocalAuthority]:
    out = {}
    for row in _rows("local_authorities.csv"):
        mix = [part.split(":") for part in row["communities"].split("|")]
        shares = np.array([float(s) for _, s in mix])
        out[row["la_code"]] = LocalAuthority(
            la_code=row["la_code"],
            la_name=row["la_name"],
            dfe_number=int(row["dfe_number"]),
            sectors=tuple(row["sectors"].split("|")),
            communities=tuple(c for c, _ in mix),
            community_p=shares / shares.sum(),
        )
    return out


def local_authority(la_code: str) -> LocalAuthority:
    las = local_authorities()
    if la_code not in las:
        known = ", ".join(f"{code} ({la.la_name})" for code, la in las.items())
        raise UsageError(
            f"the demo generator has no geography for LA code {la_code!r}",
            hint=f"use one of: {known}",
        )
    return las[la_code]
