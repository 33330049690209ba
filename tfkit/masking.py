"""Masking for reports and logs: enough to recognise a value you already hold, not to learn one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # polars is imported where an expression is built: errors import this module early
    import polars as pl

# Six digits in a row (NHS number, NI number, UPN, a person id, a date) or a postcode, separators ignored.
_VALUE_SHAPES = re.compile(r"[0-9]{6}|^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$", re.IGNORECASE)


def mask(value: object) -> str | None:
    """'AB123456C' -> 'AB*******'; short values are fully masked."""
    if value is None:
        return None
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    return text[:2] + "*" * (len(text) - 2)


def mask_expr(expr: "pl.Expr") -> "pl.Expr":
    import polars as pl

    text = expr.cast(pl.String)
    n = text.str.len_chars()
    stars = pl.lit("*").repeat_by(n).list.join("")
    return (
        pl.when(n <= 4)
        .then(stars)
        .otherwise(text.str.slice(0, 2) + pl.lit("*").repeat_by(n - 2).list.join(""))
    )


def identifier_shaped(value: object) -> bool:
    """True for text shaped like an identifier or a date of birth (spaces, /, . and - ignored)."""
    return bool(_VALUE_SHAPES.search(re.sub(r"[\s/.-]", "", str(value))))


# A whole cell that is a value, not a name: a number of 6+ digits (an id, an NHS number, a date
# without its separators), an NI number, a UPN or a postcode.
_WHOLE_VALUE = re.compile(r"[0-9]{6,}|[A-Z]{2}[0-9]{6}[A-D]|[A-Z][0-9]{11}[0-9A-Z]|[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}",
                          re.IGNORECASE)


def header_looks_like_data(headers: "tuple[str, ...] | list[str]") -> bool:
    """A header row with two or more cells that are whole identifier values is a record: the file
    has no header row (its first record would otherwise be printed as column names)."""
    return sum(bool(_WHOLE_VALUE.fullmatch(re.sub(r"[\s/.-]", "", str(h)))) for h in headers) >= 2


def safe_headers(headers: "tuple[str, ...] | list[str]", *, all_headers=None) -> tuple[str, ...]:
    """Headers fit to print: when the header row (`all_headers`, default `headers`) looks like data,
    every one of them masked (names sit beside the identifiers); else identifier-shaped ones masked."""
    if header_looks_like_data(all_headers if all_headers is not None else headers):
        return tuple(mask(h) for h in headers)
    return tuple(mask(h) if identifier_shaped(h) else h for h in headers)


# --------------------------------------------------------------------------- key-shaped arguments

# What a key (or a key file's content) looks like when it is put where a path belongs: 32 or more
# hex characters (a master key, a raw Ed25519 key), a PEM block, or one long base64 token.
_HEX_RUN = re.compile(r"[0-9a-fA-F]{32,}")
_BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{40,}={0,2}")


def key_shaped(text: str) -> bool:
    """True when `text` could be a key or a key file's content rather than a path or a name."""
    return bool(_HEX_RUN.search(text) or "-----BEGIN" in text or "PRIVATE KEY" in text
                or (_BASE64_TOKEN.fullmatch(text.strip()) and re.search(r"[0-9]", text) and re.search(r"[A-Za-z]", text)))


def shape_of(text: str) -> str:
    """How a key-shaped value is reported: its length and shape, never its characters."""
    if "-----BEGIN" in text or "PRIVATE KEY" in text:
        shape = "a PEM key block"
    elif _HEX_RUN.fullmatch(text.strip()):
        shape = "hex characters"
    elif _HEX_RUN.search(text):
        shape = "text holding a long run of hex characters"
    else:
        shape = "base64-like characters"
    return f"<{len(text)} characters of {shape}, shaped like a key: not shown>"


def shown_path(path: "str | Path | None") -> "str | Path | None":
    """`path` as it may be printed: a value that does not exist as a file and looks like a key (a
    key pasted where its file's path belongs: --key, TFKIT_KEY_FILE, keys fingerprint) is replaced
    by its length and shape."""
    if path is None:
        return None
    text = str(path)
    if not key_shaped(text):
        return path
    try:
        if len(text) < 4096 and Path(text).exists():
            return path
    except (OSError, ValueError):
        pass
    return shape_of(text)


_KEY_TOKENS = re.compile(r"-----BEGIN[^\n]*?-----.*?(?:-----END[^\n]*?-----|$)|[0-9a-fA-F]{32,}|[A-Za-z0-9+/_-]{40,}={0,2}",
                         re.DOTALL)


def hide_keys(text: str) -> str:
    """`text` with every key-shaped token (a hex run, a PEM block, a long base64 token) replaced by
    its length and shape: for messages that quote what the user typed (click's usage errors)."""
    return _KEY_TOKENS.sub(lambda m: shape_of(m.group(0)) if key_shaped(m.group(0)) else m.group(0), text)
