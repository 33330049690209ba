"""Inline SVG charts for the run report: no script, no external request, every text escaped."""

from __future__ import annotations

from html import escape
from typing import Sequence

PALETTE = ("#1f5f99", "#e0a100", "#b3261e", "#6b7d8c", "#1b7f3b", "#7b4fa0")
BAD = "#b3261e"
GOOD = "#1f5f99"

ROW = 22
LABEL_WIDTH = 190
BAR_WIDTH = 440
VALUE_WIDTH = 90


MAX_LABEL_CHARS = 44
CHAR_WIDTH = 7  # 12px system-ui, generous average advance


def _label(text: str) -> str:
    """Labels longer than MAX_LABEL_CHARS are shortened with an ellipsis (the full text is in a tooltip)."""
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "\u2026"


def _label_width(labels: Sequence[str]) -> int:
    """Room for the longest (shortened) label, so no label is clipped at the SVG's left edge."""
    longest = max((len(_label(str(label))) for label in labels), default=0)
    return max(LABEL_WIDTH, CHAR_WIDTH * longest + 12)


def _text_label(x: float, y: float, label: str) -> str:
    full = str(label)
    tip = f"<title>{escape(full)}</title>" if _label(full) != full else ""
    return f'<text x="{x}" y="{y}" text-anchor="end">{tip}{escape(_label(full))}</text>'


def _figure(title: str, body: str) -> str:
    """The chart with its title visible as a caption (the SVG <title> is only a tooltip)."""
    return f'<figure class="chart-figure"><figcaption>{escape(title)}</figcaption>{body}</figure>'


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def bar_chart(items: Sequence[tuple[str, float, str | None]], title: str) -> str:
    """Horizontal bars, one per (label, value, colour or None)."""
    if not items:
        return ""
    top = max((v for _, v, _ in items), default=0) or 1
    label_width = _label_width([label for label, _, _ in items])
    height = ROW * len(items) + 8
    width = label_width + BAR_WIDTH + VALUE_WIDTH
    parts = [
        f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>'
    ]
    for n, (label, value, colour) in enumerate(items):
        y = 4 + n * ROW
        w = max(0.0, BAR_WIDTH * value / top)
        parts.append(
            _text_label(label_width - 6, y + 15, label)
            + f'<rect x="{label_width}" y="{y + 3}" width="{w:.1f}" height="{ROW - 6}" fill="{colour or GOOD}" rx="2"/>'
            f'<text x="{label_width + w + 6:.1f}" y="{y + 15}">{escape(_fmt(value))}</text>'
        )
    parts.append("</svg>")
    return _figure(title, "".join(parts))


def stacked_bars(rows: Sequence[tuple[str, Sequence[tuple[str, float]]]], title: str) -> str:
    """One horizontal bar per row, split into named segments (same segment order in every row)."""
    if not rows:
        return ""
    top = max((sum(v for _, v in segs) for _, segs in rows), default=0) or 1
    names: list[str] = []
    for _, segs in rows:
        for name, _ in segs:
            if name not in names:
                names.append(name)
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    height = ROW * len(rows) + 8
    label_width = _label_width([label for label, _ in rows])
    width = label_width + BAR_WIDTH + VALUE_WIDTH
    parts = [
        f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>'
    ]
    for n, (label, segs) in enumerate(rows):
        y = 4 + n * ROW
        x = float(label_width)
        parts.append(_text_label(label_width - 6, y + 15, label))
        for name, value in segs:
            w = BAR_WIDTH * value / top
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{ROW - 6}" fill="{colour[name]}">'
                             f'<title>{escape(name)}: {escape(_fmt(value))}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{escape(_fmt(sum(v for _, v in segs)))}</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<span><i class="swatch" style="background:{colour[name]}"></i>{escape(name)}</span>' for name in names
    )
    return _figure(title, "".join(parts) + f'<p class="legend">{legend}</p>')
