"""Reading tfkit's TOML files: the run config, schemas, linkage models, pseudonymisation policies and
match keys. One reader, so every file's mistakes are reported alike: a `ConfigError` naming the
file, the dotted key (`sources[2].path`, `fields.nino.type`) and what was expected, with a hint.

    doc = tomlfile.read(path, what="config file", missing_hint="make one with: tfkit init")
    la_code = doc.get("la_code", str)                  # required
    days = doc.table("retention", {"days"}).get("days", int, 1826)
    for src in doc.tables("sources"): ...
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfkit.errors import ConfigError

REQUIRED: Any = ...  # `get`'s default when a key must be present


def parse(text: str, *, file: str | Path | None = None) -> "Table":
    """TOML text as the top-level Table; syntax errors name the file and the line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        hint = "fix the TOML syntax at the line shown"
        if "'\\'" in str(err):  # a Windows path in double quotes
            hint = "write Windows paths in single quotes ('C:\\data\\cohort.csv') or with forward slashes"
        raise ConfigError(f"not valid TOML: {err}", file=file, hint=hint) from None
    return Table(data, file)


@dataclass(frozen=True)
class Document:
    """A TOML file read from disk: its top-level table and the SHA-256 of its bytes."""

    table: "Table"
    sha256: str


def read(path: str | Path, *, what: str = "file", missing_hint: str | None = None) -> Document:
    """Read and parse a UTF-8 TOML file (a BOM, as Notepad writes, is allowed)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"is a folder, not a {what}", file=path, hint=f"give the {what} itself (a .toml file)")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", file=path, hint=missing_hint or "check the path") from None
    except OSError as err:
        raise ConfigError(f"cannot read the {what}: {err.strerror}", file=path,
                          hint="check the path and its permissions") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"the {what} is not UTF-8 text", file=path, hint="save it as UTF-8") from None
    return Document(parse(text, file=path), hashlib.sha256(raw).hexdigest())


def _article(name: str) -> str:
    return ("an " if name[:1] in "aeiou" else "a ") + name


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {"str": "text", "dict": "table", "list": "list", "int": "whole number", "float": "number",
             "bool": "true or false", "date": "date"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(dict.fromkeys(names.get(k.__name__, k.__name__) for k in kinds))


class Table:
    """Typed access to one TOML table. Keys read are remembered, so `check_unknown()` can refuse
    the rest (a typo such as `requird = true` must not pass silently)."""

    def __init__(self, data: dict[str, Any], file: str | Path | None, prefix: str = "") -> None:
        self.data, self.file, self.prefix = data, file, prefix
        self.used: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def fail(self, name: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.file, key=self.key(name), hint=hint)

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = REQUIRED, hint: str | None = None) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is REQUIRED:
                raise self.fail(name, "required key is missing", hint or f"add `{name} = ...`")
            return default
        value = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and int not in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # `threshold = 1` means 1.0
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise self.fail(name, f"must be {_article(_kind_name(kind))}, not {type(value).__name__} {value!r}",
                            hint or f"set {name} to {_article(_kind_name(kind))}")
        return value

    def strings(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.get(name, list, None)
        if value is None:
            return default
        if not all(isinstance(v, str) for v in value):
            raise self.fail(name, "must be a list of text values", f'write it as {name} = ["...", "..."]')
        return tuple(value)

    def date(self, name: str) -> dt.date | None:
        value = self.get(name, (str, dt.date), None)
        if value is None or isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise self.fail(name, f"{value!r} is not a date", f'write it as {name} = "YYYY-MM-DD"') from None

    def path(self, name: str, base: Path, default: Any = REQUIRED) -> Path | None:
        """A path, relative to `base` (the file's folder) unless absolute; '' or absent -> default."""
        value = self.get(name, str, default)
        if value is None or value == "":
            return None
        if isinstance(value, Path):
            return value
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    def table(self, name: str, allowed: set[str] | None = None, *, hint: str | None = None) -> "Table":
        """The sub-table `name` (empty when absent); with `allowed`, other keys are refused now."""
        sub = Table(self.get(name, dict, {}, hint=hint or f"write it as [{self.key(name)}]"), self.file,
                    f"{self.key(name)}.")
        if allowed is not None:
            sub.unknown(allowed)
        return sub

    def tables(self, name: str, *, default: Any = (), hint: str | None = None) -> list["Table"]:
        """An array of tables (`[[name]]`), each named `name[i]` in errors (from 1)."""
        items = self.get(name, list, default, hint=hint or f"write each entry as [[{self.key(name)}]]")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise self.fail(name, f"entry {i + 1} must be a table", hint or f"write each entry as [[{self.key(name)}]]")
            out.append(Table(item, self.file, f"{self.key(name)}[{i + 1}]."))
        return out

    def unknown(self, allowed: set[str] | tuple[str, ...]) -> None:
        """Refuse keys outside `allowed`."""
        extra = sorted(set(self.data) - set(allowed))
        if extra:
            raise self.fail(extra[0], "unknown key", f"known keys here: {', '.join(sorted(allowed))}")

    def check_unknown(self) -> None:
        """Refuse keys that were never read."""
        extra = sorted(set(self.data) - self.used)
        if extra:
            known = ", ".join(sorted(self.used))
            raise self.fail(extra[0], "unknown key", f"known keys here: {known}" if known else None)
