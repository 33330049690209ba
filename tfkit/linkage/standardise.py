"""Stage 1, standardise: clean names, dates and postcodes, then encode every value as an integer code.

Later stages compare integer codes (equality is exact string equality) and look strings up in a
per-field vocabulary only where a string kernel is needed (Jaro-Winkler on distinct pairs). Work is
polars expressions over columns; the only Python-level loop is the phonetic code, run once per
*distinct* name (a few thousand), never per record or per pair.

Field kinds:
  name      forename-like: cleaned, first given name, Double Metaphone, name-variant group
  surname   as name, but all parts kept together (SMITH-JONES -> SMITHJONES) plus first/last parts
  date      date of birth: days since 1970, year, month, day
  postcode  normalised UK postcode plus sector, district, area
  category  upper-cased code (sex: U and blank carry no evidence)
  string    upper-cased, trimmed, inner white space collapsed
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from tfkit import identifiers
from tfkit.errors import ConfigError

# Titles and honorifics written into name fields by some case-management systems.
TITLES = (
    "MR", "MRS", "MS", "MISS", "MX", "DR", "MSTR", "MASTER", "REV", "REVD", "SIR", "DAME", "PROF",
    "LADY", "LORD", "FR", "SR", "JR", "BABY", "INFANT",
)
_TITLE_RE = r"^(?:(?:" + "|".join(TITLES) + r")\s+)+"
_SUFFIX_RE = r"\s+(?:JR|SNR|SR|JNR|II|III)$"
UNKNOWN_SEX = ("U", "UNKNOWN", "NOT KNOWN", "NOT STATED", "X", "9", "0")
KINDS = ("name", "surname", "date", "postcode", "category", "string")


def clean_name(expr: pl.Expr) -> pl.Expr:
    """Accents dropped, upper case, apostrophes removed, other punctuation to spaces, titles dropped."""
    s = (
        expr.str.normalize("NFKD")
        .str.replace_all(r"\p{M}", "")
        .str.to_uppercase()
        .str.replace_all(r"['`\u2019]", "")
        .str.replace_all(r"[^A-Z]+", " ")
        .str.strip_chars()
        .str.replace(_TITLE_RE, "")
        .str.replace(_SUFFIX_RE, "")
        .str.strip_chars()
    )
    return pl.when(s == "").then(None).otherwise(s)


def forename_part(cleaned: pl.Expr) -> pl.Expr:
    """The first given name: middle names are recorded too inconsistently to compare."""
    return cleaned.str.split(" ").list.first()


def surname_whole(cleaned: pl.Expr) -> pl.Expr:
    """Double-barrelled surnames compared as one string: 'SMITH-JONES', 'SMITH JONES' -> 'SMITHJONES'."""
    return cleaned.str.replace_all(" ", "")


def clean_category(expr: pl.Expr, unknown: tuple[str, ...] = UNKNOWN_SEX) -> pl.Expr:
    s = expr.cast(pl.String).str.strip_chars().str.to_uppercase()
    return pl.when((s == "") | s.is_in(list(unknown))).then(None).otherwise(s)


def clean_string(expr: pl.Expr) -> pl.Expr:
    s = expr.cast(pl.String).str.to_uppercase().str.replace_all(r"\s+", " ").str.strip_chars()
    return pl.when(s == "").then(None).otherwise(s)


# --------------------------------------------------------------------------- name variants


@dataclass(frozen=True)
class NameVariants:
    """name -> canonical group name. The shipped table is `data/name_variants.csv` (see its header)."""

    canonical: dict[str, str]
    source: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> "NameVariants":
        if path is None:
            text = resources.files("tfkit.linkage").joinpath("data/name_variants.csv").read_text("utf-8")
            source = "tfkit/linkage/data/name_variants.csv"
        else:
            try:
                text = Path(path).read_text("utf-8")
            except OSError as err:
                raise ConfigError(f"cannot read the name-variant table: {err.strerror}", file=path,
                                  hint="point `name_variants` in the model file at a readable CSV") from None
            source = str(path)
        return cls(_parse_variants(text), source)

    def canonical_of(self, names: pl.Series) -> pl.Series:
        return names.replace_strict(self.canonical, default=names, return_dtype=pl.String)


def _parse_variants(text: str) -> dict[str, str]:
    canonical: dict[str, str] = {}
    rows = csv.reader(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    for i, row in enumerate(rows):
        names = [n.strip().upper() for n in row if n.strip()]
        if i == 0 and names[:1] == ["CANONICAL"]:
            continue
        for n in names:
            canonical.setdefault(n, names[0])  # first group listed wins
    return canonical


@functools.cache
def _double_metaphone():
    try:
        from doublemetaphone import doublemetaphone
    except ImportError:  # pragma: no cover - declared dependency
        return None
    return doublemetaphone


def phonetic(names: pl.Series) -> pl.Series:
    """Primary Double Metaphone code per distinct name (the `doublemetaphone` C++ wrapper).

    Falls back to Soundex from jellyfish if the wrapper is missing. Called on distinct values only.
    """
    dm = _double_metaphone()
    values = names.to_list()
    if dm is not None:
        codes = [dm(v)[0] or None if v else None for v in values]
    else:  # pragma: no cover
        import jellyfish

        codes = [jellyfish.soundex(v) if v else None for v in values]
    return pl.Series(names.name, codes, dtype=pl.String)


# --------------------------------------------------------------------------- encoding


@dataclass
class Prepared:
    """Records ready to block and compare: one row per input record, every field an integer code.

    `frame` has `_rid` (0..n-1, the row position), `_source` (index into `sources`), `_record_id`
    (the caller's id as text) and the coded fields. `vocab[col]` maps codes back to strings for the
    string kernels; `tf[col]` is each code's share of non-null values (term frequency).
    """

    frame: pl.DataFrame
    sources: list[str]
    vocab: dict[str, pl.Series] = field(default_factory=dict)
    tf: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.frame.height

    def column(self, name: str) -> np.ndarray:
        return self.frame.get_column(name).to_numpy()

    def source_sizes(self) -> list[int]:
        counts = self.frame.group_by("_source").len()
        by = dict(zip(counts["_source"].to_list(), counts["len"].to_list()))
        return [by.get(i, 0) for i in range(len(self.sources))]


def _encode(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Dense integer codes in sorted string order (deterministic), and the vocabulary."""
    vocab = values.drop_nulls().unique().sort()
    codes = (values.rank("dense") - 1).cast(pl.Int32)
    return codes.rename(values.name), vocab.rename(values.name)


def _code_map(vocab_values: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Codes for a series aligned with another vocabulary (e.g. phonetic code of each name)."""
    codes, vocab = _encode(vocab_values)
    return codes.to_numpy(), vocab


def _term_frequency(codes: pl.Series, size: int) -> np.ndarray:
    valid = codes.drop_nulls().to_numpy()
    counts = np.bincount(valid, minlength=size).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def prepare(
    frames: list[pl.DataFrame],
    sources: list[str],
    fields: dict[str, str],
    *,
    id_column: str,
    variants: NameVariants | None = None,
    keep: tuple[str, ...] = (),
) -> Prepared:
    """Standardise and encode `fields` ({column: kind}) of every frame, stacked in source order."""
    variants = variants or NameVariants.load()
    parts = []
    for i, (df, source) in enumerate(zip(frames, sources)):
        cols = [pl.col(id_column).cast(pl.String).alias("_record_id")]
        cols += [pl.col(c) for c in fields]
        cols += [pl.col(c) for c in keep if c not in fields]
        parts.append(
            df.select(cols).with_columns(pl.lit(i, dtype=pl.UInt16).alias("_source"))
        )
    raw = pl.concat(parts, how="vertical_relaxed")
    raw = raw.with_row_index("_rid").with_columns(pl.col("_rid").cast(pl.Int64))
    prepared = Prepared(frame=raw.select("_rid", "_source", "_record_id", *[c for c in keep if c not in fields]),
                        sources=list(sources))
    out: dict[str, pl.Series] = {}
    name_columns = [c for c, k in fields.items() if k in ("name", "surname")]
    if name_columns:
        out.update(_prepare_names(raw, {c: fields[c] for c in name_columns}, variants, prepared))
    for column, kind in fields.items():
        if kind not in ("name", "surname"):
            out.update(_prepare_field(raw, column, kind, prepared))
    prepared.frame = prepared.frame.with_columns(list(out.values()))
    return prepared


def _add_coded(prepared: Prepared, out: dict[str, pl.Series], values: pl.Series, tf: bool = False) -> np.ndarray:
    codes, vocab = _encode(values)
    out[values.name] = codes
    prepared.vocab[values.name] = vocab
    if tf:
        prepared.tf[values.name] = _term_frequency(codes, vocab.len())
    return codes.to_numpy()


def _prepare_names(raw: pl.DataFrame, kinds: dict[str, str], variants: NameVariants,
                   prepared: Prepared) -> dict[str, pl.Series]:
    """All name fields share one vocabulary, so a forename can be compared with a surname (swaps)."""
    values: dict[str, pl.Series] = {}
    for column, kind in kinds.items():
        cleaned = clean_name(pl.col(column).cast(pl.String))
        value = forename_part(cleaned) if kind == "name" else surname_whole(cleaned)
        frame = raw.select(
            value.alias(column),
            cleaned.str.split(" ").list.first().alias(f"{column}_first"),
            cleaned.str.split(" ").list.last().alias(f"{column}_last"),
        )
        values[column] = frame[column]
        if kind == "surname":
            values[f"{column}_first"] = frame[f"{column}_first"]
            values[f"{column}_last"] = frame[f"{column}_last"]
    vocab = pl.concat([v.rename("v") for v in values.values()]).drop_nulls().unique().sort()
    index = pl.DataFrame({"v": vocab, "code": pl.int_range(vocab.len(), eager=True, dtype=pl.Int32)})
    out: dict[str, pl.Series] = {}
    for name, series in values.items():
        codes = pl.DataFrame({"v": series.rename("v")}).join(index, on="v", how="left", maintain_order="left")
        out[name] = codes["code"].rename(name)
    derived = {"dm": phonetic(vocab), "canon": variants.canonical_of(vocab)}
    derived_codes = {suffix: _code_map(d.rename(suffix)) for suffix, d in derived.items()}
    for column in kinds:
        prepared.vocab[column] = vocab.rename(column)
        prepared.tf[column] = _term_frequency(out[column], vocab.len())
        for suffix, (dcodes, dvocab) in derived_codes.items():
            name = f"{column}_{suffix}"
            out[name] = pl.Series(name, dcodes, dtype=pl.Int32).gather(out[column])
            prepared.vocab[name] = dvocab.rename(name)
    return out


def _prepare_field(raw: pl.DataFrame, column: str, kind: str, prepared: Prepared) -> dict[str, pl.Series]:
    out: dict[str, pl.Series] = {}
    src = pl.col(column)
    if kind == "date":
        d = raw.select(_as_date(src).alias(column))[column]
        out[column] = d.cast(pl.Int32).rename(column)
        out[f"{column}_year"] = d.dt.year().cast(pl.Int32).rename(f"{column}_year")
        out[f"{column}_month"] = d.dt.month().cast(pl.Int32).rename(f"{column}_month")
        out[f"{column}_day"] = d.dt.day().cast(pl.Int32).rename(f"{column}_day")
    elif kind == "postcode":
        pc = raw.select(identifiers.clean_postcode(src.cast(pl.String)).alias(column))[column]
        parts = pl.DataFrame({column: pc}).select(
            pl.col(column),
            identifiers.postcode_sector(pl.col(column)).alias(f"{column}_sector"),
            identifiers.postcode_district(pl.col(column)).alias(f"{column}_district"),
            identifiers.postcode_area(pl.col(column)).alias(f"{column}_area"),
        )
        for name in parts.columns:
            _add_coded(prepared, out, parts[name], tf=(name == column))
    elif kind == "category":
        _add_coded(prepared, out, raw.select(clean_category(src).alias(column))[column])
    elif kind == "string":
        _add_coded(prepared, out, raw.select(clean_string(src).alias(column))[column], tf=True)
    else:
        raise ConfigError(f"unknown field kind {kind!r} for column {column!r}",
                          hint=f"use one of: {', '.join(KINDS)}")
    return out


def _as_date(expr: pl.Expr) -> pl.Expr:
    """Dates pass through; text is read as ISO, dd/mm/yyyy, yyyymmdd or an Excel serial; else null."""
    s = expr.cast(pl.String).str.strip_chars()
    serial = pl.when(s.str.contains(r"^[0-9]{4,5}$")).then(s.cast(pl.Int32, strict=False))
    return pl.coalesce(
        s.str.to_date("%Y-%m-%d", strict=False),
        s.str.to_date("%d/%m/%Y", strict=False),
        s.str.to_date("%Y%m%d", strict=False),
        (pl.lit(-25569, dtype=pl.Int32) + serial).cast(pl.Date),  # Excel day 25569 = 1970-01-01
    )
