"""Stage 5, cluster: connected components above a threshold, or one-to-one best links.

Both work on arrays: components by iterative hooking and pointer jumping in numpy (scipy's csgraph
was used first; importing it alone cost about a second), best links by repeated rounds of "keep the
edges that are each end's best remaining edge", each round a few polars group-bys.
"""

from __future__ import annotations

import numpy as np
import polars as pl
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


def cluster(prepared: Prepared, pairs: pl.DataFrame, threshold: float, *, one_to_one: bool = False) -> pl.DataFrame:
    """Every input record with its cluster id (nothing dropped): source, record_id, cluster_id, cluster_size."""
    links = pairs.filter(pl.col("match_probability") >= threshold)
    if one_to_one:
        links = best_links(links, prepared.frame.get_column("_source").to_numpy())
    labels = components(prepared.n, links["rid_l"].to_numpy(), links["rid_r"].to_numpy())
    frame = prepared.frame.select(
        "_rid",
        pl.col("_source").replace_strict(list(range(len(prepared.sources))), prepared.sources,
                                         return_dtype=pl.String).alias("source"),
        pl.col("_record_id").alias("record_id"),
    ).with_columns(pl.Series("cluster_id", labels))
    return (
        frame.with_columns(pl.len().over("cluster_id").cast(pl.Int64).alias("cluster_size"))
        .sort("_rid").drop("_rid")
    )
