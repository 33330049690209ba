"""Secondary suppression, attacked: no hidden cell may be recomputable from what is published.

The attacker knows every published cell and total and that counts are non-negative integers. For
each hidden cell it solves two linear programmes (minimise and maximise the cell subject to every
row and column relation). The relation matrices here are totally unimodular, so the LP bounds are
attained by integer tables: if they differ, two different tables agree with everything published
and the hidden cell cannot be recomputed.
"""

from __future__ import annotations

import random

import pytest

from tfkit.disclosure.suppression import Cell, is_protected, suppress
from tfkit.disclosure.tables import SUPPRESSED, CountTable, round_to

scipy_optimize = pytest.importorskip("scipy.optimize")


def relations(table: CountTable) -> list[list[tuple[int, int, int]]]:
    """Each additive relation as (row, col, coefficient) triples summing to zero."""
    grid = table.grid()
    n_rows, n_cols = len(grid), len(grid[0])
    out = []
    if table.additive == "both":
        for i in range(n_rows):
            out.append([(i, j, 1) for j in range(n_cols - 1)] + [(i, n_cols - 1, -1)])
        for j in range(n_cols):
            out.append([(i, j, 1) for i in range(n_rows - 1)] + [(n_rows - 1, j, -1)])
    elif table.additive == "columns":
        for j in range(n_cols):
            out.append([(i, j, 1) for i in range(n_rows - 1)] + [(n_rows - 1, j, -1)])
    return out


def attack(table: CountTable) -> dict[tuple[int, int], tuple[float, float]]:
    """LP bounds of every hidden cell given the published table (no rounding)."""
    grid, hidden = table.grid(), table.hidden
    unknown = [(i, j) for i, row in enumerate(hidden) for j, h in enumerate(row) if h]
    index = {pos: n for n, pos in enumerate(unknown)}
    a_eq, b_eq = [], []
    for rel in relations(table):
        coeffs = [0.0] * len(unknown)
        constant = 0.0
        for i, j, a in rel:
            if (i, j) in index:
                coeffs[index[(i, j)]] += a
            else:
                assert table.published[i][j] == grid[i][j]
                constant -= a * table.published[i][j]
        if any(coeffs):
            a_eq.append(coeffs)
            b_eq.append(constant)
    bounds = {}
    for pos, n in index.items():
        objective = [0.0] * len(unknown)
        objective[n] = 1.0
        lo = scipy_optimize.linprog(objective, A_eq=a_eq or None, b_eq=b_eq or None, bounds=(0, None), method="highs")
        objective[n] = -1.0
        hi = scipy_optimize.linprog(objective, A_eq=a_eq or None, b_eq=b_eq or None, bounds=(0, None), method="highs")
        assert lo.status == 0, "the true table is feasible, so the LP must be"
        upper = float("inf") if hi.status == 3 else -hi.fun
        bounds[pos] = (lo.fun, upper)
    return bounds


def assert_safe(table: CountTable) -> None:
    grid = table.grid()
    for (i, j), (lo, hi) in attack(table).items():
        assert lo <= grid[i][j] <= hi + 1e-9
        if table.additive != "none":
            assert hi - lo >= 1 - 1e-9, (
                f"{table.name}: hidden cell ({table.row_labels[i]}, {table.column_labels[j]}) = {grid[i][j]} "
                f"is recomputable: bounds [{lo}, {hi}]"
            )
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v < table.threshold:
                assert table.hidden[i][j], "every small count is hidden, zeros included"
    assert table.unprotected == 0


def random_table(rng: random.Random, additive: str) -> CountTable:
    n_rows, n_cols = rng.randint(1, 7), (rng.randint(1, 5) if additive == "both" else rng.randint(1, 3))
    scale = rng.choice([3, 8, 15, 40, 200])
    body = [[rng.choice([0, rng.randint(0, scale), rng.randint(0, 12)]) for _ in range(n_cols)] for _ in range(n_rows)]
    return CountTable("t", "t", "row", [f"r{i}" for i in range(n_rows)], [f"c{j}" for j in range(n_cols)], body, additive)


@pytest.mark.parametrize("additive", ["both", "columns"])
def test_no_hidden_cell_can_be_recomputed_from_published_margins(additive):
    rng = random.Random(20261122)
    tried = hidden_total = 0
    for _ in range(60):
        table = random_table(rng, additive).protect(threshold=10)
        assert_safe(table)
        tried += 1
        hidden_total += table.secondary_count
    assert hidden_total > 0, "the random tables must exercise secondary suppression"


def test_two_rectangles_and_a_bridge_defeat_the_two_per_line_rule():
    """The classic counterexample: two hidden cells in every line, yet one cell is recomputable."""
    body = [[50] * 4 for _ in range(4)]
    table = CountTable("t", "t", "row", list("abcd"), list("wxyz"), body, "both")
    cells, where = table.cells()
    pos = {w: n for n, w in enumerate(where)}
    pattern = {(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (0, 2)}
    hidden = {pos[p] for p in pattern}
    table.hidden = [[(i, j) in pattern for j in range(5)] for i in range(5)]
    table.published = [[None if table.hidden[i][j] else v for j, v in enumerate(r)] for i, r in enumerate(table.grid())]
    lo, hi = attack(table)[(0, 2)]
    assert lo == hi == 50, "the attacker recomputes the bridging cell"
    assert not is_protected(cells, hidden, pos[(0, 2)])
    assert all(is_protected(cells, hidden, pos[p]) for p in pattern - {(0, 2)})


def test_zeros_hidden_together_are_still_recomputable_without_a_movable_partner():
    # One-way table: two hidden zeros with a published total: both must be 0.
    table = CountTable("t", "t", "row", ["a", "b", "c"], ["people"], [[0], [0], [40]], "columns").protect(10)
    assert_safe(table)
    assert table.hidden[2][0], "the 40 is hidden too, or the two zeros would be known to be zero"


def test_primary_only_for_overlapping_counts():
    table = CountTable("t", "t", "row", ["a", "b"], ["people"], [[3], [40]], "none").protect(10)
    assert table.rows_out() == [["row", "people"], ["a", SUPPRESSED], ["b", "40"]]


def test_grand_total_is_never_a_secondary():
    rng = random.Random(7)
    for _ in range(50):
        table = random_table(rng, "both").protect(threshold=10)
        grand = table.grid()[-1][-1]
        assert table.hidden[-1][-1] == (grand < 10)


def test_rounding_to_nearest_five():
    assert [round_to(v, 5) for v in (10, 12, 13, 17, 18, 100)] == [10, 10, 15, 15, 20, 100]
    assert round_to(12, None) == 12
    table = CountTable("t", "t", "row", ["a", "b"], ["people"], [[12], [33]], "columns").protect(10, rounding=5)
    assert table.published == [[10], [35], [45]]


def test_suppress_engine_directly():
    # 1x1 two-way table: the body cell equals both totals and the grand total.
    cells = [Cell(0, 0, 1, 4), Cell(0, 1, -1, 4, margin=True), Cell(1, 0, -1, 4, margin=True), Cell(1, 1, 1, 4, margin=True, locked=True)]
    result = suppress(cells, 10)
    assert result.hidden == frozenset(range(4)) and not result.unprotected
