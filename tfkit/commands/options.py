"""What every command shares: option sets, how the help shows them, and one way to emit a result.

An option means the same in every command:
  --json FILE|-   the result as JSON, to FILE or ('-') to stdout (then nothing else goes to stdout);
  --config/-c     the run's tfkit.toml;  --key  the master key file (or TFKIT_KEY_FILE);
  --out/-o        where the command writes.
`emit()` renders a result for a person (a table on stdout at a terminal or in a pipe), writes its
JSON and logs one record, honouring the global --quiet and --log-format json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterable, Optional

import typer
from typer import core as typer_core

from tfkit import console
from tfkit.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

KEY_ENV_VAR = "TFKIT_KEY_FILE"  # tfkit.keys.KEY_ENV_VAR (not imported here: it loads cryptography for every command)

JsonOpt = Annotated[
    Optional[str],
    typer.Option("--json", metavar="FILE|-", help="Write the result as JSON to FILE, or to stdout with '-'."),
]
ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", metavar="FILE", help="The run's tfkit.toml (make one with: tfkit init)."),
]
KeyOpt = Annotated[
    Optional[Path],
    typer.Option("--key", envvar=KEY_ENV_VAR, show_envvar=True, metavar="FILE",
                 help="Master key file (64 hex characters, mode 0600). Make one with: tfkit keys generate."),
]

# The commands that can run on Apache Spark (link-keys, link, pseudonymise); [engine] in --config sets
# the master and Spark settings.
EngineOpt = Annotated[
    Optional[str],
    typer.Option("--engine", metavar="polars|spark",
                 help="Engine: polars (embedded, the default) or spark (a cluster or local[*]; needs the spark "
                      "extra of tfkit and Java 17)."),
]


def _sheet(value: str | None) -> str | int | None:
    return int(value) if value is not None and value.isdigit() else value


# Every command that reads extracts (.xlsx among them): the worksheet, as [[sources]] sheet in a config.
SheetOpt = Annotated[
    Optional[str],
    typer.Option("--sheet", metavar="SHEET", callback=_sheet,
                 help="Worksheet name or 0-based index for .xlsx files (default: the first)."),
]

AllowTestKeyOpt = Annotated[
    bool,
    typer.Option("--allow-test-key", help="Accept a master key with obviously low entropy (a test vector, one byte "
                                          "repeated): for tests only, never for a real return."),
]


def out_option(help: str, metavar: str = "DIR") -> Any:
    """`--out/-o`, required, with the command's own description of what goes there."""
    return typer.Option("--out", "-o", metavar=metavar, help=help)


NOT_PARQUET = (".csv", ".tsv", ".txt", ".xlsx", ".xls", ".json", ".jsonl")


def check_parquet_out(out: str | Path) -> None:
    """An --out the command writes as Parquet must not be named as another format (a .csv holding
    Parquet would be opened by the next person as text)."""
    from tfkit.errors import UsageError

    suffix = Path(out).suffix.lower()
    if suffix in NOT_PARQUET:
        raise UsageError(f"--out {out} is named {suffix}, but this command writes Parquet",
                         hint=f"name it {Path(out).with_suffix('.parquet').name}")


def _check_fingerprint(value: str | None) -> str | None:
    from tfkit.keys import parse_fingerprint  # one rule, which never echoes a value shaped like a key

    return parse_fingerprint(value)


FingerprintOpt = Annotated[
    Optional[str],
    typer.Option("--expect-key-fingerprint", metavar="FINGERPRINT", callback=_check_fingerprint,
                 help="The master-key fingerprint the package must have been made with "
                      "(as printed by: tfkit keys fingerprint KEYFILE)."),
]


# --------------------------------------------------------------------------- emitting results


def wants_text(json_target: str | None) -> bool:
    """Human output on stdout: not when JSON goes there, nor with --quiet or --log-format json."""
    return json_target != "-" and not console.MODE.quiet and console.MODE.log_format == "text"


# The --json target a command accepted (check_json_target) and has not written yet: if the command
# then fails, the error is written there ({"ok": false, ...}), so cron never reads a stale success.
_PENDING_JSON: list[str] = []


def reset_json_target() -> None:
    _PENDING_JSON.clear()


def write_failure_json(exit_code: int, error_type: str, message: str, **fields: Any) -> None:
    """The failure as the command's JSON result, to the --json target it accepted and never wrote."""
    if not _PENDING_JSON:
        return
    target = _PENDING_JSON.pop()
    doc = {"ok": False, "exit_code": exit_code,
           "error": {"type": error_type, "message": message, **{k: v for k, v in fields.items() if v is not None}}}
    try:
        write_json(doc, target)
    except (OSError, UsageError):  # the error being reported matters more than its JSON copy
        pass


def check_json_target(json_target: str | None, *, inputs: Iterable[Path] = (), inside: Path | None = None) -> None:
    """Refuse a --json FILE that would overwrite an input or land inside a folder that must not
    change (a package being verified). Called before the work starts, so a mistake costs nothing.
    An accepted target receives the error as JSON if the command then fails (write_failure_json)."""
    reset_json_target()
    if json_target is None:
        return
    if json_target == "-":
        _PENDING_JSON.append(json_target)
        return
    target = Path(json_target)
    resolved = target.resolve()
    if inside is not None and resolved.is_relative_to(inside.resolve()):
        raise UsageError("--json points inside the package; writing there would change it after it is signed",
                         file=target, hint="write the report elsewhere, e.g. --json verify.json, or to stdout with --json -")
    if target.is_dir():
        raise UsageError("--json names a folder", file=target, hint="give a file name, e.g. report.json, or '-'")
    for path in inputs:
        if path.exists() and resolved == path.resolve():
            raise UsageError("--json would overwrite an input with the report", file=target,
                             hint="give --json a new file name, e.g. report.json")
    _PENDING_JSON.append(json_target)


def write_json(data: Any, json_target: str, *, private: bool = False) -> None:
    """JSON to stdout ('-') or to a file, written whole or not at all; `private` (it holds raw values,
    e.g. validate --show-values) makes the file 0600."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    reset_json_target()  # the command's own result: a later failure must not replace it
    if json_target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(json_target)
    if not target.parent.is_dir():  # never make folders the user did not ask for
        raise UsageError("the folder for --json does not exist", file=target,
                         hint="create the folder first, or choose another path")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def emit(data: Any, json_target: str | None = None, *, event: str,
         render: Callable[["Console"], None] | None = None, answer: str | None = None,
         log_fields: dict[str, Any] | None = None, private: bool = False, ok: bool = True) -> None:
    """Give a command's result to whoever asked: JSON (--json), one log record, and for a person
    either the rendered tables (`render`) or, for a command whose output is itself the answer (a
    fingerprint), `answer`, which is printed on stdout whatever --quiet says.

    A JSON object always says `ok` first, as a failed command's does ({"ok": false, ...}): pass
    ok=False when the command goes on to exit 1 on what it emitted (a check that found problems)."""
    payload = data.to_dict() if hasattr(data, "to_dict") else data
    if not isinstance(payload, dict):  # a bare list or value could not say "ok" first: a bug in the command
        raise TypeError(f"emit({event}): a result is a JSON object, not {type(payload).__name__}")
    # first, whether the result made it (verify's report) or not
    payload = {"ok": payload.get("ok", ok), **{k: v for k, v in payload.items() if k != "ok"}}
    if json_target is not None:
        write_json(payload, json_target, private=private)
    console.log(event, "", **(log_fields or {}))
    if json_target == "-":
        return
    if answer is not None:
        sys.stdout.write(answer + "\n")
    elif render is not None and wants_text(json_target):
        render(console.stdout_console())


# --------------------------------------------------------------------------- help display


def reflow_help(command: Any) -> None:
    """Join the wrapped lines of each paragraph of `command`'s help (and its subcommands'): Typer
    0.29's rich help keeps a docstring's single line breaks, which then show as ragged breaks.
    Paragraphs marked \\b (the examples) keep their lines."""
    import inspect

    if command.help:
        paragraphs = inspect.cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n")) for p in paragraphs)
    for sub in getattr(command, "commands", {}).values():
        reflow_help(sub)

# Typer 0.29 shows every parameter's Python type (<bool>, <list[Path]>, <str>) and lower-case
# argument names in braces ({package}). tfkit's help shows what a user types instead: flags take no
# value, options show their metavar (FILE, DIR, NAME|FILE), arguments are upper-case names.


def _display_type(self: Any, ctx: Any) -> str | None:
    if isinstance(self, typer_core.TyperArgument) or getattr(self, "is_flag", False):
        return None
    shown = _original_display_type(self, ctx)
    return shown.strip("<>").upper() if shown else shown


def _display_name_raw(self: Any) -> str:
    if self.metavar is not None:
        return self.metavar
    return self.name.upper() if isinstance(self, typer_core.TyperArgument) else self.name


def _usage_display_name(self: Any) -> str:
    name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
    return name + ("..." if self.nargs != 1 and not name.rstrip("]").endswith("...") else "")


_original_display_type = typer_core._TyperParameter.display_type
typer_core._TyperParameter.display_type = _display_type
typer_core._TyperParameter.display_name_raw = property(_display_name_raw)
typer_core.TyperArgument._usage_display_name = _usage_display_name

