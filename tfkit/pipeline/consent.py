"""Consent withdrawals: people who withdrew are removed before anything is pseudonymised.

A withdrawal list (`person_id, nino, nhs_number`, any may be blank) is matched against a source by
ANY of the identifiers both have, after the contract's normalisation (person ids trimmed, NI
numbers upper-cased without spaces, NHS numbers without spaces or hyphens). Matches are counted,
never listed: no withdrawal value reaches a log, a report or a manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from tfkit.errors import InputFileError
from tfkit.identifiers import normalise_nhs_number, normalise_nino

WITHDRAWAL_FIELDS = ("person_id", "nino", "nhs_number")
_ALIASES = {
    "person_id": ("person_id", "person id", "personid", "la person id"),
    "nino": ("nino", "ni number", "ni_number", "national insurance number"),
    "nhs_number": ("nhs_number", "nhs number", "nhsnumber", "nhs no"),
}
_NORMALISE = {
    "person_id": lambda e: e.cast(pl.String).str.strip_chars(),
    "nino": lambda e: normalise_nino(e.cast(pl.String)),
    "nhs_number": lambda e: normalise_nhs_number(e.cast(pl.String)),
}


@dataclass(frozen=True)
class Withdrawals:
    """Normalised identifier values of people who withdrew consent (held in memory only)."""

    values: dict[str, pl.Series] = field(default_factory=dict)
    entries: int = 0
    sha256: str | None = None
    # One row per list entry (normalised person_id / nino / nhs_number), to count entries that match
    # nothing (a typo in the list would otherwise leave a withdrawn person in the return, silently).
    entry_frame: pl.DataFrame | None = field(default=None, repr=False)
    _matched: dict[str, list[pl.Series]] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:  # never print the values
        return f"Withdrawals(entries={self.entries})"

    def mask(self, frame: pl.DataFrame | pl.LazyFrame) -> pl.Expr:
        """True for rows matching any withdrawal by an identifier both sides have."""
        columns = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
        expr = pl.lit(False)
        for name, series in self.values.items():
            if name in columns and series.len():
                expr = expr | _NORMALISE[name](pl.col(name)).is_in(series.implode()).fill_null(False)
        return expr

    def split(self, frame: pl.DataFrame, canonical_names: dict[str, str] | None = None,
              also: tuple[str, pl.Series] | None = None) -> tuple[pl.DataFrame, int]:
        """(frame without withdrawn rows, number removed). `canonical_names` maps a frame's own
        headers to canonical fields (quarantined rows keep the file's headers); `also` is (column,
        values): rows whose column holds one of the values are withdrawn too (linked records)."""
        if not self.entries:
            return frame, 0
        view = frame
        if canonical_names:
            view = frame.select([pl.col(h).alias(f) for h, f in canonical_names.items() if h in frame.columns])
        mask = self.mask(view)
        if also is not None and also[0] in view.columns and also[1].len():
            mask = mask | pl.col(also[0]).is_in(also[1].implode()).fill_null(False)
        flagged = view.select(mask.alias("w")).to_series()
        removed = int(flagged.sum())
        if removed:  # which list values matched: looked up among the (few) withdrawn rows only
            self._note_matches(view.filter(flagged))
        return (frame.filter(~flagged) if removed else frame), removed


    def _note_matches(self, view: pl.DataFrame) -> None:
        for name, series in self.values.items():
            if name in view.columns and series.len():
                found = view.select(_NORMALISE[name](pl.col(name)).alias(name)).to_series()
                self._matched.setdefault(name, []).append(found.filter(found.is_in(series.implode())).unique())

    def unmatched_entries(self) -> int:
        """How many list entries matched no row of any source split so far (counted, never listed)."""
        if self.entry_frame is None or not self.entries:
            return 0
        hit = pl.lit(False)
        for name in self.entry_frame.columns:
            seen = pl.concat(self._matched[name]) if self._matched.get(name) else pl.Series(name, [], pl.String)
            hit = hit | pl.col(name).is_in(seen.implode()).fill_null(False)
        return int(self.entry_frame.select((~hit).sum()).item())


def load_withdrawals(path: Path | None) -> Withdrawals:
    if path is None:
        return Withdrawals()
    from tfkit.package.bag import sha256_file
    from tfkit.pipeline.adapters import read_source

    if _header_only(path):  # nobody has withdrawn: a valid list, unlike an empty source extract
        return Withdrawals(sha256=sha256_file(path))
    raw = read_source(path, None).frame
    by_key = {c.strip().lower(): c for c in raw.columns if not c.startswith("_")}
    values, found, entry_columns = {}, [], []
    for name, aliases in _ALIASES.items():
        column = next((by_key[a] for a in aliases if a in by_key), None)
        if column is None:
            continue
        found.append(name)
        normalised = _NORMALISE[name](pl.col(column))
        entry_columns.append(pl.when(normalised == "").then(None).otherwise(normalised).alias(name))
        s = raw.select(normalised.alias(name)).to_series()
        values[name] = s.filter(s.is_not_null() & (s != "")).unique().sort()
    if not found:
        raise InputFileError(
            "the consent-withdrawal list has none of the columns person_id, nino, nhs_number",
            file=path, hint="give the list a header row naming at least one of: person_id, nino, nhs_number")
    return Withdrawals(values, raw.height, sha256_file(path), entry_frame=raw.select(entry_columns))


def _header_only(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() not in ("", ".csv", ".txt"):
        return False
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    lines = [line for line in head.decode("utf-8-sig", "replace").splitlines() if line.strip(" ,\t;")]
    return len(lines) == 1 and len(head) < 64 * 1024 and any(
        alias in lines[0].lower() for aliases in _ALIASES.values() for alias in aliases)
