"""The run report (tfkit.report): structure, escaping, no external request, "not run" sections, and the
report the demo extract writes (reconciliation matches the manifest; no raw identifier from the inputs)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import polars as pl
import pytest

from tfkit.report import NOT_RUN, render_run_report, write_run_report

SECTIONS = ("package", "validation", "reconciliation", "linkage", "disclosure")
EVIL = '<script>alert("x")</script>'


class _Page(HTMLParser):
    """Collects tags, attributes, section ids and heading text; fails on any script or external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.section_ids: list[str] = []
        self.headings: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            self.attrs.append((tag, name, value or ""))
        if tag == "section":
            self.section_ids.append(dict(attrs).get("id", ""))
        if tag in ("h1", "h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def assert_self_contained(page: str) -> None:
    p = parse(page)
    assert "script" not in p.tags and "link" not in p.tags and "iframe" not in p.tags and "img" not in p.tags
    for tag, name, value in p.attrs:
        if name in ("src", "href", "action", "srcset", "poster", "data"):
            assert not re.match(r"\s*(https?:|//|ftp:)", value, re.I), (tag, name, value)
            if name == "href":
                assert value.startswith("#"), value  # in-page navigation only
        assert not name.startswith("on"), (tag, name)  # no event handlers
    assert "url(" not in page  # CSS fetches nothing
    assert "@import" not in page
    # the only http text allowed is the SVG namespace
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page  # and the CSP forbids loading anything anyway


def manifest_fixture(**over) -> dict:
    manifest = {
        "la_code": "E09000031", "return": "nis", "period": "2019-H2", "demo": True, "created": "2026-11-22T00:00:00+00:00",
        "project": "nis", "contract_version": "v1", "key_fingerprint": "2ef7b64d80aba35c",
        "config_sha256": "ab" * 32, "tool": {"version": "0.1.0"}, "signer": {"fingerprint": "5025cfe986212205"},
        "retention": {"destroy_after": "2031-11-22", "days": 1826}, "audit": {"chain_head": "0" * 64},
        "inputs": [{"source": "cohort", "file": "cohort.csv", "schema": "nis", "sha256": "cd" * 32, "bytes": 100, "rows": 12}],
        "outputs": [{"path": "data/person.parquet", "rows": 10, "bytes": 900, "sha256": "ef" * 32}],
        "reconciliation": [{"source": "cohort", "table": "person", "rows_in": 12, "rows_out": 10, "quarantined": 1,
                            "withdrawn": 1, "excluded": {}, "balanced": True}],
    }
    manifest.update(over)
    return manifest


def test_empty_context_renders_every_section_as_not_run():
    page = render_run_report({})
    p = parse(page)
    assert p.section_ids == list(SECTIONS)
    for section in re.findall(r"<section id=\"(\w+)\">(.*?)</section>", page, re.S):
        assert "NOT RUN" in section[1], section[0]
    assert page.count(NOT_RUN.upper()) >= len(SECTIONS)
    assert_self_contained(page)


def test_every_section_present_and_run_with_a_full_context():
    validation = {"cohort": {"file": "cohort.csv", "schema": {"name": "nis"}, "valid": False,
                             "rows": {"in": 12, "valid": 11, "quarantined": 1},
                             "problems": [{"code": "invalid_nino", "severity": "error", "field": "nino", "count": 1,
                                           "lines": [7], "examples": ["QQ123456C"], "message": "nino must be ..."}]}}
    disclosure = {"k": 10, "passed": True, "quasi_identifiers": ["dob_year", "sex", "postcode_district"],
                  "records": 10, "classes": 1, "class_sizes": [{"label": "10-19", "size_from": 10, "records": 10}]}
    page = render_run_report({"package": "E09000031_nis_2019-H2", "manifest": manifest_fixture(),
                              "validation": validation, "disclosure": disclosure,
                              "linkage": {"mode": "link", "links": 5, "linked_to_person": {"police": 5}}})
    p = parse(page)
    assert p.section_ids == list(SECTIONS)
    assert "NOT RUN" not in page
    assert "QQ123456C" not in page and "QQ*******" in page  # examples masked even if the caller forgot
    assert "2031-11-22" in page and "2ef7b64d80aba35c" in page and "DEMO package" in page
    assert "<svg" in page
    assert_self_contained(page)


def test_hostile_names_are_escaped_everywhere():
    manifest = manifest_fixture(la_code=EVIL, project=EVIL, inputs=[{"source": EVIL, "file": EVIL, "rows": 1}],
                                reconciliation=[{"source": EVIL, "table": EVIL, "rows_in": 1, "rows_out": 1}])
    validation = {EVIL: {"file": EVIL, "rows": {"in": 1, "valid": 0, "quarantined": 1},
                         "problems": [{"code": EVIL, "field": EVIL, "count": 1, "examples": [EVIL], "message": EVIL}]}}
    page = render_run_report({"package": EVIL, "title": EVIL, "manifest": manifest, "validation": validation,
                              "linkage": {EVIL: EVIL, "sources": {EVIL: 3}},
                              "disclosure": {"policy": EVIL, "before": {"quasi_identifiers": [EVIL]}, "after": {},
                                             "changed": False}})
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page
    p = parse(page)
    assert "script" not in p.tags
    assert_self_contained(page)


def test_unbalanced_reconciliation_is_flagged():
    manifest = manifest_fixture(reconciliation=[{"source": "cohort", "table": "person", "rows_in": 12,
                                                 "rows_out": 10, "quarantined": 1, "withdrawn": 0}])
    page = render_run_report({"manifest": manifest})
    assert "DOES NOT BALANCE" in page and 'class="status fail"' in page


def test_long_chart_labels_are_shortened_not_clipped():
    from tfkit.report.svg import bar_chart

    label = "family_id+forename+surname+dob: possible_duplicate_with_a_very_long_rule_name"
    svg = bar_chart([(label, 8, None), ("x", 1, None)], "t")
    assert f"<title>{label}</title>" in svg  # full text as a tooltip
    width = int(re.search(r'<svg[^>]* width="(\d+)"', svg).group(1))
    assert width > 190 + 440  # the label column grew


def test_write_is_atomic_and_readable(tmp_path):
    path = write_run_report(tmp_path / "r.html", {})
    assert path.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left behind
    assert path.stat().st_mode & 0o777 == 0o644


def test_byte_identical_without_generated_at():
    ctx = {"manifest": manifest_fixture()}
    assert render_run_report(ctx) == render_run_report(ctx)


# --------------------------------------------------------------------------- the demo extract's report


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from tfkit.pipeline import run_demo

    out = tmp_path_factory.mktemp("report_demo")
    result = run_demo(out)  # the default 2,000 people: 300 need more suppression than max_suppression allows
    return out, result


def _raw_identifiers(inputs) -> set[str]:
    """Identifier values from the demo inputs that must never appear in the report."""
    values: set[str] = set()
    for name, columns in {
        "cohort.csv": ["NI Number", "UPN", "NHS Number", "Postcode", "Date of Birth"],
        "police.csv": ["Post Code", "DOB"],
        "school_attendance.csv": ["UPN", "POSTCODE"],
    }.items():
        path = inputs / name
        if not path.exists():
            continue
        frame = pl.read_csv(path, infer_schema=False)
        for column in columns:
            if column in frame.columns:
                values |= {v.strip() for v in frame.get_column(column).drop_nulls() if len(v.strip()) >= 6}
        if {"Forename", "Surname"} <= set(frame.columns):
            values |= {f"{f} {s}" for f, s in frame.select("Forename", "Surname").drop_nulls().iter_rows()}
    return values


def test_demo_report_reconciles_with_the_manifest_and_leaks_nothing(demo_run):
    out, result = demo_run
    page = result.report.read_text(encoding="utf-8")
    manifest = json.loads((result.package / "manifest.json").read_text())
    assert_self_contained(page)
    p = parse(page)
    assert p.section_ids == list(SECTIONS)
    recon = re.search(r'<section id="reconciliation">(.*?)</section>', page, re.S).group(1)
    assert "balanced" in recon and "DOES NOT BALANCE" not in recon
    for row in manifest["reconciliation"]:
        cells = [f"{row[k]:,}" for k in ("rows_in", "rows_out", "quarantined", "withdrawn")]
        # the row of this source shows exactly the manifest's numbers, in order
        pattern = r"<tr[^>]*><td>" + re.escape(row["source"]) + r"</td><td>[^<]*</td>" + "".join(
            rf'<td class="num">{re.escape(c)}</td>' for c in cells)
        assert re.search(pattern, recon), (row, recon[:500])
    for output in manifest["outputs"]:
        assert output["sha256"] in page
    assert manifest["key_fingerprint"] in page
    assert manifest["retention"]["destroy_after"] in page
    raw = _raw_identifiers(out / "inputs")
    assert len(raw) > 100
    leaked = sorted(v for v in raw if v in page)
    assert not leaked, leaked[:5]
