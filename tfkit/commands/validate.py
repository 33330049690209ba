"""`tfkit validate` and `tfkit schemas list|show`: thin wrappers over tfkit.validation and tfkit.schemas."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tfkit import console
from tfkit.commands.options import JsonOpt, SheetOpt, check_json_target, emit
from tfkit.schemas import Schema, list_schemas, load_schema

if TYPE_CHECKING:
    from rich.console import Console

schemas_app = typer.Typer(help="List and show extract schemas (built-in names or TOML files).", no_args_is_help=True)


def validate_command(
    extracts: Annotated[list[Path], typer.Argument(help="Extract files: CSV, .xlsx or Parquet.", show_default=False, metavar="EXTRACT...")],
    schema: Annotated[str, typer.Option("--schema", "-s", metavar="NAME|FILE", help="Built-in schema name (tfkit schemas list) or a schema .toml file.")],
    encoding: Annotated[Optional[str], typer.Option("--encoding", metavar="ENCODING", help="CSV text encoding (default: detect UTF-8, UTF-8 with BOM or Windows-1252).")] = None,
    sheet: SheetOpt = None,
    json_path: JsonOpt = None,
    quarantine: Annotated[Optional[Path], typer.Option("--quarantine", help="Write <stem>.valid.parquet and <stem>.quarantine.csv for each extract into DIR.", metavar="DIR")] = None,
    show_values: Annotated[bool, typer.Option("--show-values", help="Show raw example values in reports (masked by default).")] = False,
) -> None:
    """Check extracts against a schema: exit 0 when every row is valid, 1 when any row fails, 2 for a bad file.

    The JSON report is described in docs/validation-report.md. Values are masked unless --show-values.

    \b
    Examples:
      tfkit validate cohort.csv --schema nis
      tfkit validate police.xlsx --schema police --sheet Offences --quarantine checks/
      tfkit validate cohort.csv -s my-schema.toml --json report.json
    """
    from tfkit.validation.source import validate_files

    check_json_target(json_path, inputs=extracts)
    run = validate_files(extracts, schema, encoding=encoding, sheet=sheet, show_values=show_values,
                         quarantine=quarantine)
    for path, report, written in zip(extracts, run.reports, run.written):
        console.log(
            "validated", "", file=str(path), schema=run.schema.name, rows_in=report.rows_in,
            rows_valid=report.rows_valid, rows_quarantined=report.rows_quarantined,
            problems=[{"code": p.code, "field": p.field, "count": p.count} for p in report.problems],
            outputs=[str(p) for p in written],
        )

    def render(con: "Console") -> None:
        for report, written in zip(run.reports, run.written):
            report.render(con)
            for p in written:
                con.print(f"  wrote {p}", markup=False, highlight=False)

    emit(run, json_path, event="validate_done", render=render, private=show_values,
         log_fields={"files": len(run.reports), "failed": sum(not r.ok for r in run.reports)},
         ok=all(r.ok for r in run.reports))
    run.refuse_if_failed(quarantined=quarantine is not None)

@schemas_app.command("list")
def schemas_list(json_out: JsonOpt = None) -> None:
    """List the built-in schemas.

    \b
    Examples:
      tfkit schemas list
      tfkit schemas list --json -
    """
    schemas = list_schemas()
    data = {"schemas": [{"name": s.name, "title": s.title, "version": s.version, "fields": len(s.fields)}
                        for s in schemas]}

    def render(con: "Console") -> None:
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False)
        for heading in ("name", "version", "fields", "title"):
            table.add_column(heading)
        for s in schemas:
            table.add_row(s.name, str(s.version), str(len(s.fields)), s.title)
        con.print(table)

    emit(data, json_out, event="schemas_listed", render=render)


@schemas_app.command("show")
def schemas_show(
    name: Annotated[str, typer.Argument(metavar="NAME|FILE", help="Built-in schema name or a schema .toml file.")],
    json_out: JsonOpt = None,
) -> None:
    """Show a schema's fields, types, rules and column aliases.

    \b
    Examples:
      tfkit schemas show nis
      tfkit schemas show my-schema.toml --json -
    """
    schema = load_schema(name)
    emit(schema.to_dict(), json_out, event="schema_shown", render=lambda con: _render_schema(con, schema))


def _render_schema(out: "Console", schema: Schema) -> None:
    from rich.table import Table

    out.print(f"[bold]{schema.name}[/] v{schema.version}: {schema.title}")
    if schema.description:
        out.print(schema.description, markup=False)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for heading in ("field", "type", "required", "rule", "aliases"):
        table.add_column(heading)
    for f in schema.fields:
        rule = []
        if f.identifier:
            rule.append(f"{f.identifier} rule")
        if f.codes:
            rule.append("codes: " + ", ".join(f.codes))
        if f.pattern:
            rule.append(f"pattern {f.pattern}")
        if f.not_future:
            rule.append("not future")
        if f.earliest:
            rule.append(f"from {f.earliest}")
        if f.minimum is not None or f.maximum is not None:
            rule.append(f"range {f.minimum if f.minimum is not None else ''}..{f.maximum if f.maximum is not None else ''}")
        if f.unique:
            rule.append("unique")
        if f.group:
            rule.append(f"{f.group}: {f.title}" if f.title else f.group)
        if f.on_invalid == "null":
            rule.append("invalid -> blank")
        table.add_row(f.name, f.type, "yes" if f.required else "", "; ".join(rule), ", ".join(f.aliases), style=None)
    out.print(table, markup=False)
    if schema.rules:
        out.print("[bold]table rules[/]")
        for r in schema.rules:
            extra = f" (minimum {r.minimum or schema.headline_problem_minimum})" if r.type == "headline_problem_minimum" else ""
            out.print(f"  {r.type}: {', '.join(r.fields)}{extra} [{r.severity}]", markup=False)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
    app.add_typer(schemas_app, name="schemas")
