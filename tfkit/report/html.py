"""The page toolkit every tfkit report uses: one template and stylesheet, escaped tables, fact
lists, sections with a status badge, and an atomic writer. Charts are in tfkit.report.svg.

Every value is HTML-escaped here; the page has no script and a Content-Security-Policy that forbids
loading anything, so it opens the same with no network.
"""

from __future__ import annotations

import os
import tempfile
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Iterable, Mapping, Sequence

from tfkit import __version__


def plain(value: Any) -> Any:
    """Objects with to_dict() become dicts, recursively through lists and dicts."""
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return plain(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def as_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(as_text(v) for v in value) or "—"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {as_text(v)}" for k, v in value.items()) or "—"
    return str(value)


def cell(value: Any, kind: str = "") -> str:
    cls = kind or ("num" if isinstance(value, (int, float)) and not isinstance(value, bool) else "")
    return f'<td class="{cls}">{escape(as_text(value))}</td>' if cls else f"<td>{escape(as_text(value))}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, kinds: Sequence[str] = (),
           bad_rows: Sequence[bool] = (), caption: str | None = None) -> str:
    rows = list(rows)
    if not rows:
        return '<p class="muted">None.</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for n, row in enumerate(rows):
        cls = ' class="bad"' if n < len(bad_rows) and bad_rows[n] else ""
        body.append(f"<tr{cls}>" + "".join(cell(v, kinds[i] if i < len(kinds) else "") for i, v in enumerate(row)) + "</tr>")
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def facts(pairs: Iterable[tuple[str, Any, str]]) -> str:
    rows = "".join(
        f"<tr><th>{escape(label)}</th>{cell(value, kind)}</tr>" for label, value, kind in pairs
    )
    return f'<table class="facts"><tbody>{rows}</tbody></table>'


def status(state: str) -> str:
    label = {"pass": "PASS", "fail": "FAIL", "warn": "WARNING", "done": "DONE", "notrun": "NOT RUN"}[state]
    return f'<span class="status {state}">{label}</span>'


def section(anchor: str, title: str, state: str, body: str) -> tuple[str, str, str]:
    html = f'<section id="{anchor}"><h2>{escape(title)} {status(state)}</h2>{body}</section>'
    return anchor, title, html


def _template(name: str) -> str:
    return resources.files("tfkit.report").joinpath("templates", name).read_text(encoding="utf-8")


def render_page(*, title: str, lede: str, sections: str, footer: str, banner: str = "", nav: str = "") -> str:
    """The whole page: `sections` and `banner`/`nav` are HTML already; title, lede and footer are text."""
    return Template(_template("page.html")).substitute(
        title=escape(title), css=_template("report.css"), lede=escape(lede), banner=banner, nav=nav,
        sections=sections, version=escape(__version__), footer=escape(footer))


def write_page(path: str | Path, page: str, *, mode: int) -> Path:
    """Write `page` atomically (temporary file, then rename) with file `mode` (0600 for a page that
    holds record ids, 0644 for counts only); the temporary file is 0600 from the start."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
