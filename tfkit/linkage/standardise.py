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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from tfkit import identifiers
from tfkit.errors import ConfigError

from . import background

# Titles and honorifics written into name fields by some case-management systems.
TITLES = (
    "MR", "MRS", "MS", "MISS", "MX", "DR", "MSTR", "MASTER", "REV", "REVD", "SIR", "DAME", "PROF",
    "LADY", "LORD", "FR", "SR", "JR", "BABY", "INFANT",
)
_TITLE_RE = r"^(?:(?:" + "|".join(TITLES) + r")\s+)+"
_SUFFIX_RE = r"\s+(?:JR|SNR|SR|JNR|II|III)$"
UNKNOWN_SEX = ("U", "UNKNOWN", "NOT KNOWN", "NOT STATED", "X", "9", "0")
# Longer values are compared on their first MAX_CHARS characters (and counted): no real name or
# postcode is that long, and a 10 MB forename must not make every string kernel crawl.
MAX_CHARS = 200
# Invisible characters: format controls (zero-width space/joiners, BOM, bidi marks), other controls
# and the Hangul fillers. A value made only of these (and white space) is missing.
_INVISIBLE_RE = r"[\p{Cf}\p{Cc}\x{115F}\x{1160}\x{3164}\x{FFA0}\x{034F}]"
KINDS = ("name", "surname", "date", "postcode", "category", "string")
NULL = np.iinfo(np.int32).min  # sentinel for a missing value in code arrays


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


def visible(expr: pl.Expr) -> pl.Expr:
    """Text without invisible characters (zero-width joiners, BOMs, controls)."""
    return expr.cast(pl.String).str.replace_all(_INVISIBLE_RE, "")


def clean_category(expr: pl.Expr, unknown: tuple[str, ...] = UNKNOWN_SEX) -> pl.Expr:
    s = visible(expr).str.strip_chars().str.to_uppercase()
    return pl.when((s == "") | s.is_in(list(unknown))).then(None).otherwise(s)


def clean_string(expr: pl.Expr) -> pl.Expr:
    s = visible(expr).str.to_uppercase().str.replace_all(r"\s+", " ").str.strip_chars()
    return pl.when(s == "").then(None).otherwise(s)


def clean_postcode_text(expr: pl.Expr) -> pl.Expr:
    """A postcode that is not a UK postcode, as text: upper case, letters and digits only."""
    s = visible(expr).str.to_uppercase().str.replace_all(r"[^0-9A-Z]", "")
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


def phonetic(names: pl.Series) -> pl.Series:
    """Primary Double Metaphone code per distinct name (the `doublemetaphone` C++ wrapper, a core
    dependency). Called on distinct values only."""
    from doublemetaphone import doublemetaphone

    codes = [doublemetaphone(v)[0] or None if v else None for v in names.to_list()]
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
    truncated: dict[str, int] = field(default_factory=dict)  # column -> records over MAX_CHARS
    tf: dict[str, np.ndarray] = field(default_factory=dict)
    _char_planes: dict[str, tuple] = field(default_factory=dict, repr=False)
    _codes: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _strings: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _joint: dict[tuple[str, str], tuple[np.ndarray, int]] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return self.frame.height

    def source_name(self) -> pl.Expr:
        """`_source` (an index into `sources`) as the source's name: an expression on `frame`."""
        return pl.col("_source").replace_strict(list(range(len(self.sources))), list(self.sources),
                                                return_dtype=pl.String)

    def codes(self, column: str) -> np.ndarray:
        """The column's codes as int32, NULL where missing (cached: every stage gathers from these)."""
        if column not in self._codes:
            self._codes[column] = self.frame.get_column(column).fill_null(NULL).cast(pl.Int32).to_numpy()
        return self._codes[column]

    def strings(self, column: str) -> np.ndarray:
        """The column's vocabulary as a numpy array of Python strings (cached), for the string
        kernels' small calls: a gather from it and `tolist()` cost microseconds, where a polars
        Series' `gather` and `to_list` cost ~0.5 ms a call in polars' expression machinery, which
        was most of a small call's time (comparing the demo's 100k x 100k candidates makes ~200)."""
        if column not in self._strings:
            self._strings[column] = np.array(self.vocab[column].to_list(), dtype=object)
        return self._strings[column]

    def release_caches(self) -> None:
        """Let go of the int32 codes, character planes and vocabulary strings cached for blocking,
        comparing and scoring (one int32 array per prepared column: ~25 MiB at 100k x 100k);
        rebuilt if asked for again."""
        self._codes.clear()
        self._char_planes.clear()
        self._strings.clear()

    def char_planes(self, column: str) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """Per vocabulary entry: three 32-bit masks (bin seen at least 1, 2, 3 times; bin = byte mod
        32, so A-Z each have their own), the first two packed in one 64-bit word (plane1 | plane2 <<
        32), and the length in characters. The number of characters two strings share is
        popcount(word & word') (= popcount(plane1 & plane1') + popcount(plane2 & plane2')) while no
        bin is seen three times on both sides. Used for a cheap upper bound on Jaro-Winkler (see
        comparisons): packed, a pair takes two gathers and one popcount instead of four and two."""
        if column not in self._char_planes:
            vocab = self.vocab[column]
            nbytes = vocab.str.len_bytes().to_numpy().astype(np.int64)
            flat = np.frombuffer("".join(vocab.to_list()).encode("utf-8"), dtype=np.uint8)
            rows = np.repeat(np.arange(vocab.len()), nbytes)
            counts = np.zeros((vocab.len(), 32), dtype=np.uint16)
            np.add.at(counts, (rows, flat % 32), 1)
            bit = np.uint32(1) << np.arange(32, dtype=np.uint32)
            once, twice, thrice = (((counts >= k) * bit).sum(axis=1, dtype=np.uint64) for k in (1, 2, 3))
            planes = (once | (twice << np.uint64(32)), thrice.astype(np.uint32))
            self._char_planes[column] = (planes, vocab.str.len_chars().to_numpy().astype(np.int32))
        return self._char_planes[column]

    def joint_counts(self, a: str, b: str) -> tuple[np.ndarray, int]:
        """Per record: how many records hold the same (a, b) pair of values (0 where either is null),
        and how many records hold both (cached). What the full name's frequency is made of."""
        if (a, b) not in self._joint:
            ca, cb = self.codes(a).astype(np.int64), self.codes(b).astype(np.int64)
            both = (ca != NULL) & (cb != NULL)
            joint = ca * (int(cb.max(initial=0)) + 1) + cb
            _, inverse, counts = np.unique(joint[both], return_inverse=True, return_counts=True)
            per_record = np.zeros(self.n, dtype=np.int64)
            per_record[both] = counts[inverse]
            self._joint[(a, b)] = (per_record, int(both.sum()))
        return self._joint[(a, b)]

    def source_sizes(self) -> list[int]:
        counts = np.bincount(self.frame.get_column("_source").to_numpy(), minlength=len(self.sources))
        return [int(n) for n in counts[:len(self.sources)]]


def _encode(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Dense integer codes in sorted string order (deterministic), and the vocabulary."""
    vocab = values.drop_nulls().unique().sort()
    return _codes(values, vocab).rename(values.name), vocab.rename(values.name)


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
    # One chunk (the sources' parts joined): the record ids are gathered per pair when pairs are
    # written (`predict.with_record_ids`), and a gather from a String column in two chunks took 4-5
    # times as long (131,072 ids: 5.0 ms against 1.1; a million pairs' ids 0.08 s against 0.02).
    prepared = Prepared(frame=raw.select("_rid", "_source", "_record_id", *[c for c in keep if c not in fields])
                        .rechunk(), sources=list(sources))
    for column in fields:
        values = raw.get_column(column)
        if values.dtype == pl.String:
            long = int((values.str.len_chars() > MAX_CHARS).sum())
            if long:
                prepared.truncated[column] = long
    name_columns = {c: k for c, k in fields.items() if k in ("name", "surname")}
    other_columns = {c: k for c, k in fields.items() if c not in name_columns}
    # The names (one shared vocabulary) on a second thread while this one prepares the other fields:
    # the two share nothing, and their time is in polars' kernels, Double Metaphone and numpy, which
    # release the GIL (the demo at 100k x 100k: 0.16 s of names beside 0.13 s of the rest, one after
    # the other before). Each side fills its own vocabularies and frequencies, merged below in the
    # order the fields were prepared in before, so `prepared` comes out the same.
    names, fields_done = Prepared(prepared.frame, prepared.sources), Prepared(prepared.frame, prepared.sources)
    name_out = (background.start(_prepare_names, raw, name_columns, variants, names, name="tfkit-prepare")
                if name_columns else None)
    out: dict[str, pl.Series] = {}
    for column, kind in other_columns.items():
        out.update(_prepare_field(raw, column, kind, fields_done))
    out = {**(name_out() if name_out else {}), **out}
    for part in (names, fields_done):
        prepared.vocab.update(part.vocab)
        prepared.tf.update(part.tf)
    prepared.frame = prepared.frame.with_columns(list(out.values()))
    return prepared



def _distinct(raw: pl.DataFrame, column: str) -> tuple[pl.DataFrame, pl.Series]:
    """The column's distinct raw values (as text; sorted, null last) and each record's index into them.

    Cleaning runs once per distinct value (a few thousand names or postcodes, not every record),
    then codes are gathered back to the records. Indexes come from a hash look-up of each value's
    place among the sorted values (`replace_strict`, null to the last place: 2-3 times less CPU
    than a binary search of 200,000 strings; fewer polars kernels touched than a join).
    """
    values = raw_values(raw.get_column(column))
    present = values.drop_nulls().unique().sort()
    index = values.replace_strict(present, pl.Series(np.arange(present.len(), dtype=np.uint32)),
                                  default=present.len(), return_dtype=pl.UInt32)
    if values.null_count():
        present = present.append(pl.Series([None], dtype=present.dtype))
    return pl.DataFrame({"_raw": present}).with_row_index("_i"), index


def _codes(values: pl.Series, vocab: pl.Series) -> pl.Series:
    """Code of each value in a sorted vocabulary holding every non-null value (null stays null):
    its place, by a hash look-up (see `_distinct`)."""
    return values.replace_strict(vocab, pl.Series(np.arange(vocab.len(), dtype=np.int32)), default=None,
                                 return_dtype=pl.Int32)


def _coded_columns(prepared: Prepared, out: dict[str, pl.Series], cleaned: pl.DataFrame, index: pl.Series,
                   tf_columns: tuple[str, ...] = ()) -> None:
    """Encode each cleaned column of a distinct-value table and gather the codes to the records."""
    for name in cleaned.columns:
        vocab = cleaned[name].drop_nulls().unique().sort()
        codes = _codes(cleaned[name], vocab).gather(index).rename(name)
        out[name] = codes
        prepared.vocab[name] = vocab.rename(name)
        if name in tf_columns:
            prepared.tf[name] = _term_frequency(codes, vocab.len())


def _prepare_names(raw: pl.DataFrame, kinds: dict[str, str], variants: NameVariants,
                   prepared: Prepared) -> dict[str, pl.Series]:
    """All name fields share one vocabulary, so a forename can be compared with a surname (swaps)."""
    tables: dict[str, tuple[pl.DataFrame, pl.Series]] = {}
    for column, kind in kinds.items():
        distinct, index = _distinct(raw, column)
        tables[column] = (standardise_distinct(distinct, column, kind), index)
    vocab = (
        pl.concat([t[c].rename("v") for t, _ in tables.values() for c in t.columns])
        .drop_nulls().unique().sort()
    )
    derived = name_derived(vocab, variants)
    derived_codes = {suffix: _encode(derived[suffix]) for suffix in NAME_DERIVED}
    out: dict[str, pl.Series] = {}
    for column, (table, index) in tables.items():
        for name in table.columns:
            out[name] = _codes(table[name], vocab).gather(index).rename(name)
        prepared.vocab[column] = vocab.rename(column)
        prepared.tf[column] = _term_frequency(out[column], vocab.len())
        for suffix, (dcodes, dvocab) in derived_codes.items():
            name = f"{column}_{suffix}"
            out[name] = dcodes.gather(out[column]).rename(name)  # null code where a name has no phonetic code
            prepared.vocab[name] = dvocab.rename(name)
    forenames = [c for c, k in kinds.items() if k == "name"]
    surnames = [c for c, k in kinds.items() if k == "surname"]
    if forenames and surnames:
        # The two names as an unordered pair: equal when forename and surname were swapped.
        a, b = out[forenames[0]], out[surnames[0]]
        low = pl.select(pl.min_horizontal(a, b)).to_series().cast(pl.Int64)
        high = pl.select(pl.max_horizontal(a, b)).to_series().cast(pl.Int64)
        pair = (low * vocab.len() + high).rank("dense").cast(pl.Int32) - 1
        out["names_unordered"] = pair.rename("names_unordered")
    return out


def _prepare_field(raw: pl.DataFrame, column: str, kind: str, prepared: Prepared) -> dict[str, pl.Series]:
    out: dict[str, pl.Series] = {}
    distinct, index = _distinct(raw, column)
    cleaned = standardise_distinct(distinct, column, kind)
    if kind == "date":
        out.update({name: values.gather(index) for name, values in cleaned.to_dict().items()})
    else:
        _coded_columns(prepared, out, cleaned, index, tf_columns=TF_KINDS.get(kind, lambda c: ())(column))
    return out


# Per kind, the cleaned columns that get a term-frequency table.
TF_KINDS = {"postcode": lambda c: (c,), "string": lambda c: (c,)}
NAME_DERIVED = ("dm", "canon", "initial")


def name_derived(vocab: pl.Series, variants: NameVariants) -> dict[str, pl.Series]:
    """Per cleaned name (the names' shared vocabulary): its Double Metaphone code, name-variant
    group and initial, each Series named by its suffix."""
    return {"dm": phonetic(vocab).rename("dm"), "canon": variants.canonical_of(vocab).rename("canon"),
            "initial": vocab.str.slice(0, 1).rename("initial")}


def raw_values(values: pl.Series) -> pl.Series:
    """A column's values as standardisation reads them: dates as dates, anything else as text cut
    to MAX_CHARS."""
    return values if values.dtype == pl.Date else values.cast(pl.String).str.slice(0, MAX_CHARS)


def standardise_distinct(distinct: pl.DataFrame, column: str, kind: str) -> pl.DataFrame:
    """The standardisation rules of one field, on a table of its distinct raw values (`_raw`, as
    `raw_values` gives them): one row per value, the cleaned columns (text to encode; a date's
    parts as integers). The kernel both engines run: the polars engine on the whole column's
    distinct values, the Spark engine per batch on its executors."""
    src = pl.col("_raw")
    if kind in ("name", "surname"):
        cleaned = clean_name(src)
        parts = [(forename_part(cleaned) if kind == "name" else surname_whole(cleaned)).alias(column)]
        if kind == "surname":
            parts += [cleaned.str.split(" ").list.first().alias(f"{column}_first"),
                      cleaned.str.split(" ").list.last().alias(f"{column}_last")]
        return distinct.select(parts)
    if kind == "date":
        return pl.DataFrame(_date_columns(distinct, column))
    if kind == "postcode":
        # The UK form once, as a column: each use of the expression would run its regexes again.
        src, uk = pl.col("_src"), pl.col("_uk")
        distinct = distinct.select(visible(pl.col("_raw")).alias("_src")).with_columns(
            identifiers.clean_postcode(src).alias("_uk"))
        # Not a UK postcode (FEBRL's Australian ones, a foreign address): compared as text, not null.
        return distinct.select(
            pl.coalesce(uk, clean_postcode_text(src)).alias(column),
            identifiers.postcode_sector(uk).alias(f"{column}_sector"),
            identifiers.postcode_district(uk).alias(f"{column}_district"),
            identifiers.postcode_area(uk).alias(f"{column}_area"),
        ).with_columns(
            # A blocking key for "near the same address": the UK sector, else the whole text.
            pl.coalesce(f"{column}_sector", column).alias(f"{column}_block"),
            # A postcode that is not a UK one, its characters in order: the same when two were
            # swapped in keying (a UK postcode's near neighbours are found by its sector instead).
            pl.when(pl.col(f"{column}_sector").is_null())
            .then(pl.col(column).str.split("").list.sort().list.join("")).alias(f"{column}_sorted"),
        )
    if kind == "category":
        return distinct.select(clean_category(src).alias(column))
    if kind == "string":
        return distinct.select(clean_string(src).alias(column))
    raise ConfigError(f"unknown field kind {kind!r} for column {column!r}", hint=f"use one of: {', '.join(KINDS)}")


def _date_columns(distinct: pl.DataFrame, column: str) -> dict[str, pl.Series]:
    """Days since 1970 (null unless a real date), the year, month and day (each kept when it is
    plausible even if the date is not: 19450493 keeps 1945 and 04), the derived partial keys
    year+month, month+day, year+day (blocking that survives one wrong part), and the eight digits."""
    raw = distinct["_raw"]
    if raw.dtype == pl.Date:
        d = raw
        parts = pl.DataFrame({"y": d.dt.year(), "m": d.dt.month(), "d": d.dt.day()}).cast(pl.Int32)
    else:
        text = distinct.select(pl.col("_raw").cast(pl.String).str.strip_chars())  # once, for every reading
        d = text.select(_as_date(pl.col("_raw")).alias("d"))["d"]
        parts = _date_parts(text).with_columns(
            pl.coalesce(d.dt.year().cast(pl.Int32), "y").alias("y"),
            pl.coalesce(d.dt.month().cast(pl.Int32), "m").alias("m"),
            pl.coalesce(d.dt.day().cast(pl.Int32), "d").alias("d"),
            *[pl.coalesce(part.cast(pl.Int32), f"{c}_text").alias(f"{c}_text")
              for part, c in ((d.dt.year(), "y"), (d.dt.month(), "m"), (d.dt.day(), "d"))],
        )
    year, month, day = (parts[c] for c in ("y", "m", "d"))
    # Digits as written (a day of 93 is a typo of a real day, so its digits still count); a part
    # of 00 or missing means unknown.
    written = [parts[f"{c}_text"] if f"{c}_text" in parts.columns else parts[c] for c in ("y", "m", "d")]
    complete = np.logical_and.reduce([(w.fill_null(0) > 0).to_numpy() for w in written])
    # YYYYMMDD as eight 4-bit nibbles, so 'digits that differ' is an XOR and a bit count.
    packed = np.zeros(len(d), dtype=np.int64)
    for value, width in zip(written, (4, 2, 2)):
        v = value.fill_null(0).to_numpy().astype(np.int64)
        for k in range(width - 1, -1, -1):  # a loop over the eight digit places, not over values
            packed = packed * 16 + (v // 10 ** k) % 10
    digits = pl.Series(packed.astype(np.uint32).view(np.int32)).scatter(np.flatnonzero(~complete), None)
    columns = {
        column: d.cast(pl.Int32), f"{column}_year": year, f"{column}_month": month, f"{column}_day": day,
        f"{column}_ym": year * 100 + month, f"{column}_md": month * 100 + day, f"{column}_yd": year * 100 + day,
        f"{column}_digits": digits,
    }
    return {name: values.rename(name) for name, values in columns.items()}


def _date_parts(text: pl.DataFrame) -> pl.DataFrame:
    """Year, month and day read from `text["_raw"]` (stripped; yyyymmdd, yyyy-mm-dd, dd/mm/yyyy),
    each null when out of range on its own: a wrong day does not lose the year and month. Each
    pattern is matched once (an expression used twice in one select would run its regex twice)."""
    s = pl.col("_raw")
    groups = text.select(s.str.extract_groups(r"^([0-9]{4})-?([0-9]{2})-?([0-9]{2})$").alias("iso"),
                         s.str.extract_groups(r"^([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]{4})$").alias("uk"))
    iso, uk = pl.col("iso").struct, pl.col("uk").struct
    written = groups.select(
        pl.coalesce(iso.field("1"), uk.field("3")).cast(pl.Int32, strict=False).alias("y_text"),
        pl.coalesce(iso.field("2"), uk.field("2")).cast(pl.Int32, strict=False).alias("m_text"),
        pl.coalesce(iso.field("3"), uk.field("1")).cast(pl.Int32, strict=False).alias("d_text"),
    )
    y, m, d = pl.col("y_text"), pl.col("m_text"), pl.col("d_text")
    return written.select(pl.when(y.is_between(1850, 2100)).then(y).alias("y"),
                          pl.when(m.is_between(1, 12)).then(m).alias("m"),
                          pl.when(d.is_between(1, 31)).then(d).alias("d"),
                          y, m, d)


def _as_date(expr: pl.Expr) -> pl.Expr:
    """Text (stripped) read as ISO, dd/mm/yyyy, yyyymmdd or an Excel serial; else null."""
    s = expr
    # Five digits only: a four-digit serial is a date before 1928, while "1990" is a year on its own.
    serial = pl.when(s.str.contains(r"^[0-9]{5}$")).then(s.cast(pl.Int32, strict=False))
    return pl.coalesce(
        s.str.to_date("%Y-%m-%d", strict=False),
        s.str.to_date("%d/%m/%Y", strict=False),
        s.str.to_date("%Y%m%d", strict=False),
        (pl.lit(-25569, dtype=pl.Int32) + serial).cast(pl.Date),  # Excel day 25569 = 1970-01-01
    )
