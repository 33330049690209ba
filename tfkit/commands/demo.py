"""`tfkit demo-data`: write the synthetic demo extracts (a thin skin over tfkit.demo)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tfkit.commands.options import JsonOpt, check_json_target, emit, out_option

if TYPE_CHECKING:
    from rich.console import Console

# The generator (numpy, name lists) is imported only when the command runs: every other command
# starts faster. tests/test_demo_generator.py checks these equal tfkit.demo's own defaults.
DEFAULT_SEED = 42
DEFAULT_LA_CODE = "E09000031"
DEFAULT_ERROR_RATE = 0.01


def demo_data(
    out: Annotated[Path, out_option("Directory to write the CSV files into (new or empty).")],
    people: Annotated[int, typer.Option("--people", metavar="N", help="Number of people in the programme cohort.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", min=0, metavar="N", help="Random seed: the same seed gives byte-identical files.")] = (
        DEFAULT_SEED
    ),
    la_code: Annotated[str, typer.Option("--la-code", metavar="GSS", help="GSS code of the local authority.")] = DEFAULT_LA_CODE,
    error_rate: Annotated[
        float,
        typer.Option("--error-rate", metavar="SHARE", help="Share of cohort rows with one invalid value (0 for a clean cohort)."),
    ] = DEFAULT_ERROR_RATE,
    noise_scale: Annotated[
        float,
        typer.Option("--noise-scale", metavar="FACTOR", help="Multiply every partner recording-error rate (0 for clean partner data)."),
    ] = 1.0,
    force: Annotated[bool, typer.Option("--force", help="Write into a non-empty directory, replacing demo files.")] = (
        False
    ),
    json_out: JsonOpt = None,
) -> None:
    """Write a synthetic cohort, partner extracts (police, school attendance, DWP), consent
    withdrawals and the ground truth as CSV files. Synthetic people only: never real data.

    \b
    Examples:
      tfkit demo-data --out extracts
      tfkit demo-data --out big --people 1000000 --seed 7 --json -
    """
    from tfkit import demo

    check_json_target(json_out)
    paths = demo.write_demo(
        out, people, seed=seed, la_code=la_code, error_rate=error_rate, noise_scale=noise_scale, force=force
    )
    rows = {name: path.read_bytes().count(b"\n") - 1 for name, path in paths.items()}
    summary = {
        "out": str(out), "people": people, "seed": seed, "la_code": la_code, "error_rate": error_rate,
        "noise_scale": noise_scale,
        "files": {name: {"path": str(path), "rows": rows[name]} for name, path in paths.items()},
    }

    def render(con: "Console") -> None:
        con.print(f"wrote synthetic demo data for {la_code} (seed {seed}) to {out}:\n"
                  + "\n".join(f"  {path.name:<26} {rows[name]:>10,} rows" for name, path in paths.items()),
                  markup=False)

    emit(summary, json_out, event="demo_data_written", render=render,
         log_fields={"out": str(out), "seed": seed, "la_code": la_code, "people": people, "rows": rows})


def register(app: typer.Typer) -> None:
    app.command("demo-data")(demo_data)
