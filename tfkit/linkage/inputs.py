"""Reading the sources of a link job: through a schema (validated, canonical) or as raw tables + a map.

Rows a schema quarantines are not linked; they are counted in `SourceTable.excluded` so the job's
counts reconcile (records in = records linked + records excluded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tfkit.errors import InputFileError, UsageError


@dataclass
class SourceTable:
    name: str
    path: Path
    frame: pl.DataFrame
    rows_read: int
    excluded: int = 0
    schema: str | None = None
    lines: pl.Series | None = None  # each row's line (or sheet row) in its file, for messages


def parse_map(items: list[str] | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items or []:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise UsageError(f"--map {item!r} is not old=new", hint="e.g. --map 'First Name=forename'")
        mapping[old.strip()] = new.strip()
    return mapping


def source_names(paths: list[Path]) -> list[str]:
    names: list[str] = []
    for p in paths:
        name, k = p.stem, 2
        while name in names:
            name, k = f"{p.stem}_{k}", k + 1
        names.append(name)
    return names


def read_sources(paths: list[Path], *, schemas: list[str] | None = None, mapping: dict[str, str] | None = None,
                 keep: tuple[str, ...] = (), sheet: str | int | None = None) -> list[SourceTable]:
    """One SourceTable per path. `schemas`: none, one for every file, or one per file; `sheet`: the
    worksheet of each .xlsx file (default: its first)."""
    from tfkit.io import read_table

    schemas = schemas or []
    if len(schemas) not in (0, 1, len(paths)):
        raise UsageError(f"{len(schemas)} --schema options for {len(paths)} files",
                         hint="give one --schema for all files, or one per file in the same order")
    mapping = mapping or {}
    seen: dict[Path, Path] = {}
    for path in paths:
        try:
            key = Path(path).resolve()
        except (OSError, RuntimeError):  # a symlink loop: the reader refuses it, naming the file
            continue
        if key in seen and Path(path).exists():
            same = seen[key]
            raise UsageError(f"{path} is given twice (also as {same}): a file linked with itself makes every "
                             "record its own match", file=path,
                             hint="to find duplicates within one file, give it once with --mode dedupe")
        seen[key] = Path(path)
    out = []
    used: set[str] = set()
    for i, (path, name) in enumerate(zip(paths, source_names(paths))):
        schema = schemas[i] if len(schemas) == len(paths) else (schemas[0] if schemas else None)
        if schema:
            from tfkit.validation.source import read_validated

            checked = read_validated(path, schema, keep_raw=keep, sheet=sheet)
            frame, rows_read = checked.valid, checked.rows_in
            # Extra columns the job asked to keep (a truth column) come from the raw rows, by line.
            if checked.kept_raw is not None:
                extra = checked.kept_raw.select("_source_line", *[c for c in checked.kept_raw.columns[1:]
                                                                  if c not in frame.columns])
                frame = frame.join(extra, on="_source_line", how="left", maintain_order="left")
            excluded = checked.quarantine.height
            # Otherwise the linker reports "the source has no records", hiding that the schema (often
            # one --schema given for every file) fits none of them.
            checked.refuse_if_columns_missing(name)
            checked.refuse_if_none_valid(f"check --schema suits this file (one per file, in order); "
                                         f"see why with: tfkit validate {path} --schema {schema}")
        else:
            raw = read_table(path, sheet=sheet)  # refuses a missing path, a folder, a FIFO or a symlink loop first
            frame, excluded, rows_read = raw.frame, 0, raw.n_rows
        present = [old for old in mapping if old in frame.columns]
        used.update(present)
        check_map_targets(frame.columns, {old: mapping[old] for old in present}, path)
        frame = frame.rename({old: mapping[old] for old in present})
        lines = frame.get_column("_source_line") if "_source_line" in frame.columns else None
        out.append(SourceTable(name, path, frame.drop("_source_line", strict=False), rows_read, excluded, schema, lines))
    unused = [old for old in mapping if old not in used]
    if unused:
        raise unknown_map_column(unused[0], schemas)
    return out


def check_map_targets(columns: list[str], renames: dict[str, str], path) -> None:
    """Refuse a --map that would leave two columns with one name (`--map forename=surname` on a
    file that has a surname): which one to link on would be a guess."""
    after = [renames.get(c, c) for c in columns]
    for old, new in renames.items():
        if after.count(new) > 1:
            raise UsageError(f"--map '{old}={new}' would give {path} two columns named {new!r}", file=path,
                             column=new, hint=f"map {old!r} to a name the file does not already have, or "
                                              f"map its own {new!r} column away first (--map '{new}=...')")


def unknown_map_column(column: str, schemas: list[str] | None) -> InputFileError:
    """--map names a column no input has. Through a schema the headers are already the schema's
    canonical names, so the file's first line is not what --map sees."""
    if schemas:
        hint = ("with --schema, columns have the schema's names (see: tfkit schemas show "
                f"{schemas[0]}); --map renames those, so map the schema's name, or drop --map")
    else:
        hint = "check the spelling and case of the column header (see the file's first line)"
    return InputFileError(f"--map names column {column!r}, which no input file has", column=column, hint=hint)


def check_record_ids(tables: list[SourceTable], clean: tuple[str, ...] | list[str] = ()) -> None:
    """Records sharing an id within a source: pairs and clusters name records by id, so two of them
    cannot be told apart in the outputs. A clean source (one record per person) is refused (exit 2);
    another source gets a warning. Both name the file, the column and the first lines (never the ids)."""
    from tfkit import console
    from tfkit.linkage.linker import ID_COLUMNS

    for t in tables:
        column = next((c for c in ID_COLUMNS if c in t.frame.columns), None)
        if column is None:
            continue  # the linker says which column it needs
        repeated = t.frame.select(pl.col(column).is_duplicated() & pl.col(column).is_not_null()).to_series()
        count = int(repeated.sum())
        if not count:
            continue
        lines = (t.lines.filter(repeated) if t.lines is not None else pl.Series([], dtype=pl.Int64)).head(5).to_list()
        where = f" (lines {', '.join(str(n) for n in lines)}{', ...' if count > len(lines) else ''})" if lines else ""
        if t.name in clean:
            raise InputFileError(
                f"source {t.name!r} is declared clean (one record per person) but {count:,} of its records share "
                f"a record id with another{where}", file=t.path, column=column,
                hint="deduplicate the extract at source, or drop it from --clean / [linkage] clean")
        console.log("duplicate_record_ids", f"warning: {t.path}: {count:,} records share a {column} with another"
                    f"{where}; the outputs name records by id, so these cannot be told apart: give each record "
                    "its own id", level="warning", source=t.name, column=column, records=count)
