"""`tfkit pseudonymise` and `tfkit link-keys`: thin wrappers over tfkit.pseudonymise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import polars as pl
import typer
from rich.table import Table

from tfkit import console
from tfkit.commands.keys import AllowTestKeyOption, KeyOption
from tfkit.errors import InputFileError


def pseudonymise_command(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Extract file: CSV, .xlsx or Parquet.")],
    schema: Annotated[str, typer.Option("--schema", "-s", metavar="NAME|FILE", help="Built-in schema name or a schema .toml file.")],
    project: Annotated[str, typer.Option("--project", metavar="NAME", help="Project name: same key + project = same pseudonyms (e.g. nis).")],
    out: Annotated[Path, typer.Option("--out", help="Output Parquet file (written atomically, deterministic).")],
    key: KeyOption = None,
    allow_test_key: AllowTestKeyOption = False,
    policy: Annotated[Optional[Path], typer.Option("--policy", help="TOML policy file overriding the schema's built-in policy.")] = None,
    la_code: Annotated[Optional[str], typer.Option("--la-code", metavar="GSS", help="GSS code of the LA, when the input has no la_code column.")] = None,
    quarantine: Annotated[Optional[Path], typer.Option("--quarantine", metavar="DIR", help="Set invalid rows aside in DIR (raw values: keep DIR apart from outputs). Without it, any invalid row stops the run.")] = None,
    encoding: Annotated[Optional[str], typer.Option("--encoding", metavar="ENCODING", help="CSV text encoding (default: detect).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Validate an extract and replace its identifiers by keyed pseudonyms, as the policy says."""
    from tfkit.pseudonymise import load_key_file, load_policy
    from tfkit.pseudonymise.files import pseudonymise_file
    from tfkit.pseudonymise.policy import builtin_policy_names

    if not input_path.is_file():
        raise InputFileError("file not found", file=input_path, hint="check the path and the file name")
    master = load_key_file(key, allow_test_key=allow_test_key)
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


def link_keys_command(
    a: Annotated[Path, typer.Argument(metavar="A", help="Pseudonymised extract (Parquet) with mk_ columns.")],
    b: Annotated[Path, typer.Argument(metavar="B", help="Pseudonymised extract (Parquet) with mk_ columns.")],
    out: Annotated[Path, typer.Option("--out", help="Pairs Parquet: a_row, b_row, a_id, b_id, match_key.")],
    keys: Annotated[Optional[str], typer.Option("--keys", metavar="KEY,KEY", help="Comma-separated match-key names in the order to try (default: the documented order).")] = None,
    one_to_many: Annotated[bool, typer.Option("--one-to-many", help="B holds several records per person (e.g. police): a key unique in A pairs with every B record holding it.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print per-key counts as JSON.")] = False,
) -> None:
    """Link two pseudonymised extracts on hashed match keys, hierarchically; report pairs per key."""
    from tfkit.parquet import write_parquet
    from tfkit.pseudonymise import link_on_match_keys

    frames = []
    for p in (a, b):
        if not p.is_file():
            raise InputFileError("file not found", file=p)
        if out.resolve() == p.resolve():
            raise InputFileError("the output would overwrite the input", file=out, hint="choose another --out")
        try:
            frames.append(pl.read_parquet(p))
        except Exception:  # pyarrow/polars raise several types for junk
            raise InputFileError("not a readable Parquet file", file=p,
                                 hint="link-keys takes the output of tfkit pseudonymise") from None
    names = [k.strip() for k in keys.split(",") if k.strip()] if keys else None
    pairs, counts = link_on_match_keys(frames[0], frames[1], names, one_to_many=one_to_many)
    write_parquet(pairs, out, statistics=["a_row", "b_row", "match_key"])
    result = {"a": str(a), "b": str(b), "out": str(out), "one_to_many": one_to_many,
              "rows_a": frames[0].height, "rows_b": frames[1].height, "pairs": pairs.height,
              "keys": [c.as_dict() for c in counts]}
    console.log("linked", "", a=str(a), b=str(b), out=str(out), pairs=pairs.height)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if console.MODE.quiet or console.MODE.log_format == "json":
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for heading in ("match key", "offered A", "offered B", "pairs", "ambiguous values"):
        table.add_column(heading, justify="left" if heading == "match key" else "right")
    for c in counts:
        table.add_row(c.match_key, f"{c.offered_a:,}", f"{c.offered_b:,}", f"{c.pairs:,}", f"{c.ambiguous_values:,}")
    out_console = console.stdout_console()
    out_console.print(table)
    out_console.print(f"{pairs.height:,} pairs written to {out}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("pseudonymise")(pseudonymise_command)
    app.command("link-keys")(link_keys_command)
