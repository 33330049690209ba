"""Quasi-identifiers and their generalisation hierarchies, declared as data.

A quasi-identifier is a column an outsider may already know about a person (year of birth, sex,
postcode district). Two kinds of declaration live here:

* `DERIVATIONS`: how to obtain a quasi-identifier a frame does not hold directly from one it does
  (`dob_year` from the package's `dob_year_month`, or from a `dob` date).
* `DEFAULT_HIERARCHIES`: for each quasi-identifier, the coarser levels it may be widened to, in
  order (the generalisation ladder: postcode district -> postcode area -> removed, the LA being
  the geography; year of birth -> 5-, 10-, then 20-year band). Each level names the output column
  and a rule from `RULES`; the `remove` rule publishes no column at all. A user may pass their own
  hierarchies.

Rules are polars expressions over the level-0 value, so every step stays vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import polars as pl

from tfkit.errors import UsageError
from tfkit.identifiers import postcode_area, postcode_district

DEFAULT_QUASI_IDENTIFIERS: tuple[str, ...] = ("dob_year", "sex", "postcode_district")
REMOVE = "remove"  # the top of a ladder: the quasi-identifier is not published at all
REMOVED = "removed"


def _year_band(width: int) -> Callable[[pl.Expr], pl.Expr]:
    def rule(year: pl.Expr) -> pl.Expr:
        start = (year.cast(pl.Int32) // width) * width
        return pl.format("{}-{}", start, start + (width - 1))

    return rule


RULES: dict[str, Callable[..., Callable[[pl.Expr], pl.Expr]]] = {
    # name -> factory(param) -> rule(expr) -> expr
    "year_of_year_month": lambda _=None: lambda e: e.cast(pl.String).str.slice(0, 4).cast(pl.Int32, strict=False),
    "year_of_date": lambda _=None: lambda e: e.dt.year().cast(pl.Int32),
    "postcode_district": lambda _=None: postcode_district,
    "postcode_area": lambda _=None: postcode_area,
    "year_band": lambda width=5: _year_band(int(width)),
    REMOVE: lambda _=None: lambda e: pl.lit(None, dtype=pl.String),
}


@dataclass(frozen=True)
class Derivation:
    """`target` computed from the frame's `source` column with `rule`."""

    target: str
    source: str
    rule: str
    param: int | None = None

    def expr(self) -> pl.Expr:
        return RULES[self.rule](self.param)(pl.col(self.source)).alias(self.target)


DERIVATIONS: tuple[Derivation, ...] = (
    Derivation("dob_year", "dob_year_month", "year_of_year_month"),
    Derivation("dob_year", "dob", "year_of_date"),
    Derivation("postcode_district", "postcode_sector", "postcode_district"),
    Derivation("postcode_area", "postcode_district", "postcode_area"),
    Derivation("postcode_area", "postcode_sector", "postcode_area"),
)


@dataclass(frozen=True)
class Level:
    """One step up a hierarchy: the widened column's name and the rule that makes it (`remove`:
    no column; the level is named `removed`)."""

    name: str
    rule: str
    param: int | None = None

    @property
    def removes(self) -> bool:
        return self.rule == REMOVE

    def expr(self, base: pl.Expr) -> pl.Expr:
        return RULES[self.rule](self.param)(base)


@dataclass(frozen=True)
class Hierarchy:
    """Levels a quasi-identifier may be widened to, finest first (level 0 is the column itself)."""

    column: str
    levels: tuple[Level, ...]


# The default ladder, finest first. A return is one LA's, so above the postcode area the geography
# is the LA itself (la_code): `removed` costs a small LA little, since its postcode area is nearly
# constant, and takes away what singles people out: out-of-area and unknown postcodes. Age widens
# in steps a statistician would publish (5, 10, 20 years); sex is never widened.
DEFAULT_HIERARCHIES: tuple[Hierarchy, ...] = (
    Hierarchy("postcode_sector", (Level("postcode_district", "postcode_district"), Level("postcode_area", "postcode_area"),
                                  Level(REMOVED, REMOVE))),
    Hierarchy("postcode_district", (Level("postcode_area", "postcode_area"), Level(REMOVED, REMOVE))),
    Hierarchy("dob_year", (Level("dob_year_band", "year_band", 5), Level("dob_year_band_10", "year_band", 10),
                           Level("dob_year_band_20", "year_band", 20))),
)


@dataclass(frozen=True)
class QuasiIdentifier:
    """A quasi-identifier resolved against one frame: how to compute it and which columns hold it."""

    name: str
    expr: pl.Expr
    sources: tuple[str, ...]  # the frame's columns carrying this information (dropped or nulled on change)

    @property
    def derived(self) -> bool:
        return self.sources != (self.name,)


def resolve(columns: list[str] | tuple[str, ...], quasi_identifiers: tuple[str, ...] | list[str]) -> list[QuasiIdentifier]:
    """Map each quasi-identifier to the frame: the column itself, else a declared derivation."""
    if not quasi_identifiers:
        raise UsageError("no quasi-identifiers given", hint="name at least one column with --qi")
    if len(set(quasi_identifiers)) != len(tuple(quasi_identifiers)):
        raise UsageError(f"quasi-identifiers repeated: {', '.join(quasi_identifiers)}")
    present = set(columns)
    resolved = []
    for name in quasi_identifiers:
        if name in present:
            resolved.append(QuasiIdentifier(name, pl.col(name), (name,)))
            continue
        derivation = next((d for d in DERIVATIONS if d.target == name and d.source in present), None)
        if derivation is None:
            sources = [d.source for d in DERIVATIONS if d.target == name]
            raise UsageError(
                f"quasi-identifier {name!r} is not a column of the data"
                + (f" and none of {', '.join(sources)} is there to derive it from" if sources else ""),
                hint=f"columns available: {', '.join(sorted(present))}",
                column=name,
            )
        resolved.append(QuasiIdentifier(name, derivation.expr(), (derivation.source,)))
    return resolved


def hierarchy_for(column: str, hierarchies: tuple[Hierarchy, ...] | list[Hierarchy]) -> tuple[Level, ...]:
    return next((h.levels for h in hierarchies if h.column == column), ())


def present_quasi_identifiers(columns: Sequence[str], quasi_identifiers: Sequence[str]) -> list[QuasiIdentifier]:
    """The quasi-identifiers a table holds (directly or derivable), in order; [] when it holds none."""
    found = []
    for name in dict.fromkeys(quasi_identifiers):
        try:
            found.extend(resolve(list(columns), (name,)))
        except UsageError:
            continue
    return found
