"""A minimal, self-contained report.html, used until the disclosure area's renderer is available.

The context holds only masked, aggregate facts (counts, hashes, fingerprints), never row values.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>None.</p>"
    headers = list(rows[0])
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(json.dumps(r.get(h)) if isinstance(r.get(h), (dict, list)) else str(r.get(h)))}</td>"
                         for h in headers) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_minimal_report(path: Path, context: dict[str, Any]) -> Path:
    manifest = context.get("manifest", {})
    facts = [
        {"fact": "package", "value": context.get("package")},
        {"fact": "LA code", "value": manifest.get("la_code")},
        {"fact": "return / period", "value": f"{manifest.get('return')} {manifest.get('period')}"},
        {"fact": "demo", "value": manifest.get("demo")},
        {"fact": "pseudonym contract", "value": manifest.get("contract_version")},
        {"fact": "project", "value": manifest.get("project")},
        {"fact": "master-key fingerprint", "value": manifest.get("key_fingerprint")},
        {"fact": "signer fingerprint", "value": (manifest.get("signer") or {}).get("fingerprint")},
        {"fact": "destroy after", "value": (manifest.get("retention") or {}).get("destroy_after")},
    ]
    outputs = [{k: o.get(k) for k in ("path", "rows", "bytes", "sha256")} for o in manifest.get("outputs", [])]
    validation = [{"source": name, **{k: v for k, v in s.items() if isinstance(v, (int, str, float, bool))}}
                  for name, s in (context.get("validation") or {}).items()]
    demo_banner = ('<p class="demo">DEMO package: synthetic data, demo keys. Not for submission.</p>'
                   if manifest.get("demo") else "")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tfkit run report: {html.escape(str(context.get('package')))}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}table{{border-collapse:collapse;margin:1rem 0}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}.demo{{background:#fff3cd;padding:.5rem}}</style></head>
<body><h1>tfkit run report</h1>{demo_banner}
<h2>Package</h2>{_table(facts)}
<h2>Reconciliation</h2><p>Every input row is in the package, in quarantine, or counted as withdrawn.</p>
{_table(manifest.get('reconciliation', []))}
<h2>Validation</h2>{_table(validation)}
<h2>Disclosure</h2>{_table([context.get('disclosure') or {}])}
<h2>Data files</h2>{_table(outputs)}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
