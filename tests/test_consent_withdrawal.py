"""Consent withdrawal removes a person everywhere: every source, every identifier, every messy form.

One extract of the demo cohort with three linked partner sources (police, school, DWP). People are
withdrawn by person id, NI number, NHS number, UPN and names + date of birth, each written as
spreadsheets and typists write them, and one person whose cohort row fails validation. The test
then proves that no record of theirs, and no pseudonym or match key derived from them, is in any
output: the package's tables, the quarantine files, or the linkage counts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.config import load_config
from tfkit.errors import DataCheckFailed
from tfkit.pipeline import adapters, prepare_demo, run_extract
from tfkit.pipeline.consent import load_withdrawals
from tfkit.pseudonymise.contract import load_key_file

PEOPLE = 300
PARTNERS = ("police", "school_attendance", "dwp")
SCHEMAS = {"cohort": "nis", "police": "police", "school_attendance": "school_attendance", "dwp": "dwp"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("consent")
    prepare_demo(out, people=PEOPLE, partners=PARTNERS)
    return out


def _config(demo: Path, tmp: Path, withdrawals: str, extra: str = "") -> Path:
    text = (demo / "tfkit.toml").read_text()
    for rel in ("inputs/", "keys/"):
        text = text.replace(f'"{rel}', f'"{demo}/{rel}')
    text = text.replace('root = "packages"', f'root = "{tmp / "packages"}"')
    text = text.replace('quarantine_dir = "quarantine"', f'quarantine_dir = "{tmp / "quarantine"}"')
    text = text.replace("[disclosure]\n", "[disclosure]\nmax_suppression = 0.5\n", 1)  # a small demo (see test_extract_pipeline.config)
    (tmp / "withdrawals.csv").write_text(withdrawals)
    text = text.replace(f'"{demo}/inputs/consent_withdrawals.csv"', f'"{tmp / "withdrawals.csv"}"')
    path = tmp / "tfkit.toml"
    path.write_text(text.replace("[consent]", "[consent]\n" + extra) if extra else text)
    return path


def _valid_rows(demo: Path) -> dict[str, pl.DataFrame]:
    out = {}
    for source, schema_name in SCHEMAS.items():
        schema = adapters.load_source_schema(schema_name)
        out[source] = adapters.read_validated(demo / "inputs" / f"{source}.csv", None, schema).valid
    return out


def _truth(demo: Path) -> pl.DataFrame:
    return pl.read_csv(demo / "inputs" / "truth.csv", infer_schema=False)


def _pick(demo: Path) -> tuple[str, dict[str, str], set[str]]:
    """A withdrawal list naming seven people in messy forms; their person keys; the cohort ids."""
    cohort = pl.read_csv(demo / "inputs" / "cohort.csv", infer_schema=False)
    truth = _truth(demo)
    partners_of = truth.filter(pl.col("source") != "cohort").group_by("person_key").agg(pl.col("source"))
    key_of = dict(truth.filter(pl.col("source") == "cohort").select("record_id", "person_key").iter_rows())
    injected = pl.read_csv(demo / "inputs" / "injected_errors.csv", infer_schema=False)
    broken = set(injected.filter(pl.col("source") == "cohort")["record_id"])
    rows = cohort.with_columns(pl.col("Person ID").replace_strict(key_of, default=None).alias("key")).join(
        partners_of, left_on="key", right_on="person_key", how="inner").sort("Person ID")
    ok = rows.filter(~pl.col("Person ID").is_in(list(broken)) & pl.col("Person ID").is_unique())
    used: set[str] = set()

    def take(frame: pl.DataFrame, partner: str | None = None) -> dict:
        frame = frame.filter(~pl.col("key").is_in(list(used)))
        if partner:
            frame = frame.filter(pl.col("source").list.contains(partner))
        row = frame.row(0, named=True)
        used.add(row["key"])
        return row

    by_id = take(ok, "police")
    by_nino = take(ok.filter(pl.col("NI Number").is_not_null()), "dwp")
    by_nhs_float = take(ok.filter(pl.col("NHS Number").is_not_null()))
    sci = ok.filter(pl.col("NHS Number").str.replace_all(" ", "").str.slice(1).str.contains(r"[1-9]$"))
    by_nhs_sci = take(sci.filter(pl.col("NHS Number").is_not_null()))
    by_upn = take(ok.filter(pl.col("UPN").is_not_null()), "school_attendance")
    by_names = take(ok, "police")
    # a person whose cohort row fails validation, but whose partner record shares an identifier
    quarantined = rows.filter(pl.col("Person ID").is_in(list(broken)) & (pl.col("UPN").is_not_null()
                                                                       | pl.col("NI Number").is_not_null()))
    by_quarantined = take(quarantined)

    nino = by_nino["NI Number"].replace(" ", "")
    nhs_f = by_nhs_float["NHS Number"].replace(" ", "")
    nhs_s = by_nhs_sci["NHS Number"].replace(" ", "")
    upn = by_upn["UPN"].replace(" ", "")
    day, month, year = by_names["Date of Birth"].split("/") if "/" in by_names["Date of Birth"] else (None, None, None)
    dob = f"{int(day)}/{int(month)}/{year}" if year else by_names["Date of Birth"]
    lines = [
        "person_id,nino,nhs_number,upn,forename,surname,dob",
        f"{by_id['Person ID']}.0,,,,,,",  # Excel float
        f",{'-'.join([nino[:2], nino[2:4], nino[4:6], nino[6:8], nino[8]]).lower()},,,,,",  # hyphenated, lower case
        f",,{nhs_f}.0,,,,",  # Excel float
        f",,{nhs_s[0]}.{nhs_s[1:]}E+09,,,,",  # scientific notation, exact
        f",,,{upn[:4].lower()}-{upn[4:8]} {upn[8:]},,,",  # hyphen and space, lower case
        f",,,,{by_names['Forename'].upper()},  {by_names['Surname'].lower()} ,{dob}",  # names + day-first date
        f"{by_quarantined['Person ID']},,,,,,",
        "NOBODY-0000,,,,,,",  # matches nothing: listed masked, never silently ignored
    ]
    people = {"id": by_id["key"], "nino": by_nino["key"], "nhs_float": by_nhs_float["key"],
              "nhs_sci": by_nhs_sci["key"], "upn": by_upn["key"], "names": by_names["key"],
              "quarantined": by_quarantined["key"]}
    return "\n".join(lines) + "\n", people, {by_quarantined["Person ID"]}


def _derived(demo: Path, valid: dict[str, pl.DataFrame], records: pl.DataFrame) -> set[str]:
    """Every pseudonym and match key the pipeline would derive from these records (and from no one
    else's: a shared family id or a match key someone else also has is not theirs alone)."""
    cfg = load_config(demo / "tfkit.toml")
    key = load_key_file(cfg.key_file)

    def hashes(frame: pl.DataFrame, source: str) -> set[str]:
        policy = adapters.load_policy(SCHEMAS[source], None)
        out = adapters.pseudonymise(frame, key=key, project=cfg.project, policy=policy, la_code=cfg.la_code)
        found = set()
        for column in out.columns:
            if out.schema[column] == pl.String:
                found |= {v for v in out[column].drop_nulls().to_list() if HEX64.match(v)}
        return found

    theirs, others = set(), set()
    for source, frame in valid.items():
        id_column = "person_id" if source == "cohort" else "record_id"
        mine = records.filter(pl.col("source") == source)["record_id"]
        theirs |= hashes(frame.filter(pl.col(id_column).is_in(mine.implode())), source)
        others |= hashes(frame.filter(~pl.col(id_column).is_in(mine.implode())), source)
    return theirs - others


def test_withdrawn_people_are_removed_from_every_source_and_every_output(demo, tmp_path):
    listing, people, _ = _pick(demo)
    cfg = load_config(_config(demo, tmp_path, listing))
    result = run_extract(cfg)
    truth = _truth(demo)
    records = truth.filter(pl.col("person_key").is_in(list(people.values())))
    assert records.filter(pl.col("source") != "cohort").height >= 7  # partner records at stake

    # 1. no pseudonym or match key derived from a withdrawn person in any table of the package
    valid = _valid_rows(demo)
    derived = _derived(demo, valid, records)
    assert len(derived) > 20
    for table in (result.package / "data").glob("*.parquet"):
        frame = pl.read_parquet(table)
        for column in frame.columns:
            if frame.schema[column] == pl.String:
                leaked = derived & set(frame[column].drop_nulls().to_list())
                assert not leaked, f"{table.name}:{column} holds {len(leaked)} value(s) derived from a withdrawn person"

    # 2. every one of their rows is counted as withdrawn (cohort and partner rows alike)
    m = result.manifest
    withdrawn = m["consent_withdrawals"]["withdrawn_rows"]
    for source in SCHEMAS:
        assert withdrawn[source] >= records.filter(pl.col("source") == source).height - (1 if source == "cohort" else 0)
    for rec in m["reconciliation"]:
        assert rec["rows_in"] == rec["rows_out"] + rec["quarantined"] + rec["withdrawn"]

    # 3. no raw row of theirs in a quarantine file
    raw_ids = set(records["record_id"])
    for q in cfg.quarantine_dir.rglob("*.csv"):
        text = q.read_text()
        assert not [r for r in raw_ids if r in text], q.name

    # 4. linkage counts leave withdrawn people out
    linkage = m["linkage"]
    for source in PARTNERS:
        rows_out = next(o["rows"] for o in m["outputs"] if o["path"] == f"data/{source}.parquet")
        assert linkage["sources"][source] == rows_out  # every kept row, no withdrawn one
        assert linkage["linked_to_person"][source] <= rows_out
    assert linkage["sources"]["cohort"] == m["reconciliation"][0]["rows_out"]

    # 5. the one entry that matched nothing is listed, masked, in the run report; counted in the manifest
    assert m["consent_withdrawals"]["unmatched_entries"] == 1
    report = result.report.read_text()
    assert "NO*********" in report and "NOBODY-0000" not in report


def test_unmatched_fail_stops_the_run_with_the_entry_masked(demo, tmp_path):
    listing = "person_id,nino\n,TE-45-73-42-A\n"
    config = _config(demo, tmp_path, listing, extra='unmatched = "fail"\n')
    with pytest.raises(DataCheckFailed) as err:
        run_extract(load_config(config))
    assert err.value.exit_code == 1 and "line 2" in str(err.value)
    assert "TE457342A" not in str(err.value) and "TE-45" not in str(err.value) and "TE*******" in str(err.value)
    assert not load_config(config).package_dir.exists()
    res = CliRunner().invoke(app, ["extract", "--config", str(config)])
    assert res.exit_code == 1 and "TE457342A" not in res.output


@pytest.mark.parametrize("text, normalised", [
    ("11695896.0", "11695896"), (" 11695896 ", "11695896"), ("9.998857619E+09", "9998857619"),
    ("9.99885762E+09", None),  # rounded by the spreadsheet: not exact, never guessed
])
def test_person_ids_and_nhs_numbers_as_spreadsheets_write_them(tmp_path, text, normalised):
    path = tmp_path / "w.csv"
    path.write_text(f'person_id,nhs_number\n"{text}","{text}"\n')
    w = load_withdrawals(path)
    row = w.entries_frame.row(0, named=True)
    if normalised is None:
        assert row["person_id"] == text and row["nhs_number"] == text.replace(" ", "")
    else:
        assert row["person_id"] == normalised and row["nhs_number"] == normalised


def test_withdrawal_list_of_names_without_a_date_of_birth_is_refused(tmp_path):
    from tfkit.errors import InputFileError

    path = tmp_path / "w.csv"
    path.write_text("forename,surname\nAnna,Smith\n")
    with pytest.raises(InputFileError) as err:
        load_withdrawals(path)
    assert "forename, surname and dob" in str(err.value) and "Anna" not in str(err.value)


def test_manifest_lists_no_withdrawn_identifier(demo, tmp_path):
    listing, _, _ = _pick(demo)
    result = run_extract(load_config(_config(demo, tmp_path, listing)))
    text = json.dumps(result.manifest)
    for line in listing.splitlines()[1:]:
        for value in line.split(","):
            if len(value.strip()) > 4:
                assert value.strip() not in text


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=20))
def test_withdrawal_name_rule_is_the_contracts(names):
    from tfkit.identifiers import normalise_name_part
    from tfkit.pipeline.consent import name_part

    frame = pl.DataFrame({"n": names + ["Siân", "O'Brien-Smith", "ß", "ı", "ﬁona", "Zoë"]}, schema={"n": pl.String})
    assert frame.select(name_part(pl.col("n"))).to_series().to_list() == \
        frame.select(normalise_name_part(pl.col("n"))).to_series().to_list()
