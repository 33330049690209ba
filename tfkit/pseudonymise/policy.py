"""Pseudonymisation policies: for each column, keep, hash, generalise or drop.

A policy is data (TOML), validated once here. Built-in defaults live in
`tfkit/pseudonymise/policies/<schema>.toml`; a user's file overrides them (same format, see
docs/pseudonymisation.md). A column of the input that the policy does not name is refused: an
identifier must never reach an output because someone forgot to list it.

    schema = "nis"
    match_keys = "default"            # "default", "none", or a list of match-key names

    [columns]
    person_id = "hash"
    forename = "drop"
    dob = "generalise:year_month"     # year_month | year | age_at:YYYY-MM-DD
    postcode = "generalise:district"  # sector | district | area
    "problem_*" = "keep"              # shell-style patterns; exact names win over patterns
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from tfkit import tomlfile
from tfkit.errors import ConfigError

# Canonical fields that identify a person on their own: a policy may never "keep" them.
DIRECT_IDENTIFIERS = frozenset({
    "forename", "surname", "dob", "postcode", "nino", "upn", "nhs_number", "person_id", "family_id", "record_id",
})

Action = Literal["keep", "hash", "generalise", "drop"]
ACTIONS: tuple[str, ...] = ("keep", "hash", "generalise", "drop")
DATE_GENERALISATIONS = ("year_month", "year", "age_at")
POSTCODE_GENERALISATIONS = ("sector", "district", "area")


@dataclass(frozen=True)
class ColumnRule:
    """What happens to one column. `to` and `reference_date` only for generalise."""

    action: Action
    to: str | None = None
    reference_date: dt.date | None = None

    @property
    def text(self) -> str:
        if self.action != "generalise":
            return self.action
        if self.to == "age_at":
            return f"generalise:age_at:{self.reference_date.isoformat()}"
        return f"generalise:{self.to}"


@dataclass(frozen=True)
class Policy:
    """A validated policy. `rules` maps column names or shell patterns to rules."""

    name: str
    rules: dict[str, ColumnRule]
    match_keys: tuple[str, ...] | Literal["default"] = "default"
    source: str | None = None
    explicit_match_keys: bool = True  # False when a file did not set match_keys (an override keeps the base's)
    _patterns: tuple[str, ...] = field(default=(), repr=False)

    def rule_for(self, column: str) -> ColumnRule | None:
        if column in self.rules:
            return self.rules[column]
        for pattern in self._patterns:
            if fnmatch.fnmatchcase(column, pattern):
                return self.rules[pattern]
        return None

    def check_columns(self, columns: list[str]) -> None:
        """Refuse any input column the policy does not cover (no identifier leaks by omission), and any
        direct identifier the policy would keep in the clear (no leaks by a policy typo)."""
        kept = [c for c in columns if c in DIRECT_IDENTIFIERS and (r := self.rule_for(c)) is not None and r.action == "keep"]
        if kept:
            raise ConfigError(
                f"the pseudonymisation policy {self.name!r} keeps {kept[0]!r} in the clear, but it is a direct "
                "identifier: nothing identifiable may leave the LA",
                column=kept[0], file=self.source,
                hint=f'set {kept[0]} = "hash", "drop" or (dob, postcode) "generalise:..." in the policy',
            )
        missing = [c for c in columns if self.rule_for(c) is None]
        if missing:
            raise ConfigError(
                f"the pseudonymisation policy {self.name!r} says nothing about column "
                f"{missing[0]!r}" + (f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if len(missing) > 1 else ""),
                column=missing[0],
                file=self.source,
                hint='add it to [columns] of a --policy file as "keep", "hash", "generalise:..." or "drop"',
            )

    def merged(self, override: Policy) -> Policy:
        """This policy with `override`'s rules (and match keys, if it sets them) on top."""
        rules = {**self.rules, **override.rules}
        return Policy(
            name=override.name,
            rules=rules,
            match_keys=override.match_keys if override.explicit_match_keys else self.match_keys,
            source=override.source,
            _patterns=_patterns_of(rules),
        )

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "columns": {k: r.text for k, r in self.rules.items()},
            "match_keys": self.match_keys if self.match_keys == "default" else list(self.match_keys),
        }


def _patterns_of(rules: dict[str, ColumnRule]) -> tuple[str, ...]:
    return tuple(k for k in rules if any(ch in k for ch in "*?["))


def parse_rule(text: object, *, column: str, source: str | None) -> ColumnRule:
    def bad(why: str) -> ConfigError:
        return ConfigError(
            f"policy rule for {column!r} is {text!r}: {why}",
            file=source, column=column, key=f"columns.{column}",
            hint='use "keep", "hash", "drop", "generalise:year_month", "generalise:year", '
                 '"generalise:age_at:YYYY-MM-DD", "generalise:sector", "generalise:district" or "generalise:area"',
        )

    if not isinstance(text, str):
        raise bad("a rule must be a string")
    action, _, rest = text.strip().partition(":")
    if action not in ACTIONS:
        raise bad(f"unknown action {action!r}")
    if action != "generalise":
        if rest:
            raise bad(f"{action!r} takes no argument")
        return ColumnRule(action)  # type: ignore[arg-type]
    to, _, arg = rest.partition(":")
    if to == "age_at":
        try:
            return ColumnRule("generalise", "age_at", dt.date.fromisoformat(arg))
        except ValueError:
            raise bad("age_at needs a reference date, e.g. generalise:age_at:2020-03-31") from None
    if to not in DATE_GENERALISATIONS + POSTCODE_GENERALISATIONS or arg:
        raise bad(f"unknown generalisation {rest!r}")
    return ColumnRule("generalise", to)


def parse_policy(doc: tomlfile.Table | dict, *, name: str) -> Policy:
    if isinstance(doc, dict):  # a policy built in code
        doc = tomlfile.Table(doc, None)
    known = {"schema", "match_keys", "columns", "description"}
    extra = sorted(set(doc.data) - known)
    if extra:
        raise doc.fail(extra[0], f"unknown policy setting {extra[0]!r}",
                       f"a policy file has only: {', '.join(sorted(known))}")
    source = None if doc.file is None else str(doc.file)
    columns = doc.get("columns", dict, {}, hint="write [columns] with one column = rule per line")
    rules = {col: parse_rule(text, column=col, source=source) for col, text in columns.items()}
    mk = doc.get("match_keys", (str, list), "default")
    if mk == "none":
        mk = ()
    elif isinstance(mk, list) and all(isinstance(m, str) for m in mk):
        mk = tuple(m.removeprefix("mk_") for m in mk)
    elif mk != "default":
        raise doc.fail("match_keys", f"match_keys is {mk!r}",
                       'use "default", "none", or a list of match-key names (see docs/match-keys.md)')
    return Policy(name=str(doc.get("schema", str, name)), rules=rules, match_keys=mk, source=source,
                  explicit_match_keys="match_keys" in doc, _patterns=_patterns_of(rules))


def load_policy_file(path: str | Path) -> Policy:
    doc = tomlfile.read(path, what="policy file")
    return parse_policy(doc.table, name=Path(path).stem)


def builtin_policy_names() -> list[str]:
    root = resources.files("tfkit.pseudonymise") / "policies"
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


def builtin_policy(schema: str) -> Policy:
    root = resources.files("tfkit.pseudonymise") / "policies"
    res = root / f"{schema}.toml"
    if not res.is_file():
        raise ConfigError(
            f"no built-in pseudonymisation policy for schema {schema!r}",
            hint=f"built-in policies: {', '.join(builtin_policy_names())}; or pass --policy FILE",
        )
    return parse_policy(tomlfile.parse(res.read_text(encoding="utf-8"), file=f"built-in policy {schema}"),
                        name=schema)


def load_policy(schema: str | None = None, override: str | Path | None = None) -> Policy:
    """The built-in policy for `schema`, with an optional user TOML file on top.

    With no schema, the override file alone is the whole policy.
    """
    if schema is None and override is None:
        raise ConfigError("no pseudonymisation policy: the schema has no built-in one",
                          hint=f"pass --policy FILE (built-in policies: {', '.join(builtin_policy_names())})")
    base = builtin_policy(schema) if schema is not None else None
    if override is None:
        return base  # type: ignore[return-value]
    user = load_policy_file(override)
    return base.merged(user) if base is not None else user
