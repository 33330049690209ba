"""Masking for reports and logs: enough to recognise a value you already hold, not to learn one."""

from __future__ import annotations

import polars as pl


def mask(value: object) -> str | None:
    """'AB123456C' -> 'AB*******'; short values are fully masked."""
    if value is None:
        return None
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    return text[:2] + "*" * (len(text) - 2)


def mask_expr(expr: pl.Expr) -> pl.Expr:
    text = expr.cast(pl.String)
    n = text.str.len_chars()
    stars = pl.lit("*").repeat_by(n).list.join("")
    return (
        pl.when(n <= 4)
        .then(stars)
        .otherwise(text.str.slice(0, 2) + pl.lit("*").repeat_by(n - 2).list.join(""))
    )
