"""Visualisations: one self-contained HTML page (inline SVG and CSS, no script, no network).

Charts a linker looks at: m and u per comparison level with the level's weight, the distribution of
match weights over candidate pairs, and waterfalls explaining sample pairs term by term. The page
shows record ids and comparison levels only, never names or other values.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from .linker import Linker

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.note{color:#666;font-size:.9em}
svg text{font-size:11px;font-family:system-ui,sans-serif}
"""
M_COLOUR, U_COLOUR, POS, NEG = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"


def _e(value: object) -> str:
    return html.escape(str(value))


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}"


def _table(header: list[str], rows: list[list[object]], left: int = 1) -> str:
    head = "".join(f"<th class='{'l' if i < left else ''}'>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td class='{'l' if i < left else ''}'>{_e(v)}</td>" for i, v in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def m_u_chart(labels: list[str], m: np.ndarray, u: np.ndarray, weights: np.ndarray) -> str:
    """Per level: m and u as bars on a log scale (1e-6..1), and the weight log2(m/u) as a signed bar."""
    row, label_w, bar_w, wt_w = 26, 260, 300, 220
    height = row * len(labels) + 30
    width = label_w + bar_w + wt_w + 100  # room for the weight labels right of the longest bar
    parts = [f"<svg width='{width}' height='{height}' role='img'>"]
    parts.append(f"<text x='{label_w}' y='12'>m (blue) and u (orange), log scale 10⁻⁶…1</text>")
    parts.append(f"<text x='{label_w + bar_w + 30}' y='12'>match weight log₂(m/u)</text>")
    wmax = max(1.0, float(np.max(np.abs(weights))) if len(weights) else 1.0)
    zero = label_w + bar_w + 30 + wt_w / 2
    for i, label in enumerate(labels):
        y = 22 + i * row
        parts.append(f"<text x='{label_w - 6}' y='{y + 13}' text-anchor='end'>{_e(label)}</text>")
        for j, (p, colour) in enumerate(((m[i], M_COLOUR), (u[i], U_COLOUR))):
            frac = (math.log10(max(p, 1e-6)) + 6) / 6
            parts.append(f"<rect x='{label_w}' y='{y + j * 10}' width='{frac * bar_w:.1f}' height='9' fill='{colour}'>"
                         f"<title>{'m' if j == 0 else 'u'} = {_fmt(p)}</title></rect>")
        w = float(weights[i])
        length = abs(w) / wmax * (wt_w / 2)
        x = zero if w >= 0 else zero - length
        parts.append(f"<rect x='{x:.1f}' y='{y + 2}' width='{length:.1f}' height='14' fill='{POS if w >= 0 else NEG}'/>")
        parts.append(f"<text x='{zero + (length + 4 if w >= 0 else -length - 4):.1f}' y='{y + 14}' "
                     f"text-anchor='{'start' if w >= 0 else 'end'}'>{w:+.2f}</text>")
    parts.append(f"<line x1='{zero}' x2='{zero}' y1='18' y2='{height}' stroke='#999'/></svg>")
    return "".join(parts)


def histogram_chart(weights: np.ndarray, threshold_weight: float) -> str:
    if len(weights) == 0:
        return "<p class='note'>No candidate pairs.</p>"
    lo, hi = math.floor(float(weights.min())), math.ceil(float(weights.max()))
    bins = np.arange(lo, hi + 1, 1.0) if hi > lo else np.array([lo, lo + 1.0])
    counts, edges = np.histogram(weights, bins=bins)
    width, height, pad = 900, 260, 40
    bw = (width - 2 * pad) / len(counts)
    top = math.log10(max(counts.max(), 1) + 1)
    parts = [f"<svg width='{width}' height='{height + 40}' role='img'>"]
    for i, c in enumerate(counts):
        h = math.log10(c + 1) / top * height if top else 0
        colour = POS if edges[i] >= threshold_weight else "#888"
        parts.append(f"<rect x='{pad + i * bw:.1f}' y='{height - h + 10:.1f}' width='{max(bw - 1, 1):.1f}' "
                     f"height='{h:.1f}' fill='{colour}'><title>[{edges[i]:.0f}, {edges[i + 1]:.0f}): {c:,} pairs"
                     f"</title></rect>")
    for i in range(0, len(edges), max(1, len(edges) // 15)):
        parts.append(f"<text x='{pad + i * bw:.1f}' y='{height + 25}' text-anchor='middle'>{edges[i]:.0f}</text>")
    tx = pad + (threshold_weight - lo) / max(hi - lo, 1) * (width - 2 * pad)
    parts.append(f"<line x1='{tx:.1f}' x2='{tx:.1f}' y1='5' y2='{height + 10}' stroke='{NEG}' stroke-dasharray='4'/>")
    parts.append(f"<text x='{tx + 4:.1f}' y='14'>threshold</text>")
    parts.append(f"<text x='{width / 2}' y='{height + 40}' text-anchor='middle'>match weight (pair counts, log scale)</text>")
    parts.append("</svg>")
    return "".join(parts)


def waterfall_chart(terms: list[tuple[str, float]], total: float) -> str:
    """Cumulative bars: the prior, then each comparison's contribution, then the final weight."""
    row, label_w, plot_w = 22, 300, 520
    cum = np.cumsum([t[1] for t in terms])
    span_lo = min(0.0, float(cum.min()), total)
    span_hi = max(0.0, float(cum.max()), total)
    scale = plot_w / max(span_hi - span_lo, 1e-9)
    x0 = label_w + (0 - span_lo) * scale
    height = row * (len(terms) + 1) + 10
    parts = [f"<svg width='{label_w + plot_w + 80}' height='{height}' role='img'>"]
    start = 0.0
    for i, (label, value) in enumerate(terms + [("final match weight", None)]):
        y = 4 + i * row
        if value is None:
            a, b, colour, shown = 0.0, total, "#555", total
        else:
            a, b, colour, shown = start, start + value, POS if value >= 0 else NEG, value
            start += value
        xa, xb = label_w + (min(a, b) - span_lo) * scale, label_w + (max(a, b) - span_lo) * scale
        parts.append(f"<text x='{label_w - 6}' y='{y + 14}' text-anchor='end'>{_e(label)}</text>")
        parts.append(f"<rect x='{xa:.1f}' y='{y}' width='{max(xb - xa, 1):.1f}' height='{row - 6}' fill='{colour}'/>")
        parts.append(f"<text x='{xb + 4:.1f}' y='{y + 14}'>{shown:+.2f}</text>")
    parts.append(f"<line x1='{x0:.1f}' x2='{x0:.1f}' y1='0' y2='{height}' stroke='#999'/></svg>")
    return "".join(parts)


def sample_pairs(scored: pl.DataFrame, threshold: float, k: int = 6) -> pl.DataFrame:
    """A deterministic spread: the strongest, the weakest, and pairs around the threshold."""
    if scored.height == 0:
        return scored
    ranked = scored.sort(["match_weight", "rid_l", "rid_r"], descending=[True, False, False])
    near = ranked.with_columns((pl.col("match_probability") - threshold).abs().alias("_d")).sort(
        ["_d", "rid_l", "rid_r"]).drop("_d")
    picks = pl.concat([ranked.head(1), near.head(k - 2), ranked.tail(1)]).unique(["rid_l", "rid_r"], maintain_order=True)
    return picks.head(k)


def write_report(path: str | Path, linker: "Linker", scored: pl.DataFrame, *, metrics: dict | None = None,
                 threshold: float | None = None) -> Path:
    model = linker.model
    threshold = model.settings.threshold if threshold is None else threshold
    threshold_weight = math.log2(threshold / (1 - threshold))
    prepared = linker.prepared
    sizes = prepared.source_sizes()
    report = linker.blocking.report()
    sec = [f"<h1>tfkit link report</h1><p class='note'>Model: {_e(model.source)}; mode: {_e(linker.mode)}; "
           f"threshold {threshold}; seed {linker.seed}. Record ids only: no names or other values appear here.</p>"]
    sec.append("<h2>Inputs and blocking</h2>")
    sec.append(_table(["source", "records"], [[s, f"{n:,}"] for s, n in zip(prepared.sources, sizes)]))
    rows = [[r.rule, f"{r.pairs_added:,}"] for r in report.rules]
    rows.append(["total candidate pairs", f"{report.total_pairs:,}"])
    rows.append(["pairs the mode could compare", f"{report.comparisons_possible:,}"])
    if report.recall is not None:
        rows.append(["blocking recall (true pairs found)", f"{report.recall:.4f}"])
    sec.append(_table(["blocking rule", "pairs added"], rows))
    sec.append("<h2>Model: m and u per level</h2>")
    sec.append(f"<p>Prior λ = {_fmt(model.prior)} (weight {model.prior_weight:+.2f}). "
               + "; ".join(_e(f"{t['step']}: {t['method']}" + (f" ({t['session']})" if t.get("session") else ""))
                           for t in model.training_log) + "</p>")
    for c in model.comparisons:
        weights = model.level_weights(c.name)[1:]
        sec.append(f"<h3>{_e(c.name)} <span class='note'>({_e(c.column)}"
                   f"{', term-frequency adjusted at exact' if c.term_frequency else ''})</span></h3>")
        sec.append(m_u_chart(list(c.labels), model.m[c.name], model.u[c.name], weights))
    sec.append("<h2>Match weight distribution</h2>")
    sec.append(histogram_chart(scored["match_weight"].to_numpy(), threshold_weight))
    if metrics:
        sec.append("<h2>Accuracy against the truth column</h2>")
        rows = [[f"{a['threshold']:.3f}", a["true_positives"], a["false_positives"], a["false_negatives"],
                 f"{a['precision']:.4f}", f"{a['recall']:.4f}", f"{a['f1']:.4f}"]
                for a in [metrics["at_threshold"], metrics["best_f1"]] + metrics["curve"][::4]]
        sec.append(_table(["threshold", "TP", "FP", "FN", "precision", "recall", "F1"], rows, left=0))
        sec.append("<p class='note'>First row: at the chosen threshold; second: the best F1 over thresholds.</p>")
    sec.append("<h2>Waterfalls for sample pairs</h2>")
    ids = prepared.frame.select("_source", "_record_id")
    for row in sample_pairs(scored, threshold).iter_rows(named=True):
        terms: list[tuple[str, float]] = [("prior", model.prior_weight)]
        for c in model.comparisons:
            level = row[f"{c.name}_level"]
            w = float(model.level_weights(c.name)[level + 1])
            label = "null (no evidence)" if level < 0 else c.labels[level]
            terms.append((f"{c.name}: {label}", w))
            tf = row.get(f"{c.name}_tf_adjustment")
            if tf:
                terms.append((f"{c.name}: term frequency", float(tf)))
        left, right = ids.row(row["rid_l"]), ids.row(row["rid_r"])
        sec.append(f"<h3>{_e(prepared.sources[left[0]])} {_e(left[1])} × {_e(prepared.sources[right[0]])} "
                   f"{_e(right[1])}: probability {row['match_probability']:.4f}</h3>")
        sec.append(waterfall_chart(terms, row["match_weight"]))
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>tfkit link report</title>"
            f"<style>{CSS}</style></head><body>{''.join(sec)}</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, "utf-8")
    tmp.replace(path)
    return path
