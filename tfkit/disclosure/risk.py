"""Record-level re-identification risk: k-anonymity and l-diversity over quasi-identifiers.

An equivalence class is the set of records sharing one combination of quasi-identifier values. A
record in a class smaller than k can be singled out by someone who knows those few facts about a
person. For a sensitive column, l-diversity counts the distinct (non-null) sensitive values in each
class: a class whose members all share one value discloses it even when the class is large.

Classes count *people*, not records: a person with three police records is one person in their
class. Who is who comes from the table's person keys (`PERSON_KEYS`, in order: the person
pseudonym, identifier pseudonyms, a hashed name-and-date-of-birth match key, the record pseudonym);
rows sharing any of them are one person (`with_person_label`). A table holding none of them counts
each row as a person. Records below k are the *records* of classes with fewer than k people.

Records whose quasi-identifiers are all null (suppressed by `apply_policy`, or never recorded) match
every class, so they are counted apart as `fully_suppressed` and form no class of their own. A null
in only some quasi-identifiers is treated as one more value (the cautious reading).

The report is data first: `to_dict()` for JSON, `render()` for a person at a terminal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import polars as pl

from tfkit.disclosure.hierarchies import DEFAULT_QUASI_IDENTIFIERS, resolve
from tfkit.errors import UsageError


@dataclass(frozen=True)
class ClassSizeBin:
    """Classes whose size lies in [size_from, size_to] (size_to None: no upper bound)."""

    size_from: int
    size_to: int | None
    classes: int
    records: int

    @property
    def label(self) -> str:
        if self.size_to is None:
            return f"{self.size_from}+"
        return str(self.size_from) if self.size_from == self.size_to else f"{self.size_from}-{self.size_to}"


@dataclass(frozen=True)
class LDiversity:
    """Distinct l-diversity of one sensitive column over the equivalence classes."""

    column: str
    l: int
    min_distinct: int | None
    classes_below_l: int
    records_below_l: int

    @property
    def passed(self) -> bool:
        return self.records_below_l == 0


PERSON = "__person"
# Columns that say which person a row is, most authoritative first. The person table's
# person_id_pseudonym is one person by construction; a partner table carries it on linked rows only,
# so its unlinked rows are told apart by their own identifiers: rows sharing any key are one person.
PERSON_KEYS: tuple[str, ...] = (
    "person_id_pseudonym", "person_id", "nino_pseudonym", "upn_pseudonym", "nhs_number_pseudonym",
    "mk_forename_surname_dob", "record_id_pseudonym",
)
AUTO = "auto"


def person_key_columns(columns: Sequence[str]) -> tuple[str, ...]:
    """The person keys a table holds, in PERSON_KEYS order (() : each row counts as a person)."""
    present = set(columns)
    return tuple(c for c in PERSON_KEYS if c in present)


def labelling_columns(lf: pl.LazyFrame, key: Sequence[str]) -> tuple[str, ...]:
    """The person keys `with_person_label` reads: only the first when it is on every row (the person
    table: nothing to join, and a million rows need not read four more pseudonym columns)."""
    key = tuple(key)
    if len(key) > 1 and not lf.select(pl.col(key[0]).is_null().any()).collect().item():
        return key[:1]
    return key


def with_person_label(lf: pl.LazyFrame, key: Sequence[str]) -> pl.LazyFrame:
    """`lf` with a `__person` label: rows with the same label are one person. The first key present on
    the row (else the row number), then, unless the first key is on every row, each further key joins
    the rows sharing it under their smallest label (one pass: rows linked through a chain of two
    other keys may stay apart, which counts a person twice only where the table itself is unsure)."""
    rows = pl.format("row {}", pl.int_range(pl.len(), dtype=pl.UInt32))
    key = labelling_columns(lf, key)
    if not key:
        return lf.with_columns(rows.alias(PERSON))
    if len(key) == 1:
        return lf.with_columns(pl.col(key[0]).cast(pl.String).fill_null(rows).alias(PERSON))
    lf = lf.with_columns(pl.coalesce(*[pl.col(c).cast(pl.String) for c in key], rows).alias(PERSON))
    for column in key[1:]:
        lf = lf.with_columns(pl.when(pl.col(column).is_not_null()).then(pl.col(PERSON).min().over(column))
                             .otherwise(pl.col(PERSON)).alias(PERSON))
    return lf


@dataclass(frozen=True)
class RiskReport:
    records: int
    quasi_identifiers: tuple[str, ...]
    k: int
    derived: dict[str, str]  # quasi-identifier -> the column it was derived from
    classes: int
    smallest_class: int | None
    median_class_size: float | None
    largest_class: int | None
    classes_below_k: int
    records_below_k: int
    records_at_risk: int  # in a class below k or failing l-diversity
    fully_suppressed: int
    class_sizes: tuple[ClassSizeBin, ...]
    diversity: tuple[LDiversity, ...] = ()
    # records that would be below k if each quasi-identifier were dropped: which one drives the risk
    below_k_without: dict[str, int] = field(default_factory=dict)
    people: int | None = None  # distinct people among the records (class sizes count people)
    person_key: tuple[str, ...] = ()  # the columns saying who is who; () : every record a person

    @property
    def passed(self) -> bool:
        return self.records_at_risk == 0

    @property
    def share_at_risk(self) -> float:
        return self.records_at_risk / self.records if self.records else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["quasi_identifiers"] = list(self.quasi_identifiers)
        out["person_key"] = list(self.person_key)
        out["class_sizes"] = [{**asdict(b), "label": b.label} for b in self.class_sizes]
        out["diversity"] = [{**asdict(d), "passed": d.passed} for d in self.diversity]
        out["passed"] = self.passed
        out["share_at_risk"] = round(self.share_at_risk, 6)
        return out

    def render(self, console: Any) -> None:
        """Print the report with rich (a person's view of the same data)."""
        from rich.table import Table

        verdict = "[green]PASS[/green]" if self.passed else "[bold red]FAIL[/bold red]"
        qis = ", ".join(
            f"{q} (from {self.derived[q]})" if q in self.derived else q for q in self.quasi_identifiers
        )
        console.print(f"Disclosure check {verdict}: k={self.k} over {qis}")
        if not self.records:  # an empty table (a partner's export with nobody this period)
            console.print("no records: nothing to check")
            return
        who = (f"{self.people:,} people (by {', '.join(self.person_key)}) in " if self.person_key
               else "(each record counted as a person) ")
        console.print(
            f"{self.records:,} records of {who}{self.classes:,} equivalence classes "
            f"(smallest {self.smallest_class}, median {self.median_class_size}, largest {self.largest_class}); "
            f"{self.fully_suppressed:,} fully suppressed"
        )
        console.print(
            f"{self.records_below_k:,} records in {self.classes_below_k:,} classes of fewer than k people "
            f"({self.records_below_k / self.records:.2%} of records)"
        )
        table = Table(title="Equivalence-class sizes", title_justify="left")
        table.add_column("class size (people)")
        table.add_column("classes", justify="right")
        table.add_column("records", justify="right")
        for b in self.class_sizes:
            style = "red" if b.size_from < self.k else None
            table.add_row(b.label, f"{b.classes:,}", f"{b.records:,}", style=style)
        console.print(table)
        for d in self.diversity:
            mark = "[green]ok[/green]" if d.passed else "[red]below l[/red]"
            console.print(
                f"l-diversity of {d.column!r} (l={d.l}): {mark}; fewest distinct values in a class "
                f"{d.min_distinct}; {d.records_below_l:,} records in {d.classes_below_l:,} classes below l"
            )
        if self.below_k_without:
            parts = ", ".join(f"without {q}: {n:,}" for q, n in self.below_k_without.items())
            console.print(f"records below k if one quasi-identifier were dropped: {parts}")


def size_bins(k: int) -> list[tuple[int, int | None]]:
    """1, 2, ... k-1 individually, then k..2k-1, 2k..5k-1, 5k..10k-1, 10k and over."""
    bins: list[tuple[int, int | None]] = [(s, s) for s in range(1, k)]
    bins += [(k, 2 * k - 1), (2 * k, 5 * k - 1), (5 * k, 10 * k - 1), (10 * k, None)]
    return bins


def equivalence_classes(
    lf: pl.LazyFrame, keys: list[str], sensitive: Sequence[str] = ()
) -> pl.LazyFrame:
    """One row per class: its key values, `size` (distinct people: `lf` holds `__person`, see
    with_person_label), `rows` (records), and `distinct_<s>` per sensitive column."""
    not_all_null = pl.any_horizontal([pl.col(q).is_not_null() for q in keys])
    return (
        lf.filter(not_all_null)
        .group_by(keys)
        .agg(pl.col(PERSON).n_unique().alias("size"), pl.len().alias("rows"),
             *[pl.col(s).drop_nulls().n_unique().alias(f"distinct_{s}") for s in sensitive])
    )


def _as_lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    if isinstance(frame, pl.LazyFrame):
        return frame
    if isinstance(frame, pl.DataFrame):
        return frame.lazy()
    raise TypeError(f"expected a polars DataFrame or LazyFrame, got {type(frame).__name__}")


def _sensitive_list(sensitive: str | Sequence[str] | None) -> tuple[str, ...]:
    if sensitive is None:
        return ()
    if isinstance(sensitive, str):
        return (sensitive,)
    return tuple(sensitive)


def check(
    frame: pl.DataFrame | pl.LazyFrame,
    quasi_identifiers: Sequence[str] = DEFAULT_QUASI_IDENTIFIERS,
    k: int = 10,
    sensitive: str | Sequence[str] | None = None,
    l: int = 2,
    person_key: Sequence[str] | str = AUTO,
) -> RiskReport:
    """k-anonymity (and l-diversity for `sensitive`) of `frame` over `quasi_identifiers`.

    A quasi-identifier missing from the frame is derived when a declared derivation allows it
    (`dob_year` from `dob_year_month` or `dob`; see tfkit.disclosure.hierarchies). Classes count
    distinct people by `person_key` (AUTO: the frame's PERSON_KEYS; (): each record a person).
    """
    if k < 1:
        raise UsageError(f"k must be at least 1, got {k}", hint="the usual threshold is 10")
    if l < 1:
        raise UsageError(f"l must be at least 1, got {l}")
    lf = _as_lazy(frame)
    columns = lf.collect_schema().names()
    qis = resolve(columns, tuple(quasi_identifiers))
    sens = _sensitive_list(sensitive)
    for s in sens:
        if s not in columns:
            raise UsageError(f"sensitive column {s!r} is not a column of the data", column=s,
                             hint=f"columns available: {', '.join(sorted(columns))}")
        if s in quasi_identifiers:
            raise UsageError(f"{s!r} is both a quasi-identifier and the sensitive column", column=s)
    keys = [q.name for q in qis]
    who = person_key_columns(columns) if person_key == AUTO else tuple(person_key)
    for c in who:
        if c not in columns:
            raise UsageError(f"person key {c!r} is not a column of the data", column=c)
    read = labelling_columns(lf, who)
    base = with_person_label(lf.select(*[q.expr.alias(q.name) for q in qis], *[pl.col(s) for s in sens],
                                       *[pl.col(c) for c in read if c not in keys and c not in sens]), read)
    base = base.select(*keys, *sens, PERSON).cache()

    classes_q = equivalence_classes(base, keys, sens)
    below_l = [pl.col(f"distinct_{s}") < l for s in sens]
    at_risk = pl.any_horizontal(pl.col("size") < k, *below_l) if below_l else pl.col("size") < k
    summary_q = classes_q.select(
        pl.len().alias("classes"),
        pl.col("rows").sum().alias("records_in_classes"),
        pl.col("size").min().alias("smallest"),
        pl.col("size").median().alias("median"),
        pl.col("size").max().alias("largest"),
        (pl.col("size") < k).sum().alias("classes_below_k"),
        pl.col("rows").filter(pl.col("size") < k).sum().alias("records_below_k"),
        pl.col("rows").filter(at_risk).sum().alias("records_at_risk"),
        *[
            expr
            for s in sens
            for expr in (
                pl.col(f"distinct_{s}").min().alias(f"min_distinct_{s}"),
                (pl.col(f"distinct_{s}") < l).sum().alias(f"classes_below_l_{s}"),
                pl.col("rows").filter(pl.col(f"distinct_{s}") < l).sum().alias(f"records_below_l_{s}"),
            )
        ],
    )
    bins = size_bins(k)
    bin_index = pl.lit(len(bins) - 1)
    for i, (lo, hi) in reversed(list(enumerate(bins))):
        if hi is not None:
            bin_index = pl.when(pl.col("size") <= hi).then(pl.lit(i)).otherwise(bin_index)
    bins_q = (
        classes_q.group_by(bin_index.alias("bin"))
        .agg(pl.len().alias("classes"), pl.col("rows").sum().alias("records"))
    )
    total_q = base.select(pl.len().alias("records"), pl.col(PERSON).n_unique().alias("people"))
    without_q = [
        equivalence_classes(base, [q for q in keys if q != dropped])
        .select(pl.col("rows").filter(pl.col("size") < k).sum().alias(dropped))
        for dropped in keys
    ] if len(keys) > 1 else []

    summary, bins_df, total, *without = pl.collect_all([summary_q, bins_q, total_q, *without_q])
    s = summary.row(0, named=True)
    counts = {row["bin"]: row for row in bins_df.iter_rows(named=True)}
    class_sizes = tuple(
        ClassSizeBin(lo, hi, counts.get(i, {}).get("classes", 0), counts.get(i, {}).get("records", 0))
        for i, (lo, hi) in enumerate(bins)
    )
    records, people = total.row(0)
    median = s["median"]
    return RiskReport(
        records=records,
        quasi_identifiers=tuple(keys),
        k=k,
        derived={q.name: q.sources[0] for q in qis if q.derived},
        classes=s["classes"],
        smallest_class=s["smallest"],
        median_class_size=float(median) if median is not None else None,
        largest_class=s["largest"],
        classes_below_k=s["classes_below_k"],
        records_below_k=s["records_below_k"] or 0,
        records_at_risk=s["records_at_risk"] or 0,
        fully_suppressed=records - (s["records_in_classes"] or 0),
        class_sizes=class_sizes,
        diversity=tuple(
            LDiversity(
                column=name,
                l=l,
                min_distinct=s[f"min_distinct_{name}"],
                classes_below_l=s[f"classes_below_l_{name}"],
                records_below_l=s[f"records_below_l_{name}"] or 0,
            )
            for name in sens
        ),
        below_k_without={dropped: (w.item() or 0) for dropped, w in zip(keys, without)},
        people=people,
        person_key=who,
    )
