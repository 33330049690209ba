"""`tfkit pseudonymise` and `tfkit link-keys`: thin wrappers over tfkit.pseudonymise."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tfkit.commands.options import (AllowTestKeyOpt, ConfigOpt, EngineOpt, JsonOpt, KeyOpt, SheetOpt,
                                   check_json_target, check_parquet_out, emit, out_option)

if TYPE_CHECKING:
    from rich.console import Console


def pseudonymise_command(
    input_path: Annotated[str, typer.Argument(metavar="INPUT", help="Extract file: CSV, .xlsx or Parquet (on the Spark engine: validated Parquet rows, a file or folder on any Hadoop path).")],
    schema: Annotated[str, typer.Option("--schema", "-s", metavar="NAME|FILE", help="Built-in schema name or a schema .toml file.")],
    project: Annotated[str, typer.Option("--project", metavar="NAME", help="Project name: same key + project = same pseudonyms (e.g. nis).")],
    out: Annotated[str, out_option("Output Parquet file (written atomically, deterministic; a folder of part files with Spark).", metavar="PATH")],
    key: KeyOpt = None,
    allow_test_key: AllowTestKeyOpt = False,
    policy: Annotated[Optional[Path], typer.Option("--policy", metavar="FILE", help="TOML policy file overriding the schema's built-in policy.")] = None,
    la_code: Annotated[Optional[str], typer.Option("--la-code", metavar="GSS", help="GSS code of the LA, when the input has no la_code column.")] = None,
    quarantine: Annotated[Optional[Path], typer.Option("--quarantine", metavar="DIR", help="Set invalid rows aside in DIR (raw values: keep DIR apart from outputs). Without it, any invalid row stops the run.")] = None,
    encoding: Annotated[Optional[str], typer.Option("--encoding", metavar="ENCODING", help="CSV text encoding (default: detect).")] = None,
    sheet: SheetOpt = None,
    engine: EngineOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = None,
) -> None:
    """Validate an extract and replace its identifiers by keyed pseudonyms, as the policy says.

    Without --quarantine any invalid row stops the run (exit 1); with it, invalid rows are set
    aside with their reasons in a private (0600) CSV and the valid rows are pseudonymised.

    \b
    Examples:
      tfkit pseudonymise cohort.csv --schema nis --project nis --key keys/master.key --out cohort.parquet
      tfkit pseudonymise police.xlsx -s police --project nis --quarantine checks/ -o police.parquet --json -
      tfkit pseudonymise valid/ -s nis --project nis -o pseudonymised/ --engine spark --config tfkit.toml
    """
    from tfkit.engine import choose_engine
    from tfkit.errors import UsageError
    from tfkit.pseudonymise import load_key_file, load_policy
    from tfkit.pseudonymise.files import pseudonymise_file
    from tfkit.pseudonymise.policy import builtin_policy_names

    settings = choose_engine(engine, config)
    if settings.is_spark and (quarantine is not None or encoding is not None or sheet is not None):
        raise UsageError("--quarantine, --encoding and --sheet are for the polars engine, which validates raw extracts",
                         hint="with --engine spark, give validated rows: tfkit validate FILE --schema S --quarantine DIR "
                              "writes them as <stem>.valid.parquet")
    if not settings.is_spark:  # on Spark the input may be any Hadoop path, read by the cluster
        _input_file(Path(input_path))
    check_parquet_out(out)
    check_json_target(json_out, inputs=[Path(input_path)])
    master = load_key_file(key, allow_test_key=allow_test_key)
    chosen = load_policy(schema if schema in builtin_policy_names() else None, policy)
    if settings.is_spark:
        from tfkit.engine.spark.pseudonymise import pseudonymise_job

        run = pseudonymise_job(str(input_path), str(out), key=master, project=project, policy=chosen,
                               la_code=la_code, settings=settings)
        data = run.to_dict()
        emit(data, json_out, event="pseudonymised", log_fields={k: v for k, v in data.items() if k != "columns"},
             render=lambda con: con.print(
                 f"wrote {run.output}: {run.rows_out:,} of {run.rows_in:,} rows on Spark, key {run.key_fingerprint}, "
                 f"project {run.project}", markup=False))
        return
    summary = pseudonymise_file(Path(input_path), schema=schema, key=master, project=project, out=Path(out),
                                policy=chosen, la_code=la_code, quarantine_dir=quarantine, encoding=encoding,
                                sheet=sheet)
    data = summary.to_dict()
    emit(data, json_out, event="pseudonymised", render=lambda con: _render_summary(con, summary),
         log_fields={k: v for k, v in data.items() if k not in ("columns", "match_key_coverage")})


def _input_file(path: Path) -> None:
    from tfkit.io import check_regular_file

    check_regular_file(path)  # missing, a folder, a FIFO (would hang), a device, a symlink loop


def _render_summary(out_console: "Console", summary) -> None:
    out_console.print(
        f"wrote {summary.output}: {summary.rows_out:,} of {summary.rows_in:,} rows "
        f"({summary.rows_quarantined:,} quarantined), key {summary.key_fingerprint}, project {summary.project}",
        markup=False)
    hashed = [c for c, a in summary.columns.items() if a == "hash"]
    out_console.print(f"  hashed: {', '.join(hashed) or '-'}", markup=False)
    out_console.print(f"  dropped: {', '.join(d for d in summary.dropped if not d.startswith('_')) or '-'}", markup=False)
    out_console.print(f"  match keys: {len(summary.match_key_coverage)}", markup=False)
    if summary.quarantine_file:
        out_console.print(f"  quarantined rows: {summary.quarantine_file}", markup=False)


def link_keys_command(
    a: Annotated[str, typer.Argument(metavar="A", help="Pseudonymised extract with mk_ columns: Parquet file or folder (with Spark, any Hadoop path).")],
    b: Annotated[str, typer.Argument(metavar="B", help="Pseudonymised extract with mk_ columns: Parquet file or folder (with Spark, any Hadoop path).")],
    out: Annotated[str, out_option("Pairs Parquet: a_row, b_row, a_id, b_id, match_key (a folder of part files with Spark).", metavar="PATH")],
    keys: Annotated[Optional[str], typer.Option("--keys", metavar="KEY,KEY", help="Comma-separated match-key names in the order to try (default: the documented order).")] = None,
    one_to_many: Annotated[bool, typer.Option("--one-to-many", help="B holds several records per person (e.g. police): a key unique in A pairs with every B record holding it.")] = False,
    engine: EngineOpt = None,
    config: ConfigOpt = None,
    json_out: JsonOpt = None,
) -> None:
    """Link two pseudonymised extracts on hashed match keys, hierarchically; report pairs per key.

    \b
    Examples:
      tfkit link-keys cohort.parquet school.parquet --out pairs.parquet
      tfkit link-keys cohort.parquet police.parquet --one-to-many -o pairs.parquet --json -
      tfkit link-keys la/ national/ -o pairs/ --engine spark --config tfkit.toml
    """
    from tfkit.engine import choose_engine
    from tfkit.pseudonymise.link_keys import link_keys_files

    check_parquet_out(out)
    check_json_target(json_out, inputs=[Path(a), Path(b)])
    names = [k.strip() for k in keys.split(",") if k.strip()] if keys else None
    run = link_keys_files(a, b, out, names, one_to_many=one_to_many, engine=choose_engine(engine, config))
    emit(run, json_out, event="linked", render=lambda con: _render_counts(con, run, out),
         log_fields={"a": str(a), "b": str(b), "out": str(out), "pairs": run.pairs, "engine": run.engine})


def _render_counts(out_console: "Console", run, out: str) -> None:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for heading in ("match key", "offered A", "offered B", "pairs", "ambiguous values"):
        table.add_column(heading, justify="left" if heading == "match key" else "right")
    for c in run.keys:
        table.add_row(c.match_key, f"{c.offered_a:,}", f"{c.offered_b:,}", f"{c.pairs:,}", f"{c.ambiguous_values:,}")
    out_console.print(table)
    out_console.print(f"{run.pairs:,} pairs written to {out}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("pseudonymise")(pseudonymise_command)
    app.command("link-keys")(link_keys_command)
