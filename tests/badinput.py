"""The bad-input corpus (issue 14, build 6): small files that once crashed, hung or misread tfkit.

`make_corpus(folder)` writes every case and returns {case: path}; tests run each through the
reading commands. Synthetic values only (NHS numbers from the 999 range)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import polars as pl

HEADER = ("LA Code,Family ID,Person ID,Forename,Surname,Date of Birth,Gender,Postcode,NI Number,UPN,NHS Number,"
          "Crime/ASB,Education,Children Who Need Help,Worklessness,Domestic Abuse,Health,Intervention Status,"
          "Intervention Start,Intervention End,Comparison Group")
ROW = "E09000031,F1002356,10131752,Ann,Lee,19/06/1976,F,E17 4ER,HK819218B,,9997029852,N,N,N,Y,N,Y,waiting,,,Y"
ROW2 = "E09000031,F1002356,10178697,Bob,Lee,11/05/2003,M,E17 4ER,,D320333908863,9998411866,N,Y,N,Y,N,N,waiting,,,Y"


def _xlsx_bytes(rows: list[list[str]], formula: bool = False) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    if formula:
        ws["D2"] = "=HYPERLINK(\"http://example.invalid\",\"x\")"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _zip_bomb() -> bytes:
    """A valid-looking .xlsx whose sheet inflates to ~200 MB (stored compressed at ~200 KB)."""
    good = zipfile.ZipFile(io.BytesIO(_xlsx_bytes([HEADER.split(","), ROW.split(",")])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for item in good.infolist():
            data = good.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", b"<row r=\"3\"><c r=\"A3\" t=\"inlineStr\"><is><t>"
                                    + b"A" * (200 << 20) + b"</t></is></c></row></sheetData>")
            z.writestr(item, data)
    return out.getvalue()


def make_corpus(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    text: dict[str, bytes] = {
        "empty.csv": b"",
        "header_only.csv": (HEADER + "\n").encode(),
        "ragged.csv": (HEADER + "\n" + ROW + "\n" + "E09000031,F1,103,Cy\n").encode(),
        "duplicate_headers.csv": (HEADER + ",Forename\n" + ROW + ",Ann\n").encode(),
        "nul.csv": (HEADER + "\n" + ROW.replace("Ann", "A\x00nn") + "\n").encode(),
        "invalid_utf8.csv": (HEADER + "\n").encode() + ROW.replace("Ann", "A").encode() + b"\xff\xfe\xc3\n",
        "utf16.csv": (HEADER + "\n" + ROW + "\n").encode("utf-16"),
        "cr_only.csv": (HEADER + "\r" + ROW + "\r" + ROW2 + "\r").encode(),
        "long_line.csv": (HEADER + "\n" + ROW.replace("Ann", "A" * (10 << 20)) + "\n").encode(),
        "wide.csv": (",".join(f"c{i}" for i in range(100_000)) + "\n" + ",".join("x" * 100_000) + "\n").encode(),
        "text_as.xlsx": (HEADER + "\n" + ROW + "\n").encode(),
        "rtl_zero_width.csv": (HEADER + "\n" + ROW.replace("Ann", "\u202eAnn\u200b").replace("Lee", "\u200d\u200d")
                               + "\n").encode(),
        "impossible_dates.csv": (HEADER + "\n" + ROW.replace("19/06/1976", "31/02/2001") + "\n"
                                 + ROW2.replace("11/05/2003", "1") + "\n").encode(),
        "unicode_päth_名前.csv": (HEADER + "\n" + ROW + "\n").encode(),
    }
    paths = {}
    for name, data in text.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    (folder / "bomb.xlsx").write_bytes(_zip_bomb())
    (folder / "formula.xlsx").write_bytes(_xlsx_bytes([HEADER.split(","), ROW.split(",")], formula=True))
    paths["bomb.xlsx"], paths["formula.xlsx"] = folder / "bomb.xlsx", folder / "formula.xlsx"
    base = pl.DataFrame([pl.Series(n, [v], pl.String) for n, v in zip(HEADER.split(","), ROW.split(","))])
    nested = base.with_columns(pl.struct(pl.col("Forename"), pl.col("Surname")).alias("Name"))
    nested.write_parquet(folder / "nested.parquet")
    base.with_columns(pl.duration(days=1).alias("Stay")).write_parquet(folder / "duration.parquet")
    base.with_columns(pl.lit(9997029852.0).alias("NHS Number")).write_parquet(folder / "float_id.parquet")
    for name in ("nested.parquet", "duration.parquet", "float_id.parquet"):
        paths[name] = folder / name
    os.mkfifo(folder / "fifo.csv")
    (folder / "folder.csv").mkdir()
    os.symlink(folder / "loop_b.csv", folder / "loop_a.csv")
    os.symlink(folder / "loop_a.csv", folder / "loop_b.csv")
    for name in ("fifo.csv", "folder.csv", "loop_a.csv"):
        paths[name] = folder / name
    return paths
