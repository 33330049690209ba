"""UTF-8 files are checked by polars' parse rather than decoded in Python first; every outcome
must be the one the full check gives (encoding found, values, errors and their lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfkit.errors import InputFileError
from tfkit.io import read_table

CASES = {
    "utf8_simple": "Name,Town\nJosé,Zürich\nAnn,Leeds\n".encode(),
    "utf8_quoted": 'Name,Town\n"José, Jr",Zürich\n'.encode(),
    "utf8_header": "Namé,Town\nJosé,Zürich\n".encode(),
    "cp1252_simple": "Name,Town\nJosé,Zürich\nAnn,Leeds\n".encode("cp1252"),
    "cp1252_quoted": 'Name,Town\n"José",Zürich\n'.encode("cp1252"),
    "utf8_header_cp1252_body": "Namé,Town\n".encode() + "José,Zürich\n".encode("cp1252"),
}
EXPECTED = {
    "utf8_simple": ("utf-8", [("José", "Zürich"), ("Ann", "Leeds")]),
    "utf8_quoted": ("utf-8", [("José, Jr", "Zürich")]),
    "utf8_header": ("utf-8", [("José", "Zürich")]),
    "cp1252_simple": ("windows-1252", [("José", "Zürich"), ("Ann", "Leeds")]),
    "cp1252_quoted": ("windows-1252", [("José", "Zürich")]),
    "utf8_header_cp1252_body": ("windows-1252", [("José", "Zürich")]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoding_detected_and_values_read(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_bytes(CASES[name])
    table = read_table(path)
    encoding, rows = EXPECTED[name]
    assert table.encoding == encoding
    assert table.frame.drop("_source_line").rows() == rows


def test_undecodable_bytes_still_refused_with_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"Name,Town\nAnn,Leeds\n\x81\x8d\x8f,x\n")
    with pytest.raises(InputFileError, match="neither UTF-8 nor Windows-1252") as err:
        read_table(path)
    assert err.value.row == 3
