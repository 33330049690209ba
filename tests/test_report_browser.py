"""The run report opened in a real browser (headless Chromium; skipped where Chromium is absent).

Chromium loads the page from disk with networking components off, dumps the DOM it built and logs its
console to stderr: the DOM must hold every section heading and chart, and the log no script error,
no Content-Security-Policy refusal and no failed load (the page must need nothing from outside).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tfkit.report import write_run_report

from tests.test_report_render import manifest_fixture

TIMEOUT = 60  # seconds: the browser can never hang the suite


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")


def open_in_chromium(page: Path, tmp_path: Path) -> tuple[str, str]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", "--dump-dom", page.resolve().as_uri(),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not finish within {TIMEOUT} s")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def _console_errors(log: str) -> list[str]:
    """Any page console message (the report has no script, so none is expected) or load failure."""
    bad = re.compile(r":CONSOLE|Uncaught|Refused to|violates the following Content Security Policy|"
                     r"Failed to load resource|net::ERR_")
    return [line for line in log.splitlines() if bad.search(line)]


def test_report_renders_in_headless_chromium_without_errors(tmp_path):
    validation = {"cohort": {"file": "cohort.csv", "schema": {"name": "nis"}, "valid": False,
                             "rows": {"in": 12, "valid": 11, "quarantined": 1},
                             "problems": [{"code": "invalid_nino", "severity": "error", "field": "nino", "count": 1,
                                           "lines": [7], "examples": ["QQ123456C"], "message": "<b>bad</b>"}]}}
    disclosure = {"k": 10, "passed": False, "quasi_identifiers": ["dob_year", "sex", "postcode_district"],
                  "records": 12, "classes": 2, "class_sizes": [{"label": "2", "size_from": 2, "records": 2},
                                                               {"label": "10-19", "size_from": 10, "records": 10}]}
    page = write_run_report(tmp_path / "E09000031_nis_2019-H2.report.html", {
        "package": "E09000031_nis_2019-H2", "manifest": manifest_fixture(), "validation": validation,
        "disclosure": disclosure, "linkage": {"mode": "link", "links": 5, "linked_to_person": {"police": 5}},
    })
    dom, log = open_in_chromium(page, tmp_path)
    assert not _console_errors(log), _console_errors(log)
    headings = re.findall(r"<h2>([^<]+)<span", dom)
    assert [h.strip() for h in headings] == ["Package", "Validation", "Reconciliation", "Linkage", "Disclosure control"]
    assert dom.count("<svg") >= 3  # problems, reconciliation, linkage, class sizes
    assert "&lt;b&gt;bad&lt;/b&gt;" in dom and "<b>bad</b>" not in dom  # escaped text stays text
    assert "QQ123456C" not in dom


def test_not_run_page_renders_too(tmp_path):
    page = write_run_report(tmp_path / "empty.report.html", {})
    dom, log = open_in_chromium(page, tmp_path)
    assert not _console_errors(log)
    assert dom.count("NOT RUN") == 5


def test_the_checker_catches_a_broken_page(tmp_path):
    """Guard for the test itself: an external image and a failing script are both reported."""
    page = tmp_path / "bad.report.html"
    text = write_run_report(tmp_path / "ok.html", {}).read_text(encoding="utf-8")
    page.write_text(text.replace("<main>", '<main><img src="https://example.invalid/x.png"><script>nope()</script>'))
    _, log = open_in_chromium(page, tmp_path)
    errors = "\n".join(_console_errors(log))
    assert "example.invalid" in errors and "script" in errors


def test_link_report_renders_in_headless_chromium_without_errors(tmp_path):
    from tfkit.linkage import link
    from tfkit.linkage.report import write_link_report

    from tests.test_linkage_cli import small_model
    from tfkit.demo import generate_frames
    from tests.fixtures.demo_frames import cohort_and_partners

    frames = cohort_and_partners(generate_frames(400, seed=5), n_right=400, seed=0)
    result = link(frames, small_model(), truth_column="person_key", clean=("cohort",))
    page = write_link_report(tmp_path / "link.html", result)
    dom, log = open_in_chromium(page, tmp_path)
    assert not _console_errors(log), _console_errors(log)
    headings = [h.strip() for h in re.findall(r"<h2>([^<]+)<span", dom)]
    assert headings == ["Summary", "Blocking", "Model: m, u and weights", "Match weights", "Cluster sizes",
                        "Accuracy against the truth column", "Waterfalls for sample pairs"]
    assert dom.count("<svg") >= 15 and dom.count('class="tick"') > 100
