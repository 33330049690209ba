"""Hierarchical deterministic linkage of two pseudonymised extracts on hashed match keys (ONS-style).

Keys are tried in order. At each key only the records not yet matched are offered; a key value
found exactly once on each side makes a pair; a value held by several records on either side is
ambiguous and is not taken (it is counted and reported).

`one_to_many=True` is for an event-level B (a police extract holds several records per person): a
value unique in A pairs with every B record holding it, and A records stay offered to later keys
(to collect their other B records); a value repeated in A is still ambiguous and not taken. Nothing here sees an identifier: both
sides must have been pseudonymised with the same master key and project.

This is the polars engine, and it streams: A and B may be Parquet files or folders, read one key
column at a time; B (the national file) is never held in memory, only its rows whose key value also
occurs in A. The Spark engine (`tfkit.engine.spark.link_keys`) runs the same rules as distributed
joins and gives the same links.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from tfkit.errors import ConfigError, InputFileError
from tfkit.pseudonymise.match_keys import MATCH_KEY_PREFIX, MatchKey, default_match_keys

ID_COLUMNS = ("person_id_pseudonym", "record_id_pseudonym")
_ROW = "__tfkit_row"
PAIRS_SCHEMA = {"a_row": pl.Int64, "b_row": pl.Int64, "a_id": pl.String, "b_id": pl.String, "match_key": pl.String}


@dataclass(frozen=True)
class KeyLinkCount:
    """What one match key did: pairs taken and ambiguous values left alone."""

    match_key: str
    offered_a: int  # unmatched records of A with this key non-null when the key's turn came
    offered_b: int
    pairs: int  # pairs taken by this key
    ambiguous_values: int  # key values on both sides held by more than one record on a side
    ambiguous_a: int  # records of A behind those values
    ambiguous_b: int

    def as_dict(self) -> dict:
        return asdict(self)


def _id_column(columns: list[str], given: str | None) -> str | None:
    if given is not None:
        if given not in columns:
            raise ConfigError(f"id column {given!r} is not in the extract")
        return given
    return next((c for c in ID_COLUMNS if c in columns), None)


def resolve_key_names(a_columns: list[str], b_columns: list[str], keys) -> list[str]:
    """The match-key names to try, in order (both engines): `keys` None for every documented key
    present on both sides, else names / MatchKey objects, each checked to be on both sides."""
    if keys is None:
        names = [k.name for k in default_match_keys() if k.column in a_columns and k.column in b_columns]
    else:
        names = []
        for k in keys:
            name = k.name if isinstance(k, MatchKey) else str(k).removeprefix(MATCH_KEY_PREFIX)
            col = MATCH_KEY_PREFIX + name
            for side, columns in (("A", a_columns), ("B", b_columns)):
                if col not in columns:
                    raise ConfigError(f"extract {side} has no match-key column {col!r}", column=col,
                                      hint="pseudonymise both extracts with that match key")
            names.append(name)
    if not names:
        raise ConfigError("the two extracts share no match-key column",
                          hint="pseudonymise both with match keys (the default policies add them)")
    return names


def check_same_pseudonyms(a: str | Path, b: str | Path) -> None:
    """Two extracts pseudonymised for different projects, or with different master keys, can share
    no match key: refuse (exit 2) rather than write 0 pairs. Read from the first Parquet footer of
    each side where both are local and carry tfkit's metadata (a national file made elsewhere may not)."""
    import pyarrow as pa

    from tfkit.package import manifest

    meta = []
    for side in (a, b):
        path = Path(side)
        if not path.exists():
            return  # a Hadoop path, read by Spark
        files = parquet_files(path)
        try:
            meta.append(manifest.footer_metadata(files[0]))
        except (pa.ArrowException, OSError):  # not readable as Parquet: the reader says so, later
            return
        except UnicodeDecodeError:  # footer key-values that are not text: not tfkit's, nothing to compare
            return
    for key, what in (("tfkit.project", "project"), ("tfkit.key_fingerprint", "master key (fingerprint)")):
        left, right = meta[0].get(key), meta[1].get(key)
        if left and right and left != right:
            raise InputFileError(f"the two extracts were pseudonymised with a different {what}: {left!r} and "
                                 f"{right!r}, so no match key can agree", file=b,
                                 hint="pseudonymise both with the same --project and --key")


def parquet_files(path: str | Path) -> list[Path]:
    """A Parquet file, or a folder's Parquet files in path order (the order both engines number
    rows in); Spark's `_SUCCESS` and hidden files are skipped."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith(("_", ".")))
        if files:
            _same_columns(path, files)
            return files
        raise InputFileError("the folder holds no .parquet files", file=path,
                             hint="give the Parquet output of tfkit pseudonymise")
    raise InputFileError("file not found", file=path)


def _same_columns(folder: Path, files: list[Path]) -> None:
    """A folder is one extract in parts: every part must have the first part's columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = None
    for f in files:
        try:
            names = pq.read_schema(f).names
        except (pa.ArrowException, OSError):  # pyarrow's errors for junk (ArrowInvalid) and I/O
            raise InputFileError("not a readable Parquet file", file=f,
                                 hint="link-keys takes the output of tfkit pseudonymise") from None
        first = first or (f, names)
        if names != first[1]:
            raise InputFileError(f"the folder's Parquet files have different columns ({first[0].name} and {f.name}): "
                                 "it holds more than one extract", file=folder,
                                 hint="give one extract's file, or a folder holding the parts of one extract only")


def _lazy(x) -> pl.LazyFrame:
    """A frame, lazy frame or Parquet path as a LazyFrame numbered by row (Int64 `_ROW`)."""
    if isinstance(x, pl.DataFrame | pl.LazyFrame):
        return x.lazy().with_row_index(_ROW).with_columns(pl.col(_ROW).cast(pl.Int64))
    files = parquet_files(x)
    try:
        lf = pl.scan_parquet(files, row_index_name=_ROW)
        lf.collect_schema()
    except Exception:  # pyarrow/polars raise several types for junk
        raise InputFileError("not a readable Parquet file", file=x,
                             hint="link-keys takes the output of tfkit pseudonymise") from None
    return lf.with_columns(pl.col(_ROW).cast(pl.Int64))


def link_on_match_keys(
    a,
    b,
    keys=None,
    *,
    a_id: str | None = None,
    b_id: str | None = None,
    one_to_many: bool = False,
    on_key=None,
) -> tuple[pl.DataFrame, list[KeyLinkCount]]:
    """Link A to B on match keys, in order, one-to-one (or one-to-many, see the module docstring).

    `a`, `b`: DataFrames, LazyFrames, or Parquet files/folders (streamed). `keys`: None for every
    documented key present on both sides (in the documented order), or a list of names / MatchKey
    objects in the order to try. Returns `(pairs, per_key_counts)`: pairs has `a_row`, `b_row`
    (0-based row numbers, Int64), `a_id`, `b_id` (the id pseudonym columns, when found) and
    `match_key`, sorted by key order then `a_row`, `b_row`. `on_key`, if given, is called with each
    key's `KeyLinkCount` as its pass ends (progress, per-pass timing; both engines).
    """
    la, lb = _lazy(a), _lazy(b)
    a_cols, b_cols = la.collect_schema().names(), lb.collect_schema().names()
    names = resolve_key_names(a_cols, b_cols, keys)

    matched_a = pl.DataFrame(schema={_ROW: pl.Int64})
    matched_b = pl.DataFrame(schema={_ROW: pl.Int64})
    taken: list[pl.DataFrame] = []
    counts: list[KeyLinkCount] = []
    for name in names:
        col = MATCH_KEY_PREFIX + name
        ca = la.select(_ROW, col).drop_nulls(col).join(matched_a.lazy(), on=_ROW, how="anti")
        cb = lb.select(_ROW, col).drop_nulls(col).join(matched_b.lazy(), on=_ROW, how="anti")
        ga = ca.group_by(col).agg(pl.len().alias("n_a"), pl.col(_ROW).min().alias("a_row")).collect(engine="streaming")
        # Only B's records whose value occurs in A can pair or be ambiguous: B is streamed past A's values.
        cb_in_a = cb.join(ga.lazy().select(col), on=col, how="semi")
        gb_q = cb_in_a.group_by(col).agg(pl.len().alias("n_b"), pl.col(_ROW).min().alias("b_row"))
        offered_b_q = cb.select(pl.len())
        if one_to_many:
            gb, offered_b, rows_b = pl.collect_all([gb_q, offered_b_q, cb_in_a], engine="streaming")
        else:
            gb, offered_b = pl.collect_all([gb_q, offered_b_q], engine="streaming")
        both = ga.join(gb, on=col, how="inner")
        unique = (pl.col("n_a") == 1) & ((pl.col("n_b") == 1) | one_to_many)
        if one_to_many:
            pairs = (both.filter(unique).select(col, "a_row").join(rows_b, on=col, how="inner")
                     .select("a_row", pl.col(_ROW).alias("b_row")))
        else:
            pairs = both.filter(unique).select("a_row", "b_row")
        pairs = pairs.sort("a_row", "b_row")
        amb = both.filter(~unique)
        counts.append(KeyLinkCount(
            match_key=name, offered_a=int(ga["n_a"].sum() or 0), offered_b=int(offered_b.item()),
            pairs=pairs.height, ambiguous_values=amb.height,
            ambiguous_a=int(amb["n_a"].sum() or 0), ambiguous_b=int(amb["n_b"].sum() or 0),
        ))
        taken.append(pairs.with_columns(pl.lit(name).alias("match_key")))
        if on_key is not None:
            on_key(counts[-1])
        # Hierarchical: matched records are not offered to later keys.
        if not one_to_many:
            matched_a = pl.concat([matched_a, pairs.select(pl.col("a_row").alias(_ROW))])
        matched_b = pl.concat([matched_b, pairs.select(pl.col("b_row").alias(_ROW))])

    pairs = pl.concat(taken).with_row_index("__order")
    return _with_ids(pairs, la, lb, _id_column(a_cols, a_id), _id_column(b_cols, b_id)), counts


def _with_ids(pairs: pl.DataFrame, la: pl.LazyFrame, lb: pl.LazyFrame, ida: str | None, idb: str | None) -> pl.DataFrame:
    """Attach each side's id pseudonym by row number (B streamed: only the paired rows are kept)."""
    out = pairs.lazy()
    for side, lf, id_col in (("a", la, ida), ("b", lb, idb)):
        if id_col is None:
            out = out.with_columns(pl.lit(None, dtype=pl.String).alias(f"{side}_id"))
            continue
        ids = (lf.select(pl.col(_ROW).alias(f"{side}_row"), pl.col(id_col).cast(pl.String).alias(f"{side}_id"))
               .join(pairs.lazy().select(f"{side}_row").unique(), on=f"{side}_row", how="semi"))
        out = out.join(ids, on=f"{side}_row", how="left")
    return out.sort("__order").select(list(PAIRS_SCHEMA)).collect(engine="streaming").cast(PAIRS_SCHEMA)


@dataclass
class LinkKeysRun:
    """What `tfkit link-keys` did: inputs, engine, output and per-key counts (no values)."""

    a: str
    b: str
    out: str
    engine: str
    one_to_many: bool
    rows_a: int
    rows_b: int
    pairs: int
    keys: list[KeyLinkCount]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["keys"] = [k.as_dict() for k in self.keys]
        return data


def link_keys_files(a: str | Path, b: str | Path, out: str | Path, keys=None, *, one_to_many: bool = False,
                    engine=None, on_key=None) -> LinkKeysRun:
    """Link two pseudonymised Parquet extracts (files or folders) and write the pairs.

    polars (default): streams the inputs, writes one deterministic Parquet file at `out`.
    spark (`engine.kind == "spark"`): inputs and `out` may be any Hadoop-compatible path; `out` is a
    folder of Parquet part files with the same columns, in the same order. `on_key`: see
    `link_on_match_keys`.
    """
    check_same_pseudonyms(a, b)
    if engine is not None and engine.is_spark:
        from tfkit.engine.spark.link_keys import link_keys_job

        return link_keys_job(str(a), str(b), str(out), keys, one_to_many=one_to_many, settings=engine,
                             on_key=on_key)
    from tfkit.parquet import write_parquet

    for p in (a, b):
        parquet_files(p)
        if Path(out).resolve() == Path(p).resolve():
            raise InputFileError("the output would overwrite the input", file=out, hint="choose another --out")
    pairs, counts = link_on_match_keys(a, b, keys, one_to_many=one_to_many, on_key=on_key)
    write_parquet(pairs, out, statistics=["a_row", "b_row", "match_key"])
    rows = [int(_lazy(p).select(pl.len()).collect().item()) for p in (a, b)]
    return LinkKeysRun(str(a), str(b), str(out), "polars", one_to_many, rows[0], rows[1], pairs.height, counts)
