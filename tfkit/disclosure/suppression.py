"""Small-cell suppression for published count tables, primary and secondary.

Primary suppression hides every count below the threshold, zeros included (the UK LLC / ONS
output-checking rule). Secondary suppression then hides further cells so that no hidden cell can be
recomputed from the published cells and totals.

Why "at least two hidden cells in every row and column" is not enough: hide the corners of two
separate rectangles and one more cell joining them. Every row and column holds two or more hidden
cells, yet adding the two rectangles' row equations and subtracting their column equations leaves
the joining cell alone: it is recomputed exactly. The sound condition is about cycles, not counts.

The model (the network view of cell suppression, after Kelly, Golden and Assad). Each additive
relation of a table (a row with its total, a column with its total, including the total row and the
total column) is a vertex; each cell is an edge joining its row-relation to its column-relation.
Signs are chosen (`sign`, with x = sign * y) so every relation reads "the y on its edges sum to a
known constant". Moving the hidden y values by +1, -1, +1, ... around a cycle of hidden edges keeps
every relation true, so another table with the same published figures exists. Hence:

* a hidden cell is recomputable from the relations alone iff it lies on no cycle of hidden cells
  (it is a bridge of the hidden-cell graph);
* with counts known to be non-negative, it is recomputable iff no cycle through it can move by one
  unit without some count falling below zero. `is_protected` tests exactly this with a directed
  search (decreasing a count is allowed only where it is at least 1). By the conformal
  decomposition of circulations this is equivalent to the linear-programming bounds of the cell
  differing, i.e. to the cell not being recomputable by any attacker who knows the published table
  (tests/test_summarise_suppression.py attacks every hidden cell with an LP solver to prove it).

Secondary suppression: for each hidden cell not yet protected, find the cheapest cycle through it
(Dijkstra over the cells, hidden cells free, others costing their value plus one, totals costing
more, locked cells such as a grand total that other tables publish unusable) along which a unit
move is feasible, and hide the cells on it. Hiding more cells never removes a cycle, so each step
protects its cell for good and the loop ends after at most one step per cell.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Hashable, Iterable


@dataclass(frozen=True)
class Cell:
    """One published figure: an edge between two relation vertices."""

    row: Hashable
    col: Hashable
    sign: int  # +1 or -1: x = sign * y, so every relation sums its y values
    value: int
    margin: bool = False  # a total: hidden only when nothing cheaper will do
    locked: bool = False  # published elsewhere (a grand total): never chosen as a secondary


@dataclass(frozen=True)
class Suppression:
    primary: frozenset[int]
    secondary: frozenset[int]
    unprotected: frozenset[int]  # hidden cells that still could be recomputed: empty unless degenerate

    @property
    def hidden(self) -> frozenset[int]:
        return self.primary | self.secondary


def _arcs(cell: Cell) -> tuple[bool, bool]:
    """Whether a unit move is feasible forwards (row->col, dy=+1) and backwards (col->row, dy=-1)."""
    forward = cell.sign == 1 or cell.value >= 1  # dx = +sign
    backward = cell.sign == -1 or cell.value >= 1  # dx = -sign
    return forward, backward


def _adjacency(cells: list[Cell], usable: Iterable[int], skip: int) -> dict[tuple, list[tuple[tuple, int]]]:
    adj: dict[tuple, list[tuple[tuple, int]]] = {}
    for i in usable:
        if i == skip:
            continue
        c = cells[i]
        r, k = ("r", c.row), ("c", c.col)
        forward, backward = _arcs(c)
        if forward:
            adj.setdefault(r, []).append((k, i))
        if backward:
            adj.setdefault(k, []).append((r, i))
    return adj


def _reachable(adj: dict, start: tuple, goal: tuple) -> bool:
    seen = {start}
    frontier = [start]
    while frontier:
        v = frontier.pop()
        if v == goal:
            return True
        for w, _ in adj.get(v, ()):
            if w not in seen:
                seen.add(w)
                frontier.append(w)
    return False


def is_protected(cells: list[Cell], hidden: set[int] | frozenset[int], index: int) -> bool:
    """True when hidden cell `index` can move by one unit with every published figure unchanged."""
    c = cells[index]
    r, k = ("r", c.row), ("c", c.col)
    adj = _adjacency(cells, hidden, skip=index)
    forward, backward = _arcs(c)
    return (forward and _reachable(adj, k, r)) or (backward and _reachable(adj, r, k))


def _cost(cell: Cell, margin_penalty: int) -> int:
    return cell.value + 1 + (margin_penalty if cell.margin else 0)


def _cheapest_cycle(cells: list[Cell], hidden: set[int], index: int, margin_penalty: int) -> list[int] | None:
    """Cells (not yet hidden) on the cheapest feasible cycle through `index`, or None if none exists."""
    usable = [i for i, c in enumerate(cells) if i in hidden or not c.locked]
    adj = _adjacency(cells, usable, skip=index)
    c = cells[index]
    r, k = ("r", c.row), ("c", c.col)
    forward, backward = _arcs(c)
    best: tuple[int, list[int]] | None = None
    for ok, start, goal in ((forward, k, r), (backward, r, k)):
        if not ok:
            continue
        found = _dijkstra(adj, start, goal, lambda i: 0 if i in hidden else _cost(cells[i], margin_penalty))
        if found is not None and (best is None or found[0] < best[0]):
            best = found
    if best is None:
        return None
    return [i for i in best[1] if i not in hidden]


def _dijkstra(adj: dict, start: tuple, goal: tuple, cost) -> tuple[int, list[int]] | None:
    dist = {start: 0}
    via: dict[tuple, tuple[tuple, int]] = {}
    heap: list[tuple[int, int, tuple]] = [(0, 0, start)]
    counter = 1  # tie-break on insertion order: deterministic, never compares vertices
    done = set()
    while heap:
        d, _, v = heapq.heappop(heap)
        if v in done:
            continue
        done.add(v)
        if v == goal:
            path = []
            while v != start:
                v, i = via[v]
                path.append(i)
            return d, path[::-1]
        for w, i in adj.get(v, ()):
            nd = d + cost(i)
            if w not in dist or nd < dist[w]:
                dist[w] = nd
                via[w] = (v, i)
                heapq.heappush(heap, (nd, counter, w))
                counter += 1
    return None


def suppress(cells: list[Cell], threshold: int) -> Suppression:
    """Hide counts below `threshold` (zeros included), then enough others that none can be recomputed."""
    primary = {i for i, c in enumerate(cells) if c.value < threshold}
    hidden = set(primary)
    margin_penalty = sum(c.value for c in cells if not c.margin) + 1
    unprotected: set[int] = set()
    queue = sorted(primary, key=lambda i: (-cells[i].value, i))  # larger hidden counts first: cheaper cover
    for index in queue:
        if is_protected(cells, hidden, index):
            continue
        extra = _cheapest_cycle(cells, hidden, index, margin_penalty)
        if extra is None:
            unprotected.add(index)
            continue
        hidden.update(extra)
    if unprotected:
        # Degenerate table (for instance almost all zeros): hide every cell that is not locked.
        hidden.update(i for i, c in enumerate(cells) if not c.locked)
        unprotected = {i for i in hidden if not is_protected(cells, hidden, i)}
    return Suppression(frozenset(primary), frozenset(hidden - primary), frozenset(unprotected))
