"""Publishable summary tables of a package, safe by construction.

`summarise()` counts families and people by headline problem, by number of problems, by
intervention status, by age band and sex, and by period; every table is then protected
(tfkit.disclosure.tables: small cells hidden, zeros included; secondary suppression so no hidden
cell can be recomputed; optional rounding). `Summary.write()` saves one CSV per table and an .xlsx
workbook whose first sheet explains the rules applied.

Units: a family is a family pseudonym within one period (a family in two packages counts twice,
so every table's totals add up across periods); a person is a row of the person table. Categories
are fixed lists (declared below as data) so tables from different runs line up; a "Not recorded"
category appears only when some record has no value.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import polars as pl

from tfkit.disclosure.source import PersonSource
from tfkit.disclosure.tables import SUPPRESSED, CountTable
from tfkit.errors import InputFileError, UsageError

AGE_BANDS: tuple[tuple[int, int | None, str], ...] = (
    (0, 4, "0-4"), (5, 10, "5-10"), (11, 15, "11-15"), (16, 17, "16-17"), (18, 24, "18-24"),
    (25, 34, "25-34"), (35, 49, "35-49"), (50, 64, "50-64"), (65, None, "65 and over"),
)
SEXES: tuple[tuple[str, str], ...] = (("F", "Female"), ("M", "Male"), ("U", "Unknown or other"))
STATUSES: tuple[tuple[str, str], ...] = (
    ("waiting", "Waiting"), ("in_progress", "In progress"), ("completed", "Completed"), ("disengaged", "Disengaged"),
)
PROBLEM_LABELS: dict[str, str] = {
    "crime": "Crime or anti-social behaviour",
    "education": "Children not attending school regularly",
    "children_in_need": "Children who need help",
    "worklessness": "Worklessness or financial exclusion",
    "domestic_abuse": "Domestic violence or abuse",
    "health": "Physical or mental health problems",
}
PROBLEM_COUNT_BANDS: tuple[tuple[int, int | None, str], ...] = ((0, 1, "0 or 1"), (2, 2, "2"), (3, 3, "3"), (4, None, "4 or more"))
NOT_RECORDED = "Not recorded"
OTHER = "Other"
UNITS = ("Families", "People")


@dataclass
class Summary:
    tables: list[CountTable]
    threshold: int
    rounding: int | None
    reference_date: dt.date | None
    periods: list[str]
    sources: list[str]
    demo: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "rounding": self.rounding,
            "reference_date": self.reference_date.isoformat() if self.reference_date else None,
            "periods": self.periods,
            "demo": self.demo,
            "tables": [t.to_dict() for t in self.tables],
            "notes": self.notes,
        }

    def write(self, out_dir: str | Path) -> list[Path]:
        """One CSV per table and `summaries.xlsx` (Notes sheet first); returns the files written."""
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputFileError(f"cannot create the output folder: {err.strerror}", file=out) from None
        written = []
        for table in self.tables:
            path = out / f"{table.name}.csv"
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerows(table.rows_out())
            _atomic_write(path, buffer.getvalue().encode("utf-8"))
            written.append(path)
        notes = out / "notes.txt"
        _atomic_write(notes, ("\n".join(self.notes) + "\n").encode("utf-8"))
        written.append(notes)
        written.append(self._write_workbook(out / "summaries.xlsx"))
        return written

    def _write_workbook(self, path: Path) -> Path:
        from openpyxl import Workbook
        from openpyxl.styles import Alignment, Font

        wb = Workbook()
        sheet = wb.active
        sheet.title = "Notes"
        sheet["A1"] = "Notes: rules applied to these tables"
        sheet["A1"].font = Font(bold=True, size=14)
        for n, line in enumerate(self.notes, start=3):
            sheet.cell(row=n, column=1, value=line).alignment = Alignment(wrap_text=True, vertical="top")
        sheet.column_dimensions["A"].width = 120
        for table in self.tables:
            ws = wb.create_sheet(table.name[:31])
            ws["A1"] = table.title
            ws["A1"].font = Font(bold=True, size=12)
            for r, row in enumerate(table.rows_out(), start=3):
                for c, value in enumerate(row, start=1):
                    cell = ws.cell(row=r, column=c, value=int(value) if value.isdigit() and r > 3 and c > 1 else value)
                    if r == 3 or value == "Total" or (c == 1 and row[0] == "Total"):
                        cell.font = Font(bold=True)
                    if c > 1:
                        cell.alignment = Alignment(horizontal="right")
            ws.column_dimensions["A"].width = 40
            for c in range(2, len(table.column_labels) + 2):
                ws.column_dimensions[chr(64 + c)].width = 14
        # Fixed document dates: the same tables give the same workbook content.
        fixed = dt.datetime(2000, 1, 1)
        wb.properties.created = wb.properties.modified = fixed
        buffer = io.BytesIO()
        wb.save(buffer)
        _atomic_write(path, _stable_zip(buffer.getvalue()))
        return path


def _stable_zip(data: bytes) -> bytes:
    """The same zip with fixed entry times, so equal workbooks are equal bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps the save time here
                content = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2000-01-01T00:00:00Z", content)
            dst.writestr(zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)), content,
                         compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


_PERIOD_PATTERNS = (
    (re.compile(r"^(\d{4})-?H([12])$", re.I), lambda y, h: dt.date(int(y), 6, 30) if h == "1" else dt.date(int(y), 12, 31)),
    (re.compile(r"^(\d{4})-?Q([1-4])$", re.I), lambda y, q: _month_end(int(y), 3 * int(q))),
    (re.compile(r"^(\d{4})-(\d{2})$"), lambda y, m: _month_end(int(y), int(m))),
    (re.compile(r"^(\d{4})$"), lambda y: dt.date(int(y), 12, 31)),
)


def _month_end(year: int, month: int) -> dt.date:
    first_next = dt.date(year + month // 12, month % 12 + 1, 1)
    return first_next - dt.timedelta(days=1)


def period_end(period: str | None) -> dt.date | None:
    """Last day of a period label: '2019-H2' -> 2019-12-31, '2024-Q1' -> 2024-03-31, '2024-03', '2024'."""
    if not period:
        return None
    text = period.strip()
    for pattern, make in _PERIOD_PATTERNS:
        m = pattern.match(text)
        if m:
            return make(*m.groups())
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _problem_columns(schema: pl.Schema) -> list[str]:
    return [c for c, t in schema.items() if c.startswith("problem_") and t == pl.Boolean]


def _label(problem_column: str) -> str:
    name = problem_column.removeprefix("problem_")
    return PROBLEM_LABELS.get(name, name.replace("_", " ").capitalize())


def _band_expr(value: pl.Expr, bands: Sequence[tuple[int, int | None, str]]) -> pl.Expr:
    expr = pl.lit(None, dtype=pl.String)
    for lo, hi, label in reversed(bands):
        cond = value >= lo if hi is None else value.is_between(lo, hi)
        expr = pl.when(cond).then(pl.lit(label)).otherwise(expr)
    return expr


def _age_expr(columns: list[str], reference: dt.date | None) -> tuple[pl.Expr, str | None]:
    """Age in whole years at the reference date, from the finest date-of-birth column present."""
    if reference is None:
        return pl.lit(None, dtype=pl.Int32), None
    ref_months = reference.year * 12 + reference.month
    if "dob_year_month" in columns:
        ym = pl.col("dob_year_month").cast(pl.String)
        months = ym.str.slice(0, 4).cast(pl.Int32, strict=False) * 12 + ym.str.slice(5, 2).cast(pl.Int32, strict=False)
        # born in month m at the latest on its last day: whole years reached by the reference month's end
        return ((ref_months - months) // 12).cast(pl.Int32), "dob_year_month"
    if "dob_year" in columns:
        return (reference.year - pl.col("dob_year").cast(pl.Int32)), "dob_year"
    if "dob" in columns:
        return ((ref_months - (pl.col("dob").dt.year() * 12 + pl.col("dob").dt.month())) // 12).cast(pl.Int32), "dob"
    return pl.lit(None, dtype=pl.Int32), None


def _categorise(value: pl.Expr, codes: Sequence[str], labels: Sequence[str]) -> pl.Expr:
    mapping = dict(zip(codes, labels))
    return (
        pl.when(value.is_null()).then(pl.lit(NOT_RECORDED))
        .otherwise(value.cast(pl.String).replace_strict(mapping, default=OTHER, return_dtype=pl.String))
    )


def _ordered(observed: set[str], fixed: Sequence[str]) -> list[str]:
    """The fixed categories, then Other / Not recorded when some record has them."""
    return list(fixed) + [c for c in (OTHER, NOT_RECORDED) if c in observed and c not in fixed]


def summarise(
    sources: PersonSource | Sequence[PersonSource] | pl.DataFrame,
    *,
    threshold: int = 10,
    rounding: int | None = None,
    reference_date: dt.date | None = None,
) -> Summary:
    """Count, then protect, the standard programme tables for one or more packages."""
    if threshold < 1:
        raise UsageError(f"the threshold must be at least 1, got {threshold}", hint="the usual threshold is 10")
    if rounding is not None and rounding < 0:
        raise UsageError(f"rounding must be a positive base such as 5, got {rounding}")
    if isinstance(sources, pl.DataFrame):
        sources = [PersonSource(Path("table"), sources.lazy(), None)]
    elif isinstance(sources, PersonSource):
        sources = [sources]
    sources = list(sources)
    if not sources:
        raise UsageError("no package to summarise")

    periods = [s.label for s in sources]
    if len(set(periods)) != len(periods):
        periods = [f"{s.label} ({s.path.name})" for s in sources]
    if reference_date is None:
        ends = [period_end(s.period) for s in sources]
        reference_date = max((e for e in ends if e is not None), default=None)

    frames = []
    for source, period in zip(sources, periods):
        schema = source.frame.collect_schema()
        if "family_id_pseudonym" not in schema and "person_id_pseudonym" not in schema:
            raise InputFileError("the person table has neither family_id_pseudonym nor person_id_pseudonym",
                                 file=source.path, hint="summarise a package written by `tfkit extract`")
        frames.append((source, period, schema))
    problems = sorted(set.intersection(*[set(_problem_columns(schema)) for _, _, schema in frames]),
                      key=lambda c: list(frames[0][2]).index(c))
    if not problems:
        raise InputFileError("the person table has no Boolean problem_* columns", file=frames[0][0].path)

    parts, age_source, banded = [], None, False
    for source, period, schema in frames:
        columns = list(schema)
        banded = banded or (any(c.startswith("dob_year_band") for c in columns)
                            and not {"dob", "dob_year", "dob_year_month"} & set(columns))
        age, used = _age_expr(columns, reference_date)
        age_source = age_source or used
        family = (
            pl.coalesce(pl.col("family_id_pseudonym").cast(pl.String), pl.lit("person:") + pl.col("person_id_pseudonym").cast(pl.String))
            if "family_id_pseudonym" in schema and "person_id_pseudonym" in schema
            else pl.col("family_id_pseudonym" if "family_id_pseudonym" in schema else "person_id_pseudonym").cast(pl.String)
        )
        parts.append(source.frame.select(
            pl.lit(period).alias("period"),
            family.alias("family"),
            *[pl.col(p).fill_null(False) for p in problems],
            (_categorise(pl.col("sex"), *zip(*SEXES)) if "sex" in schema else pl.lit(NOT_RECORDED)).alias("sex"),
            (pl.col("intervention_status") if "intervention_status" in schema else pl.lit(None, dtype=pl.String)).alias("status"),
            pl.coalesce(_band_expr(age, AGE_BANDS), pl.lit(NOT_RECORDED)).alias("age_band"),
        ))
    people = pl.concat(parts, how="vertical_relaxed").with_columns(
        pl.sum_horizontal([pl.col(p).cast(pl.Int8) for p in problems]).alias("n_problems"),
        pl.col("status").cast(pl.String).replace_strict(
            {code: rank for rank, (code, _) in enumerate(STATUSES)}, default=len(STATUSES), return_dtype=pl.Int8
        ).fill_null(len(STATUSES) + 1).alias("status_rank"),
    )
    people = people.cache()
    families = (
        people.group_by("period", "family")
        .agg(*[pl.col(p).any() for p in problems], pl.col("status_rank").mode().min())
        .with_columns(pl.sum_horizontal([pl.col(p).cast(pl.Int8) for p in problems]).alias("n_problems"))
    ).cache()
    status_labels = [label for _, label in STATUSES] + [OTHER, NOT_RECORDED]
    status_of_rank = pl.col("status_rank").replace_strict(dict(enumerate(status_labels)), return_dtype=pl.String)
    band_problems = _band_expr(pl.col("n_problems"), PROBLEM_COUNT_BANDS)

    queries = {
        "problem_people": people.select(*[pl.col(p).sum() for p in problems]),
        "problem_families": families.select(*[pl.col(p).sum() for p in problems]),
        "nprob_people": people.group_by(band_problems.alias("k")).len(),
        "nprob_families": families.group_by(band_problems.alias("k")).len(),
        "status_people": people.group_by(status_of_rank.alias("k")).len(),
        "status_families": families.group_by(status_of_rank.alias("k")).len(),
        "age_sex": people.group_by("age_band", "sex").len(),
        "period_people": people.group_by(pl.col("period").alias("k")).len(),
        "period_families": families.group_by(pl.col("period").alias("k")).len(),
    }
    got = dict(zip(queries, pl.collect_all(list(queries.values()))))

    def counts(name: str) -> dict[str, int]:
        return dict(got[name].select("k", "len").iter_rows())

    tables = []
    prob_people, prob_families = got["problem_people"].row(0), got["problem_families"].row(0)
    tables.append(CountTable(
        "by_headline_problem", "Families and people by headline problem", "Headline problem",
        [_label(p) for p in problems], list(UNITS),
        [[int(f), int(pp)] for f, pp in zip(prob_families, prob_people)], additive="none",
    ))
    for key, name, title, header, fixed in (
        ("nprob", "by_number_of_problems", "Families and people by number of headline problems", "Number of headline problems",
         [label for _, _, label in PROBLEM_COUNT_BANDS]),
        ("status", "by_intervention_status", "Families and people by intervention status", "Intervention status",
         [label for _, label in STATUSES]),
    ):
        fam, ppl = counts(f"{key}_families"), counts(f"{key}_people")
        rows = _ordered(set(fam) | set(ppl), fixed)
        tables.append(CountTable(name, title, header, rows, list(UNITS),
                                 [[fam.get(r, 0), ppl.get(r, 0)] for r in rows], additive="columns"))
    age_sex = {(a, s): n for a, s, n in got["age_sex"].iter_rows()}
    ages = _ordered({a for a, _ in age_sex}, [label for _, _, label in AGE_BANDS])
    sexes = _ordered({s for _, s in age_sex}, [label for _, label in SEXES])
    tables.append(CountTable(
        "by_age_band_and_sex", "People by age band and sex", "Age band", ages, sexes,
        [[age_sex.get((a, s), 0) for s in sexes] for a in ages], additive="both",
    ))
    fam, ppl = counts("period_families"), counts("period_people")
    tables.append(CountTable(
        "by_period", "Families and people by period", "Period", periods, list(UNITS),
        [[fam.get(p, 0), ppl.get(p, 0)] for p in periods], additive="columns" if len(periods) > 1 else "none",
    ))
    for table in tables:
        table.protect(threshold, rounding)

    demo = any(bool((s.manifest or {}).get("demo")) for s in sources)
    summary = Summary(tables, threshold, rounding, reference_date, periods, [str(s.path) for s in sources], demo)
    summary.notes = _notes(summary, age_source, banded)
    return summary


def _notes(summary: Summary, age_source: str | None, banded: bool = False) -> list[str]:
    t = summary.threshold
    notes = []
    if summary.demo:
        notes.append("DEMO: these tables were made from synthetic data with demo keys. They describe no real "
                     "families and must not be published or sent to ONS.")
    notes += [
        f"Period(s): {', '.join(summary.periods)}.",
        "Units: a family is a family pseudonym within one period (a family present in two periods counts in "
        "each); a person is one record of the pseudonymised person table.",
        f"Small cells: every count below {t}, zeros included, is suppressed and shown as {SUPPRESSED}. "
        "Totals are counts too and follow the same rule.",
        f"Secondary suppression: further cells are shown as {SUPPRESSED} so that no suppressed cell can be "
        "worked out from the other cells and the row or column totals, even knowing that counts cannot be "
        "negative. Each suppressed cell lies on a cycle of suppressed cells along which the table could change "
        "by one without changing any published figure; tfkit chooses the cheapest such cells (smallest counts, "
        "totals last). Grand totals, which several tables share, are never suppressed unless themselves small.",
    ]
    if summary.rounding:
        notes.append(f"Rounding: every published count is rounded to the nearest {summary.rounding} (halves up), "
                     "each independently, so totals may differ from the sum of their rounded parts.")
    else:
        notes.append("Rounding: none; published counts are exact.")
    notes += [
        "Headline problems: a family or person meeting several headline problems is counted in each of their "
        "rows, so that table has no total. A family meets a problem when any member does.",
        "Number of headline problems: for a family, the number of distinct problems met by any member; "
        "grouped as 0 or 1, 2, 3, 4 or more.",
        "Intervention status: for a family, the status held by most of its members (ties go to the earlier "
        "status in the list Waiting, In progress, Completed, Disengaged).",
    ]
    if summary.reference_date and age_source:
        notes.append(f"Age: whole years at {summary.reference_date.isoformat()} (the end of the latest period), "
                     f"from {age_source}" + (" (year and month of birth; day unknown)." if age_source == "dob_year_month" else "."))
    elif banded:
        notes.append("Age: not available: the package holds the year of birth only in bands (dob_year_band*, "
                     "generalised by the disclosure policy), too coarse for the age groups; all ages are Not "
                     "recorded. The counts by age need a package published with dob_year or dob_year_month.")
    else:
        notes.append("Age: not available (no period end date or no date-of-birth column); all ages are Not recorded.")
    notes.append(f"'{NOT_RECORDED}' rows or columns appear only where some record has no value.")
    return notes
