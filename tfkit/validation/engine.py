"""Validate a RawTable against a Schema: typed valid rows, quarantined rows with reasons, a report.

    result = validate(read_table("cohort.csv"), load_schema("nis"))
    result.valid        # typed canonical polars DataFrame + _source_line
    result.quarantine   # failing rows: raw text in the source's own columns + _source_line + _reasons
    result.report       # ValidationReport: typed Problem records, .to_dict(), .render(console)

Row-local rules are polars expressions run in one streaming query over the file. Rules over groups
of rows (uniqueness, families) then run on the typed values: a 64-bit hash of the key finds the
candidate rows and the exact rule runs on those alone.
A check either quarantines its rows (severity "error") or keeps them (severity "warning": the value
is blanked when the field says on_invalid = "null", or the rule is advisory). Rule codes are stable:
they appear in `_reasons`, in the JSON report and in docs/validation-report.md.
"""

from __future__ import annotations

import datetime as dt
import os
import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl

from tfkit import identifiers
from tfkit.errors import InputFileError
from tfkit.io import SOURCE_LINE, RawTable
from tfkit.masking import header_looks_like_data, identifier_shaped, mask, safe_headers
from tfkit.parquet import write_parquet
from tfkit.schemas import parsing
from tfkit.schemas.model import Field, Schema, TableRule, header_key
from tfkit.validation.quarantine import private_folder, write_quarantine_csv
from tfkit.validation.report import Problem, ValidationReport

REASONS = "_reasons"
MAX_LINES = 10
MAX_EXAMPLES = 3
_REASON_SEPARATOR = "; "

# code -> (title, what it means and what to do). {field}/{column}/... are filled per check.
RULES: dict[str, tuple[str, str]] = {
    "missing_column": ("required column missing", "no column matches required field {field} (aliases: {aliases}); add the column or rename it to one of the aliases"),
    "missing_value": ("required value missing", "{field} is blank; fill it in the source system and export again"),
    "invalid_integer": ("not a whole number", "{field} must be a whole number"),
    "integer_out_of_range": ("number out of range", "{field} must be {range}"),
    "invalid_boolean": ("not a yes/no value", "{field} must be one of {true} (yes) or {false} (no)"),
    "invalid_code": ("not in the code list", "{field} must be one of {codes}"),
    "invalid_date": ("not a date", "{field} must be a real date as yyyy-mm-dd, dd/mm/yyyy or an Excel serial number"),
    "month_first_date": ("month-first date", "{field} reads only as mm/dd/yyyy; tfkit never guesses the order: export dates as dd/mm/yyyy or yyyy-mm-dd"),
    "ambiguous_date": ("date readable both ways", "{field} reads both as dd/mm/yyyy and as mm/dd/yyyy, and this column's dates are mostly month-first ({month_first} of its distinct dates read only as mm/dd/yyyy, {day_first} only as dd/mm/yyyy): read day-first it would be wrong; export dates as dd/mm/yyyy or yyyy-mm-dd"),
    "date_in_future": ("date in the future", "{field} is after today ({today}); check the value"),
    "date_too_early": ("date too early", "{field} is before {earliest}; check the value"),
    "date_too_late": ("date too late", "{field} is after {latest}; check the value"),
    "pattern_mismatch": ("wrong format", "{field} must match {pattern}"),
    "too_long": ("value too long", "{field} must be at most {max_length} characters"),
    "invalid_nino": ("invalid NI number", "{field} must be two letters, six digits and A-D (e.g. QQ123456C), with an issued prefix"),
    "invalid_upn": ("invalid UPN format", "{field} must be a check letter and 12 further characters (13 in all)"),
    "upn_la_number": ("UPN LA number unknown", "characters 2-4 of {field} must be a DfE local-authority number"),
    "upn_check_letter": ("UPN check letter wrong", "the first letter of {field} does not match its check letter: a mistyped character"),
    "invalid_nhs_number": ("invalid NHS number format", "{field} must be 10 digits (spaces and hyphens are ignored)"),
    "nhs_number_check_digit": ("NHS number check digit wrong", "the last digit of {field} does not match its check digit: a mistyped digit"),
    "invalid_postcode": ("invalid postcode", "{field} is not a UK postcode (GIR 0AA, BFPO n and ZZ99 pseudo-postcodes are accepted)"),
    "duplicate_value": ("duplicate value", "{field} must be unique, but the value appears on more than one row"),
    "duplicate_key": ("duplicate key", "the combination {field} must be unique, but appears on more than one row"),
    "possible_duplicate": ("possible duplicate", "the same {field} appears on more than one row: possibly one person recorded twice; check and merge if so"),
    "no_family": ("person without a family", "every person must have a {family}"),
    "person_in_several_families": ("person in several families", "the same {person} appears with more than one {family}"),
    "end_before_start": ("end before start", "{end} is before {start}"),
    "too_few_headline_problems": ("too few headline problems", "the family meets fewer than {minimum} headline problems ({problems})"),
}
# Month-first dates needed (and more of them than day-first ones) before a column's dates that read
# both ways are refused: one or two mm/dd typos in a small day-first file are not a month-first file.
MONTH_FIRST_EVIDENCE = 3
_BLANKED = " (value blanked, row kept: the field has on_invalid = \"null\")"


@dataclass(frozen=True)
class _Check:
    code: str
    field: str | None
    column: str | None
    severity: str
    fails: pl.Expr | None  # Boolean, never null: True where the row breaks the rule (row-local rules)
    example: pl.Expr | None  # the raw text shown (masked) as an example
    masked: bool
    message: str
    blanks: str | None = None  # field whose value is set to null where the check fails
    group: _GroupRule | None = None  # a rule over groups of rows (uniqueness, families) instead of `fails`
    after_pass: bool = False  # `fails` reads an identifier's failure code, final only after the pass


@dataclass(frozen=True)
class _GroupRule:
    """A rule over groups of rows, run once the pass is done.

    With a `key`, the pass computes a 64-bit hash of the key's typed values for every row; the rows
    whose hash repeats are the candidates (equal keys share a hash and a collision only adds
    candidates, so every row of every repeated key is among them), and `exact` is evaluated on the
    candidates' typed values alone, computed again from their raw text. Without a key, `exact` is
    a function of every row's typed values of `reads` and of the `columns` computed in the pass,
    kept from it.
    """

    reads: tuple[str, ...]  # the fields `exact` reads
    exact: pl.Expr | Callable[[pl.DataFrame], pl.Series]  # True where a row breaks the rule
    key: tuple[pl.Expr, ...] = ()
    columns: tuple[pl.Expr, ...] = ()  # (without a key) named expressions the pass computes for `exact`

    @property
    def hash(self) -> pl.Expr:
        """One 64-bit hash per row of the key (a different seed per position, so swapped values
        hash differently). Rows with equal keys always share it."""
        # (Folded with the expression's own `^`: pl.reduce would call back into Python per morsel.)
        return functools.reduce(operator.xor, (k.hash(seed=i) for i, k in enumerate(self.key)))

    def flags(self, hashes: pl.Series | None, typed_rows: Callable[[pl.Series | None], pl.DataFrame]) -> pl.Series:
        """One Boolean per row. `typed_rows(rows)` gives the typed values of `reads` for the rows
        where the Boolean Series `rows` is True, or for every row when it is None."""
        if not self.key:
            return self.exact(typed_rows(None))  # (the frame holds `columns` too)
        candidates = _repeats(hashes)
        rows = candidates.arg_true()
        if rows.len() == 0:
            return candidates
        exact = typed_rows(candidates).select(self.exact.fill_null(False)).to_series()
        return candidates.scatter(rows.filter(~exact), False)

    def run(self, frame: pl.DataFrame) -> pl.Series:
        """The rule on one frame holding every row's typed values."""
        hashes = frame.select(self.hash).to_series() if self.key else None
        frame = frame.with_columns(self.columns)
        return self.flags(hashes, lambda rows: frame if rows is None else frame.filter(rows))


@dataclass(frozen=True)
class ColumnMatch:
    """How a file's headers map onto a schema's fields."""

    fields: dict[str, str]  # canonical field -> source header
    unmatched: tuple[str, ...]  # headers no field claims
    absent: tuple[str, ...]  # fields with no header (required ones included)


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of validate(): `valid` + `quarantine` rows reconcile with the input.

    Attributes:
        valid: typed canonical frame, columns in schema order (Date, Boolean, Int64, String;
            identifiers normalised as tfkit.identifiers does), then `_source_line` (Int64).
        quarantine: failing rows with the file's own column names and raw text values, then
            `_source_line` and `_reasons` ("code:field; code:field").
        report: the ValidationReport.
        schema: the Schema used.
    """

    quarantine: pl.DataFrame
    report: ValidationReport
    schema: Schema
    _typed: pl.DataFrame | None = field(repr=False)  # every row, typed, in schema order, then _source_line
    _failing: pl.Series = field(repr=False)  # Boolean: the row was quarantined

    @cached_property
    def valid(self) -> pl.DataFrame:
        # Filtered on first use.
        if self._typed is None:
            raise AttributeError("validate(..., keep_valid=False) keeps no valid rows: call it with keep_valid=True")
        # Column by column, each unfiltered column let go once filtered: the two copies of the
        # whole frame never coexist.
        typed, keep = self._typed, ~self._failing
        object.__setattr__(self, "_typed", None)
        return pl.DataFrame([typed.drop_in_place(name).filter(keep) for name in list(typed.columns)])

    def write(self, directory: str | Path, stem: str | None = None) -> tuple[Path, Path]:
        """Write `<stem>.valid.parquet` (deterministic; min/max statistics only for non-personal
        columns) and `<stem>.quarantine.csv` (UTF-8 with BOM for Excel; always written, header
        only when nothing failed). Returns the two paths. `stem` defaults to the input file's stem.
        """
        directory = private_folder(directory)  # raw rows and identifiers: 0700, files 0600
        stem = stem or Path(self.report.file).stem
        personal = set(self.schema.personal_fields)
        stats = [c for c in self.valid.columns if c not in personal]
        valid_path = write_parquet(
            self.valid, directory / f"{stem}.valid.parquet", statistics=stats,
            metadata={"tfkit.schema": self.schema.name, "tfkit.schema_version": str(self.schema.version)},
        )
        os.chmod(valid_path, 0o600)  # (written 0600 already: mkstemp)
        quarantine_path = write_quarantine_csv(self.quarantine, directory / f"{stem}.quarantine.csv")
        return valid_path, quarantine_path


def match_columns(raw: RawTable, schema: Schema) -> ColumnMatch:
    """Match source headers to fields by name or alias, ignoring case, spaces and punctuation.

    Raises InputFileError when two headers claim one field (e.g. both "Forename" and "First Name").
    """
    by_key = {key: f.name for f in schema.fields for key in f.header_keys}
    fields: dict[str, str] = {}
    unmatched = []
    for header in raw.columns:
        name = by_key.get(header_key(header))
        if name is None:
            unmatched.append(header)
        elif name in fields:
            raise InputFileError(
                f"columns {fields[name]!r} and {header!r} both match schema field {name!r}",
                hint="delete or rename one of them so each field has one column", file=raw.path, row=1,
            )
        else:
            fields[name] = header
    absent = tuple(f.name for f in schema.fields if f.name not in fields)
    return ColumnMatch(fields=fields, unmatched=tuple(unmatched), absent=absent)


def code_columns(schema: Schema) -> Callable[[tuple[str, ...]], set[str]]:
    """For tfkit.io.read_table(codes=...): given a header, the columns that match the schema's flag
    and code-list fields (read as Categorical: a handful of values each)."""
    keys = {key for f in schema.fields if f.type in ("boolean", "code") for key in f.header_keys}
    return lambda header: {h for h in header if header_key(h) in keys}


def validate(
    raw: RawTable, schema: Schema, *, show_values: bool = False, today: dt.date | None = None,
    keep_valid: bool = True,
) -> ValidationResult:
    """Check `raw` against `schema`; split it into typed valid rows and quarantined rows.

    Args:
        raw: a table from tfkit.io.read_table.
        schema: from tfkit.schemas.load_schema.
        show_values: put raw example values in the report; by default they are masked.
        today: the date "not in the future" is judged against (default: today's date).
        keep_valid: keep the typed valid rows (`result.valid`). A check that needs only the report
            and the quarantined rows passes False: the typed values are then computed for the
            rules but never kept, which saves memory and time.

    Raises:
        InputFileError: two headers match one field.
    """
    today = today or dt.date.today()
    columns = match_columns(raw, schema)
    _refuse_float_text(raw, schema, columns)
    distinct = _Distinct(raw.frame, columns, schema)
    checks = _field_checks(schema, columns, today, distinct, raw) + _rule_checks(schema, columns)
    # NI numbers, UPNs and NHS numbers are checked on their raw text in the pass; rows whose raw
    # text breaks the format are normalised and checked again afterwards (_recheck_identifiers).
    rechecked = [f for f in schema.fields if f.name in columns.fields and f.identifier and f.name not in distinct]

    text = {f.name: _text_column(f, distinct, columns).alias(_t(f.name)) for f in schema.fields}
    value = {f.name: _typed(f, distinct).alias(_v(f.name)) for f in schema.fields}
    # (Every field's typed value is defined; the query computes only those something reads.)
    lf = raw.frame.lazy().with_columns(text.values()).with_columns(value.values())
    lf = lf.with_columns(
        _failure_code(f, distinct, columns).alias(_f(f.name))
        for f in schema.fields if f.identifier and f.name in columns.fields
    )
    in_pass = [i for i, c in enumerate(checks) if c.fails is not None and not c.after_pass]
    groups = [(i, c.group) for i, c in enumerate(checks) if c.group is not None]
    lf = lf.with_columns(checks[i].fails.alias(_c(i)) for i in in_pass)
    # Row-local rules run in one streaming pass (morsels: both cores busy, small intermediates).
    # The collected frame holds typed values, rule flags and key hashes only; raw text stays in
    # `raw`, whose rows line up one to one, and is gathered for the failing rows alone.
    read_by_groups = {n for _, g in groups if not g.key for n in g.reads}
    group_columns = [e for _, g in groups for e in g.columns]
    kept = [f.name for f in schema.fields if (keep_valid and f not in rechecked) or f.name in read_by_groups]
    typed = lf.select(
        [*(pl.col(_v(n)) for n in kept), pl.col(SOURCE_LINE), *(pl.col(_f(f.name)) for f in rechecked),
         *(pl.col(_c(i)) for i in in_pass), *(g.hash.alias(_h(i)) for i, g in groups if g.key), *group_columns]
    ).collect(engine="streaming")
    typed = _recheck_identifiers(typed, raw, columns, rechecked, values={f.name for f in rechecked if keep_valid})
    typed = typed.with_columns(c.fails.alias(_c(i)) for i, c in enumerate(checks) if c.after_pass)

    def typed_rows(rows: pl.Series | None, g: _GroupRule) -> pl.DataFrame:
        if rows is None:  # every row: kept from the pass
            return typed.select(*(_v(n) for n in g.reads), *(e.meta.output_name() for e in g.columns))
        return raw.frame.filter(rows).lazy().with_columns(text[n] for n in g.reads).select(value[n] for n in g.reads).collect()

    typed = typed.with_columns(
        g.flags(typed[_h(i)] if g.key else None, lambda rows, g=g: typed_rows(rows, g)).alias(_c(i))
        for i, g in groups
    )
    quarantining = [i for i, c in enumerate(checks) if c.severity == "error"]
    failed = pl.any_horizontal(pl.col(_c(i)) for i in quarantining) if quarantining else pl.lit(False)
    df = typed.select(
        [_output_value(f, checks).alias(f.name) for f in schema.fields if keep_valid]
        + [pl.col(SOURCE_LINE), *(pl.col(_c(i)) for i in range(len(checks))), failed.alias("__failed")]
    )
    if not df[SOURCE_LINE].equals(raw.frame[SOURCE_LINE]):  # rows must line up with `raw`
        raise AssertionError("validation changed the row order")
    failing = df["__failed"]

    problems = _summarise(raw.frame, df, checks, schema, show_values)
    typed = df.select([*schema.field_names, SOURCE_LINE]) if keep_valid else None  # not the rule flags
    # Reasons are spelled out for the failing rows only.
    reasons = pl.concat_str(
        [pl.when(pl.col(_c(i))).then(pl.lit(f"{checks[i].code}:{checks[i].field}")) for i in quarantining],
        separator=_REASON_SEPARATOR, ignore_nulls=True,
    ) if quarantining else pl.lit("")
    quarantine = raw.frame.filter(failing).select([*raw.columns, SOURCE_LINE]).with_columns(
        pl.col(pl.Categorical).cast(pl.String), df.filter(failing).select(reasons.alias(REASONS)).to_series()
    )
    if typed is not None:
        _check_dtypes(typed, schema)
    report = ValidationReport(
        file=str(raw.path), schema=schema.name, schema_version=schema.version, format=raw.format,
        encoding=raw.encoding, sheet=raw.sheet, rows_in=raw.n_rows, rows_valid=raw.n_rows - quarantine.height,
        rows_quarantined=quarantine.height, blank_lines=raw.blank_lines, columns=dict(columns.fields),
        unmatched_columns=safe_headers(columns.unmatched, all_headers=raw.columns),
        header_is_data=header_looks_like_data(raw.columns),
        absent_fields=tuple(n for n in columns.absent if not schema.field(n).required),
        problems=problems, show_values=show_values, line_label=raw.line_label,
    )
    return ValidationResult(quarantine=quarantine, report=report, schema=schema, _typed=typed, _failing=failing)


# --------------------------------------------------------------------------- expressions


def _t(name: str) -> str:
    return f"__text_{name}"


def _v(name: str) -> str:
    return f"__value_{name}"


def _f(name: str) -> str:
    return f"__failure_{name}"


def _c(index: int) -> str:
    return f"__check_{index}"


def _h(index: int) -> str:
    return f"__key_hash_{index}"


def _text_column(f: Field, distinct: _Distinct, columns: ColumnMatch) -> pl.Expr:
    """The field's text: raw for distinct-value fields (see _Distinct), else trimmed; null when blank
    or when the file has no column for the field."""
    if f.name in distinct:
        return distinct.text(f.name)
    if f.name in columns.fields:
        return _text(columns.fields[f.name])
    return pl.lit(None, dtype=pl.String)


def _text(source: str) -> pl.Expr:
    """Trimmed text, null when blank (white space and invisible characters only: parsing.BLANK_TEXT)."""
    # (`replace`, not when/then: polars would trim twice, once for the test and once for the value;
    # the anchored pattern gives up at the first visible character, so a real value costs one step)
    return pl.col(source).str.strip_chars().str.replace(parsing.BLANK_TEXT, "").replace("", None)


class _Distinct:
    """Parsers run once per distinct value of a repetitive column (dates of birth and postcodes:
    tens of thousands of values in a million rows; flags and codes: a handful) and are mapped
    back by a hash lookup, or by equality tests when there are few values. Same result as
    applying the parser to every row, several times faster.

    The distinct values are the raw ones (trimming a million values costs more than finding the
    distinct ones); parsers see them trimmed. So these columns skip the trimming pass: their
    text is the raw value, null where blank. A column read as Categorical (tfkit.io's `codes`)
    holds its distinct values already; the text is then Categorical too.
    """

    FEW = 16
    SAMPLE = 2048  # rows sampled to guess a column's few values

    def __init__(self, frame: pl.DataFrame, columns: ColumnMatch, schema: Schema):
        always = [f.name for f in schema.fields if f.name in columns.fields and (
            f.type in ("date", "boolean", "code") or f.identifier == "postcode")]
        # Plain text fields join when a sample shows only a few values and they prove to be all
        # there are (an LA code, say): trimming and any pattern are then judged once per value.
        texts = [f.name for f in schema.fields if f.name in columns.fields and f.type == "string" and not f.identifier]
        wanted = always + texts
        self.sources = {n: columns.fields[n] for n in wanted}
        self.categorical = {n for n in wanted if frame.schema[self.sources[n]] == pl.Categorical}
        self.values: dict[str, pl.Series] = {}
        self.blanks: dict[str, list[str]] = {}
        if not wanted:
            return
        # Flags and codes: the values seen in a sample are usually all there are, and proving it
        # (a few equality tests per row) is cheaper than finding the distinct values of a column.
        guessed = [n for n in wanted if n not in self.categorical]
        sample = frame.gather_every(max(1, frame.height // self.SAMPLE)).select(
            pl.col(self.sources[n]).unique().implode().alias(n) for n in guessed
        )
        guesses = {n: sample[n][0].drop_nulls() for n in guessed}
        guesses = {n: v for n, v in guesses.items() if 0 < len(v) <= self.FEW}
        # One query proves the guesses and finds the distinct values of the other fields (in
        # parallel); a field whose guess fails has its distinct values found afterwards.
        many = [n for n in always if n not in guesses]
        found = frame.select(
            *((pl.col(self.sources[n]).is_null() | pl.any_horizontal(pl.col(self.sources[n]) == v for v in values))
              .all().alias(n) for n, values in guesses.items()),
            *(pl.col(self.sources[n]).unique().cast(pl.String).implode().alias(n) for n in many),
        ) if guesses or many else pl.DataFrame()
        self.values.update((n, guesses[n]) for n in guesses if found[n][0])
        self.values.update((n, found[n][0].drop_nulls()) for n in many)
        rest = [n for n in always if n not in self.values]
        if rest:
            distinct = frame.select(pl.col(self.sources[n]).unique().cast(pl.String).implode().alias(n) for n in rest)
            self.values.update((n, distinct[n][0].drop_nulls()) for n in rest)
        for n, values in self.values.items():
            self.blanks[n] = values.filter(values.str.contains(parsing.BLANK_TEXT)).to_list()
        # What each rule needs of a value, for every field's distinct values in one parallel query.
        names = list(self.values)
        self.tables = dict(zip(names, pl.collect_all([_per_value(schema.field(n), self.values[n]) for n in names]), strict=True))

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def text(self, name: str) -> pl.Expr:
        """The field's text: raw, null where blank (white space and invisible characters only)."""
        raw = pl.col(self.sources[name])
        blanks = self.blanks[name]
        return pl.when(raw.is_in(blanks)).then(None).otherwise(raw) if blanks else raw

    def matches(self, name: str, key: str) -> pl.Expr:
        """Boolean: the row's value has the derived flag `key` (see _per_value). The values that do
        are usually few (say, the month-first dates), so this is a set lookup."""
        table = self.tables[name]
        hits = table.filter(pl.col(key).fill_null(False))["v"]
        return pl.col(_t(name)).is_in(hits.implode()).fill_null(False) if len(hits) else pl.lit(False)

    def lookup(self, name: str, key: str) -> pl.Expr:
        """The derived `key` of each row's value (see _per_value): equality tests against a few
        values, a hash lookup among many; null where the text is null (blank)."""
        table = self.tables[name]
        old, new = table["v"], table[key]
        text = pl.col(_t(name))
        if len(old) > self.FEW:
            if name in self.categorical:
                text = text.cast(pl.String)
            return text.replace_strict(old, new, default=None, return_dtype=new.dtype)
        mapped = pl.lit(None, dtype=new.dtype)
        for before, after in zip(old.to_list(), new.to_list(), strict=True):
            mapped = pl.when(text == before).then(pl.lit(after, dtype=new.dtype)).otherwise(mapped)
        return mapped


def _per_value(f: Field, values: pl.Series) -> pl.LazyFrame:
    """One row per distinct raw value `v` of a field: its typed `value` (as _parser gives it, from
    the trimmed text) and whatever else its rules read: `month_first` (dates), `code` (an
    identifier's failure code), `pattern_mismatch` and `too_long` (text fields)."""
    text = pl.col("v").str.strip_chars()
    extra = []
    if f.type == "date":
        extra += [parsing.looks_month_first(text).alias("month_first"), parsing.looks_day_first(text).alias("day_first"),
                  parsing.reads_both_ways(text).alias("both_ways")]
    if f.identifier:
        extra.append(identifiers.CODES[f.identifier](pl.col("value")).alias("code"))
    if f.type == "string" and f.pattern:
        extra.append((~text.str.contains(f.pattern)).alias("pattern_mismatch"))
    if f.type == "string" and f.max_length:
        extra.append((text.str.len_chars() > f.max_length).alias("too_long"))
    return pl.LazyFrame({"v": values}).with_columns(_parser(f)(text).cast(f.dtype).alias("value")).with_columns(extra)


def _parser(f: Field) -> Callable[[pl.Expr], pl.Expr]:
    """The field's text (trimmed, null for blank) to its typed value."""
    if f.type == "date":
        return parsing.parse_date
    if f.type == "integer":
        return parsing.parse_integer
    if f.type == "boolean":
        return lambda text: parsing.parse_boolean(text, f.true_values, f.false_values)
    if f.type == "code":
        return lambda text: parsing.parse_code(text, f.code_mapping)
    if f.identifier:
        return identifiers.NORMALISERS[f.identifier]
    return lambda text: text


def _typed(f: Field, distinct: _Distinct) -> pl.Expr:
    """The field's typed value: once per distinct value where `distinct` has the field."""
    if f.name in distinct:
        return distinct.lookup(f.name, "value")
    return _parser(f)(pl.col(_t(f.name)))


def _failure_code(f: Field, distinct: _Distinct, columns: ColumnMatch) -> pl.Expr:
    """The identifier's failure code (tfkit.identifiers.CODES; 0 valid or blank). Postcodes: exact,
    once per distinct value. The others: judged on the raw text, which is exact unless the code is
    FORMAT (the text may only need normalising); _recheck_identifiers settles those rows."""
    if f.name in distinct:
        return distinct.lookup(f.name, "code").fill_null(0)
    return identifiers.CODES[f.identifier](pl.col(columns.fields[f.name])).fill_null(0)


def _recheck_identifiers(typed: pl.DataFrame, raw: RawTable, columns: ColumnMatch, fields: list[Field],
                         values: set[str]) -> pl.DataFrame:
    """Settle the identifiers whose raw text broke the format: trimmed, normalised and checked again
    (these rows are usually few). For the fields in `values`, also add the typed value: the raw text,
    which is already normalised wherever the format held, with the rechecked rows' values put in."""
    out = []
    for f in fields:
        source = raw.frame[columns.fields[f.name]]
        codes = typed[_f(f.name)]
        rows = (codes == identifiers.FORMAT).arg_true()
        if rows.len():
            value = identifiers.NORMALISERS[f.identifier](_text(source.name))
            again = source.gather(rows).to_frame().select(
                identifiers.CODES[f.identifier](value).fill_null(0).alias("code"), value.alias("value"))
            codes, source = codes.scatter(rows, again["code"]), source.scatter(rows, again["value"])
        out.append(codes)
        if f.name in values:
            out.append(source.alias(_v(f.name)))
    return typed.with_columns(out)


def _output_value(f: Field, checks: list[_Check]) -> pl.Expr:
    """The typed value, blanked where an on_invalid = "null" check failed."""
    value = pl.col(_v(f.name))
    blank = [pl.col(_c(i)) for i, c in enumerate(checks) if c.blanks == f.name]
    if blank:
        value = pl.when(pl.any_horizontal(blank)).then(None).otherwise(value)
    return value.cast(f.dtype)


def _describe(code: str, **values: object) -> tuple[str, str]:
    title, template = RULES[code]
    return title, template.format(**values)


def _refuse_float_text(raw: RawTable, schema: Schema, columns: ColumnMatch) -> None:
    """A text field (an identifier, an id, a code) stored as floating-point numbers may already have
    lost digits, and reads as `10131752.0`: refused (exit 2), never pseudonymised as such."""
    for name, header in columns.fields.items():
        if header in raw.float_columns and schema.field(name).type in ("string", "code"):
            raise InputFileError(
                f"column {header!r} ({name}) is stored as floating-point numbers: an identifier as a float may "
                "already have lost digits, and would read as '1234.0'", file=raw.path, column=header,
                hint="export the column as text (or as whole numbers): e.g. in pandas "
                     "df[col] = df[col].astype('Int64').astype('string'), in SQL CAST(col AS VARCHAR)")


def suggest_schema(raw: RawTable, schema: Schema) -> str | None:
    """The built-in schema, other than `schema`, that fits `raw` best: all its required fields have a
    column, and it leaves the fewest headers unmatched (ties: most fields matched, then name)."""
    from tfkit.schemas import builtin_schema_names, load_schema

    fits = []
    for name in builtin_schema_names():
        candidate = load_schema(name)
        if candidate.name == schema.name:
            continue
        try:
            match = match_columns(raw, candidate)
        except InputFileError:  # two headers claim one field of the candidate: not a fit
            continue
        if all(f.name in match.fields for f in candidate.fields if f.required):
            fits.append((len(match.unmatched), -len(match.fields), name))
    return min(fits)[2] if fits else None


def _field_checks(
    schema: Schema, columns: ColumnMatch, today: dt.date, distinct: _Distinct, raw: RawTable
) -> list[_Check]:
    checks: list[_Check] = []
    wrong_schema_hint = ""
    if any(f.required and f.name not in columns.fields for f in schema.fields):
        fits = suggest_schema(raw, schema)
        if fits:
            wrong_schema_hint = f"; this file's headers fit the built-in schema {fits!r}: is --schema {fits} meant?"
    for f in schema.fields:
        source = columns.fields.get(f.name)
        t, v = pl.col(_t(f.name)), pl.col(_v(f.name))
        example = pl.col(source) if source else None
        if source is None:
            if f.required:
                _, msg = _describe("missing_column", field=f.name, aliases=", ".join(repr(a) for a in f.aliases) or "none")
                checks.append(_Check("missing_column", f.name, None, "error", pl.lit(True), None, False,
                                     msg + wrong_schema_hint))
            continue

        def add(code: str, fails: pl.Expr, *, soft: bool = True, after_pass: bool = False, **values: object) -> None:
            _, msg = _describe(code, field=f.name, **values)
            blanking = soft and f.on_invalid == "null"
            checks.append(_Check(
                code, f.name, source, "warning" if blanking else "error", fails.fill_null(False),
                example, f.personal, msg + (_BLANKED if blanking else ""), f.name if blanking else None,
                after_pass=after_pass,
            ))

        present = t.is_not_null()
        if f.required:
            add("missing_value", t.is_null(), soft=False)
        unparsed = present & v.is_null()
        if f.type == "integer":
            add("invalid_integer", unparsed)
            if f.minimum is not None or f.maximum is not None:
                low = f.minimum if f.minimum is not None else "any"
                high = f.maximum if f.maximum is not None else "any"
                out = pl.lit(False)
                if f.minimum is not None:
                    out = out | (v < f.minimum)
                if f.maximum is not None:
                    out = out | (v > f.maximum)
                add("integer_out_of_range", out, range=f"from {low} to {high}")
        elif f.type == "boolean":
            add("invalid_boolean", unparsed, true="/".join(f.true_values), false="/".join(f.false_values))
        elif f.type == "code":
            add("invalid_code", unparsed, codes=", ".join(f.codes))
        elif f.type == "date":
            if f.name in distinct:  # judged once per distinct value, like the parse itself
                month_first = distinct.matches(f.name, "month_first")
            else:
                month_first = parsing.looks_month_first(pl.when(unparsed).then(t).str.strip_chars())
            add("month_first_date", unparsed & month_first)
            add("invalid_date", unparsed & ~month_first)
            if f.name in distinct:  # a column mostly month-first: its dates that read both ways are wrong day-first
                votes = distinct.tables[f.name].select(pl.col("month_first").sum(), pl.col("day_first").sum()).row(0)
                if votes[0] > votes[1] and votes[0] >= MONTH_FIRST_EVIDENCE:
                    add("ambiguous_date", present & distinct.matches(f.name, "both_ways"),
                        month_first=f"{votes[0]:,}", day_first=f"{votes[1]:,}")
            if f.not_future:
                add("date_in_future", v > pl.lit(today), today=today.isoformat())
            if f.earliest:
                add("date_too_early", v < pl.lit(f.earliest), earliest=f.earliest.isoformat())
            if f.latest:
                add("date_too_late", v > pl.lit(f.latest), latest=f.latest.isoformat())
        elif f.type == "string":
            if f.identifier:
                failure = pl.col(_f(f.name))
                for i, code in enumerate(IDENTIFIER_CODES[f.identifier], start=1):
                    add(code, failure == i, after_pass=f.name not in distinct)
            # (A field in `distinct` has raw text: its rules are judged once per trimmed value.)
            if f.pattern:
                mismatch = distinct.matches(f.name, "pattern_mismatch") if f.name in distinct else ~t.str.contains(f.pattern)
                add("pattern_mismatch", present & mismatch, pattern=f.pattern)
            if f.max_length:
                too_long = distinct.matches(f.name, "too_long") if f.name in distinct else t.str.len_chars() > f.max_length
                add("too_long", too_long, max_length=f.max_length)
        if f.unique:
            _, msg = _describe("duplicate_value", field=f.name)
            checks.append(_Check("duplicate_value", f.name, source, "error", None, example, f.personal, msg,
                                 group=_repeated((f.name,))))
    return checks


IDENTIFIER_CODES = {
    "nino": ("invalid_nino",),
    "upn": ("invalid_upn", "upn_la_number", "upn_check_letter"),
    "nhs_number": ("invalid_nhs_number", "nhs_number_check_digit"),
    "postcode": ("invalid_postcode",),
}


def _repeats(hashes: pl.Series) -> pl.Series:
    """True on every row whose key hash appears more than once. (A sort of the hashes and a lookup
    of the few repeated ones: several times cheaper than a window over the key's string columns.)"""
    ordered = hashes.sort()
    repeated = ordered.filter(ordered == ordered.shift(1))
    return hashes.is_in(repeated.implode())


def _repeated(fields: tuple[str, ...]) -> _GroupRule:
    """True where every field is set and the combination appears on more than one row."""
    keys = [pl.col(_v(n)) for n in fields]
    present = pl.all_horizontal(k.is_not_null() for k in keys)
    return _GroupRule(reads=fields, exact=present & (pl.len().over(keys) > 1), key=tuple(keys))


def _several_families(person_field: str, family_field: str) -> _GroupRule:
    """True where a person appears with more than one (non-null) family. Only a person on several
    rows can be in several families: the candidates are the rows whose person repeats."""
    person, family = pl.col(_v(person_field)), pl.col(_v(family_field))
    several = person.is_not_null() & (family.drop_nulls().n_unique().over(person) > 1)
    return _GroupRule(reads=(person_field, family_field), exact=several, key=(person,))


def _too_few_problems(family_field: str, problems: list[str], minimum: int) -> _GroupRule:
    """True on every row of a family that meets fewer than `minimum` of the problems over all its rows."""
    family = pl.col(_v(family_field))
    # One bit per problem (in 64-bit words), computed in the pass; OR-ed over each family, then counted.
    words = [
        pl.sum_horizontal(pl.col(_v(p)).fill_null(False).cast(pl.UInt64) * (1 << i) for i, p in enumerate(problems[at:at + 64]))
        .cast(pl.UInt8 if len(problems[at:]) <= 8 else pl.UInt64).alias(f"__problem_bits_{family_field}_{at}")
        for at in range(0, len(problems), 64)
    ]

    def too_few(frame: pl.DataFrame) -> pl.Series:
        met = pl.sum_horizontal(pl.col(w.meta.output_name()).bitwise_or().bitwise_count_ones() for w in words)
        short = (
            frame.lazy().filter(family.is_not_null()).group_by(family.alias("family"))
            .agg(met.alias("met")).filter(pl.col("met") < minimum).select("family").collect()
        )
        return frame.select(family.is_in(short["family"].implode()).fill_null(False)).to_series()

    return _GroupRule(reads=(family_field,), exact=too_few, columns=tuple(words))


def _rule_checks(schema: Schema, columns: ColumnMatch) -> list[_Check]:
    checks: list[_Check] = []
    for rule in schema.rules:
        if any(n not in columns.fields for n in rule.fields):
            continue  # a missing column is already reported (required) or leaves nothing to check
        checks.extend(_rule_check(schema, rule, columns))
    return checks


def _rule_check(schema: Schema, rule: TableRule, columns: ColumnMatch) -> list[_Check]:
    names = rule.fields
    values = [pl.col(_v(n)) for n in names]
    label = "+".join(names)
    masked = any(schema.field(n).personal for n in names)
    example = pl.concat_str([pl.col(columns.fields[n]).cast(pl.String) for n in names], separator=" | ")

    def check(code: str, fails: pl.Expr | _GroupRule, target: str, column: str | None, **values_: object) -> _Check:
        _, msg = _describe(code, **values_)
        if isinstance(fails, pl.Expr):
            return _Check(code, target, column, rule.severity, fails.fill_null(False), example, masked, msg)
        return _Check(code, target, column, rule.severity, None, example, masked, msg, group=fails)

    if rule.type == "unique":
        code = "duplicate_key" if rule.severity == "error" else "possible_duplicate"
        return [check(code, _repeated(names), label, None, field=label)]
    if rule.type == "family_membership":
        person, family = values
        out = []
        if not schema.field(names[1]).required:
            out.append(check("no_family", person.is_not_null() & family.is_null(), names[1], columns.fields[names[1]], family=names[1]))
        out.append(check("person_in_several_families", _several_families(*names), label, None,
                         person=names[0], family=names[1]))
        return out
    if rule.type == "date_order":
        start, end = values
        return [check("end_before_start", end < start, label, None, start=names[0], end=names[1])]
    if rule.type == "headline_problem_minimum":
        minimum = rule.minimum if rule.minimum is not None else schema.headline_problem_minimum
        problems = [f.name for f in schema.headline_problems if f.name in columns.fields]
        if not problems:
            return []
        return [_Check(
            "too_few_headline_problems", names[0], columns.fields[names[0]], rule.severity, None,
            pl.col(columns.fields[names[0]]), schema.field(names[0]).personal,
            _describe("too_few_headline_problems", minimum=minimum, problems=", ".join(problems))[1],
            group=_too_few_problems(names[0], problems, minimum),
        )]
    raise AssertionError(f"unhandled rule type {rule.type}")


# --------------------------------------------------------------------------- report




def _summarise(raw: pl.DataFrame, df: pl.DataFrame, checks: list[_Check], schema: Schema,
               show_values: bool) -> tuple[Problem, ...]:
    if not checks:
        return ()
    counts = df.select(pl.col(_c(i)).sum().alias(str(i)) for i in range(len(checks))).row(0)
    hit = [i for i, n in enumerate(counts) if n]
    if not hit:
        return ()
    # Lines and examples come from the (usually small) set of rows that broke some rule.
    broke = df.select(pl.any_horizontal(pl.col(_c(i)) for i in hit)).to_series()
    failing = raw.filter(broke).with_columns(df.filter(broke).select(_c(i) for i in hit))
    aggregations = []
    for i in hit:
        c, flag = checks[i], pl.col(_c(i))
        aggregations.append(pl.col(SOURCE_LINE).filter(flag).head(MAX_LINES).implode().alias(f"l{i}"))
        if c.example is not None:
            examples = c.example.filter(flag & c.example.is_not_null()).unique(maintain_order=True).head(MAX_EXAMPLES)
            aggregations.append(examples.implode().alias(f"e{i}"))
    summary = failing.select(aggregations).row(0, named=True)
    problems = []
    for i in hit:
        c = checks[i]
        examples = summary.get(f"e{i}") or []
        if not show_values:
            # A non-personal field (a code, a flag) shows its bad values, unless one is shaped like an
            # identifier: a shifted column can put NHS numbers or postcodes there.
            examples = [mask(e) if c.masked or identifier_shaped(e) else e for e in examples]
        problems.append(Problem(
            code=c.code, title=RULES[c.code][0], severity=c.severity, field=c.field, column=c.column,
            count=int(counts[i]), examples=tuple(examples),
            # A missing column is a header problem: no row numbers (every row has it).
            lines=() if c.code == "missing_column" else tuple(int(n) for n in summary[f"l{i}"]),
            message=c.message,
        ))
    order = {f.name: i for i, f in enumerate(schema.fields)}
    return tuple(sorted(problems, key=lambda p: (p.severity != "error", order.get(p.field or "", len(order)))))


def _check_dtypes(valid: pl.DataFrame, schema: Schema) -> None:
    """The typed frame's columns and dtypes, checked on every run (the tests also hold every
    built-in schema's output to a full pandera contract: tests/fixtures/contract.py)."""
    expected = pl.Schema({**schema.polars_schema, SOURCE_LINE: pl.Int64()})
    if valid.schema != expected:
        raise AssertionError(f"validated frame does not match schema {schema.name}: {valid.schema} != {expected}")
