"""`tfkit disclosure check` and `tfkit summarise`: thin wrappers over tfkit.disclosure."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tfkit import console
from tfkit.commands.options import JsonOpt, check_json_target, emit, out_option
from tfkit.disclosure import check, open_person_table, summarise
from tfkit.disclosure.source import package_tables
from tfkit.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

disclosure_app = typer.Typer(help="Record-level disclosure risk of a package or table.", no_args_is_help=True)


@disclosure_app.command("check")
def check_command(
    source: Annotated[Path, typer.Argument(metavar="PACKAGE|FILE", help="A package directory, or a .parquet / .csv person table.", show_default=False)],
    qi: Annotated[Optional[list[str]], typer.Option("--qi", help="A quasi-identifier column (repeat for each). Default: a package's published quasi-identifiers (its manifest), else dob_year sex postcode_district.", metavar="COL")] = None,
    k: Annotated[Optional[int], typer.Option("--k", metavar="K", help="Smallest allowed equivalence class (default: a package's published k, else 10).", min=1)] = None,
    sensitive: Annotated[Optional[list[str]], typer.Option("--sensitive", help="A sensitive column for l-diversity (repeatable).", metavar="COL")] = None,
    l: Annotated[int, typer.Option("--l", metavar="L", help="Distinct sensitive values each class must hold.", min=1)] = 2,
    json_path: JsonOpt = None,
) -> None:
    """k-anonymity (and l-diversity) check of a table, or of every table with quasi-identifiers in a package:
    exit 0 when it passes, 1 when records of any table sit in classes smaller than k.

    \b
    Examples:
      tfkit disclosure check packages/E09000031_nis_2019-H2
      tfkit disclosure check people.parquet --qi dob_year --qi sex --k 5 --sensitive problem_crime --json -
    """
    check_json_target(json_path, inputs=[source], inside=source if source.is_dir() else None)
    tables = package_tables(open_person_table(source), tuple(qi) if qi else None, k)
    reports = {t.name: check(t.frame, t.quasi_identifiers, k=t.k, sensitive=sensitive or None, l=l) for t in tables}
    report = reports[tables[0].name]  # the person table (or the file given)
    failed = [name for name, r in reports.items() if not r.passed]

    def render(con: "Console") -> None:
        for name, r in reports.items():
            if len(reports) > 1:
                con.print(f"\n[bold]data/{name}.parquet[/bold]")
            r.render(con)

    payload = {"source": str(source), **report.to_dict()}
    if len(reports) > 1:
        payload["passed"] = not failed
        payload["tables"] = {name: r.to_dict() for name, r in reports.items()}
    emit(payload, json_path, event="disclosure_checked", render=render,
         log_fields={"source": str(source), "passed": not failed, "records": report.records,
                     "records_below_k": report.records_below_k, "records_at_risk": report.records_at_risk,
                     "k": tables[0].k, "tables": len(reports), "tables_failed": failed}, ok=not failed)
    if failed:
        console.log("disclosure_failed",
                    "disclosure check failed: " + "; ".join(
                        f"{name}: {reports[name].records_at_risk:,} of {reports[name].records:,} records at risk "
                        f"(k={reports[name].k})" for name in failed),
                    level="error", records_at_risk=sum(reports[n].records_at_risk for n in failed), tables_failed=failed)
        raise typer.Exit(1)


def summarise_command(
    packages: Annotated[list[Path], typer.Argument(metavar="PACKAGE...", help="Package directories (or .parquet person tables); one row per period.", show_default=False)],
    out: Annotated[Path, out_option("Folder for the CSV files, notes.txt and summaries.xlsx.")],
    threshold: Annotated[int, typer.Option("--threshold", help="Counts below this (zeros included) are suppressed.", min=1)] = 10,
    round_to: Annotated[Optional[int], typer.Option("--round", help="Round published counts to the nearest BASE (e.g. 5).", metavar="BASE", min=1)] = None,
    reference_date: Annotated[Optional[str], typer.Option("--reference-date", help="Date for ages (YYYY-MM-DD). Default: the end of the latest period in the manifests.", metavar="DATE")] = None,
    json_path: JsonOpt = None,
) -> None:
    """Publishable tables with small-cell and secondary suppression (and optional rounding).

    \b
    Examples:
      tfkit summarise packages/E09000031_nis_2019-H2 --out summaries
      tfkit summarise packages/*_nis_* -o summaries --threshold 10 --round 5 --json -
    """
    ref = None
    if reference_date is not None:
        try:
            ref = dt.date.fromisoformat(reference_date)
        except ValueError:
            raise UsageError(f"--reference-date {reference_date!r} is not a date", hint="use YYYY-MM-DD") from None
    seen: dict[Path, Path] = {}
    for p in packages:  # an overlapping shell glob would double every published count
        if p.resolve() in seen:
            raise UsageError(f"given twice (also as {seen[p.resolve()]}): its people would be counted twice",
                             file=p, hint="give each package once")
        seen[p.resolve()] = p
        if p.is_dir() and out.resolve().is_relative_to(p.resolve()):
            raise UsageError("--out is inside this package: the tables would break its signed contents",
                             file=p, hint="write the summaries to a folder of their own, e.g. --out summaries")
    check_json_target(json_path, inputs=packages)
    summary = summarise([open_person_table(p) for p in packages], threshold=threshold, rounding=round_to, reference_date=ref)
    written = summary.write(out)

    def render(con: "Console") -> None:
        from rich.table import Table

        table = Table(title=f"Summaries (threshold {threshold}" + (f", rounded to {round_to}" if round_to else "") + ")",
                      title_justify="left")
        for col, justify in (("table", "left"), ("cells", "right"), ("primary", "right"), ("secondary", "right")):
            table.add_column(col, justify=justify)
        for t in summary.tables:
            d = t.to_dict()
            table.add_row(t.name, str(d["cells"]), str(d["primary_suppressed"]), str(d["secondary_suppressed"]))
        con.print(table)
        for path in written:
            con.print(f"  wrote {path}", markup=False, highlight=False)
        if summary.demo:
            con.print("DEMO data: not for publication", style="yellow")

    emit(summary, json_path, event="summarised", render=render,
         log_fields={"out": str(out), "files": [str(p) for p in written], "threshold": threshold,
                     "rounding": round_to, "demo": summary.demo})


def register(app: typer.Typer) -> None:
    app.add_typer(disclosure_app, name="disclosure")
    app.command("summarise")(summarise_command)
