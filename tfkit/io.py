"""Reading LA extracts as raw text tables: CSV, Excel (.xlsx) and Parquet.

Public API::

    read_table(path, *, encoding=None, sheet=None, codes=None) -> RawTable

Every cell comes back as text (polars String, null for an empty cell), exactly as the file holds it:
typing, trimming and normalising are the schema's job (tfkit.schemas.validate). Columns the caller
names as `codes` (flags and code lists: a handful of distinct values) may come back as polars
Categorical instead, the same text held once per distinct value (smaller in memory). Each
row keeps the
place it came from in `_source_line` so every later report can point a person at the right line:

* CSV: the physical line in the file, header = line 1 (a quoted value spanning lines counts every line);
* .xlsx: the sheet row as Excel numbers it (the header is the first non-blank row);
* Parquet: the 1-based row number (Parquet has no header line).

Blank lines in a CSV (and wholly empty sheet rows) hold no record: they are dropped and counted in
`RawTable.blank_lines`, never silently.

A file that cannot be read as a table raises tfkit.errors.InputFileError with one message naming the
file, the line where known, and what to do: missing, empty, header only, ragged rows, duplicate or
unnamed column headers, binary junk, or an encoding that is neither the one given nor detected.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import mmap
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tfkit.errors import InputFileError

SOURCE_LINE = "_source_line"
SOURCE_LINE_IN_FILE = "_source_line_in_file"

# Encodings tfkit detects without being told. Excel's "CSV UTF-8" writes a BOM; its plain "CSV"
# writes Windows-1252 on English Windows.
DETECTED_ENCODINGS = ("utf-8", "windows-1252")

_ZIP_MAGIC = b"PK\x03\x04"
_PARQUET_MAGIC = b"PAR1"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_CANDIDATE_SEPARATORS = (",", "\t", ";", "|")
# Characters of UTF-8 text wrongly decoded as Windows-1252 ("Ã©" for "é"): the mojibake we refuse.
_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf\u2018-\u203a\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc]")


class NoDataRows(InputFileError):
    """A file with a header and no record. `header`: its column names (None when not known), so a
    caller that accepts an empty extract (extract's partner sources) can still check them."""

    def __init__(self, message: str, *, header: list[str] | None, format: str, hint: str, file: Path,
                 row: int | None = None):
        super().__init__(message, hint=hint, file=file, row=row)
        self.header, self.format = header, format


@dataclass(frozen=True)
class RawTable:
    """A table as read from one file: every column String, plus `_source_line` (Int64).

    Attributes:
        path: the file read.
        frame: the data, source column names as in the header (stripped of surrounding spaces),
            every column String, then `_source_line`; one row per record, blank lines dropped.
        columns: the source header names, in file order (without `_source_line`).
        format: "csv", "xlsx" or "parquet".
        encoding: the text encoding used for a CSV ("utf-8", "utf-8-sig", "windows-1252", ...), else None.
        encoding_detected: True when tfkit chose the encoding, False when the caller gave it.
        sheet: the worksheet read from an .xlsx, else None.
        blank_lines: records dropped because the line (or sheet row) was empty.
        line_label: what `_source_line` counts: "line" (CSV), "row" (xlsx, Parquet).
    """

    path: Path
    frame: pl.DataFrame
    columns: tuple[str, ...]
    format: str
    encoding: str | None = None
    encoding_detected: bool = False
    sheet: str | None = None
    blank_lines: int = 0
    line_label: str = "line"
    # Columns the file stored as floating-point numbers (Parquet): their text is the float's
    # ("10131752.0"), so an identifier among them is refused by validation (digits may be lost).
    float_columns: tuple[str, ...] = ()
    # An .xlsx read at its first sheet (none chosen) in a workbook with others: the hint naming them.
    other_sheets: str | None = None

    @property
    def n_rows(self) -> int:
        return self.frame.height


def read_table(
    path: str | Path, *, encoding: str | None = None, sheet: str | int | None = None,
    codes: Callable[[tuple[str, ...]], Collection[str]] | None = None, allow_empty: bool = False,
) -> RawTable:
    """Read a CSV, .xlsx or Parquet file as a RawTable of text columns.

    The format is recognised from the file's content (a zip is a workbook, `PAR1` is Parquet,
    anything else is read as delimited text), so a misnamed file still reads or fails clearly.

    Args:
        path: the file.
        encoding: CSV text encoding to use instead of detection (any Python codec name, e.g.
            "windows-1252", "utf-8", "latin-1"). Ignored for .xlsx and Parquet.
        sheet: worksheet name or 0-based index for .xlsx (default: the first sheet).
        codes: given the header, the columns that hold codes; a plain UTF-8 CSV reads them as
            Categorical (other files, and other columns, as String).
        allow_empty: a file with a header and no record reads as a table of no rows (its header's
            columns) instead of raising NoDataRows.

    Raises:
        InputFileError: the file cannot be read as a table; the message names the file, the line
            where known, and the fix.
    """
    path = Path(path)
    try:
        return _read_table(path, encoding, sheet, codes)
    except NoDataRows as err:
        if not allow_empty or err.header is None:
            raise
        names = [h for h in err.header if h]  # unnamed columns are dropped when empty, as in a table with rows
        frame = pl.DataFrame(schema={**{n: pl.String for n in _internal_names(names)}, SOURCE_LINE: pl.Int64})
        return RawTable(path=path, frame=frame, columns=tuple(frame.columns[:-1]), format=err.format,
                        line_label="line" if err.format == "csv" else "row")


def _read_table(path: Path, encoding: str | None, sheet: str | int | None,
                codes: Callable[[tuple[str, ...]], Collection[str]] | None) -> RawTable:
    check_regular_file(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as err:
        raise InputFileError(f"cannot be opened: {err.strerror}", hint="check the file's permissions", file=path) from None
    if head.startswith(_ZIP_MAGIC):
        return _read_xlsx(path, sheet)
    if head.startswith(_PARQUET_MAGIC):
        return _read_parquet(path)
    if head.startswith(_OLE_MAGIC):
        raise InputFileError(
            "is an old-style Excel .xls workbook, which tfkit does not read",
            hint="open it in Excel and save it as .xlsx or CSV UTF-8", file=path,
        )
    if path.suffix.lower() in (".xlsx", ".xlsm", ".parquet"):
        raise InputFileError(
            f"is named {path.suffix} but its content is not a {path.suffix} file",
            hint="re-export the file, or rename it to .csv if it is text", file=path,
        )
    return _read_csv(path, encoding, codes=codes)


_SPECIAL_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
                  stat.S_IFBLK: "a block device"}


def check_regular_file(path: Path) -> None:
    """Refuse, before opening it, anything but a regular file (following symlinks): opening a FIFO
    blocks until a writer comes (a hang), a device never ends, a folder or a symlink loop is no file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise InputFileError("is a symlink loop (the link points, through others, back at itself)",
                                 hint="point the path at the extract file itself", file=path) from None
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            raise InputFileError("file not found", hint="check the path and the file name", file=path) from None
        raise InputFileError(f"cannot be opened: {err.strerror}", hint="check the file's permissions", file=path) from None
    if stat.S_ISDIR(mode):
        raise InputFileError("is a folder (a directory), not a file", hint="give the extract file itself", file=path)
    if not stat.S_ISREG(mode):
        raise InputFileError(f"is {_SPECIAL_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}, not a file",
                             hint="save the extract to a file and give that file's path", file=path)


# --------------------------------------------------------------------------- CSV


def _decode(path: Path, data: bytes, encoding: str | None, *, defer_utf8_check: bool = False) -> tuple[bytes, str, bool]:
    """(content as UTF-8 bytes without BOM, encoding name, detected?) or InputFileError.

    Never returns mojibake knowingly. ASCII and UTF-8 files are passed through without a copy.
    With `defer_utf8_check`, a file without BOM and encoding is returned as "utf-8" unchecked: the
    caller must prove it is UTF-8 (polars' parse does) or call again without the flag.
    """
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputFileError(
                f"unknown encoding {encoding!r}",
                hint="use a Python codec name such as utf-8, windows-1252 or latin-1", file=path,
            ) from None
        if data.startswith(codecs.BOM_UTF8) and codecs.lookup(encoding).name == "utf-8":
            encoding = "utf-8-sig"
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            raise InputFileError(
                f"is not valid {encoding}: byte 0x{data[err.start]:02x} cannot be decoded",
                hint="drop --encoding to let tfkit detect UTF-8 or Windows-1252, or give the file's real encoding",
                file=path, row=line,
            ) from None
        if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig") and _looks_like_utf8(data):
            match = _MOJIBAKE.search(text)
            if match:
                line = text.count("\n", 0, match.start()) + 1
                raise InputFileError(
                    f"is UTF-8 text, but --encoding {encoding} would garble it (e.g. 'é' read as 'Ã©')",
                    hint="drop --encoding (tfkit detects UTF-8) or pass --encoding utf-8", file=path, row=line,
                )
        return text.encode("utf-8"), encoding, False
    for bom in _UTF16_BOMS:
        if data.startswith(bom):
            try:
                return data.decode("utf-16").encode("utf-8"), "utf-16", True
            except UnicodeDecodeError:
                raise InputFileError(
                    "starts with a UTF-16 byte-order mark but is not valid UTF-16",
                    hint="re-export it from Excel as 'CSV UTF-8'", file=path,
                ) from None
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise InputFileError(
            "contains binary data (NUL bytes), so it is not a CSV text file",
            hint="check that this is the extract you meant; export it again as CSV UTF-8", file=path, row=line,
        )
    if data.startswith(codecs.BOM_UTF8):
        try:
            body = data[len(codecs.BOM_UTF8):]
            body.decode("utf-8")
            return body, "utf-8-sig", True
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            raise InputFileError(
                "starts with a UTF-8 byte-order mark but is not valid UTF-8",
                hint="re-export it as 'CSV UTF-8', or give the real encoding with --encoding",
                file=path, row=line,
            ) from None
    try:
        if not defer_utf8_check and not data.isascii():
            data.decode("utf-8")
        return data, "utf-8", True
    except UnicodeDecodeError as utf8_err:
        try:
            text = data.decode("windows-1252")
        except UnicodeDecodeError:
            line = data.count(b"\n", 0, utf8_err.start) + 1
            raise InputFileError(
                "is neither UTF-8 nor Windows-1252 text (undecodable bytes), so it cannot be read without garbling",
                hint="check it is a CSV file; if it is, re-export it as 'CSV UTF-8' or give --encoding",
                file=path, row=line,
            ) from None
        if match := _MOJIBAKE.search(text):  # UTF-8 lines too: read as Windows-1252 they would be garbled
            utf8_line, other_line = text.count("\n", 0, match.start()) + 1, data.count(b"\n", 0, utf8_err.start) + 1
            raise InputFileError(
                f"mixes UTF-8 text (line {utf8_line}) with another encoding (line {other_line}), so no one "
                "encoding reads it without garbling names",
                hint="export the whole extract again in one go as 'CSV UTF-8' (rows pasted in from another "
                     "export are the usual cause)", file=path,
            )
        return text.encode("utf-8"), "windows-1252", True


def _looks_like_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not data.isascii()


def _sniff_separator(header_line: str) -> str:
    counts = {sep: header_line.count(sep) for sep in _CANDIDATE_SEPARATORS}
    if counts[","]:
        return ","
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _parse_header(path: Path, header_line: str, separator: str) -> list[str]:
    header = next(csv.reader([header_line], delimiter=separator))
    return [name.strip() for name in header]


def _check_header(path: Path, header: list[str], *, row_label: str = "line", row: int = 1) -> None:
    from tfkit.masking import header_looks_like_data, safe_headers

    if header_looks_like_data(header):  # never print it: it is a person's record
        raise InputFileError(
            f"the first {row_label} looks like data, not a header: it holds values shaped like identifiers "
            f"(NI or NHS numbers, ids, dates, postcodes; not shown)",
            hint="add the header row the schema expects as the first line (see: tfkit schemas show NAME)",
            file=path, row=row)
    duplicates = [name for name, n in Counter(h for h in header if h).items() if n > 1]
    if duplicates:
        raise InputFileError(
            f"the header names column(s) more than once: {', '.join(repr(d) for d in safe_headers(duplicates))}",
            hint="rename or delete the duplicate column(s) so each header is unique", file=path, row=row,
        )


def _read_csv(path: Path, encoding: str | None, *, check_utf8_first: bool = False,
              codes: Callable[[tuple[str, ...]], Collection[str]] | None = None) -> RawTable:
    if encoding is None and not check_utf8_first:
        table = _read_csv_mapped(path, codes)
        if table is not None:
            return table
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputFileError(f"cannot be read: {err.strerror}", hint="check the file's permissions", file=path) from None
    if data.endswith(b"\x1a"):  # the DOS end-of-file mark (Ctrl-Z) some legacy exporters append: no record
        data = data[:-1]
    original = data
    data, used_encoding, detected = _decode(path, data, encoding, defer_utf8_check=not check_utf8_first)
    if b"\n" not in data and b"\r" in data:  # classic Mac line endings: every CR ends a line
        if not check_utf8_first and encoding is None:
            return _read_csv(path, encoding, check_utf8_first=True)  # decoded and checked whole first
        data = data.replace(b"\r", b"\n")
    # An undetected UTF-8 file is not decoded in Python first (a whole pass over the file): polars'
    # parse of the body rejects invalid UTF-8. Only when the header is ASCII (so every message
    # about it reads the same in any encoding) and the simple parse proves the rest; otherwise the
    # file is read again with the usual check, which may find it is Windows-1252.
    unchecked = not check_utf8_first and used_encoding == "utf-8" and detected and data is original and not data.isascii()
    if unchecked:
        header_end = data.find(b"\n")
        if not (data if header_end < 0 else data[:header_end]).isascii():
            return _read_csv(path, encoding, check_utf8_first=True)
    if _is_blank(data):
        raise InputFileError("is empty", hint="export the extract again; it has no header and no rows", file=path)
    first_nl = data.find(b"\n")
    header_line = (data if first_nl < 0 else data[:first_nl]).decode("utf-8").rstrip("\r")
    if not header_line.strip():
        raise InputFileError(
            "the first line is blank; the header must be on line 1",
            hint="delete the blank line(s) at the top of the file", file=path, row=1,
        )
    if header_line.count('"') % 2:
        raise InputFileError(
            "the header has an unclosed quote or a line break inside a column name",
            hint="fix the column names on line 1", file=path, row=1,
        )
    separator = _sniff_separator(header_line)
    header = _parse_header(path, header_line, separator)
    _check_header(path, header)
    start = first_nl + 1 if first_nl >= 0 else len(data)
    if _is_blank(data[start:start + 65536]) and _is_blank(data[start:]):
        raise NoDataRows("has a header but no data rows", header=header, format="csv",
                         hint="check the export selected any records", file=path, row=1)

    frame = _parse_body_simple(data, start, header, separator)
    if frame is None and unchecked:
        return _read_csv(path, encoding, check_utf8_first=True)
    if frame is None:
        body = data[start:]
        frame = _parse_body_fast(body, header, separator)
        if frame is None:
            frame = _parse_body_exact(path, body.decode("utf-8"), header, separator)
        else:
            frame = _check_fast_parse(path, frame, body, header, separator)

    frame, blank = _drop_blank_records(frame, header)
    if frame.height == 0:
        raise NoDataRows("has a header but no data rows (only blank lines)", header=header, format="csv",
                         hint="check the export selected any records", file=path, row=1)
    frame = _drop_unnamed_empty_columns(path, frame, header)
    columns = tuple(c for c in frame.columns if c != SOURCE_LINE)
    return RawTable(
        path=path, frame=frame, columns=columns, format="csv", encoding=used_encoding,
        encoding_detected=detected, blank_lines=blank, line_label="line",
    )


def _read_csv_mapped(path: Path, codes: Callable[[tuple[str, ...]], Collection[str]] | None = None) -> RawTable | None:
    """The common case without reading the file into Python: a UTF-8 (or ASCII) file with no BOM,
    an ASCII header, no quote characters, no NUL bytes, and a value in the last column of every
    row. Polars parses the file from disk (memory-mapped); None sends the file down the general
    path, which also gives every error message.

    Why this proves the parse: without quotes every line break ends a record and every separator
    splits fields; polars refuses a line with too many fields or invalid UTF-8, reads a short line
    with nulls in its missing fields, and a blank line as a row of nulls. So with no null in the
    last column, no line is short or blank, and row i is line i + 2.
    """
    try:
        with path.open("rb") as fh:
            if fh.seek(0, 2) == 0:
                return None
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                first_nl = data.find(b"\n")
                if first_nl < 0 or data.find(b"\x00") >= 0 or data.find(b'"') >= 0:
                    return None
                head = data[:first_nl]
    except (OSError, ValueError):
        return None
    if head.startswith((codecs.BOM_UTF8, *_UTF16_BOMS)) or not head.isascii():
        return None
    header_line = head.decode("ascii").rstrip("\r")
    if not header_line.strip():
        return None
    separator = _sniff_separator(header_line)
    header = _parse_header(path, header_line, separator)
    if len(header) < 2 or len(set(header)) != len(header):
        return None
    names = _internal_names(header)
    categorical = set(codes(tuple(header))) if codes else set()
    try:
        frame = pl.read_csv(
            path, has_header=False, skip_lines=1, separator=separator,
            schema={n: pl.Categorical if h in categorical else pl.String for n, h in zip(names, header, strict=True)},
            quote_char=None, truncate_ragged_lines=False, raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None
    if frame.height == 0 or frame[names[-1]].null_count():
        return None
    frame = frame.with_columns(pl.int_range(2, frame.height + 2, dtype=pl.Int64).alias(SOURCE_LINE))
    frame = _drop_unnamed_empty_columns(path, frame, header)
    return RawTable(
        path=path, frame=frame, columns=tuple(c for c in frame.columns if c != SOURCE_LINE), format="csv",
        encoding="utf-8", encoding_detected=True, blank_lines=0, line_label="line",
    )


def _is_blank(data: bytes) -> bool:
    # Looking at the start first avoids copying a large file just to learn it is not empty.
    return not data[:65536].strip() and not data.strip()


def _internal_names(header: list[str]) -> list[str]:
    # Unnamed columns get placeholders so polars can hold them; duplicates were refused already.
    # A file's own `_source_line` (a quarantine file read back) is kept under another name.
    return [
        f"_unnamed_{i + 1}" if not h else SOURCE_LINE_IN_FILE if h == SOURCE_LINE else h
        for i, h in enumerate(header)
    ]


def _parse_body_simple(data: bytes, start: int, header: list[str], separator: str) -> pl.DataFrame | None:
    """The common case, proven cheaply: no quotes, no blank lines, no ragged rows.

    Without quotes every separator splits fields. Polars refuses a line with too many fields and
    fills a short line's missing fields with nulls, so a short line leaves a null in the last
    column. When the last column has no nulls, no line is short. Otherwise the file must hold
    exactly (columns - 1) separators per line: with none too many, no line can have too few
    either, or the totals would not add up.
    """
    names = _internal_names(header)
    lines = data.count(b"\n", start) + (0 if data.endswith(b"\n") else 1)
    if len(names) < 2 or data.find(b'"', start) >= 0:
        return None
    try:
        frame = pl.read_csv(  # the header line is skipped, not copied away
            data, has_header=False, skip_lines=1, schema={n: pl.String for n in names}, separator=separator,
            quote_char=None, truncate_ragged_lines=False, raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None
    if frame.height != lines:
        return None
    if frame[names[-1]].null_count() and data.count(separator.encode(), start) != (len(names) - 1) * lines:
        return None
    return frame.with_columns(pl.int_range(2, lines + 2, dtype=pl.Int64).alias(SOURCE_LINE))


def _parse_body_fast(body: bytes, header: list[str], separator: str) -> pl.DataFrame | None:
    """Vectorised parse with polars, one record per physical line; None when quoted line breaks exist."""
    names = _internal_names(header)
    # A quoted field may span lines only when some line holds an odd number of quote characters.
    lines = _lines_frame(body)
    if lines is None:
        return None
    if b'"' in body and bool(lines.select((pl.col("line").str.count_matches('"', literal=True) % 2 == 1).any()).item()):
        return None
    try:
        frame = pl.read_csv(
            body, has_header=False, schema={n: pl.String for n in names}, separator=separator,
            truncate_ragged_lines=True, raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None
    if frame.height != lines.height:
        return None
    return frame.with_columns(
        lines["line"].alias("_line_text"),
        pl.int_range(2, frame.height + 2, dtype=pl.Int64).alias(SOURCE_LINE),
    )


def _lines_frame(body: bytes) -> pl.DataFrame | None:
    """One String row per physical line (blank lines included), without quote handling."""
    if b"\x1f" in body:  # the unit separator would split lines: fall back to the exact parser
        return None
    try:
        lines = pl.read_csv(
            body, has_header=False, separator="\x1f", quote_char=None, schema={"line": pl.String},
            empty_string_is_null=False, raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None
    return lines.with_columns(pl.col("line").fill_null("").str.strip_suffix("\r"))


def _check_fast_parse(path: Path, frame: pl.DataFrame, body: bytes, header: list[str], separator: str) -> pl.DataFrame:
    """Refuse ragged rows: count the separators outside quotes on every non-blank line."""
    line = pl.col("_line_text")
    fields = line.str.count_matches(separator, literal=True) + 1
    if b'"' in body:
        # Only lines holding quotes pay for the regex: the others are null in `quoted`.
        quoted = pl.when(line.str.contains('"', literal=True)).then(line)
        fields = pl.coalesce(quoted.str.replace_all(r'"[^"]*"', "").str.count_matches(separator, literal=True) + 1, fields)
    blank = line.str.strip_chars().str.len_bytes() == 0
    frame = frame.with_columns(blank.alias("_blank"), fields.alias("_fields")).drop("_line_text")
    bad = frame.filter(~pl.col("_blank") & (pl.col("_fields") != len(header))).head(5)
    if bad.height:
        _raise_ragged(path, bad[SOURCE_LINE].to_list(), bad["_fields"].to_list(), len(header))
    return frame.drop("_fields")


def _raise_ragged(path: Path, lines: list[int], counts: list[int], expected: int) -> None:
    where = ", ".join(str(n) for n in lines)
    raise InputFileError(
        f"ragged rows: line {lines[0]} has {counts[0]} fields but the header has {expected}"
        + (f" (first ragged lines: {where})" if len(lines) > 1 else ""),
        hint="a value probably contains the separator without quotes; quote it or fix the export",
        file=path, row=lines[0],
    )


def _parse_body_exact(path: Path, body: str, header: list[str], separator: str) -> pl.DataFrame:
    """Record-by-record parse that knows where quoted line breaks are (rare: free-text columns)."""
    names = _internal_names(header)
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=separator, strict=True)
    rows: list[list[str]] = []
    starts: list[int] = []
    blanks: list[bool] = []
    ragged_lines: list[int] = []
    ragged_counts: list[int] = []
    previous_end = 1  # header is line 1
    try:
        for record in reader:
            start = previous_end + 1
            previous_end = reader.line_num + 1
            is_blank = not record or all(not v.strip() for v in record) and len(record) <= 1
            if not is_blank and len(record) != len(header):
                if len(ragged_lines) < 5:
                    ragged_lines.append(start)
                    ragged_counts.append(len(record))
                continue
            rows.append(record if not is_blank else [""] * len(header))
            starts.append(start)
            blanks.append(is_blank)
    except csv.Error as err:
        raise InputFileError(
            f"cannot be parsed as CSV near line {reader.line_num + 1}: {err}",
            hint="look for an unclosed quote in that line or the one before", file=path, row=reader.line_num + 1,
        ) from None
    if ragged_lines:
        _raise_ragged(path, ragged_lines, ragged_counts, len(header))
    columns = {name: pl.Series(name, [r[i] or None for r in rows], dtype=pl.String) for i, name in enumerate(names)}
    return pl.DataFrame(columns).with_columns(
        pl.Series(SOURCE_LINE, starts, dtype=pl.Int64), pl.Series("_blank", blanks, dtype=pl.Boolean)
    )


def _drop_blank_records(frame: pl.DataFrame, header: list[str]) -> tuple[pl.DataFrame, int]:
    if "_blank" not in frame.columns:  # proven free of blank lines already
        return frame, 0
    blank = int(frame["_blank"].sum())
    if blank:
        frame = frame.filter(~pl.col("_blank"))
    return frame.drop("_blank"), blank


def _drop_unnamed_empty_columns(path: Path, frame: pl.DataFrame, header: list[str]) -> pl.DataFrame:
    """Excel often exports trailing unnamed empty columns: drop those; refuse unnamed ones with data."""
    unnamed = [c for c in frame.columns if c.startswith("_unnamed_")]
    if not unnamed:
        return frame
    filled = frame.select(
        pl.col(c).str.strip_chars().replace("", None).drop_nulls().len().alias(c) for c in unnamed
    ).row(0, named=True)
    with_data = [c for c in unnamed if filled[c]]
    if with_data:
        position = int(with_data[0].removeprefix("_unnamed_"))
        first = frame.filter(pl.col(with_data[0]).str.strip_chars().replace("", None).is_not_null())[SOURCE_LINE][0]
        raise InputFileError(
            f"column {position} has values but no name in the header",
            hint="give the column a header on line 1, or delete it", file=path, row=int(first),
        )
    return frame.drop(unnamed)


# --------------------------------------------------------------------------- xlsx


_XLSX_MAX_INFLATED = 1 << 30  # 1 GiB of XML: far beyond any return (a million rows is ~200 MB)
_XLSX_MAX_RATIO = 100  # real sheet XML deflates ~10-20:1; a bomb, thousands to one
_XLSX_RATIO_FLOOR = 16 << 20  # ratios are only judged for members over 16 MB inflated


def _check_zip_bomb(path: Path) -> None:
    """Refuse a workbook whose parts would inflate far beyond their size, before anything inflates them."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a readable zip: the workbook reader says so
    total = sum(m.file_size for m in members)
    bombs = [m.filename for m in members
             if m.file_size > _XLSX_RATIO_FLOOR and m.file_size > _XLSX_MAX_RATIO * max(m.compress_size, 1)]
    if total > _XLSX_MAX_INFLATED or bombs:
        raise InputFileError(
            f"is a workbook that would inflate to {total / (1 << 20):,.0f} MB"
            + (f" ({bombs[0]} compresses more than {_XLSX_MAX_RATIO}:1)" if bombs else "")
            + ": refused as a likely zip bomb", hint="open it in Excel and export the sheet as CSV UTF-8", file=path)


def _read_xlsx(path: Path, sheet: str | int | None) -> RawTable:
    import fastexcel

    _check_zip_bomb(path)

    try:
        reader = fastexcel.read_excel(str(path))
    except Exception as err:  # fastexcel raises its own error types for corrupt workbooks
        raise InputFileError(
            f"cannot be opened as an Excel workbook ({type(err).__name__})",
            hint="open it in Excel and save it again as .xlsx, or export CSV UTF-8", file=path,
        ) from None
    names = reader.sheet_names
    chosen: str | int = 0 if sheet is None else sheet
    if isinstance(chosen, str) and chosen.isdigit() and chosen not in names:
        chosen = int(chosen)
    if isinstance(chosen, int) and not 0 <= chosen < len(names) or isinstance(chosen, str) and chosen not in names:
        raise InputFileError(
            f"has no sheet {chosen!r}", hint=f"choose one of its sheets: {', '.join(names)}", file=path,
        )
    other_sheets = _other_sheets_hint(names) if sheet is None else None
    sheet_name = names[chosen] if isinstance(chosen, int) else chosen
    try:  # every row from sheet row 1, as text, so row numbers are the sheet's own
        sheet_frame = reader.load_sheet(sheet_name, header_row=None, skip_rows=0, dtypes="string").to_polars()
    except Exception as err:
        raise InputFileError(
            f"sheet {sheet_name!r} cannot be read ({type(err).__name__})", hint="save the workbook again from Excel",
            file=path,
        ) from None
    cells = sheet_frame.columns
    sheet_frame = sheet_frame.select(pl.col(cells).cast(pl.String))
    blank_rows = sheet_frame.select(
        pl.all_horizontal(pl.col(cells).str.strip_chars().replace("", None).is_null()).alias("b")
    )["b"] if cells else pl.Series([], dtype=pl.Boolean)
    filled = (~blank_rows).arg_true()
    if sheet_frame.height == 0 or filled.len() == 0:
        raise InputFileError(f"sheet {sheet_name!r} is empty", file=path,
                             hint=other_sheets or "choose the sheet holding the extract with --sheet")
    header_index = int(filled[0])  # blank rows above the header are skipped
    header = ["" if v is None else str(v).strip() for v in sheet_frame.row(header_index)]
    _check_header(path, header, row=header_index + 1)
    internal = _internal_names(header)
    frame = sheet_frame.slice(header_index + 1).rename(dict(zip(cells, internal, strict=True)))
    if frame.height == 0:
        raise NoDataRows(f"sheet {sheet_name!r} has a header but no data rows", header=header, format="xlsx",
                         hint=other_sheets or "check the export selected any records", file=path, row=header_index + 1)
    first = header_index + 2
    frame = frame.with_columns(
        pl.int_range(first, first + frame.height, dtype=pl.Int64).alias(SOURCE_LINE),
        blank_rows.slice(header_index + 1).alias("_blank"),
    )
    frame, blank = _drop_blank_records(frame, header)
    if frame.height == 0:
        raise NoDataRows(f"sheet {sheet_name!r} has a header but no data rows", header=header, format="xlsx",
                         hint=other_sheets or "check the export selected any records", file=path, row=1)
    frame = _drop_unnamed_empty_columns(path, frame, header)
    return RawTable(
        path=path, frame=frame, columns=tuple(c for c in frame.columns if c != SOURCE_LINE),
        format="xlsx", sheet=sheet_name, blank_lines=blank, line_label="row", other_sheets=other_sheets,
    )


def _other_sheets_hint(names: list[str]) -> str | None:
    """The hint for a first sheet holding no extract, in a workbook with others."""
    if len(names) < 2:
        return None
    return (f"the workbook's sheets: {', '.join(names)}; choose the one holding the extract (validate: "
            "--sheet NAME; extract: sheet = \"NAME\" in its [[sources]] table), or save that sheet as CSV UTF-8")


# --------------------------------------------------------------------------- Parquet


def _read_parquet(path: Path) -> RawTable:
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars/arrow errors for a corrupt or truncated file
        raise InputFileError(
            f"cannot be read as Parquet ({type(err).__name__})", hint="the file may be truncated; copy or export it again",
            file=path,
        ) from None
    if frame.width == 0:
        raise InputFileError("has no columns", hint="export the extract again", file=path)
    if frame.height == 0:
        raise NoDataRows("has columns but no data rows", header=list(frame.columns), format="parquet",
                         hint="check the export selected any records", file=path)
    _check_header(path, list(frame.columns))
    text = []
    raw_schema = frame.schema
    for name, dtype in raw_schema.items():
        col = pl.col(name)
        if dtype == pl.Date:
            text.append(col.dt.strftime("%Y-%m-%d").alias(name))
        elif dtype == pl.Time:
            text.append(col.dt.strftime("%H:%M:%S").alias(name))
        elif isinstance(dtype, pl.Duration):
            raise InputFileError(
                f"column {name!r} holds {dtype} values (lengths of time), which tfkit does not read",
                hint="export the column as text or a number (e.g. days), or leave it out", file=path, column=name,
            )
        elif dtype.is_temporal():
            text.append(col.dt.strftime("%Y-%m-%d %H:%M:%S").alias(name))
        elif dtype.is_nested() or dtype in (pl.Binary, pl.Object):
            raise InputFileError(
                f"column {name!r} holds {dtype} values, not plain values", hint="flatten the column before export",
                file=path, column=name,
            )
        else:
            text.append(col.cast(pl.String).alias(name))
    frame = frame.select(text).rename({SOURCE_LINE: SOURCE_LINE_IN_FILE}, strict=False).with_columns(
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(SOURCE_LINE))
    floats = tuple(name for name, dtype in raw_schema.items() if dtype.is_float())
    return RawTable(path=path, frame=frame, columns=tuple(frame.columns[:-1]), format="parquet", line_label="row",
                    float_columns=floats)
