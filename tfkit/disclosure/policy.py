"""What `extract` does when a record-level table fails the disclosure check.

* `warn` (default): the frame is unchanged; the outcome records the risk and a warning is logged.
* `fail`: raise `DisclosureRiskTooHigh` (a DataCheckFailed: exit 1), carrying the report.
* `generalise`: full-domain generalisation along the declared hierarchies, then local suppression.
  Every combination of hierarchy levels (a small lattice: two or three levels per quasi-identifier)
  is scored by the records it would leave at risk; the least-widened combination leaving at most
  `max_suppression` of the records at risk is chosen (or, if none does, the one leaving fewest).
  The widened columns replace their sources (`postcode_district` -> `postcode_area`,
  `dob_year_month` -> `dob_year_band`); then the quasi-identifier values of records still in
  classes below k (or failing l-diversity) are set to null. Every change is counted in the outcome,
  for the manifest.

All of it is group_by / window expressions over columns; no Python loop touches a row.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import polars as pl

from tfkit import console
from tfkit.disclosure.hierarchies import (
    DEFAULT_HIERARCHIES,
    DEFAULT_QUASI_IDENTIFIERS,
    REMOVED,
    Hierarchy,
    Level,
    hierarchy_for,
    resolve,
)
from tfkit.disclosure.risk import (PERSON, RiskReport, _as_lazy, _sensitive_list, check, equivalence_classes,
                                  person_key_columns, with_person_label)
from tfkit.disclosure.settings import POLICIES
from tfkit.errors import DataCheckFailed, UsageError


@dataclass
class DisclosureRiskTooHigh(DataCheckFailed):
    """Records sit in equivalence classes smaller than k (or below l) and the policy is `fail`."""

    report: RiskReport | None = None


@dataclass(frozen=True)
class Generalisation:
    """One quasi-identifier widened for every record: `from_columns` replaced by `to_column`."""

    quasi_identifier: str
    level: str
    from_columns: tuple[str, ...]
    to_column: str | None  # None: removed (not published at all)
    records_changed: int


@dataclass(frozen=True)
class LatticeNode:
    """One combination of hierarchy levels tried, and the records it would leave at risk."""

    levels: dict[str, str]
    height: int
    records_at_risk: int
    chosen: bool = False


@dataclass(frozen=True)
class DisclosureOutcome:
    policy: str
    k: int
    l: int
    quasi_identifiers: tuple[str, ...]
    before: RiskReport
    after: RiskReport
    generalised: tuple[Generalisation, ...] = ()
    records_suppressed: int = 0
    values_suppressed: dict[str, int] = field(default_factory=dict)  # column -> values set to null
    columns_removed: tuple[str, ...] = ()
    columns_added: tuple[str, ...] = ()
    max_suppression: float | None = None
    lattice: tuple[LatticeNode, ...] = ()

    @property
    def passed(self) -> bool:
        """True when the frame returned is k-anonymous (and l-diverse) over the quasi-identifiers."""
        return self.after.passed

    @property
    def changed(self) -> bool:
        return bool(self.generalised or self.records_suppressed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what `extract` puts in the manifest under `disclosure`."""
        return {
            "policy": self.policy,
            "k": self.k,
            "l": self.l,
            "quasi_identifiers": list(self.quasi_identifiers),
            "passed": self.passed,
            "changed": self.changed,
            "records_generalised": {g.quasi_identifier: g.records_changed for g in self.generalised},
            "generalised": [
                {**asdict(g), "from_columns": list(g.from_columns)} for g in self.generalised
            ],
            "records_suppressed": self.records_suppressed,
            "values_suppressed": dict(self.values_suppressed),
            "columns_removed": list(self.columns_removed),
            "columns_added": list(self.columns_added),
            "max_suppression": self.max_suppression,
            "lattice": [asdict(n) for n in self.lattice],
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }


def refuse_oversuppression(suppressed: int, records: int, max_suppression: float, k: int,
                           quasi_identifiers: Sequence[str], table: str | None = None, *, widest: bool = False,
                           partner: bool = False) -> None:
    """`max_suppression` is a limit: blanking the quasi-identifiers of more than that share of the
    records would publish a table with little left in it, so the run stops (exit 1) instead.
    `widest`: `quasi_identifiers` are the levels that blank the fewest records of every level the
    hierarchies offer (no generalisation helps; only fewer quasi-identifiers, or more suppression)."""
    if records and suppressed > max_suppression * records:
        where = f" of {table}" if table else ""
        over = (f"even generalised as far as helps (best levels tried: {', '.join(quasi_identifiers)})" if widest
                else f"over {', '.join(quasi_identifiers)}")
        raise DisclosureRiskTooHigh(
            f"disclosure control would suppress the quasi-identifiers of {suppressed:,} of {records:,} records{where} "
            f"({suppressed / records:.1%}), more than max_suppression = {max_suppression:.0%} allows, to reach "
            f"k={k} {over}: no package written",
            hint=("a table this small cannot be k-anonymous at these levels without that much blanked: drop a "
                  "quasi-identifier ([disclosure] quasi_identifiers), or raise [disclosure] max_suppression if that "
                  "many blanked records is acceptable" if widest else
                  "coarsen the quasi-identifiers ([disclosure] quasi_identifiers: fewer or wider ones), or raise "
                  "[disclosure] max_suppression if that many blanked records is acceptable")
                 + (f", or leave the {table} extract out of this return" if partner else "")
                 + " (run `tfkit disclosure check` on the table for the class-size distribution)",
        )


def _in_table(table: str | None) -> str:
    """`disclosure (police): ` for a log line about one table of several; `disclosure: ` alone."""
    return f"disclosure ({table}): " if table else "disclosure: "


def apply_policy(
    frame: pl.DataFrame | pl.LazyFrame,
    policy: str = "warn",
    *,
    quasi_identifiers: Sequence[str] = DEFAULT_QUASI_IDENTIFIERS,
    k: int = 10,
    sensitive: str | Sequence[str] | None = None,
    l: int = 2,
    hierarchies: Sequence[Hierarchy] = DEFAULT_HIERARCHIES,
    max_suppression: float = 0.05,
    table: str | None = None,
    log: bool = True,
    passed_over: Sequence[dict[str, str]] = (),
) -> tuple[pl.DataFrame, DisclosureOutcome]:
    """Check `frame` and act on the result according to `policy`; return the frame to publish.

    The returned frame keeps row order and every row (suppression nulls values, never drops rows).
    `table` names the frame in messages; `log=False` leaves the log line on what was done to the caller
    (`generalised_message`). `passed_over`: lattice nodes (their `levels`) generalise must not choose
    (another table fails at them); when none is left, DisclosureRiskTooHigh.
    """
    if policy not in POLICIES:
        raise UsageError(f"unknown disclosure policy {policy!r}", hint=f"use one of: {', '.join(POLICIES)}")
    if not 0 <= max_suppression <= 1:
        raise UsageError(f"max_suppression must be a share between 0 and 1, got {max_suppression}")
    lf = _as_lazy(frame)
    qis = tuple(quasi_identifiers)
    before = check(lf, qis, k=k, sensitive=sensitive, l=l)
    common = dict(policy=policy, k=k, l=l, quasi_identifiers=qis, before=before)

    if policy != "generalise" or before.passed and not passed_over:
        if not before.passed:
            message = (
                f"{before.records_at_risk:,} of {before.records:,} records are in equivalence classes "
                f"smaller than k={k}" + (" or below l-diversity" if before.diversity else "")
                + f" over {', '.join(qis)}"
            )
            if policy == "fail":
                raise DisclosureRiskTooHigh(
                    "disclosure check failed" + (f" for {table}" if table else "") + ": " + message,
                    hint="widen the quasi-identifiers with the 'generalise' policy, or review them "
                    "(run `tfkit disclosure check` for the class-size distribution)",
                    report=before,
                )
            console.log("disclosure_warning", "warning: " + _in_table(table) + message, level="warning",
                        records_at_risk=before.records_at_risk, k=k, **({"table": table} if table else {}))
        out = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
        return out, DisclosureOutcome(**common, after=before)

    return _generalise(lf, qis, k, _sensitive_list(sensitive), l, tuple(hierarchies), max_suppression, common,
                       table=table, log=log, passed_over=passed_over)


def _generalise(
    lf: pl.LazyFrame,
    qi_names: tuple[str, ...],
    k: int,
    sensitive: tuple[str, ...],
    l: int,
    hierarchies: tuple[Hierarchy, ...],
    max_suppression: float,
    common: dict[str, Any],
    *,
    table: str | None = None,
    log: bool = True,
    passed_over: Sequence[dict[str, str]] = (),
) -> tuple[pl.DataFrame, DisclosureOutcome]:
    columns = lf.collect_schema().names()
    qis = resolve(columns, qi_names)
    ladders: list[tuple[Level | None, ...]] = [(None, *hierarchy_for(q.name, hierarchies)) for q in qis]

    def level_expr(q_index: int, level: Level | None) -> pl.Expr:
        q = qis[q_index]
        return q.expr if level is None else level.expr(q.expr)

    def level_name(q_index: int, level: Level | None) -> str:
        return qis[q_index].name if level is None else level.name

    def removes(q_index: int, j: int) -> bool:
        level = ladders[q_index][j]
        return level is not None and level.removes

    def shown(node: tuple[int, ...]) -> list[str]:
        """The published quasi-identifiers at `node` (a removed one as `<name> removed`)."""
        return [f"{qis[i].name} {REMOVED}" if removes(i, j) else level_name(i, ladders[i][j]) for i, j in enumerate(node)]

    # Score every node of the lattice in one parallel collect. A node removing every
    # quasi-identifier publishes none: not a node.
    nodes = [node for node in itertools.product(*[range(len(ladder)) for ladder in ladders])
             if not all(removes(i, j) for i, j in enumerate(node))]
    # classes count people (tfkit.disclosure.risk): every row labelled with its person once
    lf = with_person_label(lf, person_key_columns(columns)).cache()
    base = lf.select(
        *[level_expr(i, lvl).alias(f"__q{i}_{j}") for i, ladder in enumerate(ladders) for j, lvl in enumerate(ladder)
          if not removes(i, j)],
        *[pl.col(s) for s in sensitive], PERSON,
    ).cache()
    queries = []
    for node in nodes:
        keys = [f"__q{i}_{j}" for i, j in enumerate(node) if not removes(i, j)]
        risky = pl.any_horizontal(pl.col("size") < k, *[pl.col(f"distinct_{s}") < l for s in sensitive])
        queries.append(
            equivalence_classes(base, keys, sensitive).select(pl.col("rows").filter(risky).sum().alias("at_risk"))
        )
    scores = [frame.item() or 0 for frame in pl.collect_all(queries)]
    records = common["before"].records
    limit = max_suppression * records

    def levels_of(node: tuple[int, ...]) -> dict[str, str]:
        return {qis[i].name: level_name(i, ladders[i][j]) for i, j in enumerate(node)}

    excluded = [levels_of(node) in passed_over for node in nodes]

    def rank(index: int) -> tuple:
        node, at_risk = nodes[index], scores[index]
        over = at_risk > limit or excluded[index]
        return (over, at_risk if over else sum(node), sum(node) if over else at_risk, node)

    chosen_index = min(range(len(nodes)), key=rank)
    chosen = nodes[chosen_index]
    if excluded[chosen_index]:
        raise DisclosureRiskTooHigh(f"no generalisation of {table or 'the table'} is left that every table passes at")
    refuse_oversuppression(scores[chosen_index], records, max_suppression, common["k"], shown(chosen), table,
                           widest=True)  # the node blanking least: when it is over the limit, every node is
    lattice = tuple(
        LatticeNode(
            levels=levels_of(node),
            height=sum(node),
            records_at_risk=scores[n],
            chosen=n == chosen_index,
        )
        for n, node in enumerate(nodes)
    )

    # Build the published frame: widened columns replace their sources (a removed quasi-identifier's
    # sources, and any coarser copy of them, go), then small classes lose their quasi-identifier
    # values. Window counts of people mark the records at risk.
    kept = [(i, j) for i, j in enumerate(chosen) if not removes(i, j)]
    out_names = [level_name(i, ladders[i][j]) for i, j in kept]
    gen_exprs = [level_expr(i, ladders[i][j]).alias(f"__g{i}") for i, j in kept]
    keys = [f"__g{i}" for i, _ in kept]
    not_all_null = pl.any_horizontal([pl.col(c).is_not_null() for c in keys])
    risky = not_all_null & pl.any_horizontal(
        pl.col(PERSON).n_unique().over(keys) < k,
        *[pl.col(s).drop_nulls().n_unique().over(keys) < l for s in sensitive],
    )
    work = lf.with_columns(*gen_exprs).with_columns(risky.alias("__risky"))

    replace: dict[str, str] = {}  # source column -> temp column holding its published value
    generalised: list[tuple[int, Level]] = []
    for i, j in enumerate(chosen):
        q = qis[i]
        if j == 0:
            for src in q.sources:
                replace[src] = src
        else:
            generalised.append((i, ladders[i][j]))
    removed: list[str] = []
    added: list[str] = []
    new_columns: dict[str, pl.Expr] = {}
    for i, level in generalised:
        q = qis[i]
        if not level.removes:  # the widened column takes the place of the first source column
            new_columns[q.sources[0]] = pl.col(f"__g{i}").alias(level.name)
            added.append(level.name)
        removed.extend(q.sources)
        # a copy of the quasi-identifier at another level of its ladder would publish what was widened away
        removed.extend(lv.name for lv in ladders[i][1:] if lv is not None and lv.name != level.name and lv.name in columns)
    nulled = {}
    select = []
    for name in columns:
        if name in new_columns:
            expr = new_columns[name]
            out_name = expr.meta.output_name()
            select.append(pl.when(pl.col("__risky")).then(None).otherwise(expr).alias(out_name))
            nulled[out_name] = pl.col("__risky") & expr.is_not_null()
        elif name in removed and name not in new_columns:
            continue
        elif name in replace:
            select.append(pl.when(pl.col("__risky")).then(None).otherwise(pl.col(name)).alias(name))
            nulled[name] = pl.col("__risky") & pl.col(name).is_not_null()
        elif name in added:
            continue  # an existing coarser column (postcode_area) is replaced by the widened one
        else:
            select.append(pl.col(name))
    counts_exprs = [
        pl.col("__risky").sum().alias("__records_suppressed"),
        *[expr.sum().alias(f"__nulled_{name}") for name, expr in nulled.items()],
        *[(qis[i].expr if level.removes else pl.col(f"__g{i}")).is_not_null().sum().alias(f"__changed_{i}")
          for i, level in generalised],
    ]
    work = work.cache()
    result, counts = pl.collect_all([work.select(select), work.select(counts_exprs)])
    c = counts.row(0, named=True)
    outcome_generalised = tuple(
        Generalisation(
            quasi_identifier=qis[i].name,
            level=level.name,
            from_columns=qis[i].sources,
            to_column=None if level.removes else level.name,
            records_changed=c[f"__changed_{i}"],
        )
        for i, level in generalised
    )
    after = check(result, tuple(out_names), k=k, sensitive=sensitive or None, l=l)
    outcome = DisclosureOutcome(
        **common,
        after=after,
        generalised=outcome_generalised,
        records_suppressed=c["__records_suppressed"],
        values_suppressed={name: c[f"__nulled_{name}"] for name in nulled},
        columns_removed=tuple(r for r in removed if r not in added),
        columns_added=tuple(a for a in added if a not in columns or a in removed),
        max_suppression=max_suppression,
        lattice=lattice,
    )
    if log:
        log_generalised(outcome, table)
    return result, outcome


def log_generalised(outcome: DisclosureOutcome, table: str | None = None) -> None:
    """The log line on what generalise did to a table."""
    console.log(
        "disclosure_generalised",
        f"{_in_table(table)}generalised "
        f"{', '.join(g.quasi_identifier + ' -> ' + g.level for g in outcome.generalised) or 'nothing'}; "
        f"suppressed the quasi-identifiers of {outcome.records_suppressed:,} records",
        records_suppressed=outcome.records_suppressed, **({"table": table} if table else {}),
    )
