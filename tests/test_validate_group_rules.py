"""Rules over groups of rows (uniqueness, person in several families, headline problems per family)
run as hash candidates plus an exact check on the candidates: they must flag exactly the rows the
plain window definitions flag, nulls and repeated keys included. The frames hold typed values under
the engine's column names (`_v(field)`)."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tfkit.validation.engine import _repeated, _several_families, _too_few_problems, _v

VALUES = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "ab", "ba", ""]))


def frames(columns: int):
    row = st.tuples(*[VALUES] * columns)
    return st.lists(row, min_size=0, max_size=40).map(
        lambda rows: pl.DataFrame(rows, schema={_v(f"k{i}"): pl.String for i in range(columns)}, orient="row")
    )


@settings(max_examples=200, deadline=None)
@given(frames(3))
def test_repeated_matches_the_window_definition(frame):
    keys = [pl.col(_v("k0")), pl.col(_v("k1")), pl.col(_v("k2"))]
    expected = frame.select(
        (pl.all_horizontal(k.is_not_null() for k in keys) & (pl.len().over(keys) > 1)).fill_null(False)
    ).to_series()
    assert _repeated(("k0", "k1", "k2")).run(frame).to_list() == expected.to_list()
    single = frame.select((keys[0].is_not_null() & (pl.len().over(keys[0]) > 1)).fill_null(False)).to_series()
    assert _repeated(("k0",)).run(frame).to_list() == single.to_list()


@settings(max_examples=200, deadline=None)
@given(frames(2))
def test_several_families_matches_the_window_definition(frame):
    person, family = pl.col(_v("k0")), pl.col(_v("k1"))
    expected = frame.select(
        (person.is_not_null() & (family.drop_nulls().n_unique().over(person) > 1)).fill_null(False)
    ).to_series()
    assert _several_families("k0", "k1").run(frame).to_list() == expected.to_list()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(VALUES, st.booleans(), st.booleans(), st.booleans()), max_size=40))
def test_too_few_problems_matches_the_window_definition(rows):
    frame = pl.DataFrame(rows, schema={_v("family"): pl.String, _v("a"): pl.Boolean, _v("b"): pl.Boolean,
                                       _v("c"): pl.Boolean}, orient="row")
    family = pl.col(_v("family"))
    met = pl.sum_horizontal(pl.col(_v(p)).any().over(family).cast(pl.Int32) for p in "abc")
    expected = frame.select((family.is_not_null() & (met < 2)).fill_null(False)).to_series()
    assert _too_few_problems("family", ["a", "b", "c"], 2).run(frame).to_list() == expected.to_list()


def test_swapped_values_are_different_keys():
    frame = pl.DataFrame({_v("k0"): ["a", "b"], _v("k1"): ["b", "a"]})
    assert _repeated(("k0", "k1")).run(frame).to_list() == [False, False]


def test_chunked_frames_give_the_same_flags():
    frame = pl.concat([pl.DataFrame({_v("k0"): ["x", "y"]}), pl.DataFrame({_v("k0"): ["x", None]})], rechunk=False)
    assert frame.n_chunks() == 2
    assert _repeated(("k0",)).run(frame).to_list() == [True, False, True, False]


def test_too_few_problems_counts_beyond_one_byte_and_one_word():
    """Ten outcomes (Supporting Families) take a 64-bit word; seventy take two."""
    for n in (10, 70):
        names = [f"p{i}" for i in range(n)]
        rows = {_v("family"): ["a", "a", "b", "b", None]}
        # family a: problems 0 and n-1 (one per member); family b: problem 5 twice
        rows |= {_v(p): [i == 0, i == n - 1, i == 5, i == 5, True] for i, p in enumerate(names)}
        frame = pl.DataFrame(rows)
        assert _too_few_problems("family", names, 2).run(frame).to_list() == [False, False, True, True, False]
