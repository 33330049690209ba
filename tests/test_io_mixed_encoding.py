"""A CSV mixing UTF-8 lines with Windows-1252 (or Latin-1) ones, as when rows exported by two systems
are pasted together, cannot be read one way without garbling the other: refused with the lines of
each kind, never read as Windows-1252 with every UTF-8 name turned into mojibake ('Zoë' -> 'ZoÃ«')."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.errors import InputFileError
from tfkit.io import read_table

HEADER = "person_id,forename,surname\n"


def test_utf8_lines_and_a_latin1_line_are_refused(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes((HEADER + "1,Zoë,Smith\n2,Sean,O’Brien\n").encode("utf-8") + "3,Zoë,Jones\n".encode("latin-1"))
    with pytest.raises(InputFileError) as err:
        read_table(path)
    text = str(err.value)
    assert "mixes UTF-8" in text and "line 2" in text and "line 4" in text and "Zo" not in text
    res = CliRunner().invoke(app, ["validate", str(path), "--schema", "nis"])
    assert res.exit_code == 2 and "mixes UTF-8" in res.output


def test_windows_1252_alone_is_still_detected(tmp_path):
    path = tmp_path / "cp1252.csv"
    path.write_bytes((HEADER + "1,Zoë,O’Brien\n2,Renée,Smith\n").encode("cp1252"))
    table = read_table(path)
    assert table.encoding == "windows-1252" and table.frame["forename"].to_list() == ["Zoë", "Renée"]
    assert table.frame["surname"].to_list() == ["O’Brien", "Smith"]
