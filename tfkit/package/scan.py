"""Scan data files for anything shaped like a raw identifier.

Vectorised over every string column of every Parquet file (one lazy polars query per file): NI
numbers, NHS numbers with a valid check digit, UPNs with a valid check letter, full postcodes, and
column names that look like names, addresses or full dates of birth. Counts and masked examples only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from tfkit import identifiers as ids
from tfkit.masking import mask

PSEUDONYM_RE = r"^[0-9a-f]{64}$"
# Column names that hold personal names, addresses or full dates of birth in the clear.
SUSPECT_COLUMN_RE = re.compile(
    r"(^|_)(fore|sur|first|last|given|family|middle|full|maiden|pref(erred)?|previous)?_?names?($|_)"
    r"|address|street|^addr|(^|_)(dob|date_of_birth|birth_date)$",
    re.IGNORECASE,
)
EXAMPLES = 3


@dataclass
class Finding:
    file: str
    column: str
    kind: str  # nino | nhs_number | upn | postcode | name_column
    count: int
    examples: list[str] = field(default_factory=list)  # masked

    @property
    def message(self) -> str:
        if self.kind == "unreadable":
            return f"{self.file}: cannot be read as Parquet, so cannot be shown free of raw identifiers"
        if self.kind == "name_column":
            return f"{self.file}: column {self.column!r} looks like a name, address or date-of-birth column"
        label = {"nino": "NI numbers", "nhs_number": "NHS numbers", "upn": "UPNs", "postcode": "full postcodes"}[self.kind]
        shown = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return f"{self.file}: column {self.column!r} holds {self.count} value(s) shaped like raw {label}{shown}"

    def to_dict(self) -> dict:
        return {"file": self.file, "column": self.column, "kind": self.kind, "count": self.count,
                "examples": self.examples, "message": self.message}


def _matchers(col: pl.Expr) -> dict[str, pl.Expr]:
    text = col.str.strip_chars()
    return {
        "nino": ids.nino_is_valid(ids.normalise_nino(text)),
        "nhs_number": ids.nhs_number_is_valid(ids.normalise_nhs_number(text)),
        "upn": ids.upn_is_valid(ids.normalise_upn(text)),
        "postcode": ids.normalise_postcode(text).str.contains(ids.POSTCODE_PATTERN),
    }


def _int_nhs(col: pl.Expr) -> pl.Expr:
    # Only 10-digit values: small counts would pass the check digit by chance one time in eleven.
    return col.is_between(1_000_000_000, 9_999_999_999) & ids.nhs_number_is_valid(col.cast(pl.String))


def scan_file(path: Path, rel: str) -> list[Finding]:
    lf = pl.scan_parquet(path)
    schema = lf.collect_schema()
    findings: list[Finding] = []
    string_cols = [name for name, dtype in schema.items() if dtype == pl.String]
    for name, dtype in schema.items():
        if SUSPECT_COLUMN_RE.search(name):
            # Match-key and pseudonym columns are named after their parts ("mk_forename_surname_..."):
            # they are fine when every value is a 64-hex pseudonym.
            if dtype == pl.String:
                all_hashed = lf.select(pl.col(name).drop_nulls().str.contains(PSEUDONYM_RE).all()).collect().item()
                if all_hashed:
                    continue
            findings.append(Finding(rel, name, "name_column", 1))
    # NHS numbers survive being stored as integers: check 10-digit integer columns too.
    int_cols = [name for name, dtype in schema.items() if dtype.is_integer() and dtype not in (pl.Int8, pl.Int16, pl.UInt8, pl.UInt16)]
    exprs = []
    for name in string_cols:
        for kind, expr in _matchers(pl.col(name)).items():
            exprs.append(expr.fill_null(False).sum().alias(f"{kind}\x1f{name}"))
    for name in int_cols:
        exprs.append(_int_nhs(pl.col(name)).fill_null(False).sum().alias(f"nhs_number\x1f{name}"))
    if not exprs:
        return findings
    counts = lf.select(exprs).collect(engine="streaming").row(0, named=True)
    for key, count in counts.items():
        if count:
            kind, name = key.split("\x1f")
            matcher = _int_nhs(pl.col(name)) if name in int_cols else _matchers(pl.col(name))[kind]
            hits = (lf.filter(matcher.fill_null(False)).select(pl.col(name))
                    .head(EXAMPLES).collect().to_series().to_list())
            findings.append(Finding(rel, name, kind, int(count), [mask(v) for v in hits]))
    return findings


def scan_bag(bag_dir: Path) -> list[Finding]:
    findings: list[Finding] = []
    for path in sorted((bag_dir / "data").rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(bag_dir).as_posix()
        try:
            findings.extend(scan_file(path, rel))
        except Exception as err:  # corrupt or non-Parquet data cannot be shown free of identifiers
            findings.append(Finding(rel, "*", "unreadable", 1, [type(err).__name__]))
    return findings
