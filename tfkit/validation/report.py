"""A validation report is data first: typed Problem records, printed as a rich table for a person
or written as JSON for a machine (structure documented in docs/validation-report.md).

Values in `Problem.examples` are masked (tfkit.masking.mask) unless the caller asked for
`show_values`; line numbers, counts and codes are never personal data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported to draw a report, not to build or write one
    from rich.console import Console

REPORT_FORMAT = "tfkit.validation-report"
REPORT_VERSION = 1
SEVERITIES = ("error", "warning")


@dataclass(frozen=True)
class Problem:
    """One kind of failure in one column (or table rule), with how many rows it hit and where.

    Attributes:
        code: stable machine name of the rule, e.g. "invalid_nino", "missing_column".
        title: short human name of the rule.
        severity: "error" (rows quarantined) or "warning" (rows kept; value blanked or note only).
        field: canonical schema field (or fields joined by "+" for table rules), None for file-level.
        column: the source column header the field was read from, None if absent or table-level.
        count: number of rows with this problem.
        lines: the first source line numbers (CSV physical lines, header = 1; sheet rows; Parquet rows).
        examples: the first distinct offending values, masked unless show_values was given.
        message: what is wrong and what to do about it.
    """

    code: str
    title: str
    severity: str
    field: str | None
    column: str | None
    count: int
    lines: tuple[int, ...] = ()
    examples: tuple[str, ...] = ()
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code, "title": self.title, "severity": self.severity, "field": self.field,
            "column": self.column, "count": self.count, "lines": list(self.lines),
            "examples": list(self.examples), "message": self.message,
        }


@dataclass(frozen=True)
class ValidationReport:
    """Everything a person or a machine needs to know about one validated file.

    rows_in == rows_valid + rows_quarantined always (checked when the report is made).
    """

    file: str
    schema: str
    schema_version: int
    format: str
    encoding: str | None
    sheet: str | None
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    blank_lines: int
    columns: dict[str, str]  # canonical field -> source header
    unmatched_columns: tuple[str, ...]  # source headers the schema does not know (ignored)
    absent_fields: tuple[str, ...]  # optional schema fields with no column (all null)
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    show_values: bool = False
    line_label: str = "line"
    header_is_data: bool = False  # the first line holds identifier-shaped values: the file has no header

    def __post_init__(self) -> None:
        if self.rows_in != self.rows_valid + self.rows_quarantined:
            raise AssertionError(
                f"row counts do not reconcile for {self.file}: {self.rows_in} in, "
                f"{self.rows_valid} valid + {self.rows_quarantined} quarantined"
            )

    @property
    def ok(self) -> bool:
        """True when no row was quarantined (warnings allowed)."""
        return self.rows_quarantined == 0

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON structure of one file's report (docs/validation-report.md)."""
        return {
            "file": self.file,
            "schema": {"name": self.schema, "version": self.schema_version},
            "source": {
                "format": self.format, "encoding": self.encoding, "sheet": self.sheet,
                "line_label": self.line_label, "blank_lines": self.blank_lines,
            },
            "valid": self.ok,
            "rows": {"in": self.rows_in, "valid": self.rows_valid, "quarantined": self.rows_quarantined},
            "columns": {
                "matched": dict(self.columns),
                "unmatched": list(self.unmatched_columns),
                "absent_optional": list(self.absent_fields),
                "header_is_data": self.header_is_data,
            },
            "values_shown": self.show_values,
            "problems": [p.to_dict() for p in self.problems],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(reports_to_dict([self]), ensure_ascii=False, **kwargs)

    def render(self, console: Console) -> None:
        """Print the report for a person: a one-line summary, then one table row per problem."""
        from rich.markup import escape
        from rich.table import Table
        from rich.text import Text

        state = "[green]valid[/]" if self.ok else "[red]rows failed[/]"
        console.print(
            f"[bold]{escape(self.file)}[/] ({escape(self.schema)} schema): {self.rows_in:,} rows, "
            f"{self.rows_valid:,} valid, {self.rows_quarantined:,} quarantined: {state}"
        )
        notes = []
        if self.blank_lines:
            notes.append(f"{self.blank_lines:,} blank line(s) skipped")
        if self.header_is_data:
            notes.append(f"the first {self.line_label} looks like data, not a header: it holds values shaped like "
                         "identifiers (shown masked); add the header row the schema expects (tfkit schemas show NAME)")
        elif self.unmatched_columns:
            notes.append("columns not in the schema (ignored): " + ", ".join(self.unmatched_columns))
        if self.absent_fields:
            notes.append("optional fields with no column: " + ", ".join(self.absent_fields))
        for note in notes:
            console.print(f"  {note}", markup=False)
        if not self.problems:
            return
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("severity")
        table.add_column("rule", no_wrap=True)
        table.add_column("column")
        table.add_column("rows", justify="right", no_wrap=True)
        table.add_column(f"first {self.line_label}s")
        table.add_column("examples" + ("" if self.show_values else " (masked)"))
        for p in self.problems:
            column = p.column if p.column and p.column == p.field else (
                f"{p.column} → {p.field}" if p.column else (p.field or "")
            )
            table.add_row(  # values and headers are data, never markup
                "[red]error[/]" if p.severity == "error" else "[yellow]warning[/]",
                p.code, Text(column), f"{p.count:,}", ", ".join(str(n) for n in p.lines),
                Text(", ".join(p.examples)),
            )
        console.print(table)
        for p in self.problems:
            console.print(f"  {p.code}: {p.message}", markup=False, highlight=False)


def reports_to_dict(reports: list[ValidationReport]) -> dict[str, Any]:
    """The top-level JSON document for one `tfkit validate` run over one or more files."""
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "valid": all(r.ok for r in reports),
        "summary": {
            "files": len(reports),
            "rows_in": sum(r.rows_in for r in reports),
            "rows_valid": sum(r.rows_valid for r in reports),
            "rows_quarantined": sum(r.rows_quarantined for r in reports),
        },
        "files": [r.to_dict() for r in reports],
    }
