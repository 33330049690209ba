"""Disclosure control of every published table, not just the person table.

A partner table (police, school attendance, DWP) carries its own quasi-identifiers and, when linked,
`person_id_pseudonym`: joined to the person table it would give back any detail generalised away or
suppressed there. So, under the `generalise` policy, after the person table:

1. every partner table's quasi-identifiers are widened to the levels the person table published
   (`dob_year_month` -> `dob_year_band`, `postcode_district` -> `postcode_area`), never finer;
2. a row linked to a person carries that person's *published* quasi-identifier values (the person
   table is their home), so joining the tables adds nothing: a person suppressed in `person` is
   suppressed in every table, and a partner's differing record of a linked person is not published
   next to the person's own (two versions joined would form finer classes than either);
3. each table must then be k-anonymous on its own: records of classes still below k have their
   quasi-identifiers nulled (rows are never dropped), and more than `max_suppression` of a table's
   records blanked stops the run (DisclosureRiskTooHigh, exit 1).

Under `warn` and `fail` every table is checked over the configured quasi-identifiers as it stands.
A table holding none of the quasi-identifiers (nor a column they derive from) is left alone.
"""

from __future__ import annotations

from typing import Any, Sequence

import polars as pl

from tfkit import console
from tfkit.disclosure.hierarchies import (DEFAULT_HIERARCHIES, REMOVED, Hierarchy, QuasiIdentifier, hierarchy_for,
                                          present_quasi_identifiers)
from tfkit.disclosure.policy import (DisclosureOutcome, DisclosureRiskTooHigh, apply_policy, log_generalised,
                                    refuse_oversuppression)
from tfkit.disclosure.verification import published_summary

LINK_COLUMN = "person_id_pseudonym"


def control_tables(
    tables: dict[str, pl.DataFrame],
    person: str,
    policy: str,
    *,
    quasi_identifiers: Sequence[str],
    k: int,
    sensitive: str | Sequence[str] | None,
    l: int,
    max_suppression: float,
    target_suppression: float | None = None,
    hierarchies: Sequence[Hierarchy] = DEFAULT_HIERARCHIES,
) -> tuple[dict[str, pl.DataFrame], DisclosureOutcome, dict[str, dict[str, Any]]]:
    """Apply `policy` to the person table, then to every other table with quasi-identifiers.

    Under `generalise`, the person table's levels are the least-generalised ones at which every
    table passes: levels at which a partner table would need more than `max_suppression` blanked
    are passed over for wider ones (else that partner table's refusal is raised).

    With `target_suppression` (below max_suppression) the levels are first sought at the target, so
    the ladder is climbed before more than the target is blanked; only when no levels reach it is the
    search run again up to max_suppression (the limit, beyond which the run stops).

    Returns the tables to publish (same rows, same order), the person table's outcome, and per table
    the record for the manifest (`published_summary` plus what was suppressed)."""
    common = dict(quasi_identifiers=quasi_identifiers, k=k, sensitive=sensitive, l=l, hierarchies=hierarchies)
    if policy == "generalise" and target_suppression is not None and target_suppression < max_suppression:
        try:
            return _control(tables, person, policy, max_suppression=target_suppression, **common)
        except DisclosureRiskTooHigh:
            pass  # even the widest levels need more than the target blanked somewhere: blank least, up to the limit
        others = _least_blanking(tables, person, **common)
        return _control(tables, person, policy, max_suppression=max_suppression, passed_over=others, **common)
    return _control(tables, person, policy, max_suppression=max_suppression, **common)


def _least_blanking(tables: dict[str, pl.DataFrame], person: str, **common: Any) -> list[dict[str, str]]:
    """Every node of the person table's lattice but the one at which the table blanking the largest
    share of its records blanks least (ties: the least widened): the nodes to pass over."""
    # passed_over=[{}] (no node's levels): the whole lattice scored even when the table passes as it is
    _, first = apply_policy(tables[person], "generalise", table=person, log=False, max_suppression=1.0,
                            passed_over=[{}], **common)
    nodes = sorted(first.lattice, key=lambda n: n.height)
    worst: list[float] = []
    for node in nodes:
        others = [n.levels for n in nodes if n is not node]
        frame, outcome = apply_policy(tables[person], "generalise", table=person, log=False, max_suppression=1.0,
                                      passed_over=others, **common)
        _, records, _ = _partners(tables, person, frame, outcome, "generalise", max_suppression=1.0, **common)
        shares = [outcome.records_suppressed / frame.height if frame.height else 0.0,
                  *[r["share_suppressed"] for r in records.values()]]
        worst.append(max(shares))
    best = min(range(len(nodes)), key=lambda i: (worst[i], nodes[i].height))
    return [n.levels for i, n in enumerate(nodes) if i != best]


def _control(tables: dict[str, pl.DataFrame], person: str, policy: str, *, quasi_identifiers: Sequence[str], k: int,
             sensitive: str | Sequence[str] | None, l: int, max_suppression: float, hierarchies: Sequence[Hierarchy],
             passed_over: Sequence[dict[str, str]] = (),
             ) -> tuple[dict[str, pl.DataFrame], DisclosureOutcome, dict[str, dict[str, Any]]]:
    """control_tables at one limit: the least widened person levels (not `passed_over`) at which every
    table blanks at most `max_suppression`."""
    kw = dict(k=k, l=l, max_suppression=max_suppression)
    passed_over = list(passed_over)
    refusal: DisclosureRiskTooHigh | None = None
    while True:
        try:
            person_frame, outcome = apply_policy(tables[person], policy, quasi_identifiers=quasi_identifiers,
                                                 sensitive=sensitive, hierarchies=hierarchies, table=person,
                                                 log=False, passed_over=passed_over, **kw)
        except DisclosureRiskTooHigh:
            if refusal is None:
                raise
            raise refusal from None  # no level left at which the partner table passes: its own refusal
        try:
            out, records, lines = _partners(tables, person, person_frame, outcome, policy, quasi_identifiers,
                                            sensitive, hierarchies, **kw)
            break
        except DisclosureRiskTooHigh as err:
            if policy != "generalise":
                raise
            refusal = err
            passed_over.append(next((node.levels for node in outcome.lattice if node.chosen),  # none: as they are
                                    {q: q for q in outcome.quasi_identifiers}))
    if policy == "generalise":
        log_generalised(outcome, person)
    for line in lines:
        console.log("disclosure_partner", line["message"], **{k: v for k, v in line.items() if k != "message"})
    out[person] = person_frame
    records = {person: {**published_summary(policy, outcome.after, l), "records_suppressed": outcome.records_suppressed,
                        "share_suppressed": _share(outcome.records_suppressed, person_frame.height)}, **records}
    return out, outcome, records


def _partners(tables: dict[str, pl.DataFrame], person: str, person_frame: pl.DataFrame, outcome: DisclosureOutcome,
              policy: str, quasi_identifiers: Sequence[str], sensitive: str | Sequence[str] | None,
              hierarchies: Sequence[Hierarchy], *, k: int, l: int, max_suppression: float,
              ) -> tuple[dict[str, pl.DataFrame], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Every table but the person table, under `policy`, after the person table's `outcome`: the
    tables, their manifest records, and the log lines to write once these levels are kept."""
    out = dict(tables)
    records: dict[str, dict[str, Any]] = {}
    lines: list[dict[str, Any]] = []
    for name, frame in tables.items():
        if name == person:
            continue
        qis = present_quasi_identifiers(frame.columns, quasi_identifiers)
        if not qis:
            continue
        sens = [s for s in _as_list(sensitive) if s in frame.columns] or None
        if policy != "generalise":
            published, partner = apply_policy(frame, policy, quasi_identifiers=[q.name for q in qis], sensitive=sens,
                                              table=name, k=k, l=l)
            out[name] = published
            records[name] = {**published_summary(policy, partner.after, l), "records_suppressed": 0,
                             "share_suppressed": 0.0}
            continue
        widened, names, with_person, linked = _as_person_published(frame, qis, outcome, person_frame, hierarchies)
        if not names:  # every quasi-identifier it held was removed: nothing left to single anyone out by
            out[name] = widened
            continue
        # suppression only: the levels are the person table's; max_suppression is checked below, on
        # everything blanked in this table (with the person, and here)
        published, partner = apply_policy(widened, "generalise", quasi_identifiers=names, sensitive=sens,
                                          hierarchies=(), max_suppression=1.0, table=name, log=False, k=k, l=l)
        blanked = with_person + partner.records_suppressed
        # widest: only the refusal at the last person levels tried escapes control_tables
        removed = [f"{g.quasi_identifier} {REMOVED}" for g in outcome.generalised
                   if g.level == REMOVED and g.quasi_identifier in {q.name for q in qis}]
        refuse_oversuppression(blanked, published.height, max_suppression, k, [*names, *removed], table=name,
                               widest=True, partner=True)
        lines.append({"message": f"disclosure ({name}): at the {person} table's levels ({', '.join(names)}); suppressed "
                                 f"the quasi-identifiers of {blanked:,} records ({with_person:,} as their person's "
                                 f"were, {partner.records_suppressed:,} in classes below k)",
                      "table": name, "records_suppressed": blanked, "suppressed_with_person": with_person})
        out[name] = published
        records[name] = {**published_summary(policy, partner.after, l), "records_suppressed": blanked,
                         "suppressed_with_person": with_person, "linked_rows_from_person": linked,
                         "share_suppressed": _share(blanked, published.height)}
    return out, records, lines


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _as_list(sensitive: str | Sequence[str] | None) -> list[str]:
    if sensitive is None:
        return []
    return [sensitive] if isinstance(sensitive, str) else list(sensitive)


def _as_person_published(
    frame: pl.DataFrame,
    qis: list[QuasiIdentifier],
    outcome: DisclosureOutcome,
    person: pl.DataFrame,
    hierarchies: Sequence[Hierarchy],
) -> tuple[pl.DataFrame, list[str], int, int]:
    """`frame` with its quasi-identifiers at the person table's published levels, and linked rows
    carrying their person's published values. Returns (frame, published names, rows blanked because
    their person was suppressed, rows linked)."""
    chosen = {g.quasi_identifier: g.level for g in outcome.generalised}
    outputs: dict[str, pl.Expr] = {}  # the first source column -> the published column
    drop: set[str] = set()
    names: list[str] = []
    published_columns: list[str] = []
    for q in qis:
        ladder = hierarchy_for(q.name, hierarchies)
        level = next((lv for lv in ladder if lv.name == chosen.get(q.name)), None)
        if level is None:  # not widened in the person table: the table keeps its own columns
            names.append(q.name)
            published_columns.extend(q.sources)
            continue
        # a copy at another level of the ladder (postcode_area beside postcode_district) goes too
        drop.update(lv.name for lv in ladder if lv.name != level.name)
        if level.removes:  # not published in the person table: nor here
            drop.update(q.sources)
            continue
        outputs[q.sources[0]] = level.expr(q.expr).alias(level.name)
        drop.update(q.sources[1:])
        names.append(level.name)
        published_columns.append(level.name)
    select = []
    for column in frame.columns:
        if column in outputs:
            select.append(outputs[column])
        elif column in drop or (column in {e.meta.output_name() for e in outputs.values()}):
            continue  # a source folded into a widened column, or an existing coarser copy replaced
        else:
            select.append(pl.col(column))
    widened = frame.select(select)
    if LINK_COLUMN not in widened.columns or LINK_COLUMN not in person.columns:
        return widened, names, 0, 0
    # linked rows: the person's published values (null where the person table does not carry the
    # column, or suppressed it); a left join keeps every row and their order
    carried = [c for c in published_columns if c in person.columns]
    home = person.select(LINK_COLUMN, *[pl.col(c).alias(f"__home_{c}") for c in carried]).unique(LINK_COLUMN, keep="first")
    joined = widened.join(home, on=LINK_COLUMN, how="left", maintain_order="left")
    is_linked = pl.col(LINK_COLUMN).is_not_null()
    own_any = pl.any_horizontal([pl.col(c).is_not_null() for c in published_columns])
    home_none = pl.all_horizontal([pl.col(f"__home_{c}").is_null() for c in carried]) if carried else pl.lit(True)
    counts = joined.select(is_linked.sum().alias("linked"), (is_linked & own_any & home_none).sum().alias("blanked")).row(0)
    result = joined.with_columns(
        pl.when(is_linked).then(pl.col(f"__home_{c}") if c in carried else pl.lit(None)).otherwise(pl.col(c))
        .cast(widened.schema[c]).alias(c)
        for c in published_columns
    ).select(widened.columns)
    return result, names, int(counts[1]), int(counts[0])
