"""Identifier rules as vectorised polars expressions, with scalar twins for tests and reports.

Each identifier has four expression builders:
  normalise_X(expr) -> the cleaned text (upper-case, white space removed, ...), null stays null
  X_code(expr)      -> why the *normalised* text fails, as a small integer (UInt8): 0 when valid,
                       else the 1-based place of the reason in FAILURES[X]; null in, null out
  X_is_valid(expr)  -> Boolean: X_code == 0 (null in, null out)
  clean_X(expr)     -> the normalised value where valid, else null (what pseudonym-v1 hashes)

The codes are the one implementation of each rule: validation, pseudonymisation and the package
scan all use them, and the tests hold them to the scalar twins and to python-stdnum. Check digits
are computed on the text's bytes (one dot product of the byte array with the weights), not a
slice and a cast per character.

A code of 1 ("format") on text that has not been normalised may be wrong (a lower-case or spaced
value), but any other code is exact: the format rules admit only upper-case letters and digits,
which normalising leaves as they are. tfkit.schemas.validate uses that to normalise only the rows
whose raw text fails the format.

The rules are those of ../shared/reference/domain.md; pseudonym-v1's normalisation is built on them.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import polars as pl

# Why a normalised identifier fails: code i (1-based) is FAILURES[kind][i - 1]; 0 is valid.
FAILURES = {
    "nino": ("format",),
    "upn": ("format", "la_number", "check_letter"),
    "nhs_number": ("format", "check_digit"),
    "postcode": ("format",),
}
FORMAT = 1  # the code every kind gives text that breaks its format


def _code(normalised: pl.Expr, code: pl.Expr) -> pl.Expr:
    return pl.when(normalised.is_null()).then(None).otherwise(code).cast(pl.UInt8)


def _bytes(text: pl.Expr, width: int) -> pl.Expr:
    """The text's UTF-8 bytes as a fixed-width array (null unless exactly `width` bytes long), in
    16 bits: a dot product multiplies in the arrays' type, and byte x weight overflows 8 bits."""
    return text.cast(pl.Binary).bin.reinterpret(dtype=pl.Array(pl.UInt8, width)).cast(pl.Array(pl.UInt16, width))


# --------------------------------------------------------------------------- numbers as Excel writes them

# A whole number a spreadsheet turned into a float: `11695896.0`, or `9.998857619E+09`.
_EXCEL_FLOAT = r"^([0-9]+)\.0+$"
_SCIENTIFIC = r"^([0-9])(?:\.([0-9]+))?[eE]\+?([0-9]{1,2})$"


def undo_excel_number(expr: pl.Expr) -> pl.Expr:
    """The digits of a whole number that a spreadsheet wrote as a float (`11695896.0` -> `11695896`)
    or in scientific notation (`9.998857619E+09` -> `9998857619`). Scientific notation is undone only
    when it is exact: every digit is shown (`9.99885762E+09` may have been rounded, and is left as it
    is, so it matches nothing rather than the wrong person). Other text is returned unchanged."""
    text = expr.cast(pl.String)
    sci = text.str.extract_groups(_SCIENTIFIC)
    lead, fraction = sci.struct.field("1"), sci.struct.field("2").fill_null("")
    exponent = sci.struct.field("3").cast(pl.Int64)
    exact = (fraction.str.len_chars() >= exponent) & fraction.str.slice(exponent).str.contains(r"^0*$")
    return (
        pl.when(text.str.contains(_EXCEL_FLOAT)).then(text.str.extract(_EXCEL_FLOAT, 1))
        .when(lead.is_not_null() & exact).then(lead + fraction.str.slice(0, exponent))
        .otherwise(text)
    )


def undo_excel_number_scalar(value: str | None) -> str | None:
    if value is None:
        return None
    if m := re.fullmatch(_EXCEL_FLOAT, value):
        return m.group(1)
    if m := re.fullmatch(_SCIENTIFIC, value):
        lead, fraction, exponent = m.group(1), m.group(2) or "", int(m.group(3))
        if len(fraction) >= exponent and set(fraction[exponent:]) <= {"0"}:
            return lead + fraction[:exponent]
    return value


# --------------------------------------------------------------------------- NI number

NINO_PATTERN = r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]$"
NINO_NEVER_ISSUED_PREFIXES = ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")
_NINO_RE = re.compile(NINO_PATTERN)


def _issued_nino_pattern() -> str:
    """NINO_PATTERN without the never-issued prefixes, as one regular expression (Rust's regex has
    no look-ahead): for each first letter, the second letters it may take."""
    first = [c for c in map(chr, range(65, 91)) if re.fullmatch("[A-CEGHJ-PR-TW-Z]", c)]
    second = [c for c in map(chr, range(65, 91)) if re.fullmatch("[A-CEGHJ-NPR-TW-Z]", c)]
    prefixes = "|".join(
        f"{a}[{''.join(b for b in second if a + b not in NINO_NEVER_ISSUED_PREFIXES)}]" for a in first
    )
    return rf"^(?:{prefixes})[0-9]{{6}}[A-D]$"


NINO_ISSUED_PATTERN = _issued_nino_pattern()


def normalise_nino(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_uppercase().str.replace_all(r"\s+", "")


def nino_code(normalised: pl.Expr) -> pl.Expr:
    """0 valid, 1 format (including a never-issued prefix); null stays null."""
    return _code(normalised, pl.when(normalised.str.contains(NINO_ISSUED_PATTERN)).then(0).otherwise(1))


def nino_is_valid(normalised: pl.Expr) -> pl.Expr:
    return nino_code(normalised) == 0


def clean_nino(expr: pl.Expr) -> pl.Expr:
    n = normalise_nino(expr)
    return pl.when(nino_is_valid(n)).then(n).otherwise(None)


def nino_scalar(value: str | None) -> str | None:
    """The normalised NI number, or None when invalid."""
    if value is None:
        return None
    n = re.sub(r"\s+", "", value.upper())
    if _NINO_RE.match(n) and n[:2] not in NINO_NEVER_ISSUED_PREFIXES:
        return n
    return None


# --------------------------------------------------------------------------- NHS number

NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def normalise_nhs_number(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(r"[\s\-]", "")


def nhs_check_digit(nine_digits: str) -> int | None:
    """Check digit for the first nine digits; None where the number can't be issued (remainder 10)."""
    total = sum(int(d) * w for d, w in zip(nine_digits, NHS_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


# The weights, then 1 for the check digit itself: a number is valid exactly when the sum of weight x
# digit over all ten is a multiple of 11 (check = (11 - s % 11) % 11 with s the first nine's sum;
# remainder 1 would need a check digit of 10, and no digit makes the total a multiple then). Over
# the ASCII bytes (digit + 48) the sum grows by 48 x 55 = 2640 = 11 x 240, so the bytes' dot
# product is a multiple of 11 exactly when the number is valid.
_NHS_BYTE_WEIGHTS = (*NHS_WEIGHTS, 1)


@functools.cache
def _weights(values: tuple[int, ...]) -> pl.Series:
    """Byte weights as a one-row Array Series, built on first use: the Array dtype pages in ~4 MiB
    of polars code, which a job that checks no NHS number or UPN (`tfkit link`) never needs."""
    return pl.Series([list(values)], dtype=pl.Array(pl.UInt16, len(values)))


def nhs_number_code(normalised: pl.Expr) -> pl.Expr:
    """0 valid, 1 format (not 10 digits), 2 check digit; null stays null."""
    weighted = _bytes(normalised, 10).arr.dot(pl.lit(_weights(_NHS_BYTE_WEIGHTS)).first())
    return _code(normalised, pl.when(~normalised.str.contains(r"^[0-9]{10}$")).then(1)
                 .when(weighted % 11 != 0).then(2).otherwise(0))


def nhs_number_is_valid(normalised: pl.Expr) -> pl.Expr:
    return nhs_number_code(normalised) == 0


def clean_nhs_number(expr: pl.Expr) -> pl.Expr:
    n = normalise_nhs_number(expr)
    return pl.when(nhs_number_is_valid(n)).then(n).otherwise(None)


def nhs_number_scalar(value: str | None) -> str | None:
    if value is None:
        return None
    n = re.sub(r"[\s\-]", "", value)
    if re.fullmatch(r"[0-9]{10}", n) and nhs_check_digit(n[:9]) == int(n[9]):
        return n
    return None


# --------------------------------------------------------------------------- UPN

UPN_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ"
# DfE local-authority numbers that can start a UPN (as in python-stdnum's stdnum.gb.upn).
UPN_LA_NUMBERS = frozenset((
    201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 301,
    302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315,
    316, 317, 318, 319, 320, 330, 331, 332, 333, 334, 335, 336, 340, 341,
    342, 343, 344, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370,
    371, 372, 373, 380, 381, 382, 383, 384, 390, 391, 392, 393, 394, 420,
    800, 801, 802, 803, 805, 806, 807, 808, 810, 811, 812, 813, 815, 816,
    821, 822, 823, 825, 826, 830, 831, 835, 836, 837, 840, 841, 845, 846,
    850, 851, 852, 855, 856, 857, 860, 861, 865, 866, 867, 868, 869, 870,
    871, 872, 873, 874, 876, 877, 878, 879, 880, 881, 882, 883, 884, 885,
    886, 887, 888, 889, 890, 891, 892, 893, 894, 895, 896, 908, 909, 916,
    919, 921, 925, 926, 928, 929, 931, 933, 935, 936, 937, 938))
_UPN_CHAR_VALUE = {c: i for i, c in enumerate(UPN_ALPHABET)} | {str(d): d for d in range(10)}


def normalise_upn(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_uppercase().str.replace_all(r"\s+", "")


def upn_check_letter(body: str) -> str:
    """Check letter for characters 2-13 of a UPN."""
    total = sum(pos * _UPN_CHAR_VALUE[c] for pos, c in enumerate(body, start=2))
    return UPN_ALPHABET[total % 23]


UPN_PATTERN = r"^[A-HJ-NP-RT-Z][0-9]{11}[0-9A-HJ-NP-RT-Z]$"  # a temporary UPN ends in a letter
# Characters 2-12 (digits) by their position, as bytes: the dot product is the check sum of the
# digits plus 48 x (2 + ... + 12) = 3696; characters 2-4 as a number plus 48 x 111 = 5328.
_UPN_DIGIT_WEIGHTS = (0, *range(2, 13), 0)
_UPN_LA_WEIGHTS = (0, 100, 10, 1, *[0] * 9)


def _upn_char_value(code: pl.Expr) -> pl.Expr:
    """The value of a UPN character from its byte (_UPN_CHAR_VALUE: digits 0-9, letters by their
    place in UPN_ALPHABET, which skips I, O and S). Meaningful for UPN_PATTERN's characters only."""
    code = code.cast(pl.Int32)
    letter = code - 65 - (code > 73).cast(pl.Int32) - (code > 79).cast(pl.Int32) - (code > 83).cast(pl.Int32)
    return pl.when(code < 65).then(code - 48).otherwise(letter)


def upn_code(normalised: pl.Expr) -> pl.Expr:
    """0 valid, 1 format, 2 la_number, 3 check_letter; null stays null."""
    b = _bytes(normalised, 13)
    la = b.arr.dot(pl.lit(_weights(_UPN_LA_WEIGHTS)).first()) - 5328
    total = b.arr.dot(pl.lit(_weights(_UPN_DIGIT_WEIGHTS)).first()) - 3696 + 13 * _upn_char_value(b.arr.get(12))
    return _code(normalised, pl.when(~normalised.str.contains(UPN_PATTERN)).then(1)
                 .when(~la.is_in(sorted(UPN_LA_NUMBERS))).then(2)
                 .when(total % 23 != _upn_char_value(b.arr.get(0))).then(3).otherwise(0))


def upn_is_valid(normalised: pl.Expr) -> pl.Expr:
    """Format, LA number and check letter."""
    return upn_code(normalised) == 0


def upn_failure(normalised: pl.Expr) -> pl.Expr:
    """Why a UPN fails (format, la_number, check_letter), null when it is valid or null."""
    return upn_code(normalised).replace_strict(
        {i: name for i, name in enumerate(FAILURES["upn"], start=1)}, default=None, return_dtype=pl.String)


def clean_upn(expr: pl.Expr) -> pl.Expr:
    n = normalise_upn(expr)
    return pl.when(upn_is_valid(n)).then(n).otherwise(None)


def upn_scalar(value: str | None) -> str | None:
    if value is None:
        return None
    n = re.sub(r"\s+", "", value.upper())
    if not re.fullmatch(UPN_PATTERN, n):
        return None
    if int(n[1:4]) not in UPN_LA_NUMBERS or upn_check_letter(n[1:]) != n[0]:
        return None
    return n


# --------------------------------------------------------------------------- postcode

# Outward A9, A99, A9A, AA9, AA99, AA9A; inward 9AA. Q, V, X never first; I, J, Z never second;
# the inward letters never C, I, K, M, O, V.
POSTCODE_PATTERN = r"^([A-PR-UWYZ][0-9][0-9A-Z]?|[A-PR-UWYZ][A-HK-Y][0-9][0-9A-Z]?) [0-9][ABD-HJLNP-UW-Z]{2}$"
POSTCODE_SPECIAL_PATTERN = r"^(GIR 0AA|BFPO [0-9]{1,4}|ZZ99 [0-9][A-Z]{2})$"
_POSTCODE_RE = re.compile(POSTCODE_PATTERN)
_POSTCODE_SPECIAL_RE = re.compile(POSTCODE_SPECIAL_PATTERN)


def normalise_postcode(expr: pl.Expr) -> pl.Expr:
    """Upper-case, no white space, then one space before the last three characters (BFPO kept as 'BFPO n')."""
    s = expr.str.to_uppercase().str.replace_all(r"\s+", "")
    n = s.str.len_chars()
    return (
        pl.when(s.str.contains(r"^BFPO[0-9]{1,4}$")).then(pl.lit("BFPO ") + s.str.slice(4))
        .when(n >= 5).then(s.str.slice(0, n - 3) + pl.lit(" ") + s.str.slice(-3))
        .otherwise(s)
    )


def postcode_code(normalised: pl.Expr) -> pl.Expr:
    """0 valid, 1 format; null stays null."""
    valid = normalised.str.contains(POSTCODE_PATTERN) | normalised.str.contains(POSTCODE_SPECIAL_PATTERN)
    return _code(normalised, pl.when(valid).then(0).otherwise(1))


def postcode_is_valid(normalised: pl.Expr) -> pl.Expr:
    return postcode_code(normalised) == 0


def clean_postcode(expr: pl.Expr) -> pl.Expr:
    n = normalise_postcode(expr)
    return pl.when(postcode_is_valid(n)).then(n).otherwise(None)


def postcode_scalar(value: str | None) -> str | None:
    if value is None:
        return None
    s = re.sub(r"\s+", "", value.upper())
    if re.fullmatch(r"BFPO[0-9]{1,4}", s):
        n = "BFPO " + s[4:]
    elif len(s) >= 5:
        n = s[:-3] + " " + s[-3:]
    else:
        n = s
    if _POSTCODE_RE.match(n) or _POSTCODE_SPECIAL_RE.match(n):
        return n
    return None


def postcode_district(normalised: pl.Expr) -> pl.Expr:
    """Outward part ('SW1A'); BFPO and ZZ99 pseudo-postcodes give 'BFPO' and 'ZZ99'."""
    return normalised.str.split(" ").list.first()


def postcode_sector(normalised: pl.Expr) -> pl.Expr:
    """Outward part, space, first inward digit ('SW1A 1'); BFPO gives 'BFPO'."""
    return (
        pl.when(normalised.str.starts_with("BFPO")).then(pl.lit("BFPO"))
        .otherwise(normalised.str.slice(0, normalised.str.len_chars() - 2))
    )


def postcode_area(normalised: pl.Expr) -> pl.Expr:
    """Leading letters ('SW')."""
    return normalised.str.extract(r"^([A-Z]+)", 1)


# --------------------------------------------------------------------------- names (pseudonym-v1)


def normalise_name_part(expr: pl.Expr) -> pl.Expr:
    """NFKD, combining marks dropped, upper-case, only A-Z kept; empty becomes null."""
    n = (
        expr.str.normalize("NFKD")
        .str.replace_all(r"\p{M}", "")
        .str.to_uppercase()
        .str.replace_all(r"[^A-Z]", "")
    )
    return pl.when(n == "").then(None).otherwise(n)


def name_part_scalar(value: str | None) -> str | None:
    if value is None:
        return None
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c)).upper()
    n = re.sub(r"[^A-Z]", "", stripped)
    return n or None


# --------------------------------------------------------------------------- registry

IDENTIFIER_KINDS = ("nino", "upn", "nhs_number", "postcode")

NORMALISERS = {
    "nino": normalise_nino,
    "upn": normalise_upn,
    "nhs_number": normalise_nhs_number,
    "postcode": normalise_postcode,
}
CODES = {
    "nino": nino_code,
    "upn": upn_code,
    "nhs_number": nhs_number_code,
    "postcode": postcode_code,
}
VALIDATORS = {
    "nino": nino_is_valid,
    "upn": upn_is_valid,
    "nhs_number": nhs_number_is_valid,
    "postcode": postcode_is_valid,
}
CLEANERS = {
    "nino": clean_nino,
    "upn": clean_upn,
    "nhs_number": clean_nhs_number,
    "postcode": clean_postcode,
}
SCALAR_CLEANERS = {
    "nino": nino_scalar,
    "upn": upn_scalar,
    "nhs_number": nhs_number_scalar,
    "postcode": postcode_scalar,
}
