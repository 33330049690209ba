"""The `tfkit` command line: a thin skin over the library.

Each area's commands live in `tfkit/commands/<area>.py` and register themselves here. This module
owns only the global options and the mapping from typed errors to exit codes (see tfkit.errors).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import enum
import errno
import importlib
from pathlib import Path

import typer
from typer._click.exceptions import ClickException
from typer.core import TyperGroup
from typer.exceptions import TyperException

from tfkit import __version__, console
from tfkit.commands import options  # how every command's help shows its parameters, and flows
from tfkit.errors import EXIT_INTERNAL, EXIT_USAGE, Terminated, TfkitError, UsageError, os_error_of


# Each command's area module (tfkit/commands/<area>.py), in --help order. An area is imported when
# one of its commands runs (or --help lists them all): `tfkit validate` need not load the linkage,
# disclosure and cryptography code first.
COMMAND_AREAS = {
    "demo-data": "demo",
    "validate": "validate", "schemas": "validate",
    "keys": "keys",
    "pseudonymise": "pseudonymise", "link-keys": "pseudonymise",
    "link": "link", "review": "review",
    "extract": "extract", "init": "extract", "verify": "extract", "audit": "extract", "retention": "extract",
    "disclosure": "disclosure", "summarise": "disclosure",
}


class TfkitGroup(TyperGroup):
    """Root group: every TfkitError becomes one clear message on stderr and its exit code.

    Commands are loaded from their area module on first use (see COMMAND_AREAS)."""

    def list_commands(self, ctx):
        return list(COMMAND_AREAS)

    def get_command(self, ctx, cmd_name):
        if cmd_name not in self.commands:
            # An unknown name loads every area, so "did you mean" can suggest any command.
            areas = [COMMAND_AREAS[cmd_name]] if cmd_name in COMMAND_AREAS else sorted(set(COMMAND_AREAS.values()))
            for area in areas:
                self._load_area(area)
        return super().get_command(ctx, cmd_name)

    def _load_area(self, area: str) -> None:
        module = importlib.import_module(f"tfkit.commands.{area}")
        holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        module.register(holder)
        for name, command in typer.main.get_group(holder).commands.items():
            options.reflow_help(command)
            self.commands.setdefault(name, command)

    def invoke(self, ctx):
        options.reset_json_target()
        try:
            return super().invoke(ctx)
        except TfkitError as err:
            report_error(err)
            raise typer.Exit(err.exit_code) from None
        except ClickException as err:
            from tfkit.masking import hide_keys

            err.message = hide_keys(err.message)  # click quotes what was typed: a key pasted as a path
            if getattr(err, "option_name", None) in GLOBAL_OPTIONS:  # `tfkit extract --quiet`: say where it goes
                err.possibilities = None
                err.message = (f"{err.option_name} is an option of tfkit itself: put it before the command, "
                               f"e.g. tfkit {err.option_name}{' json' if err.option_name == '--log-format' else ''} "
                               f"{ctx.invoked_subcommand or 'COMMAND'} ...")
            # An unknown command fails before the root callback has set the mode: read the option.
            if getattr(ctx.params.get("log_format"), "value", None) != "json":
                raise
            console.configure(quiet=bool(ctx.params.get("quiet")), log_format="json")
            # Cron with --log-format json: a bad option is an error record like any other.
            message = err.format_message().strip() or "a command is needed (see --help)"  # bare group: help shown
            console.log("usage_error", f"error: {message}", level="error",
                        error_type="UsageError", error=message, exit_code=err.exit_code)
            raise typer.Exit(err.exit_code) from None
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except BrokenPipeError:
            # The reader went away (`tfkit ... | head`): stop quietly, as Unix tools do on SIGPIPE.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(141) from None
        except Terminated:
            console.log("terminated", "terminated (SIGTERM)", level="error")
            # --json FILE says so too: a stopped run never leaves the last run's {"ok": true} there
            options.write_failure_json(143, "Terminated", "terminated (SIGTERM): the run stopped and cleaned up")
            raise typer.Exit(143) from None
        except KeyboardInterrupt:
            console.log("interrupted", "interrupted", level="error")
            options.write_failure_json(130, "Interrupted", "interrupted (Ctrl-C): the run stopped and cleaned up")
            raise typer.Exit(130) from None
        except OSError as err:
            if os.environ.get("TFKIT_DEBUG"):
                raise
            # The file system refused a path the user gave (a folder where a file goes, a missing
            # or read-only folder, a full disk, an I/O error): the user must fix the path or the
            # machine; it is not a tfkit bug. tfkit's writers name the output (errors.writing).
            report_error(_os_error(os_error_of(err) or err))
            raise typer.Exit(EXIT_USAGE) from None
        except Exception as err:  # a bug in tfkit, not a user mistake
            if os.environ.get("TFKIT_DEBUG"):
                raise
            if (os_err := os_error_of(err)) is not None and os_err.errno in _OS_HINTS:
                # polars reports a full disk as ComputeError("... (os error 28)"): the machine, not tfkit
                report_error(_os_error(os_err))
                raise typer.Exit(EXIT_USAGE) from None
            # Not the exception's text: polars and pyarrow messages quote data values (identifiers).
            where = _tfkit_frame(err)
            options.write_failure_json(EXIT_INTERNAL, type(err).__name__, f"internal error at {where}")
            console.log(
                "internal_error",
                f"internal error: {type(err).__name__} at {where}\n"
                "  this is a bug in tfkit; rerun with TFKIT_DEBUG=1 for the traceback (it may show data "
                "values: keep it inside the LA) and report it",
                level="error",
                error_type=type(err).__name__,
                at=where,
            )
            raise typer.Exit(EXIT_INTERNAL) from None


def _tfkit_frame(err: BaseException) -> str:
    """The innermost traceback frame inside tfkit, as 'tfkit/x.py:123 in func'."""
    package = Path(__file__).resolve().parent
    where = "?"
    tb = err.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        file = Path(code.co_filename).resolve()
        if file.is_relative_to(package):
            where = f"tfkit/{file.relative_to(package).as_posix()}:{tb.tb_lineno} in {code.co_name}"
        tb = tb.tb_next
    return where


_OS_HINTS = {
    errno.EISDIR: "it is a folder: give a file path",
    errno.ENOTDIR: "part of the path is a file, not a folder",
    errno.ENOENT: "a folder on that path does not exist: create it or fix the path",
    errno.EEXIST: "something is already there (a file where a folder is needed?): choose another path",
    errno.EACCES: "this user may not write there: fix the permissions or choose another path",
    errno.EPERM: "this user may not write there: fix the permissions or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.ENOSPC: "the disk is full: free some space and rerun",
    errno.EDQUOT: "the disk quota is used up: free some space and rerun",
    errno.EIO: "the disk or network share failed to read or write: check it, then rerun",
    errno.EFBIG: "the file is too large for this file system: choose another output folder",
}


def _os_error(err: OSError) -> UsageError:
    # For a rename, filename is tfkit's temporary file and filename2 the path the user gave.
    target = err.filename2 if err.filename2 is not None else err.filename
    reason = err.strerror or (os.strerror(err.errno) if err.errno else "the operating system refused it")
    if target is None:  # an error from a library that names no file: say what it was, still exit 2
        return UsageError(f"{reason} (while reading or writing a file; the library did not say which)",
                          hint=_OS_HINTS.get(err.errno, "check the output folder, its free space and permissions"))
    return UsageError(reason, file=str(target), hint=_OS_HINTS.get(err.errno, "check the path and its permissions"))


def report_error(err: TfkitError) -> None:
    fields = {
        k: str(v) for k, v in
        {"file": err.file, "row": err.row, "column": err.column, "key": err.key, "hint": err.hint}.items()
        if v is not None
    }
    console.log(
        "error", f"error: {err}", level="error",
        error_type=type(err).__name__, error=err.message, exit_code=err.exit_code, **fields,
    )
    options.write_failure_json(err.exit_code, type(err).__name__, err.message, **fields)


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


GLOBAL_OPTIONS = ("--quiet", "-q", "--log-format", "--version")


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


def raise_on_sigterm() -> None:
    """SIGTERM becomes Terminated (a KeyboardInterrupt): Python's default would end the process at
    once, skipping the clean-up that keeps a stopped run's raw rows within retention."""
    import signal

    def terminated(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, terminated)


def main() -> None:
    raise_on_sigterm()
    stdout = _stdout_identity()
    try:
        app(prog_name="tfkit")
    except SystemExit as done:
        # rich (tables, and Typer's own help) meets a closed pipe by pointing stdout at /dev/null
        # and exiting 1, which tfkit uses for "the data failed a check". `tfkit ... | head` is no
        # failure: say 141 (128 + SIGPIPE), as a shell does and as the BrokenPipeError path above.
        if done.code == 1 and stdout is not None and _stdout_identity() not in (stdout, None) \
                and _stdout_identity() == _devnull_identity():
            raise SystemExit(141) from None
        raise


def _stdout_identity() -> tuple[int, int] | None:
    try:
        st = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real stdout (CliRunner, a closed stream)
        return None
    return st.st_dev, st.st_ino


def _devnull_identity() -> tuple[int, int]:
    st = os.stat(os.devnull)
    return st.st_dev, st.st_ino


if __name__ == "__main__":
    sys.exit(main())
