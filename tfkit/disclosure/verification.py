"""The disclosure record a package carries, and its check by `tfkit verify`.

`extract` records in the manifest, under `disclosure.published`, what was checked on the person
table as published: the policy, k (and l with its sensitive columns), the quasi-identifiers (the
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

from tfkit.disclosure.risk import RiskReport, check

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
        "sensitive": [d.column for d in after.diversity],
        **_figures(after),
        "k_anonymous": after.passed,
    }


def _figures(report: RiskReport) -> dict[str, Any]:
    return {
        "records": report.records,
        "smallest_class": report.smallest_class,
        "records_below_k": report.records_below_k,
        "share_below_k": round(report.records_below_k / report.records, 6) if report.records else 0.0,
    }


def verify_published(root: Path, manifest: dict[str, Any]) -> tuple[str, str, list[str]]:
    """(status, message, details) for verify's `disclosure` check of the package at `root`."""
    table = root / PERSON_TABLE
    disclosure = manifest.get("disclosure") or {}
    published = disclosure.get("published")
    if not table.is_file():
        return PASS, "no person table: no record-level disclosure check applies", []
    if not isinstance(published, dict):
        return FAIL, "manifest.json records no disclosure check of data/person.parquet (k, quasi-identifiers, " \
                     "smallest class): the package cannot show it is safe to release", []
    try:
        frame = pl.read_parquet(table)  # all of it: a quasi-identifier may be derived (dob_year from dob_year_month)
        report = check(frame, published["quasi_identifiers"], k=int(published["k"]),
                       sensitive=published.get("sensitive") or None, l=int(published.get("l") or 2))
    except Exception as err:  # a missing column or unreadable file: the record and the data disagree
        return FAIL, f"the disclosure check recorded in manifest.json cannot be recomputed: {type(err).__name__}: " \
                     f"{str(err).splitlines()[0][:200]}", []
    found = _figures(report)
    problems = [f"{name}: manifest.json says {published.get(name)!r}, the data gives {found[name]!r}"
                for name in FIGURES if published.get(name) != found[name]]
    if bool(published.get("k_anonymous")) != report.passed:
        problems.append(f"k_anonymous: manifest.json says {published.get('k_anonymous')!r}, the data gives {report.passed!r}")
    qis = ", ".join(published["quasi_identifiers"])
    if problems:
        return FAIL, "the disclosure figures in manifest.json do not match the data: " + problems[0], problems
    summary = (f"k={published['k']} over {qis}: smallest class {found['smallest_class']}, "
               f"{found['share_below_k']:.1%} of {found['records']:,} records in classes below k")
    if report.passed:
        return PASS, f"k-anonymous as recorded ({summary})", []
    if published.get("policy") in ("fail", "generalise"):
        return FAIL, f"NOT k-anonymous although the policy is {published.get('policy')!r} ({summary})", []
    return WARN, f"NOT k-anonymous: policy 'warn' let records in small classes through ({summary}); " \
                 "do not release it without disclosure control", []
