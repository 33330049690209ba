"""Reference data shipped with the generator (tfkit/demo/data/), loaded once.

- forenames.csv (community, sex, name) and surnames.csv (community, name): hand-written lists of
  common names in England's communities, each community's names in rough order of frequency. The
  generator turns rank into a Zipf-like weight, so common names are common and the tail is long.
  No real people: these are only frequent given names and family names.
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


@functools.cache
def forenames() -> dict[tuple[str, str], NameList]:
    grouped: dict[tuple[str, str], list[str]] = {}
    for row in _rows("forenames.csv"):
        grouped.setdefault((row["community"], row["sex"]), []).append(row["name"])
    return {k: NameList(tuple(v), zipf_weights(len(v))) for k, v in grouped.items()}


@functools.cache
def surnames() -> dict[str, NameList]:
    grouped: dict[str, list[str]] = {}
    for row in _rows("surnames.csv"):
        grouped.setdefault(row["community"], []).append(row["name"])
    return {k: NameList(tuple(v), zipf_weights(len(v), exponent=0.9, offset=3.0)) for k, v in grouped.items()}


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
