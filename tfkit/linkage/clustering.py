"""Stage 5, cluster: connected components above a threshold, or one-to-one best links.

Both work on arrays: components by iterative hooking and pointer jumping in numpy (scipy's csgraph
was used first; importing it alone cost about a second), best links by repeated rounds of "keep the
edges that are each end's best remaining edge", each round a few polars group-bys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np
import polars as pl

from tfkit.errors import InputFileError, UsageError

from .standardise import Prepared


def components(n_records: int, rid_l: np.ndarray, rid_r: np.ndarray) -> np.ndarray:
    """Cluster id per record: the smallest row position in its connected component.

    Shiloach-Vishkin style, on whole arrays: every round hooks each edge's two roots to the smaller
    one, then compresses paths by pointer jumping; it converges in O(log n) rounds.
    """
    parent = np.arange(n_records, dtype=np.int64)
    if n_records == 0 or len(rid_l) == 0:
        return parent
    left = np.asarray(rid_l, dtype=np.int64)
    right = np.asarray(rid_r, dtype=np.int64)
    while True:
        root_l, root_r = parent[left], parent[right]
        low = np.minimum(root_l, root_r)
        before = parent.copy()
        np.minimum.at(parent, root_l, low)
        np.minimum.at(parent, root_r, low)
        while True:  # pointer jumping: every node straight to its root
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
        if np.array_equal(parent, before):
            return parent


def best_links(pairs: pl.DataFrame, sources: np.ndarray) -> pl.DataFrame:
    """One-to-one links: each record links to at most one record of each other source.

    Rounds of mutual best: keep an edge when it is the heaviest remaining edge of its left record
    towards the right's source and of its right record towards the left's source (ties broken by
    record position), then drop every edge touching a record already linked to that source.
    """
    edges = pairs.select("rid_l", "rid_r", "match_weight").with_columns(
        pl.Series("src_l", sources[pairs["rid_l"].to_numpy()]),
        pl.Series("src_r", sources[pairs["rid_r"].to_numpy()]),
    )
    accepted = []
    while edges.height:
        ranked = edges.sort(["match_weight", "rid_l", "rid_r"], descending=[True, False, False])
        best_l = ranked.unique(["rid_l", "src_r"], keep="first", maintain_order=True)
        best_r = ranked.unique(["rid_r", "src_l"], keep="first", maintain_order=True)
        mutual = best_l.join(best_r.select("rid_l", "rid_r"), on=["rid_l", "rid_r"], how="semi")
        if mutual.height == 0:  # cannot happen (the heaviest edge is always mutual); guard anyway
            break
        accepted.append(mutual.select("rid_l", "rid_r", "match_weight"))
        taken = pl.concat([
            mutual.select(pl.col("rid_l").alias("rid"), pl.col("src_r").alias("towards")),
            mutual.select(pl.col("rid_r").alias("rid"), pl.col("src_l").alias("towards")),
        ])
        edges = (
            edges.join(taken.rename({"rid": "rid_l", "towards": "src_r"}), on=["rid_l", "src_r"], how="anti")
            .join(taken.rename({"rid": "rid_r", "towards": "src_l"}), on=["rid_r", "src_l"], how="anti")
        )
    if not accepted:
        return pl.DataFrame(schema={"rid_l": pl.Int64, "rid_r": pl.Int64, "match_weight": pl.Float64})
    return pl.concat(accepted).sort("rid_l", "rid_r")


FORCED_WEIGHT = 1e6  # a reviewer's accepted pair outweighs any scored pair


# A pair held for review, not linked: the record whose candidates in a clean source were too close
# to call (`held_side`: "l" or "r", the end whose view was ambiguous).
NO_HELD = pl.DataFrame(schema={"rid_l": pl.Int64, "rid_r": pl.Int64, "held_side": pl.String})


@dataclass
class LinkStats:
    """What the link constraints did: counts (the summary and the report show them), and the pairs
    they held for clerical review (`held_for_review`, by row position: not a count, kept out of
    `to_dict`; `review.review_queue` puts them in the review files)."""

    clean_sources: list[str] = field(default_factory=list)
    links_above_threshold: int = 0
    forced_links: int = 0
    forced_non_links: int = 0
    decisions_unmatched: int = 0  # decided pairs naming a record this job does not hold (another job's?)
    conflicts_resolved: int = 0  # links above the threshold dropped so clean sources stay clean
    ambiguous_links_dropped: int = 0  # of those: a record's candidates in a clean source too close to call
    clusters_with_two_clean_records: int = 0  # 0 by design; counted on the output, not assumed
    held_for_review: pl.DataFrame = field(default_factory=NO_HELD.clear, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), list) else v
                for f in fields(self) if f.name != "held_for_review"}


def check_clean_sources(prepared: Prepared, clean: Sequence[str]) -> list[int]:
    """Source indexes of the clean sources; a clean source must exist and hold each record id once."""
    unknown = [s for s in clean if s not in prepared.sources]
    if unknown:
        raise UsageError(f"--clean names source {unknown[0]!r}, which is not an input",
                         hint=f"sources are named after their files: {', '.join(prepared.sources)}")
    indexes = sorted({prepared.sources.index(s) for s in clean})
    if not indexes:
        return indexes
    ids = prepared.frame.filter(pl.col("_source").is_in(indexes)).select("_source", "_record_id")
    repeated = ids.filter(pl.len().over("_source", "_record_id") > 1)
    if repeated.height:
        source = prepared.sources[int(repeated["_source"][0])]
        rows = repeated.filter(pl.col("_source") == repeated["_source"][0]).height
        # Row counts only: the ids themselves are identifiers and stay out of messages.
        raise InputFileError(f"source {source!r} is declared clean (one record per person) but {rows:,} of its "
                             "records share a record id with another", file=source, column="record_id",
                             hint="deduplicate the extract at source, or drop it from --clean / [linkage] clean")
    return indexes


def _pair_keys(prepared: Prepared, decided: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Decisions (source_l, record_id_l, source_r, record_id_r, decision) as row positions (rid_l <
    rid_r), and how many decisions name a record this job does not hold."""
    ids = prepared.frame.select(
        "_rid", prepared.source_name().alias("_s"), "_record_id")
    d = decided.select(pl.col("source_l").cast(pl.String), pl.col("record_id_l").cast(pl.String),
                       pl.col("source_r").cast(pl.String), pl.col("record_id_r").cast(pl.String), "decision")
    d = (d.join(ids.rename({"_s": "source_l", "_record_id": "record_id_l", "_rid": "a"}),
                on=["source_l", "record_id_l"], how="left", maintain_order="left")
         .join(ids.rename({"_s": "source_r", "_record_id": "record_id_r", "_rid": "b"}),
               on=["source_r", "record_id_r"], how="left", maintain_order="left"))
    unmatched = d.filter(pl.col("a").is_null() | pl.col("b").is_null()).select(
        "source_l", "record_id_l", "source_r", "record_id_r").unique().height
    keyed = d.drop_nulls(["a", "b"]).select(
        pl.min_horizontal("a", "b").alias("rid_l"), pl.max_horizontal("a", "b").alias("rid_r"), "decision")
    return keyed.filter(pl.col("rid_l") != pl.col("rid_r")).unique(["rid_l", "rid_r"], keep="last"), unmatched


NO_PAIRS = pl.DataFrame(schema={"rid_l": pl.Int64, "rid_r": pl.Int64})


def _apply_decisions(links: pl.DataFrame, prepared: Prepared, decisions: pl.DataFrame | None,
                     stats: LinkStats) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Links with accepted pairs added and rejected ones removed; and the rejected pairs."""
    if decisions is None or decisions.height == 0:
        return links, NO_PAIRS
    keyed, stats.decisions_unmatched = _pair_keys(prepared, decisions)
    reject = keyed.filter(pl.col("decision") == "reject").select("rid_l", "rid_r")
    accept = keyed.filter(pl.col("decision") == "accept").select(
        "rid_l", "rid_r", pl.lit(FORCED_WEIGHT).alias("match_weight"))
    ordered = links.select(pl.min_horizontal("rid_l", "rid_r").alias("rid_l"),
                           pl.max_horizontal("rid_l", "rid_r").alias("rid_r"), "match_weight")
    stats.forced_non_links, stats.forced_links = reject.height, accept.height
    kept = ordered.join(reject, on=["rid_l", "rid_r"], how="anti").join(accept, on=["rid_l", "rid_r"], how="anti")
    return pl.concat([kept, accept.cast(kept.schema)]).sort("rid_l", "rid_r"), reject.cast(NO_PAIRS.schema)


def _best_towards_clean(edges: pl.DataFrame, clean_mask: np.ndarray, sources: np.ndarray) -> pl.DataFrame:
    """Each record of another source keeps only its heaviest edge towards each clean source (ties:
    the clean record first in row order)."""
    left, right = edges["rid_l"].to_numpy(), edges["rid_r"].to_numpy()
    towards_right = ~clean_mask[left] & clean_mask[right]
    towards_left = clean_mask[left] & ~clean_mask[right]
    touching = towards_right | towards_left
    if not touching.any():
        return edges
    # One row per edge towards a clean record: (record, clean record it links to, that one's source).
    rec = np.where(towards_right, left, right)[touching]
    to = np.where(towards_right, right, left)[touching]
    weight = edges["match_weight"].to_numpy()[touching]
    order = np.lexsort((to, -weight, sources[to], rec))  # by record and clean source, heaviest first
    rec_o, src_o = rec[order], sources[to][order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (rec_o[1:] != rec_o[:-1]) | (src_o[1:] != src_o[:-1])
    keep = np.ones(edges.height, dtype=bool)
    keep[np.flatnonzero(touching)[order[~first]]] = False
    return edges.filter(pl.Series(keep))


def _value_signature(prepared: Prepared) -> np.ndarray:
    """Per record, a hash of its standardised values (every coded field): two records holding the same
    values on every field get the same signature. Without fields, the row position (all distinct)."""
    fields = [c for c in prepared.frame.columns if not c.startswith("_")]
    if not fields:
        return np.arange(prepared.n, dtype=np.uint64)
    return prepared.frame.select(fields).hash_rows(seed=0).to_numpy()


def _too_close(edges: pl.DataFrame, clean_mask: np.ndarray, sources: np.ndarray, signature: np.ndarray,
               threshold: float) -> pl.DataFrame:
    """The edges from a record to a clean source whose candidates there are too close to call: `edge`
    (row in `edges`) and `held_side` ("l" or "r": the end whose candidates they are; "l" when both).

    A clean source holds each person once, so a record matches at most one of its records: with
    candidates of odds o_1 >= o_2 >= ... (o = 2^match_weight, every candidate at or above the
    threshold), the chance that the best is the one is o_1 / (1 + o_1 + o_2 + ...), the Fellegi-Sunter
    probability under that constraint (each candidate alone says o_k / (1 + o_k)). Where it falls below
    the threshold (a father and his junior at one address against a record with no DOB, twins against
    a record naming neither) the call is a reviewer's. Candidates holding the same values on every
    field count once (the evidence cannot tell them apart: one person keyed twice). Only edges at or
    above the threshold take part, so every engine gets the same answer from the links alone. An edge
    between two clean sources is judged from both ends.
    """
    none = pl.DataFrame(schema={"edge": pl.Int64, "held_side": pl.String})
    left, right = edges["rid_l"].to_numpy(), edges["rid_r"].to_numpy()
    weight = edges["match_weight"].to_numpy()
    rows = []
    for side, rec, to in (("l", left, right), ("r", right, left)):  # each end's view of the edge
        towards = clean_mask[to] & (sources[rec] != sources[to])
        rows.append(pl.DataFrame({"edge": np.flatnonzero(towards).astype(np.int64), "rec": rec[towards],
                                  "src": sources[to[towards]], "sig": signature[to[towards]], "w": weight[towards]})
                    .with_columns(pl.lit(side, dtype=pl.String).alias("held_side")))
    view = pl.concat(rows)
    if view.height == 0:
        return none
    # Per (record, clean source): log2 of (1 + sum of distinct candidates' odds) against the best's,
    # in the best's units so that 2^w never overflows: p = 1 / (2^-w1 + sum_k 2^(w_k - w1)).
    distinct = view.group_by("rec", "src", "sig").agg(pl.col("w").max())
    two = pl.lit(2.0, dtype=pl.Float64)
    # The best's weight beside each candidate first, then plain sums per group: one expression
    # holding a group's max inside its sum ran per group in polars (42 ms of CPU at 100k, 38,000 groups).
    best = pl.col("w").max().over("rec", "src")
    group = (distinct.with_columns(two.pow(pl.col("w") - best).alias("odds"), best.alias("best"))
             .group_by("rec", "src").agg(pl.col("odds").sum(), pl.col("best").first())
             .select("rec", "src", (1.0 / (two.pow(-pl.col("best")) + pl.col("odds"))).alias("p")))
    ambiguous = group.filter(pl.col("p") < threshold).select("rec", "src")
    if ambiguous.height == 0:
        return none
    return (view.join(ambiguous, on=["rec", "src"], how="semi").select("edge", "held_side")
            .sort("edge", "held_side").unique("edge", keep="first", maintain_order=True))


def _held(edges: pl.DataFrame, close: pl.DataFrame) -> pl.DataFrame:
    """`close`'s edges as pairs held for review (rid_l < rid_r; `held_side` follows the swap)."""
    picked = edges.select("rid_l", "rid_r")[close["edge"].to_numpy()].with_columns(close["held_side"])
    swap = pl.col("rid_l") > pl.col("rid_r")
    return picked.select(pl.min_horizontal("rid_l", "rid_r").cast(pl.Int64).alias("rid_l"),
                         pl.max_horizontal("rid_l", "rid_r").cast(pl.Int64).alias("rid_r"),
                         pl.when(swap).then(pl.col("held_side").replace({"l": "r", "r": "l"}))
                         .otherwise(pl.col("held_side")).alias("held_side")).sort("rid_l", "rid_r")


def _drop_ambiguous(edges: pl.DataFrame, clean_mask: np.ndarray, sources: np.ndarray, signature: np.ndarray,
                    threshold: float, stats: LinkStats) -> pl.DataFrame:
    """Drop every edge from a record to a clean source whose candidates there are too close to call
    (`_too_close`): the record links to none of them, and the pairs are held for review."""
    close = _too_close(edges, clean_mask, sources, signature, threshold)
    if close.height == 0:
        return edges
    stats.held_for_review = _held(edges, close)
    keep = np.ones(edges.height, dtype=bool)
    keep[close["edge"].to_numpy()] = False
    return edges.filter(pl.Series(keep))


def _clean_constrained(links: pl.DataFrame, sources: np.ndarray, clean: list[int], n: int,
                       stats: LinkStats, rejected: pl.DataFrame = NO_PAIRS) -> pl.DataFrame:
    """Links such that no component holds two records of one clean source (see `select_links`; the
    links too close to call are gone already). A rejected pair with one clean record never ends in
    one cluster, even through other records."""
    clean_mask = np.isin(sources, clean)
    edges = links.with_columns(pl.Series("src_l", sources[links["rid_l"].to_numpy()]),
                               pl.Series("src_r", sources[links["rid_r"].to_numpy()]))
    # 1. Never two records of one clean source: no edge inside a clean source.
    edges = edges.filter(~((pl.col("src_l") == pl.col("src_r")) & pl.col("src_l").is_in(clean)))
    # 2. Another source's record links to at most one record of each clean source: its best.
    edges = _best_towards_clean(edges, clean_mask, sources)
    both_clean = pl.Series(clean_mask[edges["rid_l"].to_numpy()] & clean_mask[edges["rid_r"].to_numpy()])
    # 3. Between clean sources: one-to-one (mutual best rounds); a chain through three or more clean
    #    sources that reaches two records of one of them is cut (all its clean-to-clean edges go).
    between = best_links(edges.filter(both_clean).select("rid_l", "rid_r", "match_weight"), sources)
    seed = components(n, between["rid_l"].to_numpy(), between["rid_r"].to_numpy())
    if between.height:
        bad = _clusters_with_two_clean(seed, sources, clean_mask)
        between = between.filter(~pl.Series(np.isin(seed[between["rid_l"].to_numpy()], bad)))
        seed = components(n, between["rid_l"].to_numpy(), between["rid_r"].to_numpy())
    # 4. The other sources' records join the clean record they are most strongly tied to: rounds of
    #    "each unlabelled record takes the label of its heaviest labelled neighbour" (a loop over
    #    rounds, as deep as the longest chain, never over records).
    rest = edges.filter(~both_clean)
    a, b = rest["rid_l"].to_numpy(), rest["rid_r"].to_numpy()
    u, v = np.concatenate([a, b]), np.concatenate([b, a])
    w = np.tile(rest["match_weight"].to_numpy(), 2)
    label = np.where(clean_mask, seed, -1)
    forbidden = _forbidden_labels(rejected, clean_mask, seed, n)
    while True:
        open_ = (label[u] < 0) & (label[v] >= 0)
        if len(forbidden):
            open_ &= ~np.isin(u * (n + 1) + label[v], forbidden)
        if not open_.any():
            break
        cu, cv, cw = u[open_], v[open_], w[open_]
        order = np.lexsort((cv, -cw, cu))  # by record, heaviest first, then by position
        first = np.unique(cu[order], return_index=True)[1]
        label[cu[order][first]] = label[cv[order][first]]
    # Keep edges whose two ends went the same way (or that touch no clean record at all).
    same = label[a] == label[b]
    kept = pl.concat([between, rest.filter(pl.Series(same)).select("rid_l", "rid_r", "match_weight")])
    stats.conflicts_resolved = links.height - kept.height
    return kept


def _forbidden_labels(rejected: pl.DataFrame, clean_mask: np.ndarray, seed: np.ndarray, n: int) -> np.ndarray:
    """Keys record * (n + 1) + label: the clean records' labels each record must not take (a reviewer
    rejected the pair)."""
    a, b = rejected["rid_l"].to_numpy(), rejected["rid_r"].to_numpy()
    keys = [a[clean_mask[b] & ~clean_mask[a]] * (n + 1) + seed[b[clean_mask[b] & ~clean_mask[a]]],
            b[clean_mask[a] & ~clean_mask[b]] * (n + 1) + seed[a[clean_mask[a] & ~clean_mask[b]]]]
    return np.unique(np.concatenate(keys)).astype(np.int64)


def _clusters_with_two_clean(labels: np.ndarray, sources: np.ndarray, clean_mask: np.ndarray) -> np.ndarray:
    """Cluster ids holding two records of one clean source."""
    if not clean_mask.any():
        return np.array([], dtype=np.int64)
    frame = pl.DataFrame({"c": labels[clean_mask], "s": sources[clean_mask]})
    return frame.group_by("c", "s").len().filter(pl.col("len") > 1)["c"].unique().to_numpy()


def select_links(prepared: Prepared, pairs: pl.DataFrame, threshold: float, *, one_to_one: bool = False,
                 clean: Sequence[str] = (), decisions: pl.DataFrame | None = None
                 ) -> tuple[pl.DataFrame, LinkStats]:
    """The edges clustering joins: pairs at or above the threshold, then

    - a reviewer's decisions: accepted pairs become links, rejected ones never link;
    - clean sources (one record per person, e.g. the cohort): a record whose candidates in a clean
      source are too close to call (`_drop_ambiguous`: the best's probability given that only one
      of them can be the one falls below the threshold) links to none of them, and the pairs are
      held for clerical review (`LinkStats.held_for_review`); this comes before anything picks a
      best, so one-to-one links (as `extract` links) never link one of them by row order;
    - one-to-one best links, when asked for;
    - clean sources: no cluster holds two of a clean source's records, and another source's record
      joins at most one of them, its best match.

    A link dropped for a clean source is counted (`conflicts_resolved`; of which too close to call
    `ambiguous_links_dropped`).
    """
    stats = LinkStats(clean_sources=list(clean))
    links = pairs.filter(pl.col("match_probability") >= threshold).select("rid_l", "rid_r", "match_weight")
    stats.links_above_threshold = links.height
    links, rejected = _apply_decisions(links, prepared, decisions, stats)
    sources = prepared.frame.get_column("_source").to_numpy().astype(np.int64)
    clean_idx = check_clean_sources(prepared, clean)
    if clean_idx:
        before = links.height
        links = _drop_ambiguous(links, np.isin(sources, clean_idx), sources, _value_signature(prepared),
                                threshold, stats)
        stats.ambiguous_links_dropped = before - links.height
    if one_to_one:
        links = best_links(links, sources)
    if clean_idx:
        links = _clean_constrained(links, sources, clean_idx, prepared.n, stats, rejected)
        stats.conflicts_resolved += stats.ambiguous_links_dropped
    return links, stats


def cluster_frame(prepared: Prepared, links: pl.DataFrame) -> pl.DataFrame:
    """Every input record with its cluster id (nothing dropped): source, record_id, cluster_id, cluster_size."""
    labels = components(prepared.n, links["rid_l"].to_numpy(), links["rid_r"].to_numpy())
    frame = prepared.frame.select(
        "_rid",
        prepared.source_name().alias("source"),
        pl.col("_record_id").alias("record_id"),
    ).with_columns(pl.Series("cluster_id", labels))
    return (
        frame.with_columns(pl.len().over("cluster_id").cast(pl.Int64).alias("cluster_size"))
        .sort("_rid").drop("_rid")
    )


def count_clean_conflicts(prepared: Prepared, clusters: pl.DataFrame, clean: Sequence[str]) -> int:
    """Clusters holding two records of one clean source (the output checked, not the design trusted)."""
    if not clean:
        return 0
    return (clusters.filter(pl.col("source").is_in(list(clean)))
            .group_by("cluster_id", "source").len().filter(pl.col("len") > 1)["cluster_id"].n_unique())


def cluster(prepared: Prepared, pairs: pl.DataFrame, threshold: float, *, one_to_one: bool = False,
            clean: Sequence[str] = (), decisions: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every input record with its cluster id: see `select_links` and `cluster_frame`."""
    links, _ = select_links(prepared, pairs, threshold, one_to_one=one_to_one, clean=clean, decisions=decisions)
    return cluster_frame(prepared, links)
