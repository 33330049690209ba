"""The link report: one self-contained HTML page on tfkit's report toolkit (tfkit.report.html for the
page, tables and sections; tfkit.report.svg for the charts: axes, ticks and values on each).

What a linker looks at: the job in numbers and anything to worry about (EM that did not converge,
weights running the wrong way), blocking, m and u per comparison level with the level's weight,
the distribution of match weights, cluster sizes, and, given a truth column, accuracy by threshold,
precision against recall, F1 by threshold and calibration; last, waterfalls explaining sample pairs.

The page names record ids in the waterfalls (never names or other values), so it is LA-internal and
written 0600.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from tfkit.report.html import facts, render_page, section, table, write_page
from tfkit.report.svg import BAD, GOOD, bar_chart, column_chart, line_chart, log_bars, signed_bars, waterfall, zoom

from .evaluate import training_problems
from .predict import FULL_NAME

if TYPE_CHECKING:
    from .blocking import BlockingReport
    from .linker import Linker, LinkResult

PAGE_MODE = 0o600  # the page names record ids
GREY = "#8c979f"
SIZE_CAP = 10  # cluster sizes above this share one bar


def sample_pairs(scored: pl.DataFrame, threshold: float, k: int = 6) -> pl.DataFrame:
    """A deterministic spread: the strongest, the weakest, and pairs around the threshold."""
    if scored.height == 0:
        return scored
    ranked = scored.sort(["match_weight", "rid_l", "rid_r"], descending=[True, False, False])
    near = ranked.with_columns((pl.col("match_probability") - threshold).abs().alias("_d")).sort(
        ["_d", "rid_l", "rid_r"]).drop("_d")
    picks = pl.concat([ranked.head(1), near.head(k - 2), ranked.tail(1)]).unique(["rid_l", "rid_r"], maintain_order=True)
    return picks.head(k)


# --------------------------------------------------------------------------- sections


def _warnings(linker: "Linker") -> list[str]:
    """The model's warnings (recorded by the job), and the training problems for a model trained
    outside `link()`."""
    messages = [w["message"] for w in linker.model.warnings]
    return messages + [p["message"] for p in training_problems(linker.model) if p["message"] not in messages]


def _summary_section(linker: "Linker", result: dict[str, Any], threshold: float) -> tuple[str, str, str]:
    model = linker.model
    pairs = [("Model", model.source, ""), ("Mode", linker.mode, ""), ("Threshold (match probability)", threshold, ""),
             ("Seed", linker.seed, ""), ("Prior λ (weight)", f"{model.prior:.4g} ({model.prior_weight:+.2f})", "")]
    pairs += [(f"Records in {s}", n, "") for s, n in zip(linker.prepared.sources, linker.prepared.source_sizes())]
    from .review import review_pairs_text  # the review band's pairs, and those too close to call

    pairs += [(label, review_pairs_text(result) if key == "review_pairs" else result[key], "") for key, label in (
        ("candidate_pairs", "Candidate pairs compared"), ("links", "Links (p ≥ threshold)"),
        ("review_pairs", "Pairs for clerical review"), ("clusters", "Clusters")) if result.get(key) is not None]
    stats = result.get("constraints") or {}
    if stats.get("clean_sources"):
        pairs += [("Clean sources (one record per person)", ", ".join(stats["clean_sources"]), ""),
                  ("Clusters holding two records of a clean source", stats["clusters_with_two_clean_records"], ""),
                  ("Conflicting links dropped", stats["conflicts_resolved"], ""),
                  ("of which too close to call", stats.get("ambiguous_links_dropped", 0), "")]
    if stats.get("forced_links") or stats.get("forced_non_links"):
        pairs.append(("Review decisions applied", f"{stats['forced_links']:,} accepted, "
                                                  f"{stats['forced_non_links']:,} rejected", ""))
    seen_steps: set[str] = set()
    for t in model.training_log:
        name = f"Training: {t.get('step')}" + (f" ({t['session']})" if t.get("session") else "")
        if name in seen_steps:  # the prior, estimated then refined: two rows, told apart
            name += " (refined)"
        seen_steps.add(name)
        detail = t.get("method", "")
        if "converged" in t:
            detail += f"; {'converged' if t['converged'] else 'NOT converged'}"
        if t.get("iterations") is not None:
            detail += f" after {t['iterations']} iterations"
        pairs.append((name, detail, ""))
    warnings = _warnings(linker)
    body = facts(pairs)
    if warnings:
        body += "<h3>Warnings</h3><ul class=\"warnings\">" + "".join(
            f"<li>{escape(w)}</li>" for w in warnings) + "</ul>"
    return section("summary", "Summary", "warn" if warnings else "done", body)


def _blocking_section(report) -> tuple[str, str, str]:
    rows = [[r.rule, r.pairs_added] for r in report.rules]
    body = table(["blocking rule", "pairs added"], rows + [["total candidate pairs", report.total_pairs],
                                                         ["pairs the mode could compare", report.comparisons_possible]],
                 kinds=["", "num"])
    if report.recall is not None:
        body += facts([("Blocking recall (true pairs found)", f"{report.recall:.4f}", "")])
    body += bar_chart([(r.rule, float(r.pairs_added), None) for r in report.rules], "Pairs each rule adds", ticks=True)
    return section("blocking", "Blocking", "done", body)


def _model_section(linker: "Linker") -> tuple[str, str, str]:
    model = linker.model
    body = ['<p class="explain">Per comparison level: m (the share of true matches at the level) and u '
            "(the share of non-matches), and the level's weight log₂(m/u): positive weighs for a match, "
            "negative against.</p>"]
    from .predict import name_partners

    for first, second in name_partners(model):
        body.append(f'<p class="explain">{escape(first.name)} and {escape(second.name)} swapped is one event: '
                    f"its weight counts once, on {escape(first.name)}. Where both agree exactly, their two "
                    "term-frequency adjustments give way to the full name's own frequency "
                    "(<code>full_name_adjustment</code>).</p>")
    from .evaluate import weights_out_of_order

    wrong_way = {(f["comparison"], f["looser"]) for f in weights_out_of_order(model)}
    for c in model.comparisons:
        m, u = model.m[c.name], model.u[c.name]
        weights = model.level_weights(c.name)[1:]
        tf = ", term-frequency adjusted at its exact level" if c.term_frequency else ""
        body.append(f"<h3>{escape(c.name)} <span class='muted'>({escape(c.column)}{tf})</span></h3>")
        flagged = [(c.name, label) in wrong_way for label in c.labels]
        body.append(table(["level", "m", "u", "weight"],
                          [[label + (" (weighs more than a closer level)" if flagged[i] else ""), f"{m[i]:.4g}",
                            f"{u[i]:.4g}", f"{weights[i]:+.2f}"] for i, label in enumerate(c.labels)],
                          kinds=["", "num", "num", "num"], bad_rows=flagged))
        body.append('<div class="charts">')
        body.append(log_bars([(label, [("m", float(m[i])), ("u", float(u[i]))]) for i, label in enumerate(c.labels)],
                             f"{c.name}: m and u per level", x_label="probability (log scale)"))
        body.append(signed_bars([(label, float(weights[i])) for i, label in enumerate(c.labels)],
                                f"{c.name}: weight per level", x_label="match weight log₂(m/u)"))
        body.append("</div>")
    return section("model", "Model: m, u and weights", "done", "".join(body))


def weight_histogram(floors: np.ndarray, counts: np.ndarray, low: float, high: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """`np.histogram` of the match weights over at most ~40 bins with integer edges, from the pairs
    per floor(weight) (`floors`, `counts`) and the lowest and highest weight: on integer edges a
    weight's bin is its floor's, so an engine counting pairs per floor on a cluster gets these bins."""
    lo, hi = math.floor(low), math.ceil(high)
    width = max(1, math.ceil((hi - lo) / 40))
    edges = np.arange(lo, hi + width, width, dtype=np.float64)
    if len(edges) < 2:
        edges = np.array([lo, lo + width], dtype=np.float64)
    bins = np.minimum((np.asarray(floors, dtype=np.float64) - lo) // width, len(edges) - 2).astype(np.int64)
    return edges, np.bincount(bins, weights=counts, minlength=len(edges) - 1).astype(np.int64)


@dataclass
class ReportFigures:
    """What the report's charts read, as aggregates: an engine computes them where the pairs are
    (the polars engine from its frames, `figures_from_frames`; the Spark engine on the cluster)."""

    blocking: "BlockingReport"
    weight_floors: tuple[np.ndarray, np.ndarray]  # distinct floor(match_weight), pairs at each
    weight_range: tuple[float, float] | None      # lowest and highest match weight; None: no pairs
    samples: pl.DataFrame                          # `sample_pairs` (scored rows: rid_l, rid_r, levels...)
    cluster_sizes: list[tuple[int, int]] | None = None  # (size capped at SIZE_CAP + 1, clusters), by size
    largest_cluster: int = 0
    clusters: int = 0


def cluster_size_counts(sizes: pl.Series) -> list[tuple[int, int]]:
    capped = sizes.clip(upper_bound=SIZE_CAP + 1).value_counts().sort(sizes.name)
    return [(int(s), int(n)) for s, n in capped.iter_rows()]


def figures_from_frames(linker: "Linker", scored: pl.DataFrame, threshold: float,
                        clusters: pl.DataFrame | None = None) -> ReportFigures:
    weights = scored["match_weight"].to_numpy()
    floors, counts = np.unique(np.floor(weights), return_counts=True)
    figures = ReportFigures(linker.blocking.report(), (floors, counts),
                            (float(weights.min()), float(weights.max())) if len(weights) else None,
                            sample_pairs(scored, threshold))
    if clusters is not None:
        sizes = clusters.group_by("cluster_id").len().get_column("len")
        figures.cluster_sizes = cluster_size_counts(sizes)
        figures.largest_cluster, figures.clusters = int(sizes.max()), sizes.len()
    return figures


def _weights_section(figures: ReportFigures, threshold: float) -> tuple[str, str, str]:
    if figures.weight_range is None:
        return section("weights", "Match weights", "done", '<p class="muted">No candidate pairs.</p>')
    threshold_weight = math.log2(threshold / (1 - threshold))
    edges, counts = weight_histogram(*figures.weight_floors, *figures.weight_range)
    width = int(edges[1] - edges[0])
    items = [(f"{edges[i]:.0f}", float(c), GOOD if edges[i] >= threshold_weight else GREY) for i, c in enumerate(counts)]
    body = (f'<p class="explain">Candidate pairs by match weight (bins {width} wide, labelled by their lower edge; '
            f"counts on a log scale). Blue bins are at or above the threshold's weight ({threshold_weight:+.2f}).</p>")
    body += column_chart(items, "Candidate pairs by match weight", x_label="match weight", y_label="pairs", log=True)
    return section("weights", "Match weights", "done", body)


def _clusters_section(figures: ReportFigures) -> tuple[str, str, str] | None:
    if figures.cluster_sizes is None:
        return None
    items = [(f"{SIZE_CAP + 1}+" if s > SIZE_CAP else str(s), float(n), BAD if s > SIZE_CAP else None)
             for s, n in figures.cluster_sizes]
    body = column_chart(items, "Clusters by number of records", x_label="records in the cluster", y_label="clusters",
                        log=True)
    body += facts([("Largest cluster (records)", figures.largest_cluster, ""), ("Clusters", figures.clusters, "")])
    return section("clusters", "Cluster sizes", "done", body)


def _accuracy_section(metrics: dict | None, threshold: float) -> tuple[str, str, str] | None:
    if not metrics:
        return None
    curve = {round(a["threshold"], 6): a for a in metrics["curve"]}
    for key in ("at_threshold", "best_f1"):
        curve.setdefault(round(metrics[key]["threshold"], 6), metrics[key])
    ordered = [curve[t] for t in sorted(curve)]
    chosen, best = metrics["at_threshold"]["threshold"], metrics["best_f1"]["threshold"]
    rows = [[f"{a['threshold']:.4f}" + (" (chosen)" if a["threshold"] == chosen else "")
             + (" (best F1)" if a["threshold"] == best else ""), a["true_positives"], a["false_positives"],
             a["false_negatives"], f"{a['precision']:.4f}", f"{a['recall']:.4f}", f"{a['f1']:.4f}"] for a in ordered]
    at = metrics["at_threshold"]
    body = facts([("True pairs (by the truth column)", metrics.get("true_pairs"), ""),
                  ("Precision / recall / F1 at the threshold", f"{at['precision']:.4f} / {at['recall']:.4f} / {at['f1']:.4f}", ""),
                  ("Best F1 (at threshold)", f"{metrics['best_f1']['f1']:.4f} ({best:.4f})", ""),
                  ("Blocking recall", metrics.get("blocking_recall"), "")])
    body += '<div class="charts">'
    body += line_chart([("precision against recall", [(a["recall"], a["precision"]) for a in ordered])],
                       "Precision against recall (one point per threshold)", x_label="recall", y_label="precision",
                       x_range=zoom([a["recall"] for a in ordered]), y_range=zoom([a["precision"] for a in ordered]))
    body += line_chart([("F1", [(a["threshold"], a["f1"]) for a in ordered]),
                        ("precision", [(a["threshold"], a["precision"]) for a in ordered]),
                        ("recall", [(a["threshold"], a["recall"]) for a in ordered])],
                       "F1, precision and recall by threshold", x_label="threshold (match probability)",
                       y_label="share", marks=[("threshold", threshold)],
                       y_range=zoom([a[k] for a in ordered for k in ("f1", "precision", "recall")]))
    body += "</div>"
    bands = [b for b in metrics.get("calibration") or [] if b["pairs"]]
    if bands:
        body += "<h3>Calibration</h3>" + line_chart(
            [("observed match rate", [(b["predicted"], b["observed"]) for b in bands])],
            "Observed match rate against predicted probability, per band", x_label="mean predicted probability",
            y_label="observed match rate", diagonal=True, point_values=True)
        body += table(["probability band", "pairs", "mean predicted", "observed"],
                      [[b["band"], b["pairs"], f"{b['predicted']:.3f}", f"{b['observed']:.3f}"] for b in bands],
                      kinds=["", "num", "num", "num"])
    body += "<h3>Accuracy by threshold</h3>" + table(
        ["threshold", "TP", "FP", "FN", "precision", "recall", "F1"], rows,
        kinds=["", "num", "num", "num", "num", "num", "num"],
        bad_rows=[a["threshold"] == chosen for a in ordered])
    return section("accuracy", "Accuracy against the truth column", "done", body)


def _waterfalls_section(linker: "Linker", samples: pl.DataFrame) -> tuple[str, str, str]:
    model, prepared = linker.model, linker.prepared
    ids = prepared.frame.select("_source", "_record_id")
    body = ['<p class="explain">How sample pairs got their weight: the prior, then each comparison\'s level, '
            "then any term-frequency adjustment.</p>"]
    for row in samples.iter_rows(named=True):
        terms: list[tuple[str, float]] = [("prior", model.prior_weight)]
        for c in model.comparisons:
            level = row[f"{c.name}_level"]
            label = "missing (no evidence)" if level < 0 else c.labels[level]
            terms.append((f"{c.name}: {label}", float(model.level_weights(c.name)[level + 1])))
            tf = row.get(f"{c.name}_tf_adjustment")
            if tf:
                terms.append((f"{c.name}: term frequency", float(tf)))
        if row.get(FULL_NAME):
            terms.append(("full name: its frequency, swapped names once", float(row[FULL_NAME])))
        left, right = ids.row(row["rid_l"]), ids.row(row["rid_r"])
        title = (f"{prepared.sources[left[0]]} {left[1]} × {prepared.sources[right[0]]} {right[1]}: "
                 f"probability {row['match_probability']:.4f}")
        body.append(waterfall(terms, row["match_weight"], title, x_label="match weight"))
    return section("waterfalls", "Waterfalls for sample pairs", "done", "".join(body))


# --------------------------------------------------------------------------- page


def render_report(linker: "Linker", scored: pl.DataFrame, *, metrics: dict | None = None,
                  threshold: float | None = None, clusters: pl.DataFrame | None = None,
                  summary: dict | None = None) -> str:
    threshold = linker.model.settings.threshold if threshold is None else threshold
    summary = summary or {"candidate_pairs": scored.height,
                          "links": int((scored["match_probability"] >= threshold).sum())}
    return render_figures(linker, figures_from_frames(linker, scored, threshold, clusters), summary,
                          metrics=metrics, threshold=threshold)


def render_figures(linker: "Linker", figures: ReportFigures, summary: dict[str, Any], *,
                   metrics: dict | None = None, threshold: float | None = None) -> str:
    """The page from the job's summary and the figures' aggregates (any engine)."""
    threshold = linker.model.settings.threshold if threshold is None else threshold
    sections = [_summary_section(linker, summary, threshold), _blocking_section(figures.blocking),
                _model_section(linker), _weights_section(figures, threshold), _clusters_section(figures),
                _accuracy_section(metrics, threshold), _waterfalls_section(linker, figures.samples)]
    sections = [s for s in sections if s is not None]
    nav = "".join(f'<li><a href="#{anchor}">{escape(name)}</a></li>' for anchor, name, _ in sections)
    return render_page(
        title="tfkit link report", lede=f"{' × '.join(linker.prepared.sources)}: {linker.mode}", nav=nav,
        sections="\n".join(html for _, _, html in sections),
        footer="LA-internal: this page names record ids (in the waterfalls), never names or other values; "
               "it is written readable by its owner only.")


def write_report(path: str | Path, linker: "Linker", scored: pl.DataFrame, *, metrics: dict | None = None,
                 threshold: float | None = None, clusters: pl.DataFrame | None = None,
                 summary: dict | None = None) -> Path:
    page = render_report(linker, scored, metrics=metrics, threshold=threshold, clusters=clusters, summary=summary)
    return write_page(path, page, mode=PAGE_MODE)


def write_figures_report(path: str | Path, linker: "Linker", figures: ReportFigures, summary: dict[str, Any], *,
                         metrics: dict | None = None, threshold: float | None = None) -> Path:
    """The report from aggregates (what `tfkit link --engine spark --report` writes)."""
    return write_page(path, render_figures(linker, figures, summary, metrics=metrics, threshold=threshold),
                      mode=PAGE_MODE)


def write_link_report(path: str | Path, result: "LinkResult") -> Path:
    """The report for a finished job (what `tfkit link --report` writes)."""
    return write_report(path, result.linker, result.scored, metrics=result.metrics, threshold=result.threshold,
                        clusters=result.clusters, summary=result.summary())
