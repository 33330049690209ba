"""A CSV ending in the DOS end-of-file mark (Ctrl-Z, 0x1A), as some legacy exporters write, reads
as its records: the mark is not a ragged row of one field."""

from __future__ import annotations

from tfkit.io import read_table


def test_a_trailing_ctrl_z_is_not_a_record(tmp_path):
    path = tmp_path / "legacy.csv"
    path.write_bytes(b"person_id,forename\r\n1,Ann\r\n2,Bob\r\n\x1a")
    table = read_table(path)
    assert table.n_rows == 2 and table.frame["forename"].to_list() == ["Ann", "Bob"]


def test_a_ctrl_z_inside_the_data_is_still_data(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(b"person_id,forename\n1,A\x1ann\n")
    assert read_table(path).frame["forename"].to_list() == ["A\x1ann"]
