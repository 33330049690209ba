"""Disclosure control: record-level risk (k-anonymity, l-diversity), the extract policy, and
publishable summary tables with primary and secondary small-cell suppression.

    report = check(frame, quasi_identifiers=("dob_year", "sex", "postcode_district"), k=10)
    frame, outcome = apply_policy(frame, "generalise")      # outcome.to_dict() -> manifest
    summary = summarise(open_person_table(package), threshold=10, rounding=5)
    summary.write(out_dir)
"""

from tfkit.disclosure.hierarchies import (
    DEFAULT_HIERARCHIES,
    DEFAULT_QUASI_IDENTIFIERS,
    DERIVATIONS,
    Derivation,
    Hierarchy,
    Level,
)
from tfkit.disclosure.policy import (
    POLICIES,
    DisclosureOutcome,
    DisclosureRiskTooHigh,
    Generalisation,
    apply_policy,
)
from tfkit.disclosure.risk import ClassSizeBin, LDiversity, RiskReport, check
from tfkit.disclosure.source import PersonSource, open_person_table
from tfkit.disclosure.summaries import Summary, summarise
from tfkit.disclosure.tables import CountTable

__all__ = [
    "DEFAULT_HIERARCHIES", "DEFAULT_QUASI_IDENTIFIERS", "DERIVATIONS", "POLICIES", "ClassSizeBin", "CountTable",
    "Derivation", "DisclosureOutcome", "DisclosureRiskTooHigh", "Generalisation", "Hierarchy", "LDiversity",
    "Level", "PersonSource", "RiskReport", "Summary", "apply_policy", "check", "open_person_table", "summarise",
]
