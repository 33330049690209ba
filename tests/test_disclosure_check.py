"""k-anonymity and l-diversity: tfkit.disclosure.check on small generated frames."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfkit.disclosure import check
from tfkit.disclosure.risk import size_bins
from tests.fixtures.synthetic import person_table
from tfkit.errors import UsageError


def frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["dob_year_month", "sex", "postcode_district", "problem_crime"], orient="row")


def test_counts_classes_below_k_and_derives_year_of_birth():
    rows = [("1980-01", "F", "SW1A", True)] * 10 + [("1980-12", "F", "SW1A", False)] * 2 + [("1990-05", "M", "E1", True)] * 3
    report = check(frame(rows), k=10)
    assert report.derived == {"dob_year": "dob_year_month"}
    assert report.records == 15
    assert report.classes == 2  # 1980-01 and 1980-12 share the year
    assert (report.classes_below_k, report.records_below_k) == (1, 3)
    assert (report.smallest_class, report.largest_class) == (3, 12)
    assert not report.passed
    by_label = {b.label: b for b in report.class_sizes}
    assert by_label["3"].records == 3 and by_label["10-19"].classes == 1
    assert report.below_k_without == {"dob_year": 3, "sex": 3, "postcode_district": 3}


def test_passes_when_every_class_reaches_k():
    rows = [("1980-01", "F", "SW1A", True)] * 5 + [("1980-01", "F", "SW1A", False)] * 5
    report = check(frame(rows), k=10, sensitive="problem_crime")
    assert report.passed and report.records_at_risk == 0
    assert report.diversity[0].min_distinct == 2


def test_l_diversity_flags_a_large_class_with_one_sensitive_value():
    rows = [("1980-01", "F", "SW1A", True)] * 12
    report = check(frame(rows), k=10, sensitive="problem_crime", l=2)
    assert report.records_below_k == 0
    assert report.diversity[0].records_below_l == 12 and not report.diversity[0].passed
    assert not report.passed and report.records_at_risk == 12


def test_fully_suppressed_records_form_no_class():
    rows = [("1980-01", "F", "SW1A", True)] * 10 + [(None, None, None, True)] * 3
    report = check(frame(rows), k=10)
    assert report.passed and report.fully_suppressed == 3 and report.classes == 1


def test_partial_nulls_are_a_value_of_their_own():
    rows = [("1980-01", "F", "SW1A", True)] * 10 + [("1980-01", None, "SW1A", True)] * 3
    assert check(frame(rows), k=10).records_below_k == 3


def test_custom_quasi_identifiers_and_lazy_frames():
    df = person_table(500, seed=4)
    report = check(df.lazy(), ["sex"], k=5)
    assert report.quasi_identifiers == ("sex",) and report.records == 500 and report.below_k_without == {}


@pytest.mark.parametrize("bad", [dict(quasi_identifiers=["nope"]), dict(k=0), dict(sensitive="nope"),
                                 dict(quasi_identifiers=["sex", "sex"]), dict(sensitive="sex")])
def test_usage_errors_name_the_problem(bad):
    with pytest.raises(UsageError):
        check(person_table(50), **bad)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["1980-01", "1981-06", "1990-01"]), st.sampled_from(["F", "M", "U"]),
                          st.sampled_from(["SW1A", "E1", "N1"]), st.booleans()), min_size=1, max_size=60),
       st.integers(1, 6))
def test_matches_a_plain_python_count(rows, k):
    from collections import Counter

    sizes = Counter((r[0][:4], r[1], r[2]) for r in rows)
    report = check(frame(rows), k=k)
    assert report.records_below_k == sum(n for n in sizes.values() if n < k)
    assert report.classes == len(sizes)
    assert sum(b.records for b in report.class_sizes) == len(rows)


def test_size_bins_cover_every_size_once():
    bins = size_bins(10)
    assert bins[0] == (1, 1) and bins[-1] == (100, None)
    for (lo, hi), (next_lo, _) in zip(bins, bins[1:]):
        assert hi + 1 == next_lo
