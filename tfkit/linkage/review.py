"""Clerical review: pairs a person decides, and the decisions the next run applies.

    table = review_table(result)                      # one row per pair, both records side by side
    write_review_files(table, folder)                 # review.csv and review.xlsx, LA-internal
    apply_decisions("review.xlsx", store, audit_log, signing_key)  # accept/reject -> the decisions store
    load_decisions(store)                             # -> link(..., decisions=...)

The review files hold names, dates of birth and postcodes as given: they are LA-internal, written
0600 in a 0700 folder whatever the umask (as quarantine files are), with spreadsheet formulas
neutralised. The decisions store holds record ids only, also 0600; the audit log gets counts and a
hash, never an id.

A reviewer fills the `decision` column of the review file with `accept` or `reject` (blank: not
decided yet) and passes the file back to `tfkit review apply`. Accepted pairs become forced links,
rejected ones forced non-links, in the next `tfkit link` (same --out) and `tfkit extract`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import polars as pl

from tfkit.errors import InputFileError, TfkitError
from tfkit.validation.quarantine import FORMULA_START, neutralise_formulas, write_quarantine_csv

if TYPE_CHECKING:
    from .linker import LinkResult

KEYS = ("source_l", "record_id_l", "source_r", "record_id_r")
DECISIONS = ("accept", "reject")
STORE_NAME = "review_decisions.csv"
REVIEW_STEM = "review"
MISSING = "missing (no evidence)"
REASONS = 3  # the comparisons that weigh most, in words, per pair

# Why a pair is in the review queue (review.parquet's `review_reason`, the files' "review reason"),
# and its code in the summary's `review_pairs_by_reason`. The review band's pairs scored between
# review_lower and the threshold; the others scored at or above the threshold, but against two
# records of a clean source that score alike (`clustering._too_close`: a father and his junior
# against a record with no DOB): only one can be the person, and the evidence cannot say which.
REVIEW_REASON = "review_reason"
REASON_BAND = "in the review band"
REASON_CLOSE = "too close to call between two clean records; not linked"
REASON_CODES = {REASON_BAND: "review_band", REASON_CLOSE: "too_close_to_call"}
HELD = "_held"  # the row position of the record whose candidates were too close to call (orders the files)


# --------------------------------------------------------------------------- the review queue


def held_reasons(held: pl.DataFrame) -> pl.DataFrame:
    """`LinkStats.held_for_review` as (rid_l, rid_r, review_reason, _held)."""
    return held.select(
        pl.col("rid_l", "rid_r").cast(pl.Int64),
        pl.lit(REASON_CLOSE).alias(REVIEW_REASON),
        pl.when(pl.col("held_side") == "l").then(pl.col("rid_l")).otherwise(pl.col("rid_r")).cast(pl.Int64).alias(HELD))


def review_queue(scored: pl.DataFrame, threshold: float, review_lower: float,
                 held: pl.DataFrame | None = None) -> pl.DataFrame:
    """The pairs a reviewer decides, by row position, sorted by (rid_l, rid_r): the review band's
    (review_lower <= p < threshold) and the pairs the clean-source rule held as too close to call
    (`held`: `LinkStats.held_for_review`), each with its `review_reason` and `_held` (null in the
    band). `scored`'s columns, then those two."""
    band = scored.filter(pl.col("match_probability").is_between(review_lower, threshold, closed="left")).with_columns(
        pl.lit(REASON_BAND).alias(REVIEW_REASON), pl.lit(None, dtype=pl.Int64).alias(HELD))
    if held is None or held.height == 0:
        return band
    # Only the pairs at or above the threshold can be held (a forced link held is a decided pair: the
    # band's if below), so those are joined: a join of every scored pair on its two row positions
    # took ~35 MiB at 100k x 100k (a million pairs' keys), on the clustering thread beside the
    # caller's pairs write. Same rows, same order (the filter keeps the scored order either way).
    close = scored.filter(pl.col("match_probability") >= threshold).join(
        held_reasons(held), on=["rid_l", "rid_r"], how="inner", maintain_order="left")
    return pl.concat([band, close]).sort("rid_l", "rid_r")


def reason_counts(review: pl.DataFrame | None = None, *, counted: Iterable[tuple[str, int]] = ()) -> dict[str, int]:
    """Review pairs by reason code (`REASON_CODES`): review_band, too_close_to_call; from the review
    pairs (`review_reason` a row), or from (reason, count) rows counted elsewhere (`counted`)."""
    if review is not None:
        counted = review.group_by(REVIEW_REASON).len().iter_rows()
    out = dict.fromkeys(REASON_CODES.values(), 0)
    for reason, n in counted:
        out[REASON_CODES[reason]] += int(n)
    return out


def review_pairs_text(summary: dict) -> str:
    """The review count as the terminal and the report show it: "21 (19 in the review band, 2 too
    close to call)"."""
    by = summary.get("review_pairs_by_reason") or {}
    n = f"{summary['review_pairs']:,}"
    return f"{n} ({by.get('review_band', 0):,} in the review band, {by['too_close_to_call']:,} too close to call)" \
        if by.get("too_close_to_call") else n


# --------------------------------------------------------------------------- the review table


def _given(result: "LinkResult", column: str) -> pl.Series:
    """The column's values as the sources gave them, by row position."""
    return pl.concat([f.get_column(column).cast(pl.String) for f in result.linker.inputs])


def _standardised(result: "LinkResult", column: str) -> pl.Series:
    """The column's values after standardisation (what was compared), by row position."""
    prepared = result.linker.prepared
    codes = prepared.frame.get_column(column)
    if column in prepared.vocab:
        return prepared.vocab[column].gather(codes.cast(pl.UInt32)).cast(pl.String)
    return codes.cast(pl.Date).cast(pl.String) if codes.dtype == pl.Int32 else codes.cast(pl.String)


def review_table(result: "LinkResult", queue: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per review pair (those of `result.review`): the decision to make, why the pair is
    here, the score and its main reasons, then per comparison both records' values as given and
    standardised, the level in words and its weight. `queue`: the pairs by row position
    (`review_queue`'s frame; default: made from `result.scored` and its link stats).

    Sorted for a reviewer: first the pairs too close to call, a record's candidates together (the
    most likely first), then the review band's, the most likely first."""
    linker, model = result.linker, result.model
    if queue is None:
        held = result.link_stats.held_for_review if result.link_stats is not None else None
        queue = review_queue(result.scored, result.threshold, result.review_lower, held)
    from .predict import with_record_ids

    pairs = with_record_ids(linker.prepared, queue.with_columns(
        pl.col("rid_l").alias("_l"), pl.col("rid_r").alias("_r")))
    pairs = pairs.join(result.review.select(KEYS), on=list(KEYS), how="semi", maintain_order="left")
    pairs = pairs.sort([pl.col(HELD).is_null(), HELD, "match_probability", *KEYS], nulls_last=True,
                       descending=[False, False, True, False, False, False, False]).with_row_index("pair", offset=1)
    left, right = pairs["_l"].to_numpy(), pairs["_r"].to_numpy()
    fields: list[pl.Series] = []
    terms = []
    for c in model.comparisons:
        given, std = _given(result, c.column), _standardised(result, c.column)
        level = pairs[f"{c.name}_level"].cast(pl.Int64)
        weight = pl.Series(model.level_weights(c.name))[level + 1]
        if f"{c.name}_tf_adjustment" in pairs.columns:
            weight = weight + pairs[f"{c.name}_tf_adjustment"].cast(pl.Float64)
        words = level.replace_strict(list(range(-1, c.n_levels)), [MISSING, *c.labels], return_dtype=pl.String)
        fields += [
            given.gather(left).alias(f"{c.name} (left)"), given.gather(right).alias(f"{c.name} (right)"),
            std.gather(left).alias(f"{c.name} standardised (left)"),
            std.gather(right).alias(f"{c.name} standardised (right)"),
            words.alias(f"{c.name} level"), weight.round(2).alias(f"{c.name} weight"),
        ]
        terms.append(pl.DataFrame({"pair": pairs["pair"], "w": weight, "text": _reason_text(c.name, words, weight)}))
    from .predict import FULL_NAME

    if FULL_NAME in pairs.columns:  # the names taken together: the full name's frequency, swaps once
        adjust = pairs[FULL_NAME].cast(pl.Float64)
        terms.append(pl.DataFrame({"pair": pairs["pair"], "w": adjust, "text": _reason_text(
            "full name", pl.Series(["frequency"] * pairs.height, dtype=pl.String), adjust)}))
    reasons = (pl.concat(terms).filter(pl.col("w") != 0)
               .sort(["pair", pl.col("w").abs()], descending=[False, True])
               .group_by("pair", maintain_order=True).agg(pl.col("text").head(REASONS).str.join("; ").alias("main reasons")))
    head = pairs.select("pair", pl.lit("", dtype=pl.String).alias("decision"),
                        pl.col(REVIEW_REASON).alias("review reason"),
                        pl.col("match_probability").round(4), pl.col("match_weight").round(2), *KEYS)
    table = head.join(reasons, on="pair", how="left", maintain_order="left").with_columns(fields)
    return table.select("pair", "decision", "review reason", "match_probability", "match_weight", "main reasons",
                        *KEYS, *[s.name for s in fields])


def _reason_text(name: str, words: pl.Series, weight: pl.Series) -> pl.Series:
    sign = pl.Series(np.where(weight.to_numpy() >= 0, "+", "-"))
    magnitude = weight.abs().round(1).cast(pl.String)
    return pl.DataFrame({"w": words, "s": sign, "m": magnitude}).select(
        pl.format(f"{name} {{}} ({{}}{{}})", "w", "s", "m")).to_series()


# --------------------------------------------------------------------------- private files


def private_folder(folder: str | Path) -> Path:
    """`folder`, created if need be, mode 0700 whatever the umask."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


HOW_TO = (
    "Each row of the 'review' sheet is a pair of records the model could not decide. The 'review reason' "
    "column says why: 'in the review band' (the score fell between the review level and the link "
    "threshold), or 'too close to call between two clean records' (the pair scored above the threshold, "
    "but so did another record of a source holding each person once, and only one can be the person: the "
    "rows of one record's candidates sit together, and tfkit linked none of them).",
    "Compare the two records' values side by side (as given, and as tfkit standardised them); the level "
    "columns say how each field agreed, the weights and 'main reasons' why the pair scored as it did.",
    "Write accept (the same person) or reject (different people) in the decision column; leave it blank "
    "when unsure. Do not change the source and record id columns.",
    "Then record the decisions: tfkit review apply THIS-FILE --out LINK-FOLDER (tfkit link), or "
    "tfkit review apply THIS-FILE --config tfkit.toml (tfkit extract). The next run applies them.",
    "This file holds personal data: keep it inside the local authority; retention deletes it with the run.",
)


def write_private_xlsx(rows: pl.DataFrame, path: Path, sheet: str = "review") -> Path:
    """An .xlsx of `rows` (formulas neutralised, header bold and frozen, the decision column limited
    to accept/reject) and a 'how to' sheet; 0600, written atomically."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    ws = book.active
    ws.title = sheet
    ws.append(list(rows.columns))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in neutralise_formulas(rows).iter_rows():
        ws.append(list(row))
    ws.freeze_panes = "B2"
    if "decision" in rows.columns and rows.height:
        letter = ws.cell(1, rows.columns.index("decision") + 1).column_letter
        choice = DataValidation(type="list", formula1='"accept,reject"', allow_blank=True)
        ws.add_data_validation(choice)
        choice.add(f"{letter}2:{letter}{rows.height + 1}")
    notes = book.create_sheet("how to")
    for line in HOW_TO:
        notes.append([line])
    notes.column_dimensions["A"].width = 120
    for i, name in enumerate(rows.columns, start=1):
        ws.column_dimensions[ws.cell(1, i).column_letter].width = min(max(len(name), 10) + 2, 40)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: 0600 already
    os.close(fd)
    try:
        os.chmod(tmp, 0o600)
        book.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# A spreadsheet is for a clerical queue, not a national one. openpyxl holds every cell in memory
# (about half a KiB each): the 10M x 10M link's review band (about a million pairs, 40 columns)
# took the driver past 11 GiB and the machine out of memory. Above this many pairs review.xlsx is
# not written (a warning says so) and review.csv holds them all. Excel's own limit is 1,048,576 rows.
XLSX_MAX_ROWS = 100_000


def write_review_files(table: pl.DataFrame, folder: str | Path, stem: str = REVIEW_STEM, *,
                       warn=None) -> list[Path]:
    """review.csv and review.xlsx in `folder` (0700), each 0600; no .xlsx above `XLSX_MAX_ROWS`
    pairs (`warn(code, message, **details)` is told, e.g. `LinkageModel.warn`). No pair to review:
    old files go."""
    folder = Path(folder)
    paths = [folder / f"{stem}.csv", folder / f"{stem}.xlsx"]
    if table.height == 0:
        for p in paths:
            p.unlink(missing_ok=True)
        return []
    private_folder(folder)
    written = [write_quarantine_csv(table, paths[0], private=True)]
    if table.height <= XLSX_MAX_ROWS:
        return [*written, write_private_xlsx(table, paths[1])]
    paths[1].unlink(missing_ok=True)  # not last run's spreadsheet beside this run's CSV
    if warn is not None:
        warn("review_xlsx_skipped", f"the review queue holds {table.height:,} pairs, more than a spreadsheet "
             f"should ({XLSX_MAX_ROWS:,}): {paths[1].name} was not written; {paths[0].name} holds every pair",
             pairs=table.height, limit=XLSX_MAX_ROWS)
    return written


# --------------------------------------------------------------------------- decisions


def _unescape(column: str) -> pl.Expr:
    """Undo the apostrophe the review file put before a formula-like value."""
    c = pl.col(column).str.strip_chars()
    return pl.when(c.str.contains("^'" + FORMULA_START[1:])).then(c.str.slice(1)).otherwise(c).alias(column)


def read_decisions(path: str | Path) -> pl.DataFrame:
    """A filled-in review file (CSV or .xlsx): decided rows as KEYS + decision (accept | reject)."""
    from tfkit.io import read_table

    raw = read_table(path)
    frame = raw.frame
    missing = [c for c in (*KEYS, "decision") if c not in frame.columns]
    if missing:
        raise InputFileError(f"no {missing[0]!r} column: not a tfkit review file", file=path, column=missing[0],
                             hint="fill in the decision column of the review.csv or review.xlsx tfkit wrote")
    frame = frame.select(*[_unescape(c) for c in KEYS], pl.col("decision").str.strip_chars().str.to_lowercase(),
                         "_source_line").filter(pl.col("decision").fill_null("") != "")
    bad = frame.filter(~pl.col("decision").is_in(DECISIONS))
    if bad.height:
        raise InputFileError(f"decision {bad['decision'][0]!r} is not accept or reject", file=path,
                             row=int(bad["_source_line"][0]), column="decision",
                             hint="write accept or reject, or leave the cell blank for pairs not decided yet")
    blank = frame.filter(pl.any_horizontal(pl.col(KEYS).is_null() | (pl.col(KEYS) == "")))
    if blank.height:
        raise InputFileError("a decided row has no record ids", file=path, row=int(blank["_source_line"][0]),
                             hint="keep the source_l, record_id_l, source_r and record_id_r cells as tfkit wrote them")
    return frame.drop("_source_line")


def _oriented(frame: pl.DataFrame) -> pl.DataFrame:
    """Each pair written one way round (the smaller (source, id) on the left), so a pair has one key."""
    swap = (pl.col("source_l") > pl.col("source_r")) | (
        (pl.col("source_l") == pl.col("source_r")) & (pl.col("record_id_l") > pl.col("record_id_r")))
    return frame.select(
        *[pl.when(swap).then(pl.col(k.replace("_l", "_r") if k.endswith("_l") else k.replace("_r", "_l")))
          .otherwise(pl.col(k)).alias(k) for k in KEYS],
        "decision",
    )


def check_no_unapplied_decisions(folder: str | Path, store: str | Path, apply_hint: str) -> None:
    """Refuse (exit 2) to rewrite review files holding decisions the store does not have yet: a
    reviewer's work would be lost. Called before the run does any work."""
    from tfkit.errors import UsageError

    stored = load_decisions(store)
    for path in (Path(folder) / f"{REVIEW_STEM}.xlsx", Path(folder) / f"{REVIEW_STEM}.csv"):
        if not path.is_file():
            continue
        try:
            decided = _oriented(read_decisions(path))
        except TfkitError:
            continue  # not readable as a review file: the run replaces it
        if stored is not None and decided.height:
            decided = decided.join(_oriented(stored).select(*KEYS, "decision"), on=[*KEYS, "decision"], how="anti")
        if decided.height:
            raise UsageError(f"{path} holds {decided.height:,} decision(s) not applied yet; this run would "
                             "rewrite the file and lose them", file=path,
                             hint=f"apply them first: {apply_hint} (or move the file away to discard them)")


def load_decisions(store: str | Path) -> pl.DataFrame | None:
    """The decisions store (None when there is none yet)."""
    store = Path(store)
    if not store.is_file():
        return None
    return pl.read_csv(store, infer_schema=False)


def apply_decisions(decisions: str | Path, store: str | Path, audit_log: str | Path,
                    signing_key: str | Path | None = None) -> dict[str, Any]:
    """Merge a filled-in review file into the decisions store (a later decision on a pair replaces
    an earlier one), write the store 0600 atomically, and record counts and hashes in the audit log."""
    from tfkit import console
    from tfkit.keys import load_signing_key
    from tfkit.package import audit

    store = Path(store)
    new = _oriented(read_decisions(decisions))
    key = load_signing_key(signing_key) if signing_key is not None else None  # a bad key: nothing is kept
    if key is None and Path(audit_log).is_file() and any(e.get("sig") for e in audit.read_entries(audit_log)):
        from tfkit.errors import UsageError

        raise UsageError("the audit log is signed: an unsigned entry would make it fail tfkit audit verify",
                         file=audit_log, hint="pass --signing-key (the key that signs this log), or --config")
    if key is None:
        console.log("review_unsigned", "warning: no signing key: the decisions are recorded in an unsigned audit "
                    "entry, which audit verify --public-key will not accept (pass --signing-key)", level="warning")
    before = store.read_bytes() if store.is_file() else None
    old = load_decisions(store)
    merged = new if old is None else pl.concat([_oriented(old), new])
    merged = merged.unique(list(KEYS), keep="last", maintain_order=True).sort(list(KEYS))
    private_folder(store.parent)
    write_quarantine_csv(merged, store, private=True)
    counts = merged.group_by("decision").len()
    summary = {
        "decisions_read": new.height,
        "accepted": int(new.filter(pl.col("decision") == "accept").height),
        "rejected": int(new.filter(pl.col("decision") == "reject").height),
        "store": str(store),
        "store_pairs": merged.height,
        "store_forced_links": int(counts.filter(pl.col("decision") == "accept")["len"].sum()),
        "store_forced_non_links": int(counts.filter(pl.col("decision") == "reject")["len"].sum()),
        "decisions_sha256": hashlib.sha256(Path(decisions).read_bytes()).hexdigest(),
        "store_sha256": hashlib.sha256(store.read_bytes()).hexdigest(),
    }
    try:  # decisions that reach no audit entry are not kept: the store goes back as it was
        audit.append(audit_log, "review_decisions", key, **{k: v for k, v in summary.items() if k != "store"})
    except BaseException:
        if before is None:
            store.unlink(missing_ok=True)
        else:
            tmp = store.with_name(f".{store.name}.restore")
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
                fh.write(before)
            os.replace(tmp, store)
        raise
    return summary


# --------------------------------------------------------------------------- where files go


def link_review_folder(out: str | Path) -> Path:
    """`tfkit link --out DIR`: review files and the decisions store in DIR/review/ (0700)."""
    return Path(out) / "review"


def extract_store(quarantine_dir: str | Path) -> Path:
    """`tfkit extract`: the LA's standing decisions store, in its quarantine folder (LA-internal)."""
    return Path(quarantine_dir) / STORE_NAME


def apply_review(decisions: str | Path, *, out: str | Path | None = None, config: str | Path | None = None,
                 audit_log: str | Path | None = None, signing_key: str | Path | None = None) -> dict[str, Any]:
    """`tfkit review apply`: into a link job's folder (`out`) or the extract config's store. The
    audit entry is signed with `signing_key` (default: the config's signing key)."""
    from tfkit.errors import UsageError

    if (out is None) == (config is None):
        raise UsageError("give either --out DIR (a tfkit link output folder) or --config tfkit.toml (extract)",
                         hint="tfkit review apply review.xlsx --out linked/ --signing-key keys/signing.key")
    if config is not None:
        from tfkit.config import load_config

        cfg = load_config(config)
        store, log = extract_store(cfg.quarantine_dir), cfg.audit_log
        signing_key = signing_key or cfg.signing_key
    else:
        if not Path(out).is_dir():
            raise UsageError("not a tfkit link output folder", file=out, hint="give the --out folder of tfkit link")
        store, log = link_review_folder(out) / STORE_NAME, Path(out) / "audit.jsonl"
    return apply_decisions(decisions, store, audit_log or log, signing_key)
