"""The disclosure record a package carries, and its check by `tfkit verify`.

`extract` records in the manifest, under `disclosure.published` (the person table) and
`disclosure.tables` (every table with quasi-identifiers, by name), what was checked on each table as
published: the policy, k (and l with its sensitive columns), the quasi-identifiers (the
published columns: `postcode_area` after generalisation), the number of records, the smallest
equivalence class and the share of records in classes below k.

`verify_published` recomputes those figures from the data file itself. It fails when they disagree
with the manifest (the data or the record was changed), or when a `fail` or `generalise` policy's
data is not k-anonymous (the policy promised it would be); a `warn` policy's unsafe data is a
warning, shown plainly, never a silent pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from tfkit.disclosure.hierarchies import DEFAULT_QUASI_IDENTIFIERS, present_quasi_identifiers
from tfkit.disclosure.risk import RiskReport, check, person_key_columns

PERSON_TABLE = Path("data") / "person.parquet"
FIGURES = ("records", "smallest_class", "records_below_k", "share_below_k")
PASS, WARN, FAIL = "pass", "warn", "fail"


def published_summary(policy: str, after: RiskReport, l: int) -> dict[str, Any]:
    """The manifest's `disclosure.published` block for the table as published."""
    return {
        "policy": policy,
        "k": after.k,
        "l": l,
        "quasi_identifiers": list(after.quasi_identifiers),
        "person_key": list(after.person_key),
        "sensitive": [d.column for d in after.diversity],
        **_figures(after),
        "k_anonymous": after.passed,
    }


def _figures(report: RiskReport) -> dict[str, Any]:
    return {
        "records": report.records,
        "people": report.people,
        "smallest_class": report.smallest_class,
        "records_below_k": report.records_below_k,
        "share_below_k": round(report.records_below_k / report.records, 6) if report.records else 0.0,
        "fully_suppressed": report.fully_suppressed,
    }


def verify_published(root: Path, manifest: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(status, message, details) for verify's `disclosure` check of the package at `root`: every
    data table carrying quasi-identifiers is re-checked against its record in the manifest."""
    disclosure = manifest.get("disclosure") or {}
    published = disclosure.get("published")
    files = {p.stem: p for p in sorted((root / "data").glob("*.parquet")) if p.is_file() and not p.is_symlink()}  # never open a FIFO
    if not (root / PERSON_TABLE).is_file():
        if isinstance(published, dict):  # the manifest recorded a check of a table that is gone
            return FAIL, f"{PERSON_TABLE.as_posix()}: recorded in manifest.json's disclosure check but not in the package", []
        return PASS, "no person table: no record-level disclosure check applies", []
    if not isinstance(published, dict):
        return FAIL, "manifest.json records no disclosure check of data/person.parquet (k, quasi-identifiers, " \
                     "smallest class): the package cannot show it is safe to release", []
    records = disclosure.get("tables")
    if not isinstance(records, dict):
        records = {PERSON_TABLE.stem: published}  # a package from before every table was controlled
    looked_for = [*published.get("quasi_identifiers", []), *DEFAULT_QUASI_IDENTIFIERS]
    results: list[tuple[str, str, str, list[str]]] = []
    for name, path in files.items():
        record = records.get(name)
        if isinstance(record, dict):
            results.append((name, *_verify_table(path, record)))
            continue
        try:
            held = present_quasi_identifiers(pl.read_parquet_schema(path).names(), looked_for)
        except Exception as err:
            results.append((name, FAIL, f"cannot be read: {type(err).__name__}", []))
            continue
        if held:
            results.append((name, FAIL, f"carries quasi-identifiers ({', '.join(q.name for q in held)}) but "
                                        "manifest.json records no disclosure check of it", []))
    for name in records:
        if name not in files:
            results.append((name, FAIL, "recorded in manifest.json's disclosure check but not in the package", []))
    for status in (FAIL, WARN):
        bad = [r for r in results if r[1] == status]
        if bad:
            details = [f"data/{n}.parquet: {m}" for n, _, m, _ in bad] + [d for *_, ds in bad for d in ds]
            return status, details[0] + (f" (and {len(bad) - 1} more table(s))" if len(bad) > 1 else ""), details
    return PASS, "; ".join(f"{n}: {m}" for n, _, m, _ in results), []


def _verify_table(table: Path, published: dict[str, Any]) -> tuple[str, str, list[str]]:
    try:
        frame = pl.read_parquet(table)  # all of it: a quasi-identifier may be derived (dob_year from dob_year_month)
        # classes count people by the table's own person keys (a package from before people were
        # counted records no person_key: its classes counted records)
        key = person_key_columns(frame.columns) if "person_key" in published else ()
        report = check(frame, published["quasi_identifiers"], k=int(published["k"]),
                       sensitive=published.get("sensitive") or None, l=int(published.get("l") or 2), person_key=key)
    except Exception as err:  # a missing column or unreadable file: the record and the data disagree
        return FAIL, f"the disclosure check recorded in manifest.json cannot be recomputed: {type(err).__name__}: " \
                     f"{str(err).splitlines()[0][:200]}", []
    found = _figures(report)
    problems = [f"{name}: manifest.json says {published.get(name)!r}, the data gives {found[name]!r}"
                for name in FIGURES if published.get(name) != found[name]]
    if "person_key" in published and list(published["person_key"]) != list(report.person_key):
        problems.append(f"person_key: manifest.json says {published['person_key']!r}, the data holds "
                        f"{list(report.person_key)!r}")
    if "people" in published and published["people"] != found["people"]:
        problems.append(f"people: manifest.json says {published['people']!r}, the data gives {found['people']!r}")
    if "fully_suppressed" in published and published["fully_suppressed"] != found["fully_suppressed"]:
        problems.append(f"fully_suppressed: manifest.json says {published['fully_suppressed']!r}, "
                        f"the data gives {found['fully_suppressed']!r}")
    if bool(published.get("k_anonymous")) != report.passed:
        problems.append(f"k_anonymous: manifest.json says {published.get('k_anonymous')!r}, the data gives {report.passed!r}")
    qis = ", ".join(published["quasi_identifiers"])
    if problems:
        return FAIL, "the disclosure figures in manifest.json do not match the data: " + problems[0], problems[1:]
    summary = (f"k={published['k']} over {qis}: smallest class {found['smallest_class']}"
               + (" people" if report.person_key else "") + ", "
               f"{found['share_below_k']:.1%} of {found['records']:,} records in classes below k")
    if report.passed and not key and person_key_columns(frame.columns):
        by_people = check(frame, published["quasi_identifiers"], k=int(published["k"]),
                          sensitive=published.get("sensitive") or None, l=int(published.get("l") or 2))
        if not by_people.passed:  # made before classes counted people: say what counting people finds
            return WARN, (f"k-anonymous by records as recorded ({summary}), but counting people (by "
                          f"{', '.join(by_people.person_key)}) {by_people.records_at_risk:,} records are in classes "
                          "of fewer than k people: the package was made by a tfkit that counted records; "
                          "remake it before release"), []
    if report.passed:
        return PASS, f"k-anonymous as recorded ({summary})", []
    if published.get("policy") in ("fail", "generalise"):
        return FAIL, f"NOT k-anonymous although the policy is {published.get('policy')!r} ({summary})", []
    return WARN, f"NOT k-anonymous: policy 'warn' let records in small classes through ({summary}); " \
                 "do not release it without disclosure control", []
