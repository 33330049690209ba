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


def _shapes(col: pl.Expr) -> dict[str, pl.Expr]:
    """Cheap regular-expression shapes: a value can only be an identifier if it has the shape."""
    text = col.str.strip_chars()
    return {
        "nino": ids.nino_is_valid(ids.normalise_nino(text)),
        "nhs_number": ids.normalise_nhs_number(text).str.contains(r"^[0-9]{10}$"),
        "upn": ids.normalise_upn(text).str.contains(r"^[A-Z][0-9]{11}[0-9A-Z]$"),
        "postcode": ids.normalise_postcode(text).str.contains(ids.POSTCODE_PATTERN),
    }


def _matchers(col: pl.Expr) -> dict[str, pl.Expr]:
    """The full rules (check digits, check letters), run only on values of the right shape."""
    text = col.str.strip_chars()
    return {
        "nino": _shapes(col)["nino"],
        "nhs_number": ids.nhs_number_is_valid(ids.normalise_nhs_number(text)),
        "upn": ids.upn_is_valid(ids.normalise_upn(text)),
        "postcode": _shapes(col)["postcode"],
    }


def _int_nhs(col: pl.Expr) -> pl.Expr:
    # Only 10-digit values: small counts would pass the check digit by chance one time in eleven.
    return col.is_between(1_000_000_000, 9_999_999_999) & ids.nhs_number_is_valid(col.cast(pl.String))


def _is_pseudonym(col: pl.Expr) -> pl.Expr:
    # Length first: most values are decided without running the regex.
    return (col.str.len_bytes() == 64) & col.str.contains(PSEUDONYM_RE)


def scan_file(path: Path, rel: str) -> list[Finding]:
    lf = pl.scan_parquet(path)
    schema = lf.collect_schema()
    string_cols = [name for name, dtype in schema.items() if dtype == pl.String]
    # Pass 1: which text columns hold nothing but 64-hex pseudonyms (match keys, *_pseudonym)?
    # Those cannot hold an identifier, so pass 2 runs the identifier rules only on the others.
    hashed: set[str] = set()
    if string_cols:
        row = lf.select([
            (pl.col(c).is_null() | _is_pseudonym(pl.col(c))).all().alias(c) for c in string_cols
        ]).collect(engine="streaming").row(0, named=True)
        hashed = {c for c, all_hashed in row.items() if all_hashed}
    findings: list[Finding] = []
    for name in schema:
        # Match-key and pseudonym columns are named after their parts ("mk_forename_surname_..."):
        # a name-like column is fine when every value is a pseudonym.
        if SUSPECT_COLUMN_RE.search(name) and name not in hashed:
            findings.append(Finding(rel, name, "name_column", 1))
    plain = [c for c in string_cols if c not in hashed]
    int_cols = [name for name, dtype in schema.items()
                if dtype.is_integer() and dtype not in (pl.Int8, pl.Int16, pl.UInt8, pl.UInt16)]
    # Pass 2: identifier shapes, evaluated once per distinct value (most kept columns have few).
    for name in plain:
        distinct = lf.group_by(name).agg(pl.len().alias("__n")).collect(engine="streaming")
        counts = distinct.select([
            pl.col("__n").filter(expr.fill_null(False)).sum().alias(kind) for kind, expr in _shapes(pl.col(name)).items()
        ]).row(0, named=True)
        for kind, candidates in counts.items():
            if candidates:
                # Pass 3, rare: the full rule (check digit, check letter) on the shaped values only.
                hits = (distinct.filter(_shapes(pl.col(name))[kind].fill_null(False))
                        .filter(_matchers(pl.col(name))[kind].fill_null(False)))
                if hits.height:
                    findings.append(Finding(rel, name, kind, int(hits["__n"].sum()),
                                            [mask(v) for v in hits.sort(name).get_column(name).head(EXAMPLES).to_list()]))
    # NHS numbers survive being stored as integers: check 10-digit integer columns too.
    for name in int_cols:
        hits = (lf.select(pl.col(name)).filter(pl.col(name).is_between(1_000_000_000, 9_999_999_999))
                .filter(_int_nhs(pl.col(name)).fill_null(False)).collect(engine="streaming").to_series())
        if hits.len():
            findings.append(Finding(rel, name, "nhs_number", hits.len(), [mask(v) for v in hits.head(EXAMPLES).to_list()]))
    return findings


def scan_bag(bag_dir: Path) -> list[Finding]:
    findings: list[Finding] = []
    from tfkit.package.bag import payload_paths

    for rel in payload_paths(bag_dir):  # regular files only: links are never followed
        path = bag_dir / rel
        try:
            findings.extend(scan_file(path, rel))
        except Exception as err:  # corrupt or non-Parquet data cannot be shown free of identifiers
            findings.append(Finding(rel, "*", "unreadable", 1, [type(err).__name__]))
    return findings
