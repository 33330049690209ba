"""Typed errors. The CLI maps each to an exit code and one clear message; no tracebacks for users.

Exit codes (documented in the README):
  0  success
  1  the data failed a check (validation, verification, disclosure policy)
  2  a usage, configuration, key or input-file error: the user must fix something
  3  an internal error in tfkit (a bug: please report it)
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

EXIT_OK = 0
EXIT_DATA = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


@dataclass
class TfkitError(Exception):
    """Base class. `message` says what is wrong, `hint` what to do about it."""

    message: str
    hint: str | None = None
    file: str | Path | None = None
    row: int | None = None
    column: str | None = None
    key: str | None = None  # the dotted key in a TOML file (config, schema, model, policy)
    exit_code: int = field(default=EXIT_USAGE, init=False)

    def __post_init__(self) -> None:
        from tfkit.masking import shown_path

        self.file = shown_path(self.file)  # a key given where a path belongs is never echoed
        super().__init__(self.message)

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"line {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.key is not None:
            where.append(f"key {self.key!r}")
        text = (": ".join([", ".join(where), self.message]) if where else self.message)
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class UsageError(TfkitError):
    """Bad arguments or a combination of options that cannot work."""


class ConfigError(TfkitError):
    """A configuration or schema file is wrong: names the file, the key and the fix."""


class InputFileError(TfkitError):
    """An input file cannot be read as a table (missing, empty, ragged, wrong encoding, junk)."""


class KeyFileError(TfkitError):
    """A key file is missing, malformed, or readable by others."""


@dataclass
class DataCheckFailed(TfkitError):
    """The data was read but failed a check the user asked for (exit 1)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.exit_code = EXIT_DATA


# --------------------------------------------------------------------------- OS errors while writing

_ERRNO_IN_TEXT = re.compile(r"(?:os error |\[errno )(\d+)", re.IGNORECASE)


def os_error_of(err: BaseException) -> OSError | None:
    """`err` as an OSError with an errno where one can be read: pyarrow raises OSErrors whose errno
    is only in the text, and polars raises ComputeError("... (os error 28)") for a full disk."""
    if isinstance(err, OSError) and err.errno is not None:
        return err
    match = _ERRNO_IN_TEXT.search(str(err))
    if match is None:
        return err if isinstance(err, OSError) else None
    number = int(match.group(1))
    return OSError(number, os.strerror(number), getattr(err, "filename", None))


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Name `path` in any OS error raised while writing it (pyarrow's and polars' errors name no
    file, and fsync's never do): the CLI then says which output failed (exit 2), not a traceback."""
    try:
        yield
    except Exception as err:
        os_err = os_error_of(err)
        if os_err is None or (isinstance(err, OSError) and err.filename is not None):
            raise
        raise OSError(os_err.errno, os_err.strerror or str(err), str(path)) from err


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cron timeout, `kill`, a service stopping), raised like Ctrl-C so that every
    clean-up that runs on an interrupt runs on it too (no raw rows left outside retention); exit 143."""

