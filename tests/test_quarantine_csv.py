"""Quarantine CSVs are opened in Excel: a cell that starts like a formula must not run."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tfkit.io import read_table
from tfkit.schemas import load_schema, validate
from tfkit.validation.quarantine import neutralise_formulas, write_quarantine_csv


def test_formula_cells_get_an_apostrophe_and_others_are_untouched(tmp_path):
    rows = pl.DataFrame({"a": ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "Ann", None], "n": list(range(7))})
    path = write_quarantine_csv(rows, tmp_path / "q.csv")
    back = pl.read_csv(path, infer_schema=False)
    assert back["a"].to_list() == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2+3", "'@SUM(A1)", "'\tx", "Ann", None]
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert not list(tmp_path.glob(".*.tmp"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=1, max_size=20))
def test_no_cell_starts_like_a_formula_and_the_rest_of_the_value_is_kept(values):
    out = neutralise_formulas(pl.DataFrame({"a": values}, schema={"a": pl.String}))["a"].to_list()
    for before, after in zip(values, out, strict=True):
        if before is None:
            assert after is None
        elif before[:1] in ("=", "+", "-", "@", "\t", "\r"):
            assert after == "'" + before
        else:
            assert after == before


def test_validate_quarantine_file_is_neutralised(tmp_path):
    src = tmp_path / "cohort.csv"
    pl.DataFrame({"LA Code": ["=1+1"], "Family ID": ["F1"], "Person ID": ["P1"]}).write_csv(src)
    result = validate(read_table(src), load_schema("nis"))
    _, quarantine = result.write(tmp_path / "out")
    assert pl.read_csv(quarantine, infer_schema=False)["LA Code"].to_list() == ["'=1+1"]
