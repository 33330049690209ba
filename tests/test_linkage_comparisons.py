"""Each comparison ladder level on hand-made pairs; standardisation of names, dates and postcodes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from tfkit.linkage.comparisons import (
    GridPairs,
    PairContext,
    SimilarityTable,
    build_comparison,
    dob_comparison,
    exact_comparison,
    name_comparison,
    postcode_comparison,
    string_comparison,
)
from tfkit.linkage.standardise import NameVariants, clean_name, phonetic, prepare


def levels_for(comparison, left: list, right: list, extra: dict | None = None) -> list[int]:
    """Levels for pairs (left[i], right[i]); `left`/`right` are lists of row dicts."""
    a = pl.DataFrame(left).with_columns(pl.format("a{}", pl.int_range(pl.len())).alias("record_id"))
    b = pl.DataFrame(right).with_columns(pl.format("b{}", pl.int_range(pl.len())).alias("record_id"))
    kinds = {comparison.column: comparison.kind, **(extra or {})}
    prepared = prepare([a, b], ["a", "b"], kinds, id_column="record_id")
    n = a.height
    ctx = PairContext(prepared, np.arange(n), np.arange(n, 2 * n))
    return comparison.levels(ctx).tolist()


def test_forename_ladder_every_level():
    c = name_comparison("forename", "forename", kind="name", swap_with="surname")
    # Issue 11 added the "initial only, the same" level before "else" (initials-only records), and
    # later "one name swapped" (a given name recorded as the family name, the other name replaced).
    assert c.labels == ("exact", "swapped with surname", "Jaro-Winkler >= 0.92", "Jaro-Winkler >= 0.88",
                        "phonetic or name variant", "initial only, the same", "one name swapped with surname",
                        "else")
    assert c.swap_levels == (1, 6)
    left = [
        {"forename": "Jonathan", "surname": "Smith"},   # exact after cleaning
        {"forename": "Khan", "surname": "Imran"},        # swapped
        {"forename": "Wynne", "surname": "Emiild"},      # swapped, with a typo (each crossed JW >= 0.88)
        {"forename": "Jonathan", "surname": "Smith"},    # JW 0.97
        {"forename": "Stephen", "surname": "Smith"},     # JW 0.88..0.92
        {"forename": "Bill", "surname": "Smith"},        # name variant
        {"forename": "Mohammed", "surname": "Ali"},      # variant/phonetic
        {"forename": "J", "surname": "Smith"},           # initial only
        {"forename": "Lavis", "surname": "Henry"},       # one name swapped, the other replaced
        {"forename": "Zoe", "surname": "Smith"},         # else
        {"forename": "Wynne", "surname": "Zoe"},         # else: one crossed name close (not equal), one far
        {"forename": None, "surname": "Smith"},          # null
    ]
    right = [
        {"forename": "  JONATHAN ", "surname": "Smith"},
        {"forename": "Imran", "surname": "Khan"},
        {"forename": "Emiily", "surname": "Wynne"},
        {"forename": "Jonathon", "surname": "Smith"},
        {"forename": "Steven", "surname": "Smith"},
        {"forename": "William", "surname": "Smith"},
        {"forename": "Muhammad", "surname": "Ali"},
        {"forename": "James", "surname": "Smith"},
        {"forename": "Jordan", "surname": "Lavis"},
        {"forename": "Brian", "surname": "Smith"},
        {"forename": "Brian", "surname": "Wynnd"},
        {"forename": "Jon", "surname": "Smith"},
    ]
    got = levels_for(c, left, right, {"surname": "surname"})
    assert got == [0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 7, -1]



def test_one_name_swapped_needs_the_other_name_to_differ():
    # "Mohamed Mohamed" against "Sagal Mohamed" (a brother and sister): the left forename is the
    # right surname only because the left holds one name twice; the surnames agree, so nothing was
    # moved between fields and the forenames simply differ ("else", which the sibling rule vetoes).
    # Before, "one name swapped" (+2.2 bits) took such pairs past the non-link rules (hard profile:
    # 800 candidate pairs with the level and the other name exact, 1 of them a true match).
    forename = name_comparison("forename", "forename", kind="name", swap_with="surname")
    surname = name_comparison("surname", "surname", kind="surname", swap_with="forename")
    left = [{"forename": "Mohamed", "surname": "Mohamed"}, {"forename": "Hamza", "surname": "Mohamed"},
            {"forename": "Ali", "surname": "Ali"}, {"forename": "Lavis", "surname": "Henry"}]
    right = [{"forename": "Sagal", "surname": "Mohamed"}, {"forename": "Mohamed", "surname": "Mohamed"},
             {"forename": "Ali", "surname": "Butt"}, {"forename": "Jordan", "surname": "Lavis"}]
    kinds = {"forename": "name", "surname": "surname"}
    assert levels_for(forename, left, right, kinds) == [7, 7, 0, 6]
    assert levels_for(surname, left, right, kinds) == [0, 0, 7, 6]

def test_jaro_winkler_band_boundaries():
    from rapidfuzz.distance import JaroWinkler

    # Check the chosen pairs really fall in the bands the ladder claims.
    assert JaroWinkler.normalized_similarity("JONATHAN", "JONATHON") >= 0.92
    assert 0.88 <= JaroWinkler.normalized_similarity("STEPHEN", "STEVEN") < 0.92


def test_surname_ladder_double_barrelled_and_punctuation():
    c = name_comparison("surname", "surname", kind="surname")
    left = [{"surname": "Smith-Jones"}, {"surname": "O'Brien"}, {"surname": "Jones"}, {"surname": "Smith"}]
    right = [{"surname": "SMITH JONES"}, {"surname": "obrien"}, {"surname": "Smith-Jones"}, {"surname": "Patel"}]
    assert levels_for(c, left, right) == [0, 0, 3, 5]  # part match is level 3 without a swap level (5: else)
    assert c.labels[3].startswith("phonetic")


def test_dob_ladder_every_level():
    c = dob_comparison("dob", "dob")
    base = dt.date(1985, 3, 7)
    others = [
        base,                       # exact
        dt.date(1985, 7, 3),        # day and month swapped
        dt.date(1985, 3, 8),        # one day off
        dt.date(1986, 3, 7),        # one digit off (year): apart from a day's slip since the hard profile
        dt.date(1985, 3, 28),       # within a month
        dt.date(1985, 11, 29),      # within a year
        dt.date(1990, 9, 19),       # within 12 years (added by issue 11: a wrong date ...)
        dt.date(2010, 9, 19),       # else (... apart from another generation: a junior)
        None,                       # null
    ]
    left = [{"dob": base} for _ in others]
    right = [{"dob": d} for d in others]
    assert levels_for(c, left, right) == [0, 1, 2, 3, 4, 5, 6, 7, -1]
    assert c.labels[2:4] == ("one day off", "one digit off") and c.side_levels == (1, 3)


def test_dob_text_formats_are_read():
    c = dob_comparison("dob", "dob")
    left = [{"dob": "1985-03-07"}, {"dob": "07/03/1985"}, {"dob": "31113"}]
    right = [{"dob": "07/03/1985"}, {"dob": "19850307"}, {"dob": "1985-03-07"}]  # 31113 = Excel serial
    assert levels_for(c, left, right) == [0, 0, 0]


def test_postcode_ladder_every_level():
    # Issue 11 added the "one edit" level (so the levels below sector moved down one) and text
    # comparison of postcodes that are not UK postcodes (they were null before).
    c = postcode_comparison("postcode", "postcode")
    left = [{"postcode": "e17 5la"}] * 7
    right = [{"postcode": p} for p in ("E175LA", "E17 5QT", "E11 5LA", "E17 9AB", "E10 5PD", "SW1A 1AA", None)]
    assert levels_for(c, left, right) == [0, 1, 2, 3, 4, 5, -1]


def test_postcode_that_is_not_uk_is_compared_as_text():
    c = postcode_comparison("postcode", "postcode")
    left = [{"postcode": p} for p in ("2000", "3212", "4011", "ABCDEFG", "4011", "\u200b\u200d")]
    right = [{"postcode": p} for p in ("2000", "3221", "4811", "ABCDEXY", "7250", "4011")]
    # exact, transposition = one edit, one edit, Jaro-Winkler >= 0.88, else, invisible-only = missing
    assert levels_for(c, left, right) == [0, 2, 2, 4, 5, -1]


def test_dob_with_missing_or_impossible_parts_carries_no_evidence_but_digits_count():
    c = dob_comparison("dob", "dob")
    left = [{"dob": "19450403"}, {"dob": "19900720"}, {"dob": "19900700"}, {"dob": "1990"}]
    right = [{"dob": "19450493"}, {"dob": "19900720"}, {"dob": "19900701"}, {"dob": "19900101"}]
    # 19450493 is no date, but its digits differ from 19450403 in one place; day 00 is a missing part.
    assert levels_for(c, left, right) == [3, 0, -1, -1]  # 3: one digit off


def test_sex_exact_and_unknown_is_null():
    c = exact_comparison("sex", "sex")
    left = [{"sex": "M"}, {"sex": "F"}, {"sex": "U"}, {"sex": None}]
    right = [{"sex": "m"}, {"sex": "M"}, {"sex": "U"}, {"sex": "F"}]
    assert levels_for(c, left, right) == [0, 1, -1, -1]


def test_string_ladder():
    c = string_comparison("suburb", "suburb", jaro_winkler=(0.92, 0.8))
    left = [{"suburb": "Richlands"}, {"suburb": "Richlands"}, {"suburb": "Richlands"}, {"suburb": "Dapto"}]
    right = [{"suburb": "RICHLANDS"}, {"suburb": "Richland"}, {"suburb": "Richmond"}, {"suburb": "Kela"}]
    assert levels_for(c, left, right) == [0, 1, 2, 3]


def test_clean_name_titles_accents_punctuation():
    s = pl.Series(["Mr John", "Zoé", "O'Brien", "Dr. Anne-Marie", "  ", "Mrs  Smith-Jones Jr"])
    out = pl.DataFrame({"n": s}).select(clean_name(pl.col("n")).alias("n"))["n"].to_list()
    assert out == ["JOHN", "ZOE", "OBRIEN", "ANNE MARIE", None, "SMITH JONES"]


def test_name_variants_table_and_phonetic():
    v = NameVariants.load()
    got = v.canonical_of(pl.Series(["BILL", "MOHAMED", "KATE", "UNLISTED"])).to_list()
    assert got == ["WILLIAM", "MUHAMMAD", "CATHERINE", "UNLISTED"]
    codes = phonetic(pl.Series(["SMITH", "SMYTH", None])).to_list()
    assert codes[0] == codes[1] and codes[2] is None


def test_build_comparison_rejects_bad_specs():
    from tfkit.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown comparison type"):
        build_comparison({"type": "nope", "column": "x"})
    with pytest.raises(ConfigError, match="needs a 'column'"):
        build_comparison({"type": "exact"})
    with pytest.raises(ConfigError, match="remove the unknown key|unexpected"):
        build_comparison({"type": "exact", "column": "x", "colour": "red"})


def _word_pairs(pairs: list[tuple[str, str]]) -> PairContext:
    """A context over pairs of words, each coded in one vocabulary column `n`."""
    from tfkit.linkage.standardise import Prepared

    vocab = sorted({w for p in pairs for w in p})
    code = {w: i for i, w in enumerate(vocab)}
    prepared = Prepared(frame=pl.DataFrame({"n": np.arange(len(vocab), dtype=np.int32)}), sources=["a"],
                        vocab={"n": pl.Series("n", vocab)})
    return PairContext(prepared, np.array([code[a] for a, _ in pairs]), np.array([code[b] for _, b in pairs]))


def test_jaro_winkler_pruning_never_drops_a_pair_above_the_floor():
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from rapidfuzz.distance import JaroWinkler

    words = st.text(alphabet="AABCEHNOSTÜ1 ", min_size=1, max_size=10)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.tuples(words, words), min_size=1, max_size=20), st.sampled_from([0.7, 0.8, 0.88, 0.92]))
    def check(pairs, floor):
        sim = _word_pairs(pairs).jaro_winkler("n", floor)
        for (a, b), s in zip(pairs, sim):
            if JaroWinkler.normalized_similarity(a, b) >= floor:
                assert s == pytest.approx(JaroWinkler.normalized_similarity(a, b), abs=1e-6)

    check()


def test_u_sample_grid_gives_the_same_levels_as_pairwise_comparison():
    # The u sample compares every pair between two record samples: codes are tiled and Jaro-Winkler
    # is looked up in a matrix over distinct values (rapidfuzz cdist). Levels must be exactly those
    # the pairwise path (candidate pairs) gives, or u and m would describe different levels.
    names = ["Jonathan", "Jonathon", "Stephen", "Steven", "Bill", None, "Zoe", "O'Brien", "Obrien", "Anne-Marie"]
    a = pl.DataFrame({"record_id": [f"a{i}" for i in range(10)], "forename": names, "surname": names[::-1]})
    b = pl.DataFrame({"record_id": [f"b{i}" for i in range(10)], "forename": names[3:] + names[:3],
                      "surname": names})
    prepared = prepare([a, b], ["a", "b"], {"forename": "name", "surname": "surname"}, id_column="record_id")
    comparison = name_comparison("forename", "forename", kind="name", swap_with="surname")
    left, right = np.array([0, 2, 3, 5, 7, 9]), np.arange(10, 20)
    table = SimilarityTable(prepared, left, right)
    for rows in (slice(0, 6), slice(2, 4)):
        grid = GridPairs(prepared, table, rows, same_source=False)
        pairwise = PairContext(prepared, np.repeat(left[rows], 10), np.tile(right, len(left[rows])))
        np.testing.assert_array_equal(grid.flat(grid.jaro_winkler("forename")), pairwise.jaro_winkler("forename"))
        np.testing.assert_array_equal(grid.flat(comparison.levels(grid)), comparison.levels(pairwise))
    # The crossed levels (names swapped, with or without a typo; one name swapped) come from a
    # forename-by-surname matrix on the grid: they must be reached, and agree, too.
    full = GridPairs(prepared, table, slice(0, 6), same_source=False)
    levels = full.flat(comparison.levels(full))
    assert set(comparison.swap_levels) <= set(levels.tolist())
    np.testing.assert_array_equal(full.flat(full.cross_jaro_winkler("forename", "surname", 0.88) >= 0.88),
                                  PairContext(prepared, *full.pairs())
                                  .cross_jaro_winkler("forename", "surname", 0.88) >= 0.88)
    # Within one source: each unordered pair once, whatever rows a block holds.
    every = np.arange(20)
    table = SimilarityTable(prepared, every, every)
    for blocks in ([slice(0, 20)], [slice(s, s + 3) for s in range(0, 20, 3)]):
        grids = [GridPairs(prepared, table, rows, same_source=True) for rows in blocks]
        rid_l, rid_r = (np.concatenate(side) for side in zip(*(g.pairs() for g in grids)))
        assert sum(map(len, grids)) == len(rid_l) == 190 and (rid_l < rid_r).all()
        pairwise = PairContext(prepared, rid_l, rid_r)
        np.testing.assert_array_equal(np.concatenate([g.flat(g.jaro_winkler("surname")) for g in grids]),
                                      pairwise.jaro_winkler("surname"))
        np.testing.assert_array_equal(np.concatenate([g.flat(comparison.levels(g)) for g in grids]),
                                      comparison.levels(pairwise))


def test_both_jaro_winkler_kernels_agree():
    # Small calls go to rapidfuzz, large ones to polars-ds: a level must not depend on batch size.
    from tfkit.linkage import comparisons

    rng = np.random.default_rng(3)
    words = ["SMITH", "SMYTH", "JONES", "JOHNSON", "MARTHA", "MARHTA", "DIXON", "DICKSONX", "A", "AB", "ZZ",
             "O", "OBRIEN", "OBRIAN", "KOWALSKI", "KOWALSKA", "NGUYEN", "WIN", "DWAYNE", "DUANE"]
    n = comparisons.SMALL_KERNEL_CALL + 10
    left = pl.Series(rng.choice(words, n).tolist())
    right = pl.Series(rng.choice(words, n).tolist())
    big = comparisons.jaro_winkler_kernel(left, right)
    small = comparisons._rapidfuzz_pairwise(left, right)
    np.testing.assert_array_equal(big, small)
    np.testing.assert_array_equal(comparisons.jaro_winkler_kernel(left[:100], right[:100]), small[:100])


def test_both_edit_distance_kernels_agree():
    from tfkit.linkage.comparisons import SMALL_KERNEL_CALL, edit_distance_kernel

    left = ["E17 5LA", "2000", "3212", "ABCDEFG", "A", ""] * (SMALL_KERNEL_CALL // 6 + 1)
    right = ["E11 5LA", "2000", "3221", "ABCDEXY", "XYZ", "Q"] * (SMALL_KERNEL_CALL // 6 + 1)
    big = edit_distance_kernel(pl.Series(left), pl.Series(right))
    small = edit_distance_kernel(pl.Series(left[:6]), pl.Series(right[:6]))
    assert big[:6].tolist() == small.tolist() == [1, 0, 1, 2, 2, 1]


def test_levels_of_pairs_settle_null_and_exact_first_with_the_same_levels():
    # comparison_levels settles the pairs the exact column decides (null, equal) on the whole batch
    # and runs each ladder on the rest: the levels must be those of the ladder on every pair.
    rng = np.random.default_rng(7)
    forenames = ["Jonathan", "Jonathon", "Stephen", "Steven", "Bill", "William", None, "J", "Khan", "Imran"]
    surnames = ["Smith", "Smyth", "Khan", "Imran", "Smith-Jones", "Jones", None, "O'Brien"]
    dobs = ["1990-01-02", "1990-02-01", "1990-01-03", "1991-01-02", "1990-01-00", None, "2010-05-05"]
    postcodes = ["SW1A 1AA", "SW1A 1AB", "SW1A 2AA", "SW2A 1AA", "M1 1AA", "2000", "2001", "0200", None]
    n = 400
    frame = pl.DataFrame({"record_id": [str(i) for i in range(n)],
                          "forename": rng.choice(np.array(forenames, dtype=object), n).tolist(),
                          "surname": rng.choice(np.array(surnames, dtype=object), n).tolist(),
                          "dob": rng.choice(np.array(dobs, dtype=object), n).tolist(),
                          "postcode": rng.choice(np.array(postcodes, dtype=object), n).tolist(),
                          "sex": rng.choice(np.array(["F", "M", None], dtype=object), n).tolist()})
    comparisons = [name_comparison("forename", "forename", kind="name", swap_with="surname"),
                   name_comparison("surname", "surname", kind="surname", swap_with="forename"),
                   dob_comparison("dob", "dob"), postcode_comparison("postcode", "postcode"),
                   exact_comparison("sex", "sex")]
    kinds = {c.column: c.kind for c in comparisons}
    prepared = prepare([frame], ["a"], kinds, id_column="record_id")
    left, right = rng.integers(0, n, 3000), rng.integers(0, n, 3000)
    ctx = PairContext(prepared, left, right)
    for c in comparisons:
        np.testing.assert_array_equal(c.levels_of_pairs(ctx), c.levels(ctx), err_msg=c.name)


def test_edit_distance_bound_never_drops_a_pair_one_edit_apart():
    # Pairs whose character counts prove two edits or more skip the kernel (distance EDIT_CAP):
    # the bound must never drop a pair the kernel finds within one edit.
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from rapidfuzz.distance import OSA

    from tfkit.linkage.comparisons import EDIT_CAP

    words = st.text(alphabet="AB0P12 ", min_size=1, max_size=8)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(words, words), min_size=1, max_size=20))
    def check(pairs):
        dist = _word_pairs(pairs).edit_distance("n")
        for (a, b), d in zip(pairs, dist):
            assert d == min(OSA.distance(a, b), EDIT_CAP)

    check()
