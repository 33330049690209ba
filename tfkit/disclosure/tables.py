"""Count tables with their totals, made safe to publish: suppression, then optional rounding.

Three shapes, by what adds up:

* `additive="both"`: a two-way table (age band by sex) with a Total column, a Total row and the
  grand total; every row and every column is an additive relation.
* `additive="columns"`: each column is its own one-way table (families, people) with a Total row;
  rows do not add across (families and people are different units).
* `additive="none"`: counts that overlap (a person can have several headline problems): no totals
  are published, so there is nothing to recompute from and only primary suppression applies.

Grand totals are `locked`: the same totals (all families, all people) appear in several tables,
so a total hidden in one and published in another would be no secret; they are hidden only when
they are themselves small, in which case they are small everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tfkit.disclosure.suppression import Cell, Suppression, suppress

SUPPRESSED = "[c]"  # GSS convention for a confidential (suppressed) cell
TOTAL = "Total"


@dataclass
class CountTable:
    name: str  # file-safe: by_problem
    title: str
    row_header: str
    rows: list[str]
    columns: list[str]
    body: list[list[int]]  # len(rows) x len(columns)
    additive: str = "columns"  # "both" | "columns" | "none"
    notes: list[str] = field(default_factory=list)
    # filled by protect():
    hidden: list[list[bool]] | None = None
    primary: list[list[bool]] | None = None
    published: list[list[int | None]] | None = None
    threshold: int | None = None
    rounding: int | None = None
    unprotected: int = 0

    @property
    def row_labels(self) -> list[str]:
        return self.rows + ([TOTAL] if self.additive in ("both", "columns") else [])

    @property
    def column_labels(self) -> list[str]:
        return self.columns + ([TOTAL] if self.additive == "both" else [])

    def grid(self) -> list[list[int]]:
        """The table with its totals, as published before suppression."""
        rows = [list(r) for r in self.body]
        if self.additive == "both":
            rows = [r + [sum(r)] for r in rows]
        if self.additive in ("both", "columns"):
            width = len(rows[0]) if rows else len(self.column_labels)
            rows.append([sum(r[j] for r in rows) for j in range(width)])
        return rows

    def cells(self) -> tuple[list[Cell], list[tuple[int, int]]]:
        """The relation graph of the table (see tfkit.disclosure.suppression) and each cell's position."""
        grid = self.grid()
        cells, where = [], []
        n_rows, n_cols = len(grid), len(grid[0]) if grid else 0
        for i in range(n_rows):
            for j in range(n_cols):
                total_row = self.additive in ("both", "columns") and i == n_rows - 1
                total_col = self.additive == "both" and j == n_cols - 1
                if self.additive == "both":
                    cell = Cell(i, j, (-1 if total_row else 1) * (-1 if total_col else 1), grid[i][j],
                                margin=total_row or total_col, locked=total_row and total_col)
                elif self.additive == "columns":
                    # one-way table per column: one relation (two vertices on one pair of ends)
                    cell = Cell(("rows", j), ("total", j), -1 if total_row else 1, grid[i][j],
                                margin=total_row, locked=total_row)
                else:
                    cell = Cell(("alone", i, j), ("alone", i, j), 1, grid[i][j])
                cells.append(cell)
                where.append((i, j))
        return cells, where

    def protect(self, threshold: int = 10, rounding: int | None = None) -> "CountTable":
        grid = self.grid()
        cells, where = self.cells()
        if self.additive == "none":
            primary = frozenset(i for i, c in enumerate(cells) if c.value < threshold)
            result = Suppression(primary, frozenset(), frozenset())
        else:
            result = suppress(cells, threshold)
        self.hidden = [[False] * len(r) for r in grid]
        self.primary = [[False] * len(r) for r in grid]
        for n in result.hidden:
            i, j = where[n]
            self.hidden[i][j] = True
            self.primary[i][j] = n in result.primary
        self.published = [
            [None if self.hidden[i][j] else round_to(v, rounding) for j, v in enumerate(r)]
            for i, r in enumerate(grid)
        ]
        self.threshold, self.rounding, self.unprotected = threshold, rounding, len(result.unprotected)
        return self

    @property
    def primary_count(self) -> int:
        return sum(map(sum, self.primary or []))

    @property
    def secondary_count(self) -> int:
        return sum(map(sum, self.hidden or [])) - self.primary_count

    def rows_out(self) -> list[list[str]]:
        """Header and rows as text, suppressed cells shown as [c]."""
        if self.published is None:
            raise RuntimeError("protect() the table before publishing it")
        out = [[self.row_header, *self.column_labels]]
        for label, values in zip(self.row_labels, self.published):
            out.append([label, *[SUPPRESSED if v is None else str(v) for v in values]])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "rows": self.row_labels,
            "columns": self.column_labels,
            "values": self.published,
            "cells": sum(len(r) for r in (self.published or [])),
            "primary_suppressed": self.primary_count,
            "secondary_suppressed": self.secondary_count,
            "unprotected": self.unprotected,
        }


def round_to(value: int, base: int | None) -> int:
    """Nearest multiple of `base`, halves rounded up (12 -> 10, 13 -> 15); no rounding when base is falsy."""
    if not base:
        return value
    return ((2 * value + base) // (2 * base)) * base
