"""`tfkit pseudonymise` and `tfkit link-keys`: thin wrappers over tfkit.pseudonymise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import polars as pl
import typer
from rich.table import Table

from tfkit import console
from tfkit.commands.keys import KeyOption
from tfkit.errors import InputFileError

# Shared by the commands that can run on Spark (pseudonymise, link-keys, link).
EngineOption = Annotated[Optional[str], typer.Option(
    "--engine", metavar="polars|spark",
    help="Engine: polars (embedded, the default) or spark (a cluster or local[*]; needs the spark extra of tfkit and Java 17).")]
EngineConfigOption = Annotated[Optional[Path], typer.Option(
    "--config", metavar="FILE", help="TOML file (e.g. tfkit.toml) whose engine table sets the engine, master and Spark settings.")]


def pseudonymise_command(
    input_path: Annotated[str, typer.Argument(metavar="INPUT", help="Extract file: CSV, .xlsx or Parquet (on the Spark engine: validated Parquet rows, a file or folder on any Hadoop path).")],
    schema: Annotated[str, typer.Option("--schema", "-s", metavar="NAME|FILE", help="Built-in schema name or a schema .toml file.")],
    project: Annotated[str, typer.Option("--project", metavar="NAME", help="Project name: same key + project = same pseudonyms (e.g. nis).")],
    out: Annotated[str, typer.Option("--out", metavar="PATH", help="Output Parquet file (written atomically, deterministic; a folder of part files with Spark).")],
    key: KeyOption = None,
    policy: Annotated[Optional[Path], typer.Option("--policy", help="TOML policy file overriding the schema's built-in policy.")] = None,
    la_code: Annotated[Optional[str], typer.Option("--la-code", metavar="GSS", help="GSS code of the LA, when the input has no la_code column.")] = None,
    quarantine: Annotated[Optional[Path], typer.Option("--quarantine", metavar="DIR", help="Set invalid rows aside in DIR (raw values: keep DIR apart from outputs). Without it, any invalid row stops the run.")] = None,
    encoding: Annotated[Optional[str], typer.Option("--encoding", metavar="ENCODING", help="CSV text encoding (default: detect).")] = None,
    engine: EngineOption = None,
    config: EngineConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Validate an extract and replace its identifiers by keyed pseudonyms, as the policy says."""
    from tfkit.pseudonymise import load_key_file, load_policy
    from tfkit.pseudonymise.files import pseudonymise_file
    from tfkit.pseudonymise.policy import builtin_policy_names
    from tfkit.engine import choose_engine

    settings = choose_engine(engine, config)
    if settings.is_spark:
        _pseudonymise_on_spark(input_path, schema, project, out, key, policy, la_code, quarantine, encoding,
                               settings, as_json)
        return
    input_path, out = Path(input_path), Path(out)
    if not input_path.is_file():
        raise InputFileError("file not found", file=input_path, hint="check the path and the file name")
    master = load_key_file(key)
    schema_name = schema if schema in builtin_policy_names() else None
    chosen = load_policy(schema_name, policy)
    summary = pseudonymise_file(input_path, schema=schema, key=master, project=project, out=out, policy=chosen,
                                la_code=la_code, quarantine_dir=quarantine, encoding=encoding)
    data = summary.to_dict()
    console.log("pseudonymised", "", **{k: v for k, v in data.items() if k not in ("columns", "match_key_coverage")})
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    if console.MODE.quiet or console.MODE.log_format == "json":
        return
    out_console = console.stdout_console()
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


def _pseudonymise_on_spark(input_path, schema, project, out, key, policy, la_code, quarantine, encoding,
                           settings, as_json) -> None:
    from tfkit.engine.spark.pseudonymise import pseudonymise_job
    from tfkit.errors import UsageError
    from tfkit.pseudonymise import load_key_file, load_policy
    from tfkit.pseudonymise.policy import builtin_policy_names

    if quarantine is not None or encoding is not None:
        raise UsageError("--quarantine and --encoding are for the polars engine, which validates raw extracts",
                         hint="with --engine spark, give validated rows: tfkit validate FILE --schema S --quarantine DIR "
                              "writes them as <stem>.valid.parquet")
    master = load_key_file(key)
    chosen = load_policy(schema if schema in builtin_policy_names() else None, policy)
    run = pseudonymise_job(str(input_path), str(out), key=master, project=project, policy=chosen, la_code=la_code,
                           settings=settings)
    data = run.to_dict()
    console.log("pseudonymised", "", **{k: v for k, v in data.items() if k != "columns"})
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    elif not (console.MODE.quiet or console.MODE.log_format == "json"):
        console.stdout_console().print(
            f"wrote {run.output}: {run.rows_out:,} of {run.rows_in:,} rows on Spark, key {run.key_fingerprint}, "
            f"project {run.project}", markup=False)


def link_keys_command(
    a: Annotated[str, typer.Argument(metavar="A", help="Pseudonymised extract with mk_ columns: Parquet file or folder (with Spark, any Hadoop path).")],
    b: Annotated[str, typer.Argument(metavar="B", help="Pseudonymised extract with mk_ columns: Parquet file or folder (with Spark, any Hadoop path).")],
    out: Annotated[str, typer.Option("--out", metavar="PATH", help="Pairs Parquet: a_row, b_row, a_id, b_id, match_key (a folder of part files with Spark).")],
    keys: Annotated[Optional[str], typer.Option("--keys", metavar="KEY,KEY", help="Comma-separated match-key names in the order to try (default: the documented order).")] = None,
    one_to_many: Annotated[bool, typer.Option("--one-to-many", help="B holds several records per person (e.g. police): a key unique in A pairs with every B record holding it.")] = False,
    engine: EngineOption = None,
    config: EngineConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print per-key counts as JSON.")] = False,
) -> None:
    """Link two pseudonymised extracts on hashed match keys, hierarchically; report pairs per key."""
    from tfkit.engine import choose_engine
    from tfkit.pseudonymise.link_keys import link_keys_files

    names = [k.strip() for k in keys.split(",") if k.strip()] if keys else None
    run = link_keys_files(a, b, out, names, one_to_many=one_to_many, engine=choose_engine(engine, config))
    result = run.to_dict()
    console.log("linked", "", a=str(a), b=str(b), out=str(out), pairs=run.pairs, engine=run.engine)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if console.MODE.quiet or console.MODE.log_format == "json":
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for heading in ("match key", "offered A", "offered B", "pairs", "ambiguous values"):
        table.add_column(heading, justify="left" if heading == "match key" else "right")
    for c in run.keys:
        table.add_row(c.match_key, f"{c.offered_a:,}", f"{c.offered_b:,}", f"{c.pairs:,}", f"{c.ambiguous_values:,}")
    out_console = console.stdout_console()
    out_console.print(table)
    out_console.print(f"{run.pairs:,} pairs written to {out}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("pseudonymise")(pseudonymise_command)
    app.command("link-keys")(link_keys_command)
