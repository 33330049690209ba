"""Recording errors, as real partner systems make them, applied as column expressions.

Each error kind has a rate: the chance that a record is *offered* the error. Some kinds only bite
where they can (a nickname needs a name that has one, a day/month swap needs a day of 12 or less
that differs from the month, an accent can only be dropped from a name that has one); the log
records only the errors that changed a value. Rates are in `RECORDING_ERROR_RATES` (see also the
module docstring of tfkit.demo).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tfkit.demo import reference

# Per-record rates for partner extracts.
RECORDING_ERROR_RATES: dict[str, float] = {
    "forename_nickname": 0.05,  # of records whose forename has a known nickname or variant
    "surname_change": 0.04,  # of women 18+: married name (60%) or double-barrelled (40%)
    "accent_dropped": 0.60,  # of names with an accent: many systems are ASCII-only
    "accent_added": 0.01,  # Jose -> José, Zoe -> Zoé
    "punctuation_dropped": 0.30,  # of names with ' - or a space: O'Brien -> OBrien, Smith-Jones -> Smith Jones
    "forename_typo": 0.03,  # edit distance 1 (75%) or 2 (25%), QWERTY-neighbour keys
    "surname_typo": 0.03,
    "name_swap": 0.01,  # forename and surname entered the wrong way round
    "forename_missing": 0.005,
    "dob_day_month_swap": 0.02,  # offered; bites where day <= 12 and day != month
    "dob_one_day_off": 0.015,
    "dob_missing": 0.01,
    "sex_missing": 0.01,
    "postcode_moved": 0.06,  # the family moved: their new address in the same LA
    "postcode_missing": 0.03,
    "postcode_lowercase": 0.05,
    "postcode_unspaced": 0.06,
    "nino_missing": 0.04,
    "nino_spaced": 0.15,  # "AB 12 34 56 C"
    "nino_lowercase": 0.03,
    "upn_missing": 0.03,
}

# Keys next to each key on a QWERTY keyboard: where a slipped finger lands.
_QWERTY_NEIGHBOURS = {
    "q": "wa", "w": "qeas", "e": "wrsd", "r": "etdf", "t": "ryfg", "y": "tugh", "u": "yihj",
    "i": "uojk", "o": "ipkl", "p": "ol", "a": "qwsz", "s": "awedxz", "d": "serfcx", "f": "drtgvc",
    "g": "ftyhbv", "h": "gyujnb", "j": "huikmn", "k": "jiolm", "l": "kop", "z": "asx", "x": "zsdc",
    "c": "xdfv", "v": "cfgb", "b": "vghn", "n": "bhjm", "m": "njk",
}
_ASCII_FOLD = {"Ł": "L", "ł": "l", "ı": "i", "ß": "ss", "Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae"}


def drop_accents(expr: pl.Expr) -> pl.Expr:
    return expr.str.normalize("NFKD").str.replace_all(r"\p{M}", "").str.replace_many(_ASCII_FOLD)


def typo(expr: pl.Expr, u_pos: pl.Expr, u_op: pl.Expr, u_key: pl.Expr) -> pl.Expr:
    """One keyboard slip at a position after the first letter: deletion, substitution, insertion or
    transposition. Names shorter than three characters are left alone."""
    n = expr.str.len_chars()
    pos = (u_pos * (n - 2)).floor().cast(pl.Int64) + 1  # 1 .. n-2
    here = expr.str.slice(pos, 1)
    neighbours = here.str.to_lowercase().replace_strict(_QWERTY_NEIGHBOURS, default="e", return_dtype=pl.String)
    key = neighbours.str.slice((u_key * neighbours.str.len_chars()).floor().cast(pl.Int64), 1)
    head = expr.str.slice(0, pos)
    deletion = head + expr.str.slice(pos + 1)
    substitution = head + key + expr.str.slice(pos + 1)
    insertion = head + key + expr.str.slice(pos)
    transposition = head + expr.str.slice(pos + 1, 1) + here + expr.str.slice(pos + 2)
    slipped = (
        pl.when(u_op < 0.25).then(deletion)
        .when(u_op < 0.6).then(substitution)
        .when(u_op < 0.8).then(insertion)
        .otherwise(transposition)
    )
    return pl.when(n >= 3).then(slipped).otherwise(expr)


def spaced_nino(expr: pl.Expr) -> pl.Expr:
    return pl.concat_str(
        [expr.str.slice(0, 2), expr.str.slice(2, 2), expr.str.slice(4, 2), expr.str.slice(6, 2), expr.str.slice(8, 1)],
        separator=" ",
    )


class ErrorInjector:
    """Applies error kinds to a frame of records, logging (row, column, kind) for each changed value."""

    def __init__(self, df: pl.DataFrame, rng: np.random.Generator, rates: dict[str, float] | None = None):
        self.df = df.with_row_index("_row")
        self.rng = rng
        self.rates = RECORDING_ERROR_RATES | (rates or {})
        self.logs: list[pl.DataFrame] = []

    def _mask(self, kind: str) -> pl.Series:
        return pl.Series(self.rng.random(self.df.height) < self.rates[kind])

    def _uniform(self) -> pl.Series:
        return pl.Series(self.rng.random(self.df.height))

    def apply(self, kind: str, changes: dict[str, pl.Expr], where: pl.Expr | None = None) -> None:
        """Set each column in `changes` to its new value on the records drawn for `kind`."""
        if any(c not in self.df.columns for c in changes):
            return
        chosen = self._mask(kind)
        if where is not None:
            chosen = self.df.select((pl.lit(chosen) & where).fill_null(False)).to_series()
        before = self.df.select(changes.keys())
        self.df = self.df.with_columns(
            pl.when(chosen).then(new).otherwise(pl.col(col)).alias(col) for col, new in changes.items()
        )
        changed = pl.any_horizontal(before[c].ne_missing(self.df[c]) for c in changes)
        rows = self.df.select(pl.col("_row").filter(pl.select(changed).to_series())).to_series()
        if rows.len():
            self.logs.append(pl.DataFrame({"_row": rows, "column": "|".join(changes), "kind": kind}))

    def error_log(self) -> pl.DataFrame:
        if not self.logs:
            return pl.DataFrame(schema={"_row": pl.UInt32, "column": pl.String, "kind": pl.String})
        return pl.concat(self.logs)

    def _slip(self, expr: pl.Expr) -> pl.Expr:
        return typo(expr, pl.lit(self._uniform()), pl.lit(self._uniform()), pl.lit(self._uniform()))

    # ----------------------------------------------------------------------- the error kinds

    def names(self, alt_surname: pl.Series) -> None:
        f, s = pl.col("forename"), pl.col("surname")
        variants = {k: "|".join(v) for k, v in reference.nicknames().items()}
        options = f.replace_strict(variants, default=None, return_dtype=pl.String).str.split("|")
        pick = (pl.lit(self._uniform()) * options.list.len()).floor().cast(pl.Int64)
        self.apply("forename_nickname", {"forename": options.list.get(pick, null_on_oob=True)},
                   where=options.is_not_null())
        new = pl.lit(alt_surname)
        self.apply(
            "surname_change",
            {"surname": pl.when(pl.lit(self._uniform()) < 0.6).then(new).otherwise(s + "-" + new)},
            where=(pl.col("sex") == "F") & (pl.col("age") >= 18),
        )
        non_ascii = r"[^\x00-\x7F]"
        self.apply("accent_dropped", {"forename": drop_accents(f), "surname": drop_accents(s)},
                   where=f.str.contains(non_ascii) | s.str.contains(non_ascii))
        first = pl.lit(self._uniform()) < 0.5
        accented = {"forename": pl.when(first).then(f.str.replace("e", "é", literal=True)).otherwise(f),
                    "surname": pl.when(first).then(s).otherwise(s.str.replace("e", "é", literal=True))}
        self.apply("accent_added", accented)
        punct = r"['\- ]"
        self.apply("punctuation_dropped",
                   {"surname": pl.when(s.str.contains("-")).then(s.str.replace_all("-", " "))
                    .otherwise(s.str.replace_all(punct, ""))},
                   where=s.str.contains(punct))
        for col, kind in (("forename", "forename_typo"), ("surname", "surname_typo")):
            # Materialise the first slip so the second one builds on a column, not a deep expression.
            self.df = self.df.with_columns(self._slip(pl.col(col)).alias("_once"))
            self.df = self.df.with_columns(self._slip(pl.col("_once")).alias("_twice"))
            self.apply(kind, {col: pl.when(pl.lit(self._uniform()) < 0.75).then(pl.col("_once"))
                              .otherwise(pl.col("_twice"))})
            self.df = self.df.drop("_once", "_twice")
        self.apply("name_swap", {"forename": s, "surname": f})
        self.apply("forename_missing", {"forename": pl.lit(None, dtype=pl.String)})

    def dob(self) -> None:
        d = pl.col("dob")
        day, month = d.dt.day(), d.dt.month()
        self.apply("dob_day_month_swap", {"dob": pl.date(d.dt.year(), day, month)},
                   where=(day <= 12) & (day != month))
        step = pl.when(pl.lit(self._uniform()) < 0.5).then(pl.duration(days=1)).otherwise(pl.duration(days=-1))
        self.apply("dob_one_day_off", {"dob": d + step})
        self.apply("dob_missing", {"dob": pl.lit(None, dtype=pl.Date)})

    def sex(self) -> None:
        self.apply("sex_missing", {"sex": pl.lit(None, dtype=pl.String)})

    def postcode(self) -> None:
        p = pl.col("postcode")
        self.apply("postcode_moved", {"postcode": pl.col("moved_postcode")})
        self.apply("postcode_missing", {"postcode": pl.lit(None, dtype=pl.String)})
        self.apply("postcode_lowercase", {"postcode": p.str.to_lowercase()})
        self.apply("postcode_unspaced", {"postcode": p.str.replace_all(" ", "")})

    def nino(self) -> None:
        n = pl.col("nino")
        self.apply("nino_missing", {"nino": pl.lit(None, dtype=pl.String)})
        self.apply("nino_spaced", {"nino": spaced_nino(n)})
        self.apply("nino_lowercase", {"nino": n.str.to_lowercase()})

    def upn(self) -> None:
        self.apply("upn_missing", {"upn": pl.lit(None, dtype=pl.String)})
