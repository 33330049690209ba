"""The link report on the shared report toolkit (issue 11 item 6, issue 13 "one HTML/SVG toolkit")."""

from __future__ import annotations

import os
import re
import stat

import numpy as np
import pytest

from tfkit.linkage import link
from tfkit.linkage.evaluate import calibration, weights_out_of_order
from tfkit.linkage.report import render_report, write_link_report
from tfkit.report.svg import nice_ticks

from tests.test_linkage_cli import demo_frames, small_model  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def result(demo_frames):  # noqa: F811
    return link(demo_frames, small_model(), truth_column="person_key", clean=("cohort",))


@pytest.fixture(scope="module")
def page(result):
    return render_report(result.linker, result.scored, metrics=result.metrics, threshold=result.threshold,
                         clusters=result.clusters, summary=result.summary())


def _figures(page: str) -> list[str]:
    return re.findall(r'<figure class="chart-figure">.*?</figure>', page, flags=re.S)


def test_every_chart_has_ticks_and_values(page):
    figures = _figures(page)
    assert len(figures) >= 15
    for figure in figures:
        caption = re.search(r"<figcaption>(.*?)</figcaption>", figure).group(1)
        assert 'class="tick"' in figure, caption  # a ticked axis
        assert 'class="value' in figure or "circle" in figure, caption  # values written on the chart


def test_truth_charts_and_sorted_accuracy_table(page, result):
    for caption in ("Precision against recall", "F1, precision and recall by threshold",
                    "Observed match rate against predicted probability", "Clusters by number of records",
                    "Candidate pairs by match weight", "forename: m and u per level", "dob: weight per level"):
        assert caption in page, caption
    table = page.split("<h3>Accuracy by threshold</h3>", 1)[1]
    thresholds = [float(t) for t in re.findall(r"<tr[^>]*><td>([0-9.]+)", table)]
    assert len(thresholds) >= 40 and thresholds == sorted(thresholds)
    assert "(chosen)" in table and "(best F1)" in table
    bands = result.metrics["calibration"]
    assert sum(b["pairs"] for b in bands) == result.scored.height
    assert "Clusters holding two records of a clean source" in page


def test_report_page_is_private_and_has_no_values(tmp_path, result, demo_frames):  # noqa: F811
    old = os.umask(0o022)
    try:
        path = write_link_report(tmp_path / "report.html", result)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "https:" not in text and "http:" not in text.replace("http://www.w3.org", "") and "<script" not in text
    # Record ids appear (hence 0600), names and dates do not.
    for value in demo_frames["cohort"]["surname"].drop_nulls().unique().to_list()[:50]:
        assert f">{value}<" not in text


def test_weights_running_the_wrong_way_are_warned(result):
    model = result.model
    saved = {k: v.copy() for k, v in model.m.items()}
    try:
        m = model.m["dob"]
        m[0] = 1e-5  # exact now weighs less than the looser levels
        found = weights_out_of_order(model)
        assert any(w["comparison"] == "dob" and w["closer"] == "exact" for w in found)
        page = render_report(result.linker, result.scored, threshold=result.threshold)
        assert "less than the looser" in page and "WARNING" in page
        dob_section = page.split("<h3>dob", 1)[1].split("<h3>", 1)[0]
        assert dob_section.count("(weighs more than a closer level)") >= 1 and 'class="bad"' in dob_section
    finally:
        model.m.update(saved)


def test_calibration_bands():
    p = np.array([0.05, 0.05, 0.55, 0.95, 0.97, 1.0])
    truth = np.array([0, 1, 0, 1, 1, 1], dtype=bool)
    bands = calibration(p, truth)
    assert [b["pairs"] for b in bands] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 3]
    assert bands[0]["observed"] == 0.5 and bands[9]["observed"] == 1.0
    assert bands[9]["predicted"] == pytest.approx((0.95 + 0.97 + 1.0) / 3)
    assert bands[1]["predicted"] is None


@pytest.mark.parametrize("lo,hi", [(0, 1), (-11.88, 31.9), (0, 520), (0.95, 1), (-5.67, 11.11), (3, 3)])
def test_nice_ticks_cover_the_range(lo, hi):
    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and 2 <= len(ticks) <= 12
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])


def test_training_problems_reach_the_summary(result):
    found = weights_out_of_order(result.model)
    codes = [w["code"] for w in result.summary()["warnings"]]
    assert codes.count("weights_out_of_order") == len(found)
    not_converged = [t for t in result.model.training_log if t.get("converged") is False]
    assert codes.count("em_not_converged") == len(not_converged)
