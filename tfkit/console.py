"""Terminal and log output: friendly at a terminal, quiet in cron, JSON where a machine reads it.

Library code calls `log(...)` and `progress(...)`; the CLI sets the mode once from the global
options (`--quiet`, `--log-format json`). Values passed to `log` must already be masked: this module
never sees raw identifiers or keys.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # rich is imported when something is drawn: a cron run that logs plain lines never loads it
    from rich.console import Console
    from rich.progress import Progress


@dataclass
class OutputMode:
    quiet: bool = False
    log_format: str = "text"  # "text" | "json"


MODE = OutputMode()
# While a progress bar is live, messages print through its console so they appear above the bar,
# and a nested progress() (linkage inside extract) adds its task to the same bar.
_LIVE_CONSOLE: Console | None = None
_LIVE_BAR: Progress | None = None


def configure(*, quiet: bool = False, log_format: str = "text") -> None:
    MODE.quiet = quiet
    MODE.log_format = log_format


def stderr_console() -> Console:
    # Created per call so CliRunner's captured streams are honoured.
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def interactive() -> bool:
    """Decorative output only at a terminal and when not --quiet or --log-format json."""
    return (not MODE.quiet) and MODE.log_format == "text" and sys.stderr.isatty()


def log(event: str, message: str = "", *, level: str = "info", **fields: Any) -> None:
    """One log record. JSON mode: one line on stderr. Text mode: the message, unless --quiet."""
    if MODE.log_format == "json":
        record = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "level": level,
            "event": event,
            **({"message": message} if message else {}),
            **fields,
        }
        sys.stderr.write(json.dumps(record, default=str, sort_keys=False) + "\n")
        sys.stderr.flush()
        return
    if MODE.quiet and level not in ("warning", "error"):
        return
    if message:
        if _LIVE_CONSOLE is None and not sys.stderr.isatty():  # no colour off a terminal: the plain line
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
            return
        style = {"warning": "yellow", "error": "bold red"}.get(level)
        (_LIVE_CONSOLE or stderr_console()).print(message, style=style, markup=False)


class _NoProgress:
    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        return 0

    def advance(self, task_id: int, advance: float = 1) -> None:
        pass

    def update(self, task_id: int, **_: Any) -> None:
        pass


@contextlib.contextmanager
def progress() -> Iterator[Progress | _NoProgress]:
    """A rich progress bar at a terminal; a silent stand-in in cron, with --quiet or JSON logs."""
    global _LIVE_CONSOLE, _LIVE_BAR
    if not interactive():
        yield _NoProgress()
        return
    if _LIVE_BAR is not None:  # nested: share the live display (rich allows one at a time)
        yield _LIVE_BAR
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr_console(),
        transient=True,
    )
    with bar:
        _LIVE_CONSOLE, _LIVE_BAR = bar.console, bar
        try:
            yield bar
        finally:
            _LIVE_CONSOLE, _LIVE_BAR = None, None
