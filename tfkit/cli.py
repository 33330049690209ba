"""The `tfkit` command line: a thin skin over the library.

Each area's commands live in `tfkit/commands/<area>.py` and register themselves here. This module
owns only the global options and the mapping from typed errors to exit codes (see tfkit.errors).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import enum

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from tfkit import __version__, console
from tfkit.errors import EXIT_INTERNAL, TfkitError


class TfkitGroup(TyperGroup):
    """Root group: every TfkitError becomes one clear message on stderr and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TfkitError as err:
            report_error(err)
            raise typer.Exit(err.exit_code) from None
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except BrokenPipeError:
            # The reader went away (`tfkit ... | head`): stop quietly, as Unix tools do on SIGPIPE.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(141) from None
        except KeyboardInterrupt:
            console.log("interrupted", "interrupted", level="error")
            raise typer.Exit(130) from None
        except Exception as err:  # a bug in tfkit, not a user mistake
            if os.environ.get("TFKIT_DEBUG"):
                raise
            console.log(
                "internal_error",
                f"internal error: {type(err).__name__}: {err}\n"
                "  this is a bug in tfkit; rerun with TFKIT_DEBUG=1 for the traceback and report it",
                level="error",
                error_type=type(err).__name__,
            )
            raise typer.Exit(EXIT_INTERNAL) from None


def report_error(err: TfkitError) -> None:
    fields = {
        k: str(v) for k, v in
        {"file": err.file, "row": err.row, "column": err.column, "hint": err.hint}.items()
        if v is not None
    }
    console.log(
        "error", f"error: {err}", level="error",
        error_type=type(err).__name__, error=err.message, exit_code=err.exit_code, **fields,
    )


app = typer.Typer(
    cls=TfkitGroup,
    no_args_is_help=True,
    add_completion=False,
    # Rich tracebacks would print local variables, keys among them: never.
    pretty_exceptions_enable=False,
    help="Validate, link, pseudonymise and package Troubled Families / Supporting Families returns for ONS.",
)


class LogFormat(str, enum.Enum):
    text = "text"
    json = "json"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tfkit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing decorative: no progress bars, no chatter.")
    ] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option("--log-format", help="'text' for people, 'json' for one JSON object per log line on stderr."),
    ] = LogFormat.text,
) -> None:
    console.configure(quiet=quiet, log_format=log_format.value)


from tfkit.commands import demo, disclosure, extract, keys, link, pseudonymise, validate  # noqa: E402

for _area in (demo, validate, keys, pseudonymise, link, extract, disclosure):
    _area.register(app)


def main() -> None:
    app(prog_name="tfkit")


if __name__ == "__main__":
    sys.exit(main())
