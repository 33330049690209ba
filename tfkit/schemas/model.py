"""The typed schema object and its TOML loader.

A schema declares the canonical fields of one kind of extract (a NIS return, a police extract, ...):
each field's type, whether a value is required, its code list or identifier rule, the column names
LAs use for it (aliases), and table-level rules. Which headline problems or FPD measures exist is
data: a field joins a group (`group = "headline_problem"`), so a ten-outcome Supporting Families
schema is a TOML file, not a code change.

TOML layout (see tfkit/schemas/builtin/nis.toml for a full example)::

    [schema]
    name = "nis"                      # required; [a-z0-9_]+
    title = "..."                     # one line for `tfkit schemas list`
    version = 1                       # bump when the canonical output changes
    description = "..."
    headline_problem_minimum = 2      # optional: families should meet at least this many

    [fields.dob]                      # one table per canonical field, in output order
    type = "date"                     # string | integer | boolean | date | code
    required = true                   # a value must be present on every row (default false)
    aliases = ["Date of Birth", "DOB"]  # header names matched ignoring case, spaces and punctuation
    not_future = true                 # date: not after today
    earliest = "1900-01-01"           # date: not before
    # string: identifier = "nino" | "upn" | "nhs_number" | "postcode"; pattern = "regex"; max_length = n
    # code:   codes = ["M", "F", "U"]; code_aliases = { Male = "M" }   (matched ignoring case)
    # integer: minimum = 0; maximum = 100
    # boolean: true_values / false_values (default Y/YES/TRUE/T/1 and N/NO/FALSE/F/0, any case)
    # any: unique = true; personal = true|false (mask values in reports; default true for
    #      string/date/integer); on_invalid = "quarantine" (default) | "null" (blank the value, warn);
    #      group = "headline_problem" | "measure" | ...; title = "..."; description = "..."

    [[rules]]                         # table-level rules
    type = "unique"                   # unique | family_membership | date_order | headline_problem_minimum
    fields = ["la_code", "person_id"]
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from tfkit import tomlfile
from tfkit.errors import ConfigError
from tfkit.tomlfile import Table
from tfkit.identifiers import IDENTIFIER_KINDS

FIELD_TYPES = ("string", "integer", "boolean", "date", "code")
RULE_TYPES = ("unique", "family_membership", "date_order", "headline_problem_minimum")
HEADLINE_PROBLEM = "headline_problem"
DEFAULT_TRUE = ("Y", "YES", "TRUE", "T", "1")
DEFAULT_FALSE = ("N", "NO", "FALSE", "F", "0")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

OUTPUT_DTYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "integer": pl.Int64(),
    "boolean": pl.Boolean(),
    "date": pl.Date(),
    "code": pl.String(),
}


def header_key(name: str) -> str:
    """How headers and aliases are compared: case-, space- and punctuation-insensitive.

    'First Name', 'FIRST_NAME', 'first-name' and 'firstname' all give 'firstname'.
    """
    return re.sub(r"[\W_]+", "", name.casefold())


@dataclass(frozen=True)
class Field:
    """One canonical field. See the module docstring for the TOML keys."""

    name: str
    type: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    title: str | None = None
    description: str | None = None
    identifier: str | None = None
    pattern: str | None = None
    max_length: int | None = None
    codes: tuple[str, ...] = ()
    code_aliases: dict[str, str] = field(default_factory=dict)
    minimum: int | None = None
    maximum: int | None = None
    true_values: tuple[str, ...] = DEFAULT_TRUE
    false_values: tuple[str, ...] = DEFAULT_FALSE
    not_future: bool = False
    earliest: dt.date | None = None
    latest: dt.date | None = None
    unique: bool = False
    personal: bool = True
    on_invalid: str = "quarantine"
    group: str | None = None

    @property
    def dtype(self) -> pl.DataType:
        """The polars dtype of this field in the validated (typed) frame."""
        return OUTPUT_DTYPES[self.type]

    @property
    def code_mapping(self) -> dict[str, str]:
        """{header_key(code or alias): canonical code} for code fields."""
        pairs = [(c, c) for c in self.codes] + list(self.code_aliases.items())
        return {header_key(v): c for v, c in pairs}

    @property
    def header_keys(self) -> tuple[str, ...]:
        """The canonical name and every alias, as header_key() compares them."""
        return tuple(dict.fromkeys(header_key(n) for n in (self.name, *self.aliases)))


@dataclass(frozen=True)
class TableRule:
    """A table-level rule. `type` is one of RULE_TYPES; `fields` names the fields it uses.

    * unique: the combination of `fields` occurs once (e.g. la_code + person_id).
    * family_membership: fields = [person, family]: every person row has a family, and a person id
      belongs to one family only.
    * date_order: fields = [start, end]: end is not before start when both are present.
    * headline_problem_minimum: fields = [family]: each family meets at least `minimum` of the
      schema's headline problems (any member counts); a warning by default.
    """

    type: str
    fields: tuple[str, ...]
    minimum: int | None = None
    severity: str = "error"


@dataclass(frozen=True)
class Schema:
    """A typed extract schema. Load with tfkit.schemas.load_schema(name_or_path)."""

    name: str
    title: str
    version: int
    fields: tuple[Field, ...]
    rules: tuple[TableRule, ...] = ()
    description: str | None = None
    headline_problem_minimum: int | None = None
    source: str | None = None  # "builtin" or the file it came from

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def group(self, group: str) -> tuple[Field, ...]:
        """The fields of one group, in schema order (e.g. "headline_problem", "measure")."""
        return tuple(f for f in self.fields if f.group == group)

    @property
    def headline_problems(self) -> tuple[Field, ...]:
        """The headline-problem flag fields (Boolean), as the schema lists them."""
        return self.group(HEADLINE_PROBLEM)

    @property
    def identifier_fields(self) -> dict[str, str]:
        """{field name: identifier kind} for fields with an identifier rule."""
        return {f.name: f.identifier for f in self.fields if f.identifier}

    @property
    def personal_fields(self) -> tuple[str, ...]:
        """Fields whose values are masked in reports (names, dates of birth, identifiers, ids)."""
        return tuple(f.name for f in self.fields if f.personal)

    @property
    def polars_schema(self) -> pl.Schema:
        """The canonical typed frame's schema (without `_source_line`)."""
        return pl.Schema({f.name: f.dtype for f in self.fields})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (for `tfkit schemas show --json`)."""
        out: dict[str, Any] = {
            "name": self.name, "title": self.title, "version": self.version,
            "description": self.description, "source": self.source,
            "headline_problem_minimum": self.headline_problem_minimum,
            "fields": [], "rules": [],
        }
        for f in self.fields:
            d = {"name": f.name, "type": f.type, "required": f.required, "aliases": list(f.aliases)}
            for key in ("title", "identifier", "pattern", "max_length", "minimum", "maximum", "group"):
                if getattr(f, key) is not None:
                    d[key] = getattr(f, key)
            if f.codes:
                d["codes"] = list(f.codes)
            if f.code_aliases:
                d["code_aliases"] = dict(f.code_aliases)
            if f.type == "date":
                d["not_future"] = f.not_future
                d["earliest"] = f.earliest.isoformat() if f.earliest else None
            d.update(unique=f.unique, personal=f.personal, on_invalid=f.on_invalid)
            out["fields"].append(d)
        for r in self.rules:
            d = {"type": r.type, "fields": list(r.fields), "severity": r.severity}
            if r.minimum is not None:
                d["minimum"] = r.minimum
            out["rules"].append(d)
        return out


# --------------------------------------------------------------------------- loading


def _parse_field(file: str, name: str, table: Any) -> Field:
    if not isinstance(table, dict):
        raise ConfigError("must be a table", key=f"fields.{name}", hint=f"write it as [fields.{name}] with a type = line", file=file)
    if not _NAME_RE.match(name):
        raise ConfigError("field names must be lower-case letters, digits and _", key=f"fields.{name}", hint="rename the field, e.g. first_name", file=file)
    r = Table(table, file, f"fields.{name}.")
    ftype = r.get("type", str, None, hint=f"one of {', '.join(FIELD_TYPES)}")
    if ftype is None:
        raise r.fail("type", "is missing", f"add type = \"string\" (or {', '.join(FIELD_TYPES[1:])})")
    if ftype not in FIELD_TYPES:
        raise r.fail("type", f"unknown type {ftype!r}", f"use one of {', '.join(FIELD_TYPES)}")
    identifier = r.get("identifier", str, None)
    if identifier is not None:
        if identifier not in IDENTIFIER_KINDS:
            raise r.fail("identifier", f"unknown identifier rule {identifier!r}", f"use one of {', '.join(IDENTIFIER_KINDS)}")
        if ftype != "string":
            raise r.fail("identifier", f"needs type = \"string\", not {ftype!r}", 'set type = "string"')
    pattern = r.get("pattern", str, None)
    if pattern is not None:
        try:
            re.compile(pattern)
            pl.select(pl.lit("x").str.contains(pattern))
        except (re.error, pl.exceptions.PolarsError) as err:
            raise r.fail("pattern", f"is not a valid regular expression ({err})", "fix the pattern (Rust regex syntax)") from None
    codes = r.strings("codes")
    code_aliases = r.get("code_aliases", dict, {})
    if ftype == "code" and not codes:
        raise r.fail("codes", "is missing: a code field needs its code list", 'add codes = ["A", "B"]')
    keys: dict[str, str] = {}
    for value, target in [(c, c) for c in codes] + list(code_aliases.items()):
        if target not in codes:
            raise r.fail(f"code_aliases.{value}", f"maps to {target!r}, which is not in codes", f"use one of {list(codes)}")
        key = header_key(value)
        if keys.get(key, target) != target:
            raise r.fail(
                "codes", f"{value!r} and {keys[key]!r} look the same (codes match ignoring case and punctuation)",
                "make the codes and code aliases distinct",
            )
        keys[key] = target
    on_invalid = r.get("on_invalid", str, "quarantine")
    if on_invalid not in ("quarantine", "null"):
        raise r.fail("on_invalid", f"unknown action {on_invalid!r}", 'use "quarantine" or "null"')
    required = r.get("required", bool, False)
    if required and on_invalid == "null":
        raise r.fail("on_invalid", '"null" cannot apply to a required field', 'use on_invalid = "quarantine" or required = false')
    earliest, latest = r.date("earliest"), r.date("latest")
    f = Field(
        name=name, type=ftype, required=required,
        aliases=r.strings("aliases"), title=r.get("title", str, None), description=r.get("description", str, None),
        identifier=identifier, pattern=pattern, max_length=r.get("max_length", int, None),
        codes=codes, code_aliases=dict(code_aliases),
        minimum=r.get("minimum", int, None), maximum=r.get("maximum", int, None),
        true_values=tuple(v.upper() for v in r.strings("true_values")) or DEFAULT_TRUE,
        false_values=tuple(v.upper() for v in r.strings("false_values")) or DEFAULT_FALSE,
        not_future=r.get("not_future", bool, False), earliest=earliest, latest=latest,
        unique=r.get("unique", bool, False),
        personal=r.get("personal", bool, ftype in ("string", "date", "integer")),
        on_invalid=on_invalid, group=r.get("group", str, None),
    )
    r.check_unknown()
    type_specific = {
        "identifier": "string", "pattern": "string", "max_length": "string", "codes": "code", "code_aliases": "code",
        "minimum": "integer", "maximum": "integer", "true_values": "boolean", "false_values": "boolean",
        "not_future": "date", "earliest": "date", "latest": "date",
    }
    for key, needs in type_specific.items():
        if key in table and ftype != needs:
            raise r.fail(key, f"applies to {needs} fields, but this field is {ftype}", f"remove {key} or set type = \"{needs}\"")
    if f.group == HEADLINE_PROBLEM and ftype != "boolean":
        raise r.fail("group", "headline problems must be boolean flags", 'set type = "boolean"')
    if set(f.true_values) & set(f.false_values):
        raise r.fail("true_values", "shares values with false_values", "make the two lists disjoint")
    return f


def _parse_rule(r: Table, fields: dict[str, Field]) -> TableRule:
    rtype = r.get("type", str, None)
    if rtype not in RULE_TYPES:
        raise r.fail("type", f"unknown rule type {rtype!r}", f"use one of {', '.join(RULE_TYPES)}")
    names = r.strings("fields")
    expected = {"unique": None, "family_membership": 2, "date_order": 2, "headline_problem_minimum": 1}[rtype]
    if not names or expected is not None and len(names) != expected:
        shape = {"family_membership": '["person_id", "family_id"]', "date_order": '["start", "end"]',
                 "headline_problem_minimum": '["family_id"]', "unique": '["person_id"]'}[rtype]
        raise r.fail("fields", f"a {rtype} rule needs {expected or 'one or more'} field name(s)", f"write fields = {shape}")
    for n in names:
        if n not in fields:
            raise r.fail("fields", f"names {n!r}, which is not a field of this schema", f"use one of {', '.join(fields)}")
    if rtype == "date_order" and any(fields[n].type != "date" for n in names):
        raise r.fail("fields", "date_order compares date fields only", "name two fields with type = \"date\"")
    severity = r.get("severity", str, "warning" if rtype == "headline_problem_minimum" else "error")
    if severity not in ("error", "warning"):
        raise r.fail("severity", f"unknown severity {severity!r}", 'use "error" (quarantine rows) or "warning" (report only)')
    minimum = r.get("minimum", int, None)
    r.check_unknown()
    return TableRule(type=rtype, fields=names, minimum=minimum, severity=severity)


def schema_from_toml(text: str, *, file: str = "<schema>", source: str | None = None) -> Schema:
    """Parse schema TOML text. Raises ConfigError naming the file, the key and the fix."""
    return _schema(tomlfile.parse(text, file=file), source=source or file)


def _schema(doc: Table, *, source: str) -> Schema:
    file = doc.file
    extra = sorted(set(doc.data) - {"schema", "fields", "rules"})
    if extra:
        raise doc.fail(extra[0], "is not a known section", "use [schema], [fields.NAME] and [[rules]]")
    head = doc.table("schema")
    name = head.get("name", str, None)
    if not name or not _NAME_RE.match(name):
        raise head.fail("name", "is missing or not lower-case letters, digits and _", 'add name = "my_extract" under [schema]')
    title = head.get("title", str, name)
    version = head.get("version", int, 1)
    description = head.get("description", str, None)
    minimum = head.get("headline_problem_minimum", int, None)
    head.check_unknown()
    raw_fields = doc.get("fields", dict, {}, hint="add at least one [fields.NAME] table")
    if not raw_fields:
        raise doc.fail("fields", "the schema declares no fields", "add at least one [fields.NAME] table")
    fields = {n: _parse_field(file, n, t) for n, t in raw_fields.items()}
    seen: dict[str, str] = {}
    for f in fields.values():
        for key in f.header_keys:
            if key in seen and seen[key] != f.name:
                raise ConfigError(
                    f"{key!r} also matches field {seen[key]!r}", key=f"fields.{f.name}.aliases",
                    hint="headers are matched ignoring case, spaces and punctuation: give each field distinct aliases",
                    file=file,
                )
            seen[key] = f.name
    rules = tuple(_parse_rule(t, fields) for t in doc.tables("rules", hint="write each rule as a [[rules]] table"))
    if minimum is not None and not any(f.group == HEADLINE_PROBLEM for f in fields.values()):
        raise head.fail("headline_problem_minimum", "is set but no field has group = \"headline_problem\"", "mark the problem flags with group = \"headline_problem\"")
    for r in rules:
        if r.type == "headline_problem_minimum" and (r.minimum or minimum) is None:
            raise doc.fail("rules", "a headline_problem_minimum rule needs a minimum",
                           "set minimum = 2 in the rule or headline_problem_minimum under [schema]")
    return Schema(
        name=name, title=title, version=version, fields=tuple(fields.values()), rules=rules,
        description=description, headline_problem_minimum=minimum, source=source,
    )


def schema_from_file(path: str | Path) -> Schema:
    doc = tomlfile.read(path, what="schema file", missing_hint="check the path, or use a built-in name (tfkit schemas list)")
    return _schema(doc.table, source=str(path))
