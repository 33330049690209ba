"""CLI commands for this area (see tfkit.cli). Filled in by the area's owner."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
