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
    "title_in_forename": 0.01,  # of adults 18+: "Mrs Sarah", "Mr John"
    "whitespace_padding": 0.01,  # "Smith " or "  Smith": exports keep stray spaces
    "forename_missing": 0.005,
    "dob_day_month_swap": 0.02,  # offered; bites where day <= 12 and day != month
    "dob_one_day_off": 0.015,
    "dob_missing": 0.01,
    "dob_first_of_january": 0.005,  # unknown day and month keyed as 01/01
    "sex_missing": 0.01,
    "sex_wrong": 0.003,  # M and F the wrong way round
    "postcode_moved": 0.06,  # the family moved: their new address in the same LA
    "postcode_missing": 0.03,
    "postcode_lowercase": 0.05,
    "postcode_unspaced": 0.06,
    "nino_missing": 0.04,
    "nino_spaced": 0.15,  # "AB 12 34 56 C"
    "nino_lowercase": 0.03,
    "upn_missing": 0.03,
}
# Kinds only the harder generator profiles use (tfkit.demo.PROFILES); never drawn at rate 0.
PROFILE_ERROR_RATES: dict[str, float] = {
    "forename_initial_only": 0.0,  # "J" for "James"
    "dob_wrong": 0.0,  # another date within five years
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
    """Applies error kinds to a frame of records, logging (row, column, kind) for each changed cell.

    Each kind draws its records first, then computes new values for those records only and
    scatters them back: cost follows the number of errors, not the number of records. Expressions
    may use the uniform random columns `_u0` .. `_u7`, drawn afresh for each kind.
    """

    N_UNIFORMS = 8

    def __init__(self, df: pl.DataFrame, rng: np.random.Generator, rates: dict[str, float] | None = None):
        self.df = df.with_row_index("_row")
        self.rng = rng
        self.rates = RECORDING_ERROR_RATES | PROFILE_ERROR_RATES | (rates or {})
        self.logs: list[pl.DataFrame] = []

    def apply_if_rated(self, kind: str, changes: dict[str, pl.Expr], where: pl.Expr | None = None) -> None:
        """As `apply`, for kinds only some profiles use: no random draw at rate 0, so the standard
        profile's output stays byte-identical."""
        if self.rates.get(kind, 0.0) > 0:
            self.apply(kind, changes, where)

    def apply(
        self,
        kind: str,
        changes: dict[str, pl.Expr],
        where: pl.Expr | None = None,
        stages: tuple[tuple[str, pl.Expr], ...] = (),
    ) -> None:
        """Set each column in `changes` to its new value on the records drawn for `kind`.

        `where` restricts the kind to records where it can happen; `stages` are helper columns
        computed in order before `changes` (so a second typo can build on the first).
        """
        if any(c not in self.df.columns for c in changes):
            return
        rows = np.flatnonzero(self.rng.random(self.df.height) < self.rates[kind])
        uniforms = self.rng.random((len(rows), self.N_UNIFORMS))
        sub = self.df[rows].with_columns(
            pl.Series(f"_u{i}", uniforms[:, i]) for i in range(self.N_UNIFORMS)
        )
        if where is not None:
            sub = sub.filter(where.fill_null(False))
        for name, expr in stages:
            sub = sub.with_columns(expr.alias(name))
        new = sub.select("_row", *(expr.alias(col) for col, expr in changes.items()))
        changed = new.filter(pl.any_horizontal(sub[c].ne_missing(new[c]) for c in changes))
        if changed.height == 0:
            return
        idx = changed["_row"].cast(pl.Int64)  # rows are numbered 0..n-1 in order
        self.df = self.df.with_columns(self.df[col].scatter(idx, changed[col]) for col in changes)
        was = sub.filter(pl.col("_row").is_in(changed["_row"].implode()))
        for col in changes:  # one log line per changed cell
            rows = changed["_row"].filter(was[col].ne_missing(changed[col]))
            if rows.len():
                self.logs.append(pl.DataFrame({"_row": rows.cast(pl.UInt32), "column": col, "kind": kind}))

    def error_log(self) -> pl.DataFrame:
        if not self.logs:
            return pl.DataFrame(schema={"_row": pl.UInt32, "column": pl.String, "kind": pl.String})
        return pl.concat(self.logs)

    # ----------------------------------------------------------------------- the error kinds

    def names(self, alt_surname: pl.Series) -> None:
        f, s, u = pl.col("forename"), pl.col("surname"), pl.col
        variants = {k: "|".join(v) for k, v in reference.nicknames().items()}
        options = f.replace_strict(variants, default=None, return_dtype=pl.String).str.split("|")
        choice = (u("_u0") * options.list.len()).floor().cast(pl.Int64)
        self.apply("forename_nickname", {"forename": options.list.get(choice, null_on_oob=True)},
                   where=options.is_not_null())
        self.df = self.df.with_columns(alt_surname.alias("_alt_surname"))
        new = pl.col("_alt_surname")
        self.apply(
            "surname_change",
            {"surname": pl.when(u("_u0") < 0.6).then(new).otherwise(s + "-" + new)},
            where=(pl.col("sex") == "F") & (pl.col("age") >= 18),
        )
        self.df = self.df.drop("_alt_surname")
        non_ascii = r"[^\x00-\x7F]"
        self.apply("accent_dropped", {"forename": drop_accents(f), "surname": drop_accents(s)},
                   where=f.str.contains(non_ascii) | s.str.contains(non_ascii))
        first = u("_u0") < 0.5
        accented = {"forename": pl.when(first).then(f.str.replace("e", "é", literal=True)).otherwise(f),
                    "surname": pl.when(first).then(s).otherwise(s.str.replace("e", "é", literal=True))}
        self.apply("accent_added", accented)
        punct = r"['\- ]"
        self.apply("punctuation_dropped",
                   {"surname": pl.when(s.str.contains("-")).then(s.str.replace_all("-", " "))
                    .otherwise(s.str.replace_all(punct, ""))},
                   where=s.str.contains(punct))
        for col, kind in (("forename", "forename_typo"), ("surname", "surname_typo")):
            # The first slip is materialised so the second builds on a column, not a deep expression.
            stages = (("_once", typo(pl.col(col), u("_u1"), u("_u2"), u("_u3"))),
                      ("_twice", typo(pl.col("_once"), u("_u4"), u("_u5"), u("_u6"))))
            self.apply(kind, {col: pl.when(u("_u0") < 0.75).then(pl.col("_once")).otherwise(pl.col("_twice"))},
                       stages=stages)
        self.apply("name_swap", {"forename": s, "surname": f})
        title = (
            pl.when(pl.col("sex") == "M").then(pl.lit("Mr"))
            .when(u("_u0") < 0.5).then(pl.lit("Mrs")).when(u("_u0") < 0.8).then(pl.lit("Ms")).otherwise(pl.lit("Miss"))
        )
        self.apply("title_in_forename", {"forename": title + " " + f},
                   where=(pl.col("age") >= 18) & pl.col("sex").is_in(["M", "F"]) & f.is_not_null())
        self.apply("whitespace_padding", {"surname": pl.when(u("_u0") < 0.5).then(s + " ").otherwise("  " + s)})
        self.apply("forename_missing", {"forename": pl.lit(None, dtype=pl.String)})
        self.apply_if_rated("forename_initial_only", {"forename": f.str.strip_chars().str.slice(0, 1)},
                            where=f.is_not_null())

    def dob(self) -> None:
        d = pl.col("dob")
        day, month = d.dt.day(), d.dt.month()
        self.apply("dob_day_month_swap", {"dob": pl.date(d.dt.year(), day, month)},
                   where=(day <= 12) & (day != month))
        step = pl.when(pl.col("_u0") < 0.5).then(pl.duration(days=1)).otherwise(pl.duration(days=-1))
        self.apply("dob_one_day_off", {"dob": d + step})
        self.apply("dob_missing", {"dob": pl.lit(None, dtype=pl.Date)})
        self.apply("dob_first_of_january", {"dob": pl.date(d.dt.year(), 1, 1)})
        # Another date altogether (a sibling's, a keying slip in the year): up to five years away.
        shift = ((pl.col("_u0") * 3650).cast(pl.Int64) - 1825).clip(-1825, 1825)
        self.apply_if_rated("dob_wrong", {"dob": d + pl.duration(days=pl.when(shift == 0).then(1).otherwise(shift))})

    def sex(self) -> None:
        self.apply("sex_wrong", {"sex": pl.col("sex").replace({"M": "F", "F": "M"})})
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
