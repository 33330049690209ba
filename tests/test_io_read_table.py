"""tfkit.io.read_table: formats, encodings, source line numbers, and one clear error per bad file."""

from __future__ import annotations

import datetime as dt
import os

import openpyxl
import polars as pl
import pytest

from tfkit.errors import InputFileError
from tfkit.io import SOURCE_LINE, read_table

HEADER = "LA Code,Person ID,Forename,Date of Birth\n"


def write(tmp_path, name, content: bytes | str):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_csv_reads_all_columns_as_text_with_physical_line_numbers(tmp_path):
    path = write(tmp_path, "a.csv", HEADER + "E09000031,1,Ann,03/02/1984\n\nE09000031,007,Bob,\n")
    raw = read_table(path)
    assert raw.columns == ("LA Code", "Person ID", "Forename", "Date of Birth")
    assert all(dtype == pl.String for name, dtype in raw.frame.schema.items() if name != SOURCE_LINE)
    assert raw.frame["Person ID"].to_list() == ["1", "007"]  # leading zeros kept: text, not numbers
    assert raw.frame[SOURCE_LINE].to_list() == [2, 4]  # the blank line 3 is skipped and counted
    assert raw.blank_lines == 1
    assert raw.frame["Date of Birth"].to_list() == ["03/02/1984", None]


def test_quoted_line_breaks_keep_physical_line_numbers(tmp_path):
    path = write(tmp_path, "a.csv", HEADER + 'E09000031,1,"Ann\nMarie",x\nE09000031,2,"Bo, b",y\n')
    raw = read_table(path)
    assert raw.frame["Forename"].to_list() == ["Ann\nMarie", "Bo, b"]
    assert raw.frame[SOURCE_LINE].to_list() == [2, 4]


def test_crlf_and_trailing_empty_unnamed_column(tmp_path):
    path = write(tmp_path, "a.csv", "A,B,\r\n1,2,\r\n3,4,\r\n")
    raw = read_table(path)
    assert raw.columns == ("A", "B")
    assert raw.frame.rows() == [("1", "2", 2), ("3", "4", 3)]


def test_utf8_bom(tmp_path):
    path = write(tmp_path, "a.csv", b"\xef\xbb\xbf" + "Forename,Surname\nSiân,O'Brien\n".encode())
    raw = read_table(path)
    assert raw.columns == ("Forename", "Surname")  # BOM not glued to the first header
    assert raw.encoding == "utf-8-sig"
    assert raw.frame["Forename"].to_list() == ["Siân"]


def test_windows_1252_detected(tmp_path):
    path = write(tmp_path, "a.csv", "Forename,Surname\nZoë,Bront\u00eb\n".encode("windows-1252"))
    raw = read_table(path)
    assert raw.encoding == "windows-1252" and raw.encoding_detected
    assert raw.frame.row(0)[:2] == ("Zoë", "Brontë")


def test_encoding_override_and_mojibake_refused(tmp_path):
    cp = write(tmp_path, "cp.csv", "Forename\nZoë\n".encode("windows-1252"))
    assert read_table(cp, encoding="latin-1").frame["Forename"].to_list() == ["Zoë"]
    utf8 = write(tmp_path, "u.csv", "Forename\nZoë\n")
    with pytest.raises(InputFileError, match="garble") as err:
        read_table(utf8, encoding="windows-1252")
    assert err.value.file == utf8 and err.value.row == 2
    with pytest.raises(InputFileError, match="not valid utf-8"):
        read_table(cp, encoding="utf-8")
    with pytest.raises(InputFileError, match="unknown encoding"):
        read_table(cp, encoding="klingon")


def test_semicolon_separated(tmp_path):
    raw = read_table(write(tmp_path, "a.csv", "A;B\n1;2\n"))
    assert raw.frame.rows() == [("1", "2", 2)]


def test_xlsx_sheet_rows_and_text_values(tmp_path):
    path = tmp_path / "cohort.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Return"
    ws.append(["Person ID", "Date of Birth", "NHS Number", "Flag"])
    ws.append(["P1", dt.date(2001, 2, 3), 9434765919, "Y"])
    ws.append([None, None, None, None])
    ws.append(["P3", "03/02/2001", None, "N"])
    wb.save(path)
    raw = read_table(path)
    assert raw.format == "xlsx" and raw.sheet == "Return" and raw.line_label == "row"
    assert raw.frame[SOURCE_LINE].to_list() == [2, 4]
    assert raw.blank_lines == 1
    assert raw.frame["NHS Number"].to_list() == ["9434765919", None]
    assert raw.frame["Date of Birth"].to_list()[0].startswith("2001-02-03")
    with pytest.raises(InputFileError, match="no sheet"):
        read_table(path, sheet="Nope")


def test_xlsx_duplicate_headers_refused(tmp_path):
    path = tmp_path / "dup.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["Name", "Name"])
    wb.active.append(["a", "b"])
    wb.save(path)
    with pytest.raises(InputFileError, match="more than once"):
        read_table(path)


def test_parquet_values_become_text(tmp_path):
    path = tmp_path / "a.parquet"
    pl.DataFrame({"dob": [dt.date(2001, 2, 3)], "n": [7], "flag": [True]}).write_parquet(path)
    raw = read_table(path)
    assert raw.format == "parquet"
    assert raw.frame.row(0) == ("2001-02-03", "7", "true", 1)


BAD_FILES = {
    "empty": (b"", "is empty"),
    "whitespace": (b"  \n\n", "is empty"),
    "header_only": (HEADER.encode(), "no data rows"),
    "header_and_blank_lines": ((HEADER + "\n\n").encode(), "no data rows"),
    "ragged_short": ((HEADER + "E09000031,1,Ann,x\nE09000031,2\n").encode(), "line 3 has 2 fields"),
    "ragged_long": ((HEADER + "E09000031,1,Ann,x,extra\n").encode(), "line 2 has 5 fields"),
    "ragged_quoted": ((HEADER + 'E09000031,"1\n2",Ann\n').encode(), "ragged"),
    "duplicate_columns": (b"Name,Name\na,b\n", "more than once"),
    "unnamed_column_with_data": (b"A,,C\n1,2,3\n", "no name"),
    "binary_nul": (b"\x00\x01\x02junk\x00" * 50, "binary"),
    "binary_undecodable": (bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D, 0xFF]) * 40, "neither UTF-8 nor Windows-1252"),
    "old_xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, ".xls"),
    "corrupt_xlsx": (b"PK\x03\x04not really a zip", "Excel workbook"),
    "corrupt_parquet": (b"PAR1garbage", "Parquet"),
    "blank_first_line": (b"\nA,B\n1,2\n", "first line is blank"),
    "unclosed_quote_header": (b'"A,B\n1,2\n', "unclosed quote"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_one_clear_error_naming_the_file(tmp_path, case):
    content, expected = BAD_FILES[case]
    path = write(tmp_path, f"{case}.csv", content)
    with pytest.raises(InputFileError) as err:
        read_table(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)
    assert err.value.hint


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputFileError, match="file not found"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(InputFileError, match="is a folder"):
        read_table(tmp_path)


def test_misnamed_xlsx_text_file(tmp_path):
    path = write(tmp_path, "a.xlsx", "A,B\n1,2\n")
    with pytest.raises(InputFileError, match="not a .xlsx"):
        read_table(path)


def test_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can read anything")
    path = write(tmp_path, "a.csv", "A\n1\n")
    path.chmod(0)
    with pytest.raises(InputFileError, match="cannot be"):
        read_table(path)


def test_xlsx_header_below_blank_rows_keeps_sheet_row_numbers(tmp_path):
    path = tmp_path / "offset.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A3"], ws["B3"] = "Person ID", "Forename"
    ws["A4"], ws["B4"] = "P1", "Ann"
    ws["A6"], ws["B6"] = "P2", "Bob"
    wb.save(path)
    raw = read_table(path)
    assert raw.columns == ("Person ID", "Forename")
    assert raw.frame.rows() == [("P1", "Ann", 4), ("P2", "Bob", 6)]
    assert raw.blank_lines == 1


def test_codes_are_read_as_categorical_from_a_plain_csv_only(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("flag,id\nY,1\nN,2\n,3\n", encoding="utf-8")
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('flag,id\n"Y",1\nN,2\n', encoding="utf-8")
    codes = lambda header: {"flag"}  # noqa: E731
    table = read_table(plain, codes=codes)
    assert table.frame.schema["flag"] == pl.Categorical and table.frame.schema["id"] == pl.String
    assert table.frame["flag"].cast(pl.String).to_list() == ["Y", "N", None]
    assert read_table(quoted, codes=codes).frame.schema["flag"] == pl.String  # the general path: text
