"""Identifiers are text: float-typed identifier columns are refused, integers read without `.0`,
and a header row that is really a record is reported as such, masked."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from tests.test_validate_engine import GOOD as _GOOD
from tfkit.cli import app
from tfkit.io import read_table
from tfkit.pipeline import adapters


GOOD = {**_GOOD, "Person ID": "10131752", "NHS Number": "9434765919"}


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_float_identifier_column_is_refused_with_exit_2_and_a_hint(tmp_path):
    path = tmp_path / "cohort.parquet"
    pl.DataFrame([GOOD]).with_columns(pl.col("Person ID").cast(pl.Float64)).write_parquet(path)
    key = tmp_path / "master.key"
    assert _run("keys", "generate", "--out", key).exit_code == 0
    for command in (["validate", path, "--schema", "nis"],
                    ["pseudonymise", path, "--schema", "nis", "--key", key, "--project", "nis", "--out", tmp_path / "o.parquet"]):
        res = _run(*command)
        assert res.exit_code == 2, res.output
        assert "floating-point" in res.output and "Person ID" in res.output and "as text" in res.output
        assert "Traceback" not in res.output


def test_integer_identifier_columns_read_as_decimal_text(tmp_path):
    path = tmp_path / "cohort.parquet"
    frame = pl.DataFrame([GOOD]).with_columns(pl.col("Person ID").cast(pl.Int64), pl.col("NHS Number").cast(pl.Int64))
    frame.write_parquet(path)
    raw = read_table(path)
    assert raw.frame["Person ID"].to_list() == [str(GOOD["Person ID"])]
    assert raw.frame["NHS Number"].to_list() == [GOOD["NHS Number"]]
    assert not raw.float_columns
    checked = adapters.read_validated(path, None, adapters.load_source_schema("nis"))
    assert checked.valid["person_id"].to_list() == [GOOD["Person ID"]]


def test_a_header_that_is_a_record_is_reported_masked(tmp_path):
    path = tmp_path / "cohort.csv"
    values = list(GOOD.values())
    path.write_text(",".join(values) + "\n" + ",".join(values) + "\n")
    secrets = [GOOD["NI Number"], GOOD["Forename"], GOOD["Surname"], GOOD["Postcode"], GOOD["NHS Number"]]
    for args in (["--json", "-"], []):
        res = _run("validate", path, "--schema", "nis", *args)
        assert res.exit_code == 2 and "looks like data, not a header" in res.output, res.output
        for secret in secrets:
            assert secret not in res.output, secret


def test_unmatched_headers_shaped_like_values_are_masked_in_the_report(tmp_path):
    from tfkit.schemas import load_schema, validate

    path = tmp_path / "cohort.csv"
    # one stray value-shaped header beside real ones: masked; the real header is not data
    frame = pl.DataFrame([GOOD]).with_columns(pl.lit("x").alias("AB123456C"))
    frame.write_csv(path)
    report = validate(read_table(path), load_schema("nis")).report
    assert "AB123456C" not in json.dumps(report.to_dict()) and report.to_dict()["columns"]["header_is_data"] is False
