"""Extract schemas and validation.

Public API (stable; other stages call these):

    load_schema(name_or_path) -> Schema        built-in name ("nis", "fpd", "police",
                                                "school_attendance", "dwp") or a TOML file path
    list_schemas() -> list[Schema]             the built-ins, by name
    schema_from_toml(text, file=...) -> Schema
    validate, validate_file, match_columns, code_columns, ValidationResult, ColumnMatch, RULES:
                                                the validation engine's, re-exported (tfkit.validation)

Schema: .name .title .version .fields (tuple[Field]) .rules .field(name) .field_names
        .headline_problems (Boolean flag fields) .group(name) .identifier_fields {field: kind}
        .personal_fields .polars_schema .to_dict()
ValidationResult: .valid (typed DataFrame + _source_line) .quarantine (raw text + _source_line +
        _reasons) .report (tfkit.validation.ValidationReport) .schema .write(dir, stem=None)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tfkit.errors import ConfigError
from tfkit.schemas.model import (
    FIELD_TYPES,
    HEADLINE_PROBLEM,
    RULE_TYPES,
    Field,
    Schema,
    TableRule,
    header_key,
    schema_from_file,
    schema_from_toml,
)

# The engine lives in tfkit.validation (it imports this package's model): loaded on first use.
_FROM_VALIDATION = {"RULES", "ColumnMatch", "ValidationResult", "code_columns", "match_columns", "validate"}


def __getattr__(name: str):
    if name in _FROM_VALIDATION:
        from tfkit.validation import engine

        value = getattr(engine, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfkit.schemas' has no attribute {name!r}")


__all__ = [
    "FIELD_TYPES", "HEADLINE_PROBLEM", "RULE_TYPES", "RULES", "ColumnMatch", "code_columns", "Field", "Schema", "TableRule",
    "ValidationResult", "builtin_schema_names", "header_key", "list_schemas", "load_schema", "match_columns",
    "schema_from_file", "schema_from_toml", "validate", "validate_file",
]


def builtin_schema_names() -> list[str]:
    """Names of the built-in schemas, sorted."""
    folder = resources.files("tfkit.schemas") / "builtin"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def _load_builtin(name: str) -> Schema:
    text = (resources.files("tfkit.schemas") / "builtin" / f"{name}.toml").read_text(encoding="utf-8")
    return schema_from_toml(text, file=f"builtin:{name}", source="builtin")


def load_schema(name_or_path: str | Path) -> Schema:
    """A built-in schema by name, or a schema TOML file by path (anything with a / or .toml).

    Raises ConfigError for an unknown name or a bad file (naming the file, the key and the fix).
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.endswith(".toml"):
        return schema_from_file(name_or_path)
    names = builtin_schema_names()
    if text in names:
        return _load_builtin(text)
    if Path(text).is_file():
        return schema_from_file(text)
    import difflib

    close = difflib.get_close_matches(text.lower(), names, n=1, cutoff=0.6)
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"unknown schema {text!r}",
        hint=f"{suggestion}built-in schemas: {', '.join(names)} (tfkit schemas list); or give the path to a .toml file",
    )


def list_schemas() -> list[Schema]:
    """The built-in schemas, sorted by name."""
    return [_load_builtin(n) for n in builtin_schema_names()]


def validate_file(path, schema: Schema | str, *, encoding: str | None = None, sheet: str | int | None = None,
                  show_values: bool = False):
    """read_table + validate in one call; `schema` may be a Schema or a name/path for load_schema."""
    from tfkit.validation.source import read_validated

    return read_validated(path, schema, encoding=encoding, sheet=sheet, show_values=show_values).result
