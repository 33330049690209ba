"""link-keys' project/key check (check_same_pseudonyms) reads each side's Parquet footer. It passes
over only what it means to: a file that is not Parquet (the reader then says so) or a footer made
elsewhere (no tfkit metadata, or metadata that is not UTF-8); a bug in reading the footer is a bug
(exit 3), never a silently skipped check."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.package import manifest
from tfkit.pseudonymise.link_keys import check_same_pseudonyms


def _extract(path, metadata: dict[bytes, bytes] | None = None):
    table = pa.table({"record_id_pseudonym": ["a", "b"], "mk_forename_surname_dob_postcode": ["k1", "k2"]})
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


@pytest.mark.parametrize("content", [b"", b"hello world", b"PAR1" + b"x" * 100 + b"PAR1"])
def test_a_file_that_is_not_parquet_is_left_to_the_reader(tmp_path, content):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(content)
    check_same_pseudonyms(junk, _extract(tmp_path / "b.parquet"))  # no error here: the reader's message
    res = CliRunner().invoke(app, ["link-keys", str(junk), str(tmp_path / "b.parquet"), "--out", str(tmp_path / "p.parquet")])
    assert res.exit_code == 2 and "not a readable Parquet file" in res.output, res.output


def test_a_footer_made_elsewhere_is_not_compared(tmp_path):
    a = _extract(tmp_path / "a.parquet", {b"tfkit.project": b"\xff\xfe not utf-8"})
    b = _extract(tmp_path / "b.parquet", {b"tfkit.project": b"nis"})
    check_same_pseudonyms(a, b)
    check_same_pseudonyms(_extract(tmp_path / "c.parquet"), b)


def test_a_bug_reading_the_footer_is_not_swallowed(tmp_path, monkeypatch):
    a, b = _extract(tmp_path / "a.parquet"), _extract(tmp_path / "b.parquet")

    def broken(path):
        raise KeyError("a bug")

    monkeypatch.setattr(manifest, "footer_metadata", broken)
    with pytest.raises(KeyError):
        check_same_pseudonyms(a, b)


def test_a_folder_with_a_junk_part_names_it(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    _extract(folder / "part-0.parquet")
    (folder / "part-1.parquet").write_bytes(b"not parquet")
    res = CliRunner().invoke(app, ["link-keys", str(folder), str(folder / "part-0.parquet"), "--out",
                                   str(tmp_path / "p.parquet")])
    assert res.exit_code == 2 and "part-1.parquet: not a readable Parquet file" in res.output, res.output
