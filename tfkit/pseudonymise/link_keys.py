"""Hierarchical deterministic linkage of two pseudonymised extracts on hashed match keys (ONS-style).

Keys are tried in order. At each key only the records not yet matched are offered; a key value
found exactly once on each side makes a pair; a value held by several records on either side is
ambiguous and is not taken (it is counted and reported).

`one_to_many=True` is for an event-level B (a police extract holds several records per person): a
value unique in A pairs with every B record holding it, and A records stay offered to later keys
(to collect their other B records); a value repeated in A is still ambiguous and not taken. Nothing here sees an identifier: both
sides must have been pseudonymised with the same master key and project.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

from tfkit.errors import ConfigError
from tfkit.pseudonymise.match_keys import MATCH_KEY_PREFIX, MatchKey, default_match_keys, match_key

ID_COLUMNS = ("person_id_pseudonym", "record_id_pseudonym")
_ROW = "__tfkit_row"


@dataclass(frozen=True)
class KeyLinkCount:
    """What one match key did: pairs taken and ambiguous values left alone."""

    match_key: str
    offered_a: int  # unmatched records of A with this key non-null when the key's turn came
    offered_b: int
    pairs: int  # pairs taken by this key
    ambiguous_values: int  # key values on both sides held by more than one record on a side
    ambiguous_a: int  # records of A behind those values
    ambiguous_b: int

    def as_dict(self) -> dict:
        return asdict(self)


def _id_column(frame: pl.DataFrame, given: str | None) -> str | None:
    if given is not None:
        if given not in frame.columns:
            raise ConfigError(f"id column {given!r} is not in the extract")
        return given
    return next((c for c in ID_COLUMNS if c in frame.columns), None)


def _resolve_keys(a: pl.DataFrame, b: pl.DataFrame, keys) -> list[MatchKey | str]:
    if keys is None:
        return [k for k in default_match_keys() if k.column in a.columns and k.column in b.columns]
    out = []
    for k in keys:
        name = k.name if isinstance(k, MatchKey) else str(k).removeprefix(MATCH_KEY_PREFIX)
        col = MATCH_KEY_PREFIX + name
        for side, frame in (("A", a), ("B", b)):
            if col not in frame.columns:
                raise ConfigError(f"extract {side} has no match-key column {col!r}", column=col,
                                  hint="pseudonymise both extracts with that match key")
        out.append(name)
    return out


def link_on_match_keys(
    a: pl.DataFrame | pl.LazyFrame,
    b: pl.DataFrame | pl.LazyFrame,
    keys=None,
    *,
    a_id: str | None = None,
    b_id: str | None = None,
    one_to_many: bool = False,
) -> tuple[pl.DataFrame, list[KeyLinkCount]]:
    """Link A to B on match keys, in order, one-to-one (or one-to-many, see the module docstring).

    `keys`: None for every documented key present on both sides (in the documented order), or a
    list of names / MatchKey objects in the order to try. Returns `(pairs, per_key_counts)`: pairs
    has `a_row`, `b_row` (0-based row numbers), `a_id`, `b_id` (the id pseudonym columns, when
    found) and `match_key`, sorted by key order then `a_row`.
    """
    a = a.collect() if isinstance(a, pl.LazyFrame) else a
    b = b.collect() if isinstance(b, pl.LazyFrame) else b
    names = [k if isinstance(k, str) else k.name for k in _resolve_keys(a, b, keys)]
    if not names:
        raise ConfigError("the two extracts share no match-key column",
                          hint="pseudonymise both with match keys (the default policies add them)")
    cols = [MATCH_KEY_PREFIX + n for n in names]
    left = a.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias(_ROW), *cols)
    right = b.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias(_ROW), *cols)

    taken: list[pl.DataFrame] = []
    counts: list[KeyLinkCount] = []
    for name, col in zip(names, cols, strict=True):
        ca = left.select(_ROW, col).drop_nulls(col)
        cb = right.select(_ROW, col).drop_nulls(col)
        ga = ca.group_by(col).agg(pl.len().alias("n_a"), pl.col(_ROW).first().alias("a_row"))
        gb = cb.group_by(col).agg(pl.len().alias("n_b"), pl.col(_ROW).first().alias("b_row"))
        both = ga.join(gb, on=col, how="inner")
        unique = (pl.col("n_a") == 1) & ((pl.col("n_b") == 1) | one_to_many)
        if one_to_many:
            pairs = (both.filter(unique).select(col, "a_row").join(cb, on=col, how="inner")
                     .select("a_row", pl.col(_ROW).alias("b_row")).sort("a_row", "b_row"))
        else:
            pairs = both.filter(unique).select("a_row", "b_row").sort("a_row")
        amb = both.filter(~unique)
        counts.append(KeyLinkCount(
            match_key=name, offered_a=ca.height, offered_b=cb.height, pairs=pairs.height,
            ambiguous_values=amb.height,
            ambiguous_a=int(amb["n_a"].sum() or 0), ambiguous_b=int(amb["n_b"].sum() or 0),
        ))
        taken.append(pairs.with_columns(pl.lit(name).alias("match_key")))
        # Hierarchical: matched records are not offered to later keys.
        if not one_to_many:
            left = left.join(pairs.select(pl.col("a_row").alias(_ROW)), on=_ROW, how="anti")
        right = right.join(pairs.select(pl.col("b_row").alias(_ROW)), on=_ROW, how="anti")

    pairs = pl.concat(taken) if taken else pl.DataFrame(schema={"a_row": pl.UInt32, "b_row": pl.UInt32,
                                                                "match_key": pl.String})
    ida, idb = _id_column(a, a_id), _id_column(b, b_id)
    pairs = pairs.with_columns(
        (a[ida].gather(pairs["a_row"]) if ida else pl.Series([None] * pairs.height, dtype=pl.String)).alias("a_id"),
        (b[idb].gather(pairs["b_row"]) if idb else pl.Series([None] * pairs.height, dtype=pl.String)).alias("b_id"),
    ).select("a_row", "b_row", "a_id", "b_id", "match_key")
    return pairs, counts
