"""What a new user met on their own files (qa8): each a defect found by hand, fixed, and kept fixed here."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tfkit.io import read_table
from tfkit.schemas import load_schema, validate

TODAY = dt.date(2026, 1, 1)
DOB = load_schema("nis").field("dob")
births = st.dates(min_value=dt.date(1930, 1, 1), max_value=dt.date(2020, 12, 31))


def _dob_only_schema(tmp_path):
    path = tmp_path / "people.toml"
    path.write_text('[schema]\nname = "people"\nversion = 1\n[fields.person_id]\ntype = "string"\nrequired = true\n'
                    '[fields.dob]\ntype = "date"\nrequired = true\n')
    return load_schema(path)


def _validated(tmp_path, texts: list[str]):
    path = tmp_path / "people.csv"
    pl.DataFrame({"person_id": [f"P{i}" for i in range(len(texts))], "dob": texts}).write_csv(path)
    return validate(read_table(path), _dob_only_schema(tmp_path), today=TODAY)


@settings(max_examples=60, deadline=None)
@given(st.lists(births, min_size=1, max_size=40), st.lists(births.filter(lambda d: d.day > 12), min_size=3, max_size=10, unique=True))
def test_a_month_first_export_never_gives_a_wrong_date_that_looks_valid(tmp_path_factory, dates, telling):
    """An analyst exported dates of birth as mm/dd/yyyy (US settings in Excel). The rows whose day
    is over 12 were refused, but 03/04/2001 was read as 3 April, silently, a wrong date passing as
    valid. Now, in a column that is mostly month-first, a date that reads both ways is refused too
    (ambiguous_date): every date that passes is the one the file meant."""
    every = dates + telling
    result = _validated(tmp_path_factory.mktemp("us"), [d.strftime("%m/%d/%Y") for d in every])
    meant = dict(zip([f"P{i}" for i in range(len(every))], every, strict=True))
    for person, dob in result.valid.select("person_id", "dob").iter_rows():
        assert dob == meant[person]
    codes = {p.code for p in result.report.problems}
    assert "month_first_date" in codes
    both_ways = [d for d in every if d.day <= 12 and d.day != d.month]
    assert ("ambiguous_date" in codes) == bool(both_ways)


@settings(max_examples=60, deadline=None)
@given(st.lists(births, min_size=1, max_size=40))
def test_a_day_first_export_is_read_as_before(tmp_path_factory, dates):
    result = _validated(tmp_path_factory.mktemp("uk"), [d.strftime("%d/%m/%Y") for d in dates])
    assert result.report.ok and result.valid["dob"].to_list() == dates


def test_one_month_first_typo_in_a_day_first_file_leaves_its_other_dates_alone(tmp_path):
    texts = ["03/02/1984", "02/13/1984", "25/12/1990", "04/05/2000"]
    result = _validated(tmp_path, texts)
    assert result.valid["person_id"].to_list() == ["P0", "P2", "P3"]
    assert [p.code for p in result.report.problems] == ["month_first_date"]


# --------------------------------------------------------------------------- a header that does not fit

from typer.testing import CliRunner  # noqa: E402

from tfkit.cli import app  # noqa: E402
from tests.test_extract_pipeline import config, demo_dir  # noqa: E402,F401  (demo inputs, keys, config)


def _cohort_copy(config, tmp_path, rename: dict[str, str], suffix: str = ".csv"):
    """The demo config pointed at a copy of its cohort with headers renamed (csv) or written as a
    workbook whose first sheet is a note (xlsx)."""
    import re

    text = config.read_text()
    original = re.search(r'path = "([^"]*cohort\.csv)"', text).group(1)
    frame = pl.read_csv(original, infer_schema_length=0).rename(rename)
    copy = tmp_path / f"my_cohort{suffix}"
    if suffix == ".csv":
        frame.write_csv(copy)
    else:
        import openpyxl

        book = openpyxl.Workbook()
        book.active.title = "Read me"
        book.active.append(["Cohort extract from the case system"])
        book.active.append(["Contact: the data team"])
        data = book.create_sheet("Data")
        data.append(frame.columns)
        for row in frame.iter_rows():
            data.append(list(row))
        book.save(copy)
    config.write_text(text.replace(original, str(copy)))
    return copy


def test_extract_names_a_renamed_column_instead_of_every_row_failed(config, tmp_path):
    """A cohort whose 'Date of Birth' header was 'Birth Dt': extract said only "every row of cohort
    failed validation" (the column unnamed) and wrote every raw row to quarantine. Now it names the
    file, the field, its aliases and the header it did not know, and writes nothing."""
    _cohort_copy(config, tmp_path, {"Date of Birth": "Birth Dt"})
    res = CliRunner().invoke(app, ["extract", "--config", str(config)])
    assert res.exit_code == 1, res.output
    assert "my_cohort.csv" in res.output and "no column for required field(s) dob" in res.output
    assert "'Date of Birth'" in res.output and "Birth Dt" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "quarantine").exists() or not any((tmp_path / "quarantine").rglob("*.csv"))
    assert not (tmp_path / "packages" / "E09000031_nis_2019-H2").exists()


def test_a_workbook_read_at_its_note_sheet_names_its_other_sheets(config, tmp_path):
    """An .xlsx whose first sheet is a 'Read me' note: every required column was reported missing
    and nothing said the extract was on another sheet. Now validate and extract name the sheets."""
    book = _cohort_copy(config, tmp_path, {}, suffix=".xlsx")
    for args in (["validate", str(book), "--schema", "nis"], ["extract", "--config", str(config)]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 1, res.output
        assert "the workbook's sheets: Read me, Data" in res.output and "sheet = \"NAME\"" in res.output
    text = config.read_text().replace(f'path = "{book}"', f'path = "{book}"\nsheet = "Data"')
    config.write_text(text)
    assert CliRunner().invoke(app, ["extract", "--config", str(config)]).exit_code == 0


def test_link_and_pseudonymise_name_the_missing_column_too(config, tmp_path):
    copy = _cohort_copy(config, tmp_path, {"Date of Birth": "Birth Dt"})
    import re

    key = re.search(r'key_file = "([^"]*demo-master\.key)"', config.read_text()).group(1)
    for args in (["link", str(copy), "--schema", "nis", "--out", str(tmp_path / "linked")],
                 ["pseudonymise", str(copy), "--schema", "nis", "--key", str(key), "--project", "nis",
                  "--out", str(tmp_path / "p.parquet"), "--quarantine", str(tmp_path / "q")]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 1, res.output
        assert "no column for required field(s) dob" in res.output and "Birth Dt" in res.output
    assert not (tmp_path / "q").exists()


# --------------------------------------------------------------------------- an auditor's tampered package


def _published(config, tmp_path):
    assert CliRunner().invoke(app, ["extract", "--config", str(config)]).exit_code == 0
    import re

    pub = re.search(r'key_file = "([^"]*demo-signing)\.key"', config.read_text()).group(1) + ".pub"
    return tmp_path / "packages" / "E09000031_nis_2019-H2", pub


def test_verify_says_the_disclosure_check_of_a_removed_person_table_fails(config, tmp_path):
    """An auditor deleted data/person.parquet: verify failed the bag checks but passed disclosure
    with "no person table: no record-level disclosure check applies", though manifest.json
    recorded a check of that table. Now disclosure fails, naming the missing table."""
    import json

    from tfkit.package.verify import verify_package

    package, pub = _published(config, tmp_path)
    (package / "data" / "person.parquet").unlink()
    check = next(c for c in verify_package(package, public_key=pub).checks if c.code == "disclosure")
    assert check.status == "fail" and "data/person.parquet" in check.message and "not in the package" in check.message
    res = CliRunner().invoke(app, ["verify", str(package), "--public-key", pub, "--json", "-"])
    assert res.exit_code == 1 and json.loads(res.stdout)["ok"] is False


def test_verify_names_each_disclosure_mismatch_once(config, tmp_path):
    """An edited person table: verify's disclosure row printed the same mismatch twice (in its
    message and again as a detail)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from tfkit.package.verify import verify_package

    package, pub = _published(config, tmp_path)
    table = pq.read_table(package / "data" / "person.parquet")
    at = table.schema.get_field_index("sex")
    pq.write_table(table.set_column(at, "sex", pc.if_else(pc.equal(table["sex"], "M"), "F", table["sex"])),
                   package / "data" / "person.parquet")
    check = next(c for c in verify_package(package, public_key=pub).checks if c.code == "disclosure")
    assert check.status == "fail"
    res = CliRunner().invoke(app, ["verify", str(package), "--public-key", pub], env={"COLUMNS": "250"})
    assert res.exit_code == 1 and res.output.count("the data gives") == 1, res.output


# --------------------------------------------------------------------------- link on one's own files


def _people_csv(path, ids: list[str]):
    n = len(ids)
    pl.DataFrame({"Client ID": ids, "Forename": (["Amira", "Tomasz", "Grace", "Oliver", "Priya", "Lukas"] * n)[:n],
                  "Surname": (["Khan", "Nowak", "Smith", "Jones", "Patel", "Kazlauskas"] * n)[:n],
                  "DOB": [f"{10 + i % 18:02d}/0{1 + i % 9}/19{60 + i % 12}" for i in range(n)],
                  "Postcode": [f"E1{i % 7} {i % 9}AB" for i in range(n)]}).write_csv(path)
    return path


def test_link_names_the_lines_of_repeated_ids(tmp_path):
    """A cohort with three people exported twice (the same Client ID on two lines): with --clean the
    message named neither the file nor a line; without it the link ran silently, and the outputs
    named two records by one id. Now --clean names the file, the column and the lines (exit 2), and
    a source not declared clean gets a warning naming them."""
    ids = [f"C{i}" for i in range(12)]
    cohort = _people_csv(tmp_path / "cohort.csv", ids + ids[:3])
    other = _people_csv(tmp_path / "housing.csv", [f"H{i}" for i in range(12)])
    args = ["link", str(cohort), str(other), "--out", str(tmp_path / "out"), "--map", "Client ID=record_id",
            "--map", "Forename=forename", "--map", "Surname=surname", "--map", "DOB=dob", "--map", "Postcode=postcode"]
    res = CliRunner().invoke(app, [*args, "--clean", "cohort"])
    assert res.exit_code == 2, res.output
    assert "cohort.csv" in res.output and "lines 2, 3, 4, 14, 15" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "3 records share" not in res.stderr and "6 records share a record_id" in res.stderr
    assert "lines 2, 3, 4, 14, 15" in res.stderr and "C0" not in res.stderr  # lines, never the ids


def test_a_rerun_into_the_same_folder_leaves_no_summary_or_metrics_of_the_last_run(tmp_path, monkeypatch):
    """A linker ran with --truth, then again without into the same --out: metrics.json of the first
    run stayed beside the second run's pairs, as if it measured them. And a run stopped while
    writing left the last run's summary.json beside half-new outputs. Now summary.json is written
    last, and a rerun removes the last run's summary and metrics first."""
    ids = [f"C{i}" for i in range(12)]
    cohort = _people_csv(tmp_path / "cohort.csv", ids)
    other = _people_csv(tmp_path / "housing.csv", [f"H{i}" for i in range(12)])
    for path, prefix in ((cohort, "C"), (other, "H")):
        frame = pl.read_csv(path, infer_schema_length=0)
        frame.with_columns(pl.col("Client ID").str.replace(prefix, "K").alias("truth")).write_csv(path)
    out = tmp_path / "out"
    args = ["link", str(cohort), str(other), "--out", str(out), "--map", "Client ID=record_id", "--map",
            "Forename=forename", "--map", "Surname=surname", "--map", "DOB=dob", "--map", "Postcode=postcode"]
    assert CliRunner().invoke(app, [*args, "--truth", "truth"]).exit_code == 0
    assert (out / "metrics.json").exists() and (out / "summary.json").exists()
    assert CliRunner().invoke(app, args).exit_code == 0
    assert not (out / "metrics.json").exists() and (out / "summary.json").exists()

    import tfkit.linkage.outputs as outputs

    def stopped(*_args, **_kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "write_review_folder", stopped)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert not (out / "summary.json").exists()


def test_a_malformed_local_master_is_named_before_spark_starts():
    """master = "local[x]" (a typo for local[*]): Spark started the JVM for 17 s and failed with
    "An error occurred while calling None.org.apache.spark.api.java.JavaSparkContext". Now the URL
    is checked first: one message naming it and the form to write, exit 2."""
    import pytest

    from tfkit.engine.spark.session import SparkUnavailable, _check_master

    for good in ("local", "local[*]", "local[2]", "local[2,3]", "local[*, 4]", "local-cluster[2,1,1024]"):
        _check_master(good)
    for bad in ("local[x]", "local[]", "local2", "localhost"):
        with pytest.raises(SparkUnavailable) as err:
            _check_master(bad)
        assert err.value.exit_code == 2 and repr(bad) in err.value.message and "local[*]" in err.value.hint


def test_verify_and_audit_verify_json_say_ok_first(config, tmp_path):
    """A cron job reading the first key of `verify --json -` and `audit verify --json -` found
    "package" and "path": the README says every result object opens with "ok". Now they do."""
    import json

    package, pub = _published(config, tmp_path)
    for args in (["verify", str(package), "--public-key", pub], ["audit", "verify", "--config", str(config)]):
        res = CliRunner().invoke(app, [*args, "--json", "-"])
        assert res.exit_code == 0, res.output
        result = json.loads(res.stdout)
        assert list(result)[0] == "ok" and result["ok"] is True


# --------------------------------------------------------------------------- cron


def test_sigterm_while_publishing_leaves_no_raw_rows_and_no_staging(config, tmp_path, monkeypatch):
    """A cron job's `timeout` (or a service stopping) sent SIGTERM while extract was publishing:
    Python's default ended the process at once, leaving the quarantine and clerical-review files
    (raw rows) with no package and no ledger entry, out of retention's reach, and a staging folder.
    Now SIGTERM is raised like Ctrl-C: the clean-up runs, nothing raw is left, exit 143."""
    import os
    import signal

    import tfkit.package.publish as publish
    from tfkit.cli import raise_on_sigterm

    before = signal.getsignal(signal.SIGTERM)
    raise_on_sigterm()
    try:
        real = publish.publish

        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return real(*args, **kwargs)

        monkeypatch.setattr(publish, "publish", killed)
        res = CliRunner().invoke(app, ["extract", "--config", str(config)])
    finally:
        signal.signal(signal.SIGTERM, before)
    assert res.exit_code == 143 and "terminated" in res.output, res.output
    left = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".csv", ".xlsx", ".parquet")]
    assert left == [], left
    assert not (tmp_path / "packages" / "E09000031_nis_2019-H2").exists()
    assert not [p for p in (tmp_path / "packages").iterdir() if p.name.startswith(".tmp-")]


def test_a_mistyped_schema_name_in_the_config_names_the_file_and_key(config):
    """schema = "NIS" in tfkit.toml: the error said "unknown schema 'NIS'" without the config file
    or which [[sources]] table, unlike every other config mistake. Now it names both."""
    config.write_text(config.read_text().replace('schema = "nis"', 'schema = "NIS"', 1))
    res = CliRunner().invoke(app, ["extract", "--config", str(config)])
    assert res.exit_code == 2 and config.name in res.output and "sources[1].schema" in res.output, res.output
    assert "did you mean 'nis'?" in res.output
