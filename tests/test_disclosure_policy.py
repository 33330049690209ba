"""apply_policy: warn, fail and generalise, with every change counted."""

from __future__ import annotations

import polars as pl
import pytest

from tfkit.disclosure import DisclosureRiskTooHigh, Hierarchy, Level, apply_policy, check
from tests.fixtures.synthetic import person_table
from tfkit.errors import EXIT_DATA, UsageError


# the ladder's first rungs only (5-year bands, postcode area), to see the widening and suppression
TWO_LEVELS = (Hierarchy("dob_year", (Level("dob_year_band", "year_band", 5),)),
              Hierarchy("postcode_district", (Level("postcode_area", "postcode_area"),)))


@pytest.fixture(scope="module")
def people() -> pl.DataFrame:
    return person_table(3000, seed=11)


def test_warn_returns_the_frame_unchanged_and_records_the_risk(people, capsys):
    out, outcome = apply_policy(people)
    assert out.equals(people)
    assert outcome.policy == "warn" and not outcome.passed and not outcome.changed
    assert outcome.before.records_at_risk > 0
    assert "warning" in capsys.readouterr().err


def test_fail_raises_a_data_check_failure_carrying_the_report(people):
    with pytest.raises(DisclosureRiskTooHigh) as caught:
        apply_policy(people, "fail")
    assert caught.value.exit_code == EXIT_DATA
    assert caught.value.report.records_at_risk > 0
    assert "k=10" in str(caught.value)


def test_fail_passes_a_safe_frame(people):
    out, outcome = apply_policy(people, "fail", quasi_identifiers=["sex"])
    assert outcome.passed and out.equals(people)


def test_generalise_widens_then_suppresses_and_counts_everything(people):
    # The synthetic frame needs 27% of its records blanked even at the coarsest levels: a limit of 5%
    # refuses it (tests/test_disclosure_tables.py); 0.5 lets the widening and the suppression show.
    out, outcome = apply_policy(people, "generalise", sensitive="problem_crime", max_suppression=0.5,
                                hierarchies=TWO_LEVELS)
    assert out.height == people.height, "rows are never dropped"
    assert outcome.passed and outcome.after.records_at_risk == 0
    assert "dob_year_month" not in out.columns and "postcode_district" not in out.columns
    assert {"dob_year_band", "postcode_area"} <= set(out.columns)
    assert out["dob_year_band"].drop_nulls().str.contains(r"^\d{4}-\d{4}$").all()
    changed = {g.quasi_identifier: g.records_changed for g in outcome.generalised}
    assert changed == {"dob_year": people.height, "postcode_district": people.height}
    # suppression nulls every quasi-identifier of exactly the records counted
    all_null = out.select(pl.all_horizontal(pl.col(c).is_null() for c in ("dob_year_band", "sex", "postcode_area"))).to_series()
    assert all_null.sum() == outcome.records_suppressed == outcome.after.fully_suppressed
    assert outcome.values_suppressed["sex"] == outcome.records_suppressed
    # the untouched columns are untouched, in the same row order
    assert out["person_id_pseudonym"].equals(people["person_id_pseudonym"])
    # independent re-check of the published frame
    assert check(out, ("dob_year_band", "sex", "postcode_area"), sensitive="problem_crime").passed
    d = outcome.to_dict()
    assert d["records_suppressed"] == outcome.records_suppressed and d["columns_added"] == ["dob_year_band", "postcode_area"]
    assert sum(node["chosen"] for node in d["lattice"]) == 1


def test_generalise_chooses_the_least_widening_within_the_suppression_limit():
    # Postcode districts alone are fine; only the year of birth needs widening.
    rows = [(f"{1980 + i % 5}-01", "F", "SW1A") for i in range(40)] + [(f"{1980 + i % 5}-01", "M", "SW1B") for i in range(40)]
    df = pl.DataFrame(rows, schema=["dob_year_month", "sex", "postcode_district"], orient="row")
    out, outcome = apply_policy(df, "generalise", max_suppression=0.0)
    assert [g.quasi_identifier for g in outcome.generalised] == ["dob_year"]
    assert "postcode_district" in out.columns and outcome.records_suppressed == 0


def test_generalise_leaves_a_safe_frame_alone(people):
    out, outcome = apply_policy(people, "generalise", quasi_identifiers=["sex"])
    assert out.equals(people) and not outcome.changed


def test_generalise_without_hierarchies_only_suppresses(people):
    out, outcome = apply_policy(people, "generalise", hierarchies=(), max_suppression=1.0)
    assert not outcome.generalised and outcome.records_suppressed == outcome.before.records_at_risk
    assert out.columns == people.columns
    assert out["dob_year_month"].null_count() == outcome.records_suppressed


def test_user_declared_hierarchy():
    df = pl.DataFrame({"dob_year": [1980 + i % 10 for i in range(100)], "sex": ["F"] * 100})
    out, outcome = apply_policy(df, "generalise", quasi_identifiers=["dob_year", "sex"], k=20,
                                hierarchies=[Hierarchy("dob_year", (Level("dob_decade", "year_band", 10),))])
    assert out["dob_decade"].unique().to_list() == ["1980-1989"] and outcome.passed


def test_unknown_policy_is_a_usage_error(people):
    with pytest.raises(UsageError):
        apply_policy(people, "ignore")
