"""Read, validate, quarantine, refuse if nothing is valid: the one way every command takes in an extract.

    checked = read_validated(path, schema)         # the memory-saving read, then the engine
    checked.valid / .quarantine / .report / .rows_in / .canonical_names
    checked.refuse_if_none_valid()                 # DataCheckFailed (exit 1): the wrong file or schema
    checked.write_quarantine(folder)               # failing rows, 0600 in a 0700 folder (None if none)

`validate`, `pseudonymise`, `link` and `extract` all read through `read_validated`; each decides
when its quarantine is written (pseudonymise and extract only once their output is safely written,
so a failed run leaves no raw rows behind).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from tfkit.errors import DataCheckFailed
from tfkit.validation.quarantine import write_quarantine_csv


@dataclass
class CheckedSource:
    """One extract, read and validated."""

    path: Path
    result: Any  # tfkit.validation.engine.ValidationResult
    rows_in: int
    canonical_names: dict[str, str] = field(default_factory=dict)  # the file's header -> canonical field
    kept_raw: pl.DataFrame | None = None  # `_source_line` + raw columns asked for (e.g. a truth column)
    other_sheets: str | None = None  # a workbook read at its first sheet: the hint naming its others

    @property
    def valid(self) -> pl.DataFrame:
        return self.result.valid

    @property
    def quarantine(self) -> pl.DataFrame:
        return self.result.quarantine

    @property
    def report(self):
        return self.result.report

    @property
    def schema(self):
        return self.result.schema

    def refuse_if_none_valid(self, hint: str | None = None) -> None:
        """Rows came in and none is valid: the wrong file or schema (an empty output would look like
        success). DataCheckFailed, exit 1."""
        if self.rows_in and self.report.rows_valid == 0:
            raise DataCheckFailed(
                f"all {self.rows_in:,} row(s) failed validation against schema {self.schema.name!r}; no output written",
                file=self.path, hint=hint or f"check the schema suits this file; see why with: tfkit validate "
                                              f"{self.path} --schema {self.schema.name}")

    def refuse_if_columns_missing(self, source: str | None = None) -> None:
        """Required columns with no header: every row would fail, and the fix is the file's header,
        the schema or the sheet, not the rows. DataCheckFailed (exit 1, as validate's), naming the
        fields, their aliases, the headers the schema does not know and the workbook's other sheets."""
        refusal = missing_columns_refusal(self.report, self.schema, self.other_sheets, source=source)
        if refusal is not None:
            raise refusal

    def write_quarantine(self, folder: str | Path, stem: str | None = None) -> Path | None:
        """The failing rows (raw, with reasons) to `<folder>/<stem>.quarantine.csv`, 0600 in a 0700
        folder; None (and no file) when every row is valid."""
        if not self.quarantine.height:
            return None
        return write_quarantine_csv(self.quarantine, Path(folder) / f"{stem or self.path.stem}.quarantine.csv")


def read_validated(path: str | Path, schema, *, encoding: str | None = None, sheet: str | int | None = None,
                   show_values: bool = False, keep_valid: bool = True, keep_raw: tuple[str, ...] = (),
                   allow_empty: bool = False) -> CheckedSource:
    """Read `path` (code and flag columns as Categorical: the memory-saving read) and validate it
    against `schema` (a Schema, or a built-in name or a file for load_schema). `keep_raw`: raw
    columns the schema does not know to keep beside the rows (by `_source_line`). `allow_empty`: a
    file with a header and no record is a source of no rows (its header still checked), not an error."""
    from tfkit.io import SOURCE_LINE, read_table
    from tfkit.schemas import Schema, load_schema
    from tfkit.validation.engine import code_columns, match_columns, validate

    path = Path(path)
    if not isinstance(schema, Schema):
        schema = load_schema(schema)
    raw = read_table(path, encoding=encoding, sheet=sheet, codes=code_columns(schema), allow_empty=allow_empty)
    headers = {header: name for name, header in match_columns(raw, schema).fields.items()}
    if raw.n_rows == 0:
        _refuse_wrong_header(raw, schema, set(headers.values()))
    rows_in = raw.n_rows
    kept = [c for c in keep_raw if c in raw.frame.columns]
    kept_raw = raw.frame.select(SOURCE_LINE, *kept) if kept else None
    result = validate(raw, schema, show_values=show_values, keep_valid=keep_valid)
    return CheckedSource(path, result, rows_in, headers, kept_raw, other_sheets=raw.other_sheets)


def missing_columns_refusal(report, schema, other_sheets: str | None = None, *,
                            source: str | None = None) -> DataCheckFailed | None:
    """The one message for a header that lacks required columns (None when it lacks none)."""
    missing = [p.field for p in report.problems if p.code == "missing_column"]
    if not missing:
        return None
    if len(missing) <= 2:
        named = "; ".join(f"{name} (aliases: {', '.join(repr(a) for a in schema.field(name).aliases) or 'none'})"
                          for name in missing)
    else:  # most of the header: the wrong file, sheet or schema rather than a renamed column
        named = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    where = (f"source {source!r}: " if source else "") + (f"sheet {report.sheet!r}: " if report.sheet else "")
    hints = [other_sheets] if other_sheets else []
    fits = next((m.group(1) for p in report.problems if p.code == "missing_column"
                 if (m := re.search(r"fit the built-in schema '([^']+)'", p.message))), None)
    if fits:
        hints.append(f"its headers fit the built-in schema {fits!r}: check the schema given for it")
    if report.unmatched_columns:
        hints.append("headers the schema does not know: " + ", ".join(report.unmatched_columns))
    hints.append(f"rename the column(s) to an alias, or check schema {schema.name!r} suits this file "
                 f"(see: tfkit schemas show {schema.name})")
    return DataCheckFailed(f"{where}no column for required field(s) {named}; every row would fail without them: "
                           "nothing was written",
                           file=report.file, column=missing[0], hint="; ".join(hints))


def _refuse_wrong_header(raw, schema, matched: set[str]) -> None:
    """An empty extract has no row to fail: its header alone must show it is the file the schema
    describes (no required column missing), or a wrong file would pass as "nobody this period"."""
    from tfkit.validation.engine import suggest_schema

    missing = [f.name for f in schema.fields if f.required and f.name not in matched]
    if missing:
        fits = suggest_schema(raw, schema)
        raise DataCheckFailed(
            f"has a header but no data rows, and its header lacks required column(s) of schema {schema.name!r}: "
            f"{', '.join(missing)}", file=raw.path,
            hint=(f"its headers fit the built-in schema {fits!r}: check the source's schema" if fits else
                  f"check this is the right file, or add the column(s) (see: tfkit schemas show {schema.name})"))


@dataclass
class ValidationRun:
    """`tfkit validate` over several extracts: each file's report and the files written."""

    schema: Any
    reports: list = field(default_factory=list)  # ValidationReport per extract, in order
    written: list[tuple[Path, ...]] = field(default_factory=list)  # per extract: valid Parquet, quarantine CSV
    other_sheets: list[str | None] = field(default_factory=list)  # per extract: its workbook's other sheets

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)

    def to_dict(self) -> dict[str, Any]:
        from tfkit.validation.report import reports_to_dict

        return reports_to_dict(self.reports)

    def refuse_if_failed(self, quarantined: bool) -> None:
        """DataCheckFailed (exit 1) when any row failed."""
        failed = [r for r in self.reports if not r.ok]
        headers = sorted({p.field for r in failed for p in r.problems if p.code == "missing_column"})
        if headers:  # a header problem: every row fails, and the fix is the file or --schema, not the rows
            sheets = [h for r, h in zip(self.reports, self.other_sheets, strict=True) if h and not r.ok]
            raise DataCheckFailed(
                f"required column(s) missing: {', '.join(headers)}; every row fails without them",
                hint="; ".join([*sheets[:1], "add or rename the column(s) (the aliases are listed above), or "
                                             "check --schema suits the file"]))
        if failed:
            rows = sum(r.rows_quarantined for r in failed)
            raise DataCheckFailed(
                f"{rows:,} row(s) failed validation in {len(failed)} of {len(self.reports)} file(s)",
                hint=("they are set aside in the quarantine folder with their reasons: fix them in the source system"
                      if quarantined else "fix them in the source system, or set them aside with --quarantine DIR"))


def validate_files(paths: list[Path], schema, *, encoding: str | None = None, sheet: str | int | None = None,
                   show_values: bool = False, quarantine: Path | None = None) -> ValidationRun:
    """Validate each extract against `schema`; with `quarantine`, write each one's valid rows
    (Parquet) and failing rows (CSV with reasons) there, 0600 in a 0700 folder. Every path is
    checked first, so a typo in the last one costs nothing. A progress bar shows at a terminal."""
    from tfkit import console
    from tfkit.errors import InputFileError
    from tfkit.io import check_regular_file
    from tfkit.schemas import Schema, load_schema

    if not isinstance(schema, Schema):
        schema = load_schema(schema)
    for path in paths:
        check_regular_file(path)  # missing, a folder, a FIFO (would hang), a device, a symlink loop
    stems = [p.stem for p in paths]
    if quarantine is not None and len(set(stems)) != len(stems):
        raise InputFileError("two extracts share a file name stem, so their quarantine outputs would overwrite each other",
                             hint="validate them in separate runs with different --quarantine directories", file=paths[0])
    run = ValidationRun(schema)
    with console.progress() as bar:  # nothing in cron or with --quiet
        task = bar.add_task("validate", total=len(paths))
        for path in paths:
            bar.update(task, description=f"checking {path.name}")
            checked = read_validated(path, schema, encoding=encoding, sheet=sheet, show_values=show_values,
                                     keep_valid=quarantine is not None)  # valid rows are kept only to be written
            run.written.append(tuple(checked.result.write(quarantine)) if quarantine is not None else ())
            run.reports.append(checked.report)
            run.other_sheets.append(checked.other_sheets)
            del checked
            bar.update(task, advance=1)
    return run
