"""A partner extract with a header and no rows (a police export with nobody this period) is an
empty, counted table in the return, not a failure; an empty cohort, or an empty file with the wrong
header, still stops the run."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.errors import DataCheckFailed
from tfkit.io import NoDataRows, read_table
from tfkit.package.verify import verify_package
from tests.test_extract_pipeline import demo_dir  # noqa: F401  (the 300-person demo inputs and keys)


def _config(demo_dir, tmp_path, partners: dict[str, str], *, linkage: bool = True):
    """The demo config with `partners` (name -> CSV text) as extra sources, outputs in tmp_path."""
    text = (demo_dir / "tfkit.toml").read_text()
    for rel in ("inputs/", "keys/"):
        text = text.replace(f'"{rel}', f'"{demo_dir}/{rel}')
    text = text.replace('root = "packages"', f'root = "{tmp_path / "packages"}"')
    text = text.replace('quarantine_dir = "quarantine"', f'quarantine_dir = "{tmp_path / "quarantine"}"')
    text = text.replace("[disclosure]\n", "[disclosure]\nmax_suppression = 0.5\n", 1)  # a small cohort
    sources = ""
    for name, content in partners.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(content)
        sources += f'\n[[sources]]\nname = "{name}"\npath = "{path}"\nschema = "{name}"\n'
    head, tail = text.split("[pseudonymise]", 1)
    config = tmp_path / "tfkit.toml"
    config.write_text(head + sources + ("\n[linkage]\nenabled = true\n" if linkage else "") + "\n[pseudonymise]" + tail)
    return config


def _header(demo_dir, name: str) -> str:
    return (demo_dir / "inputs" / f"{name}.csv").read_text().splitlines()[0] + "\n"


@pytest.mark.parametrize("linkage", [True, False])
def test_an_empty_partner_extract_is_an_empty_counted_table(demo_dir, tmp_path, linkage):
    school = (demo_dir / "inputs" / "school_attendance.csv").read_text()
    config = _config(demo_dir, tmp_path, {"police": _header(demo_dir, "police"), "school_attendance": school},
                     linkage=linkage)
    res = CliRunner().invoke(app, ["extract", "--config", str(config), "--json", str(tmp_path / "run.json")])
    assert res.exit_code == 0, res.output
    assert "police: 0 rows in = 0 out + 0 quarantined + 0 withdrawn" in res.stdout
    summary = json.loads((tmp_path / "run.json").read_text())
    police = next(r for r in summary["reconciliation"] if r["source"] == "police")
    assert police["rows_in"] == police["rows_out"] == police["quarantined"] == police["withdrawn"] == 0
    pkg = tmp_path / "packages" / "E09000031_nis_2019-H2"
    assert verify_package(pkg, public_key=demo_dir / "keys" / "demo-signing.pub").ok
    table = pl.read_parquet(pkg / "data" / "police.parquet")
    assert table.height == 0 and "mk_forename_surname_dob" in table.columns
    assert ("person_id_pseudonym" in table.columns) == linkage  # the columns of a police table with rows
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert {"path": "data/police.parquet", "rows": 0}.items() <= next(
        o for o in manifest["outputs"] if o["path"] == "data/police.parquet").items()
    assert manifest["disclosure"]["tables"]["police"]["records"] == 0


def test_every_partner_empty_with_linkage_on_links_nothing_and_says_so(demo_dir, tmp_path):
    config = _config(demo_dir, tmp_path, {"police": _header(demo_dir, "police")})
    res = CliRunner().invoke(app, ["extract", "--config", str(config)])
    assert res.exit_code == 0, res.output
    assert "no partner source has any row this period; nothing to link" in res.stderr
    police = pl.read_parquet(tmp_path / "packages" / "E09000031_nis_2019-H2" / "data" / "police.parquet")
    assert police.height == 0 and police.schema["person_id_pseudonym"] == pl.String


def test_an_empty_partner_extract_with_the_wrong_header_is_refused(demo_dir, tmp_path):
    config = _config(demo_dir, tmp_path, {"police": _header(demo_dir, "cohort")})
    res = CliRunner().invoke(app, ["extract", "--config", str(config)])
    assert res.exit_code == 1, res.output
    assert "lacks required column(s) of schema 'police': record_id" in res.output
    assert "fit the built-in schema 'nis'" in res.output
    assert not (tmp_path / "packages" / "E09000031_nis_2019-H2").exists()


def test_an_empty_cohort_still_stops_the_return(demo_dir, tmp_path):
    config = _config(demo_dir, tmp_path, {}, linkage=False)
    empty = tmp_path / "cohort.csv"
    empty.write_text(_header(demo_dir, "cohort"))
    config.write_text(config.read_text().replace(str(demo_dir / "inputs" / "cohort.csv"), str(empty)))
    res = CliRunner().invoke(app, ["extract", "--config", str(config)])
    assert res.exit_code == 2 and "has a header but no data rows" in res.output, res.output


@pytest.mark.parametrize("kind", ["csv", "blank-lines", "xlsx", "parquet"])
def test_read_table_allow_empty_gives_the_headers_columns(tmp_path, kind):
    header = ["record_id", "forename", "dob"]
    if kind == "xlsx":
        import openpyxl

        path = tmp_path / "e.xlsx"
        wb = openpyxl.Workbook()
        wb.active.append(header)
        wb.save(path)
    elif kind == "parquet":
        path = tmp_path / "e.parquet"
        pl.DataFrame(schema={h: pl.String for h in header}).write_parquet(path)
    else:
        path = tmp_path / "e.csv"
        path.write_text(",".join(header) + ("\n\n\n" if kind == "blank-lines" else "\n"))
    with pytest.raises(NoDataRows):
        read_table(path)
    table = read_table(path, allow_empty=True)
    assert table.n_rows == 0 and list(table.columns) == header
    assert table.frame.schema["_source_line"] == pl.Int64


def test_validate_still_refuses_a_header_only_file(demo_dir, tmp_path):
    path = tmp_path / "police.csv"
    path.write_text(_header(demo_dir, "police"))
    res = CliRunner().invoke(app, ["validate", str(path), "--schema", "police"])
    assert res.exit_code == 2 and "no data rows" in res.output
    with pytest.raises(DataCheckFailed):  # and an empty file must at least have the schema's header
        from tfkit.validation.source import read_validated

        read_validated(path, "nis", allow_empty=True)
