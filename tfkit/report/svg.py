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


def bar_chart(items: Sequence[tuple[str, float, str | None]], title: str, *, ticks: bool = False) -> str:
    """Horizontal bars, one per (label, value, colour or None); `ticks`: an axis with ticks below."""
    if not items:
        return ""
    top = max((v for _, v, _ in items), default=0) or 1
    if ticks:
        top = max(top, nice_ticks(0, top)[-1])
    label_width = _label_width([label for label, _, _ in items])
    height = ROW * len(items) + 8 + (30 if ticks else 0)
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
            f'<text class="value" x="{label_width + w + 6:.1f}" y="{y + 15}">{escape(_fmt(value))}</text>'
        )
    if ticks:
        y_axis = 8 + ROW * len(items)
        parts.append(_axes(label_width, y_axis, BAR_WIDTH, 0, [(label_width + BAR_WIDTH * t / top, _num(t))
                                                                for t in nice_ticks(0, top)], [], "", ""))
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


# --------------------------------------------------------------------------- charts with axes
# Every chart below draws its axes with ticks and writes each value on the chart (not only in a
# tooltip), so a printed page or a screenshot still says what the numbers are.

PLOT_W, PLOT_H = 560, 240
MARGIN_L, MARGIN_B, MARGIN_T, MARGIN_R = 64, 46, 14, 44
LOG_FLOOR = 1e-6


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values from at or below `lo` to at or above `hi` (steps of 1, 2 or 5 times a power of ten)."""
    import math

    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(k * power for k in (1, 2, 5, 10) if k * power >= raw)
    first = math.floor(lo / step + 1e-9) * step  # the ticks reach just past both ends
    last = math.ceil(hi / step - 1e-9) * step
    ticks, value = [], first
    while value <= last + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _num(value: float) -> str:
    """A tick or value label: short, no trailing zeros."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.3g}" if abs(value) < 1 else f"{value:.4g}"
    return text


def _svg_open(width: float, height: float, title: str) -> str:
    return (f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}"><title>{escape(title)}</title>')


def _axes(x0: float, y0: float, w: float, h: float, xticks: Sequence[tuple[float, str]],
          yticks: Sequence[tuple[float, str]], x_label: str, y_label: str) -> str:
    """Axis lines at the plot's left and bottom, tick marks and labels, light grid lines.
    Ticks are (pixel position, label)."""
    parts = [f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x0 + w}" y2="{y0}" stroke="#555"/>',
             f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 - h}" stroke="#555"/>']
    for px, label in xticks:
        parts.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y0 + 5}" stroke="#555"/>'
                     f'<text class="tick" x="{px:.1f}" y="{y0 + 18}" text-anchor="middle">{escape(label)}</text>')
    for py, label in yticks:
        parts.append(f'<line x1="{x0 - 5}" y1="{py:.1f}" x2="{x0}" y2="{py:.1f}" stroke="#555"/>'
                     f'<line x1="{x0}" y1="{py:.1f}" x2="{x0 + w}" y2="{py:.1f}" stroke="#e4e8eb"/>'
                     f'<text class="tick" x="{x0 - 8}" y="{py + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    parts.append(f'<text x="{x0 + w / 2:.1f}" y="{y0 + 38}" text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{y0 - h / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {y0 - h / 2:.1f})">{escape(y_label)}</text>')
    return "".join(parts)


def zoom(values: Sequence[float], step: float = 0.05) -> tuple[float, float]:
    """An axis range for shares: from just below the smallest value (a multiple of `step`) to 1, so
    curves bunched near 1 are not drawn as one dot; the ticks show where the axis starts."""
    import math

    low = min(values, default=0.0)
    return max(0.0, math.floor((low - step / 2) / step) * step), 1.0


def line_chart(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], title: str, *, x_label: str,
               y_label: str, x_range: tuple[float, float] = (0.0, 1.0), y_range: tuple[float, float] = (0.0, 1.0),
               diagonal: bool = False, marks: Sequence[tuple[str, float]] = (), point_values: bool = False) -> str:
    """Lines through (x, y) points, one per named series, with axes and ticks. `diagonal`: the y = x
    reference (calibration); `marks`: labelled vertical lines (a threshold); `point_values`: each
    point's y written beside it (for short series)."""
    if not any(points for _, points in series):
        return ""
    (xa, xb), (ya, yb) = x_range, y_range
    x0, y0 = MARGIN_L, MARGIN_T + PLOT_H
    sx = lambda x: x0 + (x - xa) / ((xb - xa) or 1) * PLOT_W  # noqa: E731
    sy = lambda y: y0 - (y - ya) / ((yb - ya) or 1) * PLOT_H  # noqa: E731
    width, height = MARGIN_L + PLOT_W + MARGIN_R, MARGIN_T + PLOT_H + MARGIN_B
    parts = [_svg_open(width, height, title),
             _axes(x0, y0, PLOT_W, PLOT_H, [(sx(t), _num(t)) for t in nice_ticks(xa, xb)],
                   [(sy(t), _num(t)) for t in nice_ticks(ya, yb)], x_label, y_label)]
    if diagonal:
        parts.append(f'<line x1="{sx(xa):.1f}" y1="{sy(ya):.1f}" x2="{sx(xb):.1f}" y2="{sy(yb):.1f}" '
                     'stroke="#999" stroke-dasharray="4 3"><title>perfect calibration</title></line>')
    for label, x in marks:
        parts.append(f'<line x1="{sx(x):.1f}" y1="{y0}" x2="{sx(x):.1f}" y2="{y0 - PLOT_H}" stroke="{BAD}" '
                     f'stroke-dasharray="4 3"/><text x="{sx(x) + 4:.1f}" y="{y0 - 8}" '
                     f'fill="{BAD}">{escape(label)}</text>')
    for n, (name, points) in enumerate(series):
        colour = PALETTE[n % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in points:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}">'
                         f'<title>{escape(name)}: {_num(x)}, {_num(y)}</title></circle>')
            if point_values:
                parts.append(f'<text class="value" x="{sx(x) + 4:.1f}" y="{sy(y) - 5:.1f}">{_num(y)}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i class="swatch" style="background:{PALETTE[n % len(PALETTE)]}"></i>{escape(name)}</span>'
                     for n, (name, _) in enumerate(series))
    return _figure(title, "".join(parts) + f'<p class="legend">{legend}</p>')


def column_chart(items: Sequence[tuple[str, float, str | None]], title: str, *, x_label: str, y_label: str,
                 log: bool = False) -> str:
    """Vertical bars, one per (label, value, colour or None), each value written above its bar;
    `log`: a log10 scale for counts spanning orders of magnitude (zero stays empty)."""
    import math

    if not items:
        return ""
    top = max(v for _, v, _ in items) or 1
    x0, y0 = MARGIN_L, MARGIN_T + 14 + PLOT_H
    step = PLOT_W / len(items)
    if log:
        top_exp = max(1, math.ceil(math.log10(top + 1)))
        scale = lambda v: math.log10(v + 1) / top_exp  # noqa: E731
        yticks = [(y0 - scale(10 ** k - 1) * PLOT_H, _num(10 ** k)) for k in range(0, top_exp + 1)]
    else:
        ticks = nice_ticks(0, top)
        top = max(top, ticks[-1])
        scale = lambda v: v / top  # noqa: E731
        yticks = [(y0 - scale(t) * PLOT_H, _num(t)) for t in ticks]
    every = max(1, math.ceil(len(items) / 16))  # at most ~16 category labels under the axis
    xticks = [(x0 + (i + 0.5) * step, label) for i, (label, _, _) in enumerate(items) if i % every == 0]
    width, height = MARGIN_L + PLOT_W + MARGIN_R, MARGIN_T + 14 + PLOT_H + MARGIN_B
    parts = [_svg_open(width, height, title), _axes(x0, y0, PLOT_W, PLOT_H, xticks, yticks, x_label, y_label)]
    small = step < 22  # narrow bars: values turned upright so they do not overlap
    for i, (label, value, colour) in enumerate(items):
        h = scale(value) * PLOT_H
        x = x0 + i * step
        parts.append(f'<rect x="{x + 1:.1f}" y="{y0 - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
                     f'fill="{colour or GOOD}"><title>{escape(label)}: {escape(_fmt(value))}</title></rect>')
        if value:
            cx, cy = x + step / 2, y0 - h - 4
            rotate = f' transform="rotate(-90 {cx:.1f} {cy:.1f})"' if small else ""
            anchor = "start" if small else "middle"
            parts.append(f'<text class="value" x="{cx:.1f}" y="{cy + (3 if small else 0):.1f}" text-anchor="{anchor}"'
                         f'{rotate}>{escape(_fmt(value))}</text>')
    parts.append("</svg>")
    return _figure(title, "".join(parts))


def signed_bars(items: Sequence[tuple[str, float]], title: str, *, x_label: str) -> str:
    """Horizontal bars left (negative) or right (positive) of a zero line, with a ticked axis and
    each value written at its bar's end."""
    if not items:
        return ""
    lo = min(0.0, min(v for _, v in items))
    hi = max(0.0, max(v for _, v in items))
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    label_width = _label_width([label for label, _ in items])
    plot_w = 360
    sx = lambda v: label_width + (v - lo) / ((hi - lo) or 1) * plot_w  # noqa: E731
    y_axis = 8 + ROW * len(items)
    width, height = label_width + plot_w + 70, y_axis + 44
    parts = [_svg_open(width, height, title)]
    parts.append(_axes(label_width, y_axis, plot_w, 0, [(sx(t), _num(t)) for t in ticks], [], x_label, ""))
    parts.append(f'<line x1="{sx(0):.1f}" y1="4" x2="{sx(0):.1f}" y2="{y_axis}" stroke="#555"/>')
    for n, (label, value) in enumerate(items):
        y = 4 + n * ROW
        a, b = sorted((sx(0), sx(value)))
        colour = GOOD if value >= 0 else BAD
        parts.append(_text_label(label_width - 6, y + 15, label)
                     + f'<rect x="{a:.1f}" y="{y + 3}" width="{max(b - a, 1):.1f}" height="{ROW - 6}" fill="{colour}"/>')
        tx, anchor = (b + 4, "start") if value >= 0 else (a - 4, "end")
        parts.append(f'<text class="value" x="{tx:.1f}" y="{y + 15}" text-anchor="{anchor}">{value:+.2f}</text>')
    parts.append("</svg>")
    return _figure(title, "".join(parts))


def log_bars(rows: Sequence[tuple[str, Sequence[tuple[str, float]]]], title: str, *, x_label: str,
             floor: float = LOG_FLOOR) -> str:
    """Horizontal bars on a log10 axis from `floor` to 1 (probabilities): per row one thin bar per
    named series, each value written at its end; a legend names the series."""
    import math

    if not rows:
        return ""
    names = list(dict.fromkeys(name for _, bars in rows for name, _ in bars))
    colour = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    label_width = _label_width([label for label, _ in rows])
    plot_w, lo = 360, math.log10(floor)
    sx = lambda p: label_width + (math.log10(max(p, floor)) - lo) / -lo * plot_w  # noqa: E731
    bar_h = 9
    row_h = bar_h * len(names) + 8
    y_axis = 6 + row_h * len(rows)
    width, height = label_width + plot_w + 80, y_axis + 44
    ticks = [(sx(10.0 ** k), "1" if k == 0 else f"1e{k}") for k in range(int(lo), 1)]
    parts = [_svg_open(width, height, title), _axes(label_width, y_axis, plot_w, 0, ticks, [], x_label, "")]
    for n, (label, bars) in enumerate(rows):
        y = 4 + n * row_h
        parts.append(_text_label(label_width - 6, y + row_h / 2 + 3, label))
        for k, (name, value) in enumerate(bars):
            yy = y + k * bar_h
            end = sx(value)
            parts.append(f'<rect x="{label_width}" y="{yy}" width="{max(end - label_width, 1):.1f}" height="{bar_h - 1}" '
                         f'fill="{colour[name]}"><title>{escape(name)} = {value:.3g}</title></rect>'
                         f'<text class="value small" x="{end + 4:.1f}" y="{yy + bar_h - 1}">{escape(name)} {value:.3g}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span><i class="swatch" style="background:{colour[name]}"></i>{escape(name)}</span>' for name in names)
    return _figure(title, "".join(parts) + f'<p class="legend">{legend}</p>')


def waterfall(terms: Sequence[tuple[str, float]], total: float, title: str, *, x_label: str) -> str:
    """Cumulative bars: each term moves the running total from where the last one stopped; the last
    bar is the total. A ticked axis, and each term's value at its bar."""
    if not terms:
        return ""
    running, spans = 0.0, []
    for label, value in terms:
        spans.append((label, running, running + value, value))
        running += value
    spans.append(("total", 0.0, total, total))
    lo = min(0.0, *(min(a, b) for _, a, b, _ in spans))
    hi = max(0.0, *(max(a, b) for _, a, b, _ in spans))
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    label_width = _label_width([label for label, *_ in spans])
    plot_w = 420
    sx = lambda v: label_width + (v - lo) / ((hi - lo) or 1) * plot_w  # noqa: E731
    y_axis = 8 + ROW * len(spans)
    width, height = label_width + plot_w + 70, y_axis + 44
    parts = [_svg_open(width, height, title),
             _axes(label_width, y_axis, plot_w, 0, [(sx(t), _num(t)) for t in ticks], [], x_label, ""),
             f'<line x1="{sx(0):.1f}" y1="4" x2="{sx(0):.1f}" y2="{y_axis}" stroke="#555"/>']
    for n, (label, a, b, value) in enumerate(spans):
        y = 4 + n * ROW
        left, right = sorted((sx(a), sx(b)))
        colour = "#555" if n == len(spans) - 1 else (GOOD if value >= 0 else BAD)
        parts.append(_text_label(label_width - 6, y + 15, label)
                     + f'<rect x="{left:.1f}" y="{y + 3}" width="{max(right - left, 1):.1f}" height="{ROW - 6}" fill="{colour}"/>'
                     + (f'<text class="value" x="{right + 4:.1f}" y="{y + 15}">{value:+.2f}</text>' if b >= a else
                        f'<text class="value" x="{left - 4:.1f}" y="{y + 15}" text-anchor="end">{value:+.2f}</text>'))
    parts.append("</svg>")
    return _figure(title, "".join(parts))
