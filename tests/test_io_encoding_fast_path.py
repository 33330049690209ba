"""UTF-8 files are checked by polars' parse rather than decoded in Python first; every outcome
must be the one the full check gives (encoding found, values, errors and their lines)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfkit.errors import InputFileError
from tfkit.io import read_table

CASES = {
    "utf8_simple": "Name,Town\nJosé,Zürich\nAnn,Leeds\n".encode(),
    "utf8_quoted": 'Name,Town\n"José, Jr",Zürich\n'.encode(),
    "utf8_header": "Namé,Town\nJosé,Zürich\n".encode(),
    "cp1252_simple": "Name,Town\nJosé,Zürich\nAnn,Leeds\n".encode("cp1252"),
    "cp1252_quoted": 'Name,Town\n"José",Zürich\n'.encode("cp1252"),
}
EXPECTED = {
    "utf8_simple": ("utf-8", [("José", "Zürich"), ("Ann", "Leeds")]),
    "utf8_quoted": ("utf-8", [("José, Jr", "Zürich")]),
    "utf8_header": ("utf-8", [("José", "Zürich")]),
    "cp1252_simple": ("windows-1252", [("José", "Zürich"), ("Ann", "Leeds")]),
    "cp1252_quoted": ("windows-1252", [("José", "Zürich")]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoding_detected_and_values_read(tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_bytes(CASES[name])
    table = read_table(path)
    encoding, rows = EXPECTED[name]
    assert table.encoding == encoding
    assert table.frame.drop("_source_line").rows() == rows


def test_utf8_header_and_cp1252_body_is_refused_not_garbled(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"  # read as Windows-1252 the header would be 'NamÃ©' (tests/test_io_mixed_encoding.py)
    path.write_bytes("Namé,Town\n".encode() + "José,Zürich\n".encode("cp1252"))
    with pytest.raises(InputFileError, match="mixes UTF-8 text"):
        read_table(path)


def test_undecodable_bytes_still_refused_with_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"Name,Town\nAnn,Leeds\n\x81\x8d\x8f,x\n")
    with pytest.raises(InputFileError, match="neither UTF-8 nor Windows-1252") as err:
        read_table(path)
    assert err.value.row == 3


# ---------------------------------------------------------------- the memory-mapped path


def _outcome(path: Path):
    try:
        table = read_table(path)
    except InputFileError as err:
        return ("error", str(err), err.row)
    return ("table", table.encoding, table.blank_lines, table.columns, table.frame.rows())


def _general_outcome(path: Path, monkeypatch: pytest.MonkeyPatch):
    import tfkit.io

    with monkeypatch.context() as m:
        m.setattr(tfkit.io, "_read_csv_mapped", lambda path, codes=None: None)
        return _outcome(path)


def test_plain_files_are_parsed_from_disk_without_reading_them_into_python(tmp_path, monkeypatch):
    path = tmp_path / "plain.csv"
    path.write_bytes("Name,Town\nJosé,Zürich\nAnn,Leeds\n".encode())
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("the mapped path was not taken"))
    table = read_table(path)
    assert table.frame.rows() == [("José", "Zürich", 2), ("Ann", "Leeds", 3)]


TRICKY = {
    "blank_middle": b"a,b\n1,2\n\n3,4\n",
    "blank_end": b"a,b\n1,2\n3,4\n\n\n",
    "crlf": b"a,b\r\n1,2\r\n3,4\r\n",
    "crlf_blank": b"a,b\r\n1,2\r\n\r\n3,4\r\n",
    "short_line": b"a,b,c\n1,2,3\n4,5\n6,7,8\n",
    "long_line": b"a,b\n1,2\n3,4,5\n",
    "spaces_line": b"a,b\n1,2\n   \n3,4\n",
    "empty_last": b"a,b\n1,\n3,4\n",
    "trailing_separator": b"a,b,\n1,2,\n3,4,\n",
    "no_final_newline": b"a,b\n1,2\n3,4",
    "header_only": b"a,b\n",
    "duplicate_header": b"a,a\n1,2\n",
    "one_column": b"a\n1\n2\n",
    "cp1252": "a,b\nJosé,1\n".encode("cp1252"),
    "semicolons": b"a;b\n1;2\n",
    "bom": b"\xef\xbb\xbfa,b\n1,2\n",
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_mapped_path_gives_the_general_paths_outcome(tmp_path, monkeypatch, name):
    path = tmp_path / f"{name}.csv"
    path.write_bytes(TRICKY[name])
    assert _outcome(path) == _general_outcome(path, monkeypatch)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.text("ab é1\r", max_size=3), min_size=0, max_size=4), min_size=1, max_size=6),
       st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_mapped_path_agrees_with_the_general_path_on_generated_files(tmp_path, monkeypatch, rows, newline, final):
    body = newline.join(",".join(cells) for cells in rows) + (newline if final else "")
    path = tmp_path / "generated.csv"
    path.write_bytes(("h1,h2,h3" + newline + body).encode())
    assert _outcome(path) == _general_outcome(path, monkeypatch)
