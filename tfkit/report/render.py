"""The run report: one self-contained HTML page for an information-governance officer.

`render_run_report(report)` returns the page; `write_run_report(path, report)` writes it atomically.
The page makes no external request (inline CSS and SVG, no script, and a Content-Security-Policy
that forbids loading anything), and every value is HTML-escaped.

The report is a `RunReport` (or a mapping with the same keys). Every field is optional; a None
section renders as "not run", and the sections marked "default manifest[...]" fall back to the
manifest when left at FROM_MANIFEST. Values may be the library's objects (anything with
`to_dict()`) or their dicts:

``package``        str: the package's directory name.
``manifest``       dict: the package's manifest.json. Used keys: la_code, return, period, demo, created,
                   project, contract_version, key_fingerprint, config_sha256, tool.version,
                   signer.fingerprint, retention.destroy_after (and .days), audit.chain_head,
                   inputs[] (source, file, schema, sha256, bytes, rows), outputs[] (path, rows, bytes,
                   sha256), consent_withdrawals (list_sha256, list_entries, withdrawn_rows),
                   reconciliation, linkage, disclosure (fallbacks for the sections below).
``validation``     {source: ValidationReport.to_dict()} or a list of those dicts (keys used: file,
                   schema.name, valid, rows.in/valid/quarantined, problems[] with code, title,
                   severity, field, count, lines, examples, message). Examples are masked again here.
``reconciliation`` list of {source, table, rows_in, rows_out, quarantined, withdrawn, excluded{reason: n},
                   balanced}; default manifest["reconciliation"].
``linkage``        dict, free-form: scalar values become a facts table; a list of {label|name|level|
                   key|rule..., count} or a {label: number} mapping becomes a bar chart (for example
                   match weights histogram, matches by level, cluster sizes). Default manifest["linkage"].
``disclosure``     DisclosureOutcome.to_dict() (policy, before, after, changes) or RiskReport.to_dict(),
                   or {"status": text}. Default manifest["disclosure"].
``consent_unmatched`` list of {line, values{field: masked value}}: withdrawal entries that matched nothing.
``summaries``      Summary.to_dict() from tfkit summarise (optional).
``generated_at``   str, shown in the footer (omit it for byte-identical pages).
``title``          str, default "tfkit run report: <package>".
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from html import escape
from pathlib import Path
from typing import Any, Mapping

from tfkit import __version__
from tfkit.masking import mask
from tfkit.report.html import as_text as _text
from tfkit.report.html import facts as _facts
from tfkit.report.html import plain as _plain
from tfkit.report.html import render_page, write_page
from tfkit.report.html import section as _section
from tfkit.report.html import table as _table
from tfkit.report.svg import BAD, GOOD, bar_chart, stacked_bars

NOT_RUN = "not run"


def _not_run(anchor: str, title: str, why: str | None = None) -> tuple[str, str, str]:
    return _section(anchor, title, "notrun", f'<p class="muted">{escape(why or "This step was not run.")}</p>')


# --------------------------------------------------------------------------- sections


def _package_section(package: str | None, manifest: dict[str, Any], unmatched: Any = None) -> tuple[str, str, str]:
    if not manifest:
        return _not_run("package", "Package", "No manifest was given: the package was not written.")
    signer = manifest.get("signer") or {}
    retention = manifest.get("retention") or {}
    audit = manifest.get("audit") or {}
    consent = manifest.get("consent_withdrawals") or {}
    withdrawn = consent.get("withdrawn_rows")
    pairs = [
        ("Package", package or manifest.get("package"), ""),
        ("Local authority", manifest.get("la_code"), ""),
        ("Return and period", f"{_text(manifest.get('return'))} {_text(manifest.get('period'))}", ""),
        ("Demo package", manifest.get("demo"), ""),
        ("Created", manifest.get("created"), ""),
        ("Destroy after", retention.get("destroy_after"), ""),
        ("Retention (days)", retention.get("days"), ""),
        ("tfkit version", (manifest.get("tool") or {}).get("version"), ""),
        ("Pseudonym contract", manifest.get("contract_version"), ""),
        ("Project", manifest.get("project"), ""),
        ("Master-key fingerprint", manifest.get("key_fingerprint"), "hash"),
        ("Signer fingerprint", signer.get("fingerprint"), "hash"),
        ("Config SHA-256", manifest.get("config_sha256"), "hash"),
        ("Audit-log chain head", audit.get("chain_head"), "hash"),
        ("Consent-withdrawal list SHA-256", consent.get("list_sha256"), "hash"),
        ("Consent-withdrawal list entries", consent.get("list_entries"), ""),
        ("Rows withdrawn (by source)", withdrawn if isinstance(withdrawn, Mapping) else withdrawn, ""),
    ]
    body = _facts((label, value, kind) for label, value, kind in pairs if value not in (None, "", {}))
    inputs = manifest.get("inputs") or []
    outputs = manifest.get("outputs") or []
    body += "<h3>Input files</h3>" + _table(
        ["source", "file", "schema", "rows", "bytes", "SHA-256"],
        [[i.get("source"), i.get("file"), i.get("schema"), i.get("rows"), i.get("bytes"), i.get("sha256")] for i in inputs],
        kinds=["", "", "", "num", "num", "hash"],
    )
    body += "<h3>Data files in the package</h3>" + _table(
        ["path", "rows", "bytes", "SHA-256"],
        [[o.get("path"), o.get("rows"), o.get("bytes"), o.get("sha256")] for o in outputs],
        kinds=["", "num", "num", "hash"],
    )
    body += _unmatched_withdrawals(unmatched)
    return _section("package", "Package", "warn" if manifest.get("demo") else "pass", body)


def _validation_reports(validation: Any) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(validation, Mapping):
        if isinstance(validation.get("files"), list):
            return [(str(r.get("file")), r) for r in validation["files"]]
        if "rows" in validation and "problems" in validation:
            return [(str(validation.get("file")), dict(validation))]
        return [(str(name), r if isinstance(r, Mapping) else {"status": r}) for name, r in validation.items()]
    return [(str(r.get("file")), r) for r in validation if isinstance(r, Mapping)]


def _short(masked: str | None, width: int = 16) -> str | None:
    """A masked example cut to `width` characters: a long run of asterisks tells the reader nothing more."""
    return masked if masked is None or len(masked) <= width else masked[: width - 1] + "\u2026"


def _validation_section(validation: Any) -> tuple[str, str, str]:
    if not validation:
        return _not_run("validation", "Validation")
    reports = _validation_reports(validation)
    overview, problems, all_ok = [], [], True
    for name, r in reports:
        rows = r.get("rows") or {}
        ok = r.get("valid")
        if ok is None:
            ok = not rows.get("quarantined")
        all_ok = all_ok and bool(ok)
        schema = r.get("schema")
        overview.append([name, (schema or {}).get("name") if isinstance(schema, Mapping) else schema,
                         rows.get("in"), rows.get("valid"), rows.get("quarantined"),
                         ("valid" if rows.get("in") != 0 else "empty: no rows this period") if ok else "rows failed"])
        for p in r.get("problems") or []:
            examples = [_short(mask(e)) for e in (p.get("examples") or [])]  # masked whatever the caller sent
            lines = list(p.get("lines") or [])
            problems.append([name, p.get("code"), p.get("severity"), p.get("field") or p.get("column"), p.get("count"),
                             ", ".join(str(n) for n in lines[:10]) + (" …" if len(lines) > 10 else ""),
                             ", ".join(e for e in examples if e is not None), p.get("message") or p.get("title")])
    body = _table(["source", "schema", "rows in", "valid", "quarantined", "result"], overview,
                  kinds=["", "", "num", "num", "num", ""], bad_rows=[row[-1] == "rows failed" for row in overview])
    by_rule: dict[str, int] = {}
    for row in problems:
        by_rule[f"{row[3]}: {row[1]}"] = by_rule.get(f"{row[3]}: {row[1]}", 0) + (row[4] or 0)
    if by_rule:
        body += bar_chart(sorted(((k, v, BAD) for k, v in by_rule.items()), key=lambda t: -t[1])[:20],
                          "Rows with a problem, by field and rule")
    body += "<h3>Problems</h3>" + _table(
        ["source", "code", "severity", "field", "rows", "lines", "examples (masked)", "message"], problems,
        kinds=["", "", "", "wrap", "num", "wrap", "long", "long"])
    body += ('<p class="muted">Rows that failed are in the LA-internal quarantine folder with their reasons; '
             "they are never in the package.</p>")
    return _section("validation", "Validation", "pass" if all_ok else "warn", body)


def _reconciliation_section(rows: Any) -> tuple[str, str, str]:
    if not rows:
        return _not_run("reconciliation", "Reconciliation")
    table, chart, balanced = [], [], True
    for r in rows:
        excluded = r.get("excluded") or {}
        excluded_total = sum(excluded.values()) if isinstance(excluded, Mapping) else (excluded or 0)
        ok = r.get("balanced")
        if ok is None:
            ok = r.get("rows_in") == (r.get("rows_out") or 0) + (r.get("quarantined") or 0) + (r.get("withdrawn") or 0) + excluded_total
        balanced = balanced and bool(ok)
        table.append([r.get("source"), r.get("table"), r.get("rows_in"), r.get("rows_out"), r.get("quarantined"),
                      r.get("withdrawn"), excluded if excluded else 0, "balanced" if ok else "DOES NOT BALANCE"])
        chart.append((str(r.get("source")), [("in the package", r.get("rows_out") or 0), ("quarantined", r.get("quarantined") or 0),
                                             ("withdrawn (consent)", r.get("withdrawn") or 0), ("other exclusions", excluded_total)]))
    body = ("<p class=\"explain\">Every input row is in the package, in quarantine with its reasons, or counted as withdrawn or "
            "excluded: rows in = rows out + quarantined + withdrawn + excluded.</p>")
    body += _table(["source", "table", "rows in", "rows out", "quarantined", "withdrawn", "excluded", "check"], table,
                   kinds=["", "", "num", "num", "num", "num", "", ""], bad_rows=[row[-1] != "balanced" for row in table])
    body += stacked_bars(chart, "Where every input row went")
    return _section("reconciliation", "Reconciliation", "pass" if balanced else "fail", body)


_LINKAGE_TITLES = {
    "mode": "Mode",
    "sources": "Records per source given to linkage",
    "candidate_pairs": "Candidate pairs compared",
    "links": "Links accepted",
    "review_pairs": "Pairs left for clerical review",
    "review_pairs_by_reason": "Pairs left for clerical review, by reason (the review band; too close to call between two cohort records)",
    "clusters": "Clusters (distinct people across sources)",
    "threshold": "Match-probability threshold",
    "linked_to_person": "Records linked to a person in the cohort, by source",
    "not_linked_to_person": "Records linked to no person in the cohort, by source",
    "too_close_to_call": "Records too close to call between two cohort records (not linked; for clerical review), by source",
    "clean_sources": "Clean sources (one record per person)",
    "clusters_with_two_clean_records": "Clusters holding two records of a clean source",
    "conflicts_resolved": "Links dropped to keep clean sources clean",
    "ambiguous_links_dropped": "Of those, a record's candidates in a clean source too close to call",
    "forced_links": "Pairs linked by a reviewer's decision",
    "forced_non_links": "Pairs kept apart by a reviewer's decision",
}

_LABEL_KEYS = ("label", "name", "level", "key", "rule", "match_key", "bin", "size", "weight", "source", "value")


def _chartable(value: Any) -> list[tuple[str, float]] | None:
    if isinstance(value, Mapping) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
        return [(str(k), float(v)) for k, v in value.items()]
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        items = []
        for v in value:
            count = v.get("count", v.get("n", v.get("pairs", v.get("records"))))
            if not isinstance(count, (int, float)) or isinstance(count, bool):
                return None
            if "bin_start" in v:
                label = f"{_text(v.get('bin_start'))} to {_text(v.get('bin_end'))}"
            else:
                label = next((_text(v[k]) for k in _LABEL_KEYS if k in v), "?")
            items.append((label, float(count)))
        return items
    return None


def _linkage_section(linkage: Any) -> tuple[str, str, str]:
    if not linkage:
        return _not_run("linkage", "Linkage", "Sources were not linked in this run.")
    if not isinstance(linkage, Mapping):
        return _section("linkage", "Linkage", "pass", f"<p>{escape(_text(linkage))}</p>")
    scalars, charts, other = [], [], []
    for key, value in linkage.items():
        title = _LINKAGE_TITLES.get(key) or key.replace("_", " ").capitalize()
        data = _chartable(value)
        if data is not None:
            charts.append(bar_chart([(label, v, None) for label, v in data[:40]], title))
        elif isinstance(value, (str, int, float, bool)) or value is None:
            scalars.append((title, value, "hash" if "sha" in key or "fingerprint" in key else ""))
        else:
            other.append((title, value, ""))
    body = ('<p class="explain">Records from the partner sources were matched to the cohort (Fellegi–Sunter '
            "model). Only counts are shown here; no record or pair is listed.</p>")
    body += _facts(scalars + other) + "".join(charts)
    status = str(linkage.get("status", "")).lower()
    return _section("linkage", "Linkage", "fail" if status in ("failed", "fail") else "done", body)


def _class_size_chart(report: Mapping[str, Any], title: str) -> str:
    k = report.get("k") or 0
    items = [(b.get("label") or str(b.get("size_from")), b.get("records") or 0, BAD if (b.get("size_from") or 0) < k else GOOD)
             for b in report.get("class_sizes") or []]
    return bar_chart(items, title)


def _risk_facts(report: Mapping[str, Any]) -> str:
    derived = report.get("derived") or {}
    qis = [f"{q} (from {derived[q]})" if q in derived else q for q in report.get("quasi_identifiers") or []]
    pairs = [
        ("Quasi-identifiers", qis, ""),
        ("k", report.get("k"), ""),
        ("Records", report.get("records"), ""),
        ("Equivalence classes", report.get("classes"), ""),
        ("Smallest / median / largest class",
         f"{_text(report.get('smallest_class'))} / {_text(report.get('median_class_size'))} / {_text(report.get('largest_class'))}", ""),
        ("Records in classes smaller than k", report.get("records_below_k"), ""),
        ("Records at risk (below k or l)", report.get("records_at_risk"), ""),
        ("Records fully suppressed", report.get("fully_suppressed"), ""),
    ]
    for d in report.get("diversity") or []:
        pairs.append((f"l-diversity of {d.get('column')} (l={d.get('l')})",
                      f"fewest distinct values {_text(d.get('min_distinct'))}; {_text(d.get('records_below_l'))} records below l", ""))
    return _facts(pairs)


_DISCLOSURE_EXPLAINED = (
    '<p class="explain">Records that share the same quasi-identifier values (for example year of birth, sex and '
    "postcode district) form an equivalence class. A record in a class of fewer than k = {k} records could be "
    "singled out by someone who knows those facts about a person. In the charts, classes smaller than k are red.</p>"
)


def _every_table(tables: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The check of every published table (the manifest's disclosure.tables), and the unsafe ones."""
    if not tables:
        return "", []
    rows, unsafe = [], []
    for name, t in tables.items():
        safe = bool(t.get("k_anonymous")) or not t.get("records")
        if not safe:
            unsafe.append(name)
        rows.append([name, t.get("records"), ", ".join(t.get("quasi_identifiers") or []),
                     t.get("smallest_class") if t.get("records") else "no records", t.get("records_below_k"),
                     t.get("records_suppressed"), t.get("suppressed_with_person", ""),
                     "yes" if t.get("k_anonymous") else "NO"])
    return "<h3>Every published table</h3>" + _table(
        ["table", "records", "quasi-identifiers", "smallest class", "records below k", "records suppressed",
         "of which with their person", "k-anonymous"],
        rows, kinds=["", "num", "", "num", "num", "num", "num", ""]), unsafe


def _disclosure_section(disclosure: Any) -> tuple[str, str, str]:
    if not disclosure:
        return _not_run("disclosure", "Disclosure control")
    if not isinstance(disclosure, Mapping):
        return _section("disclosure", "Disclosure control", "warn", f"<p>{escape(_text(disclosure))}</p>")
    if "before" in disclosure and "after" in disclosure:
        before, after = disclosure["before"] or {}, disclosure["after"] or {}
        policy = disclosure.get("policy")
        passed = bool(disclosure.get("passed", after.get("passed")))
        body = _DISCLOSURE_EXPLAINED.format(k=escape(_text(before.get("k") or after.get("k"))))
        if not passed:
            share = (after.get("records_at_risk") or 0) / (after.get("records") or 1)
            body = (f'<p class="banner fail">NOT SAFE TO SEND: {share:.1%} of records are in equivalence classes '
                    f'smaller than k={escape(_text(after.get("k")))} (policy {escape(_text(policy))}). '
                    'Set [disclosure] policy = "generalise" and rerun.</p>') + body
        body += _facts([
            ("Policy", policy, ""),
            ("Result", "k-anonymous over the quasi-identifiers" if passed else "records remain in small classes", ""),
            ("Records generalised (by quasi-identifier)", disclosure.get("records_generalised") or "none", ""),
            ("Records whose quasi-identifiers were suppressed", disclosure.get("records_suppressed"), ""),
            ("Values suppressed (by column)", disclosure.get("values_suppressed") or "none", ""),
            ("Columns removed", disclosure.get("columns_removed") or "none", ""),
            ("Columns added", disclosure.get("columns_added") or "none", ""),
        ])
        body += "<h3>Before</h3>" + _risk_facts(before) + _class_size_chart(before, "Records by equivalence-class size, before")
        if disclosure.get("changed"):
            body += "<h3>After (as published)</h3>" + _risk_facts(after) + _class_size_chart(after, "Records by equivalence-class size, after")
        lattice = disclosure.get("lattice") or []
        if lattice:
            body += "<h3>Generalisations tried</h3>" + _table(
                ["levels", "records left at risk", "chosen"],
                [[n.get("levels"), n.get("records_at_risk"), "chosen" if n.get("chosen") else ""] for n in lattice],
                kinds=["", "num", ""])
            body += ('<p class="muted">The person table\'s levels are the least generalised at which every table '
                     "below stays within target_suppression (past it: those blanking least, within max_suppression); "
                     "each other table is published at those levels. Classes count people.</p>")
        tables_html, unsafe = _every_table(disclosure.get("tables") or {})
        if unsafe and passed:
            body = (f'<p class="banner fail">NOT SAFE TO SEND: {escape(", ".join(unsafe))} has records in equivalence '
                    f'classes smaller than k (policy {escape(_text(policy))}). Set [disclosure] policy = "generalise" '
                    "and rerun.</p>") + body
        elif unsafe:
            body = body.replace(" and rerun.</p>", f" and rerun. Tables not k-anonymous: {escape(', '.join(unsafe))}.</p>", 1)
        body += tables_html
        passed = passed and not unsafe
        state = "pass" if passed else ("fail" if policy == "fail" else "warn")
        return _section("disclosure", "Disclosure control", state, body)
    if "class_sizes" in disclosure:
        passed = bool(disclosure.get("passed"))
        body = _DISCLOSURE_EXPLAINED.format(k=escape(_text(disclosure.get("k"))))
        body += _risk_facts(disclosure) + _class_size_chart(disclosure, "Records by equivalence-class size")
        return _section("disclosure", "Disclosure control", "pass" if passed else "warn", body)
    body = _facts((k.replace("_", " ").capitalize(), v, "") for k, v in disclosure.items())
    return _section("disclosure", "Disclosure control", "warn", body)


def _unmatched_withdrawals(unmatched: Any) -> str:
    """Withdrawals are counted, never listed; entries that matched nothing are listed masked, so the
    list's owner can find and correct them (a typo leaves a withdrawn person in the return)."""
    if not unmatched:
        return ""
    return ("<h3>Consent-withdrawal entries that matched no record (masked)</h3>" + _table(
        ["line in the list", "values (masked)"],
        [[u.get("line"), ", ".join(f"{k} {v if '*' in str(v) else mask(v)}" for k, v in (u.get("values") or {}).items())
          or "no identifier"] for u in unmatched], kinds=["num", ""]))


def _summaries_section(summaries: Any) -> tuple[str, str, str] | None:
    if not summaries:
        return None
    body = _facts([("Threshold", summaries.get("threshold"), ""), ("Rounding", summaries.get("rounding") or "none", "")])
    body += _table(["table", "cells", "primary suppressed", "secondary suppressed"],
                   [[t.get("title") or t.get("name"), t.get("cells"), t.get("primary_suppressed"), t.get("secondary_suppressed")]
                    for t in summaries.get("tables") or []], kinds=["", "num", "num", "num"])
    return _section("summaries", "Publishable summaries", "pass", body)


# --------------------------------------------------------------------------- page


FROM_MANIFEST: Any = object()  # a section taken from the manifest


@dataclass
class RunReport:
    """What the run report shows (see the module docstring for each field's shape)."""

    package: str | None = None
    manifest: Any = field(default_factory=dict)
    validation: Any = None
    reconciliation: Any = FROM_MANIFEST
    linkage: Any = FROM_MANIFEST
    disclosure: Any = FROM_MANIFEST
    consent_unmatched: Any = None
    summaries: Any = None
    generated_at: str | None = None
    title: str | None = None

    @classmethod
    def of(cls, report: "RunReport | Mapping[str, Any] | None") -> "RunReport":
        if isinstance(report, RunReport):
            return report
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(report or {}) - known)
        if unknown:
            raise TypeError(f"unknown run report field(s): {', '.join(unknown)}")
        return cls(**dict(report or {}))


def render_run_report(report: RunReport | Mapping[str, Any] | None) -> str:
    """The whole page as text."""
    r = RunReport.of(report)
    manifest = _plain(r.manifest) or {}
    package = r.package or manifest.get("package")

    def section(value: Any, key: str) -> Any:
        return manifest.get(key) if value is FROM_MANIFEST else _plain(value)

    ctx = {"title": r.title, "summaries": _plain(r.summaries), "generated_at": r.generated_at}
    sections = [
        _package_section(package, manifest, _plain(r.consent_unmatched)),
        _validation_section(_plain(r.validation)),
        _reconciliation_section(section(r.reconciliation, "reconciliation")),
        _linkage_section(section(r.linkage, "linkage")),
        _disclosure_section(section(r.disclosure, "disclosure")),
    ]
    summaries = _summaries_section(ctx.get("summaries"))
    if summaries:
        sections.append(summaries)
    title = ctx.get("title") or f"tfkit run report: {package or 'no package'}"
    lede = ", ".join(_text(v) for v in (manifest.get("la_code"), manifest.get("return"), manifest.get("period")) if v) \
        or "No manifest given."
    banner = ('<p class="banner demo">DEMO package: made from synthetic data with demo keys. It describes no real '
              "person and must not be submitted to ONS.</p>") if manifest.get("demo") else ""
    nav = "".join(f'<li><a href="#{anchor}">{escape(name)}</a></li>' for anchor, name, _ in sections)
    generated = ctx.get("generated_at")
    return render_page(title=str(title), lede=lede, banner=banner, nav=nav,
                       sections="\n".join(html for _, _, html in sections),
                       footer=(f"Written by tfkit {__version__}{f' at {generated}' if generated else ''}. This page "
                               "holds counts, hashes and fingerprints only: no identifier, no key. Values shown in "
                               "validation examples are masked."))


def write_run_report(path: str | Path, report: RunReport | Mapping[str, Any] | None) -> Path:
    """Write the page atomically (temporary file, then rename) and return its path."""
    return write_page(path, render_run_report(report), mode=0o644)  # readable like the package beside it
