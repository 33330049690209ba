"""The synthetic data generator: determinism, identifier validity, formats, truth and error kinds."""

from __future__ import annotations

import json

import polars as pl
import pytest
from stdnum.gb import nhs as stdnum_nhs
from stdnum.gb import upn as stdnum_upn
from typer.testing import CliRunner

from tfkit import demo
from tfkit.cli import app
from tfkit.demo import noise
from tfkit.errors import UsageError
from tfkit.identifiers import UPN_LA_NUMBERS, nino_scalar, postcode_scalar

SOURCES = {"police": "Record ID", "school_attendance": "Pupil Ref", "dwp": "Claim Ref"}


@pytest.fixture(scope="module")
def clean():
    return demo.generate_frames(2000, seed=7, error_rate=0)


@pytest.fixture(scope="module")
def dirty():
    return demo.generate_frames(2000, seed=7, error_rate=0.05)


def test_same_arguments_give_byte_identical_files(tmp_path):
    a = demo.write_demo(tmp_path / "a", 400, seed=3)
    b = demo.write_demo(tmp_path / "b", 400, seed=3)
    c = demo.write_demo(tmp_path / "c", 400, seed=4)
    assert set(a) == set(demo.FILES)
    for name in demo.FILES:
        assert a[name].read_bytes() == b[name].read_bytes(), name
    assert a["cohort"].read_bytes() != c["cohort"].read_bytes()


def test_headers_are_exactly_the_documented_ones(tmp_path):
    paths = demo.write_demo(tmp_path, 200)
    for name, path in paths.items():
        header = path.read_text(encoding="utf-8").splitlines()[0]
        assert header.split(",") == list(demo.HEADERS[name]), name
    assert list(demo.HEADERS["cohort"][:6]) == [
        "LA Code", "Family ID", "Person ID", "Forename", "Surname", "Date of Birth"]


def test_date_formats(clean):
    assert clean.cohort["Date of Birth"].str.contains(r"^\d{2}/\d{2}/\d{4}$").all()
    starts = clean.cohort["Intervention Start"].drop_nulls()
    assert starts.str.contains(r"^\d{2}/\d{2}/\d{4}$").all()
    assert clean.police["DOB"].drop_nulls().str.contains(r"^\d{4}-\d{2}-\d{2}$").all()
    assert clean.police["Offence Date"].str.contains(r"^\d{4}-\d{2}-\d{2}$").all()
    assert clean.school_attendance["BIRTH_DATE"].drop_nulls().str.contains(r"^\d{2}/\d{2}/\d{4}$").all()
    serials = clean.dwp["DOB"].drop_nulls()
    assert serials.dtype.is_integer()
    # Excel serials of plausible birth dates (1930 .. 2019)
    assert serials.min() > 10959 and serials.max() < 43739


def test_clean_cohort_nhs_numbers_are_valid_999_range(clean):
    nhs = clean.cohort["NHS Number"].drop_nulls().to_list()
    assert len(nhs) > 0.8 * clean.cohort.height
    assert len(set(nhs)) == len(nhs)
    assert all(n.startswith("999") and stdnum_nhs.is_valid(n) for n in nhs)


def test_clean_cohort_upns_and_ninos_are_valid_and_age_appropriate(clean):
    df = clean.cohort.with_columns(
        pl.col("Date of Birth").str.to_date("%d/%m/%Y").alias("dob")
    )
    age_days = (pl.lit(demo.REFERENCE_DATE) - pl.col("dob")).dt.total_days()
    upns = df.filter(pl.col("UPN").is_not_null())
    assert upns.height > 100
    assert all(stdnum_upn.is_valid(u) for u in upns["UPN"])
    assert all(int(u[1:4]) in UPN_LA_NUMBERS for u in upns["UPN"])
    assert upns.select((age_days >= 4 * 365) & (age_days < 19 * 366)).to_series().all()
    ninos = df.filter(pl.col("NI Number").is_not_null())
    assert all(nino_scalar(n) == n for n in ninos["NI Number"])
    assert ninos.select(age_days >= 16 * 365).to_series().all()
    assert ninos["NI Number"].n_unique() == ninos.height
    # some adults have no NI number recorded
    adults = df.filter(age_days >= 18 * 366)
    assert 0 < adults["NI Number"].null_count() < adults.height * 0.3


def test_clean_cohort_codes_and_postcodes(clean):
    c = clean.cohort
    assert set(c["Gender"]) <= {"M", "F", "U"}
    assert set(c["Intervention Status"]) <= {"waiting", "in_progress", "completed", "disengaged"}
    for col in ("Crime/ASB", "Education", "Children Who Need Help", "Worklessness", "Domestic Abuse", "Health",
                "Comparison Group"):
        assert set(c[col]) <= {"Y", "N"}, col
    assert all(postcode_scalar(p) == p for p in c["Postcode"])
    districts = {p.split(" ")[0] for p in c["Postcode"]}
    assert districts <= {"E4", "E10", "E11", "E17", "ZZ99"}  # ZZ99 3VZ: no fixed abode
    assert c["Person ID"].n_unique() == c.height
    assert (c["LA Code"] == "E09000031").all()


def test_families_are_plausible(clean):
    c = clean.cohort
    fam = c.group_by("Family ID").agg(
        size=pl.len(), postcodes=pl.col("Postcode").n_unique(), surnames=pl.col("Surname").n_unique(),
        comparison=pl.col("Comparison Group").n_unique(), status=pl.col("Intervention Status").first(),
        problems=pl.sum_horizontal(
            pl.col(h).eq("Y").any() for h in ("Crime/ASB", "Education", "Children Who Need Help", "Worklessness",
                                              "Domestic Abuse", "Health")),
    )
    assert fam["size"].max() <= 8
    assert (fam["postcodes"] == 1).all()  # a household shares its postcode
    assert (fam["comparison"] == 1).all()
    assert (fam["problems"] >= 2).all()  # programme families meet two or more headline problems
    share_comparison = (fam["status"] == "waiting").mean()
    assert 0.2 < share_comparison < 0.4
    multi = fam.filter(pl.col("size") > 1)
    assert (multi["surnames"] == 1).mean() > 0.4


def test_truth_covers_every_record_once(clean):
    t = clean.truth
    assert t.select(pl.struct("source", "record_id").is_duplicated().any()).item() is False
    assert set(t.filter(pl.col("source") == "cohort")["record_id"]) == set(clean.cohort["Person ID"])
    for source, id_col in SOURCES.items():
        frame = getattr(clean, source)
        assert frame[id_col].n_unique() == frame.height
        assert set(t.filter(pl.col("source") == source)["record_id"]) == set(frame[id_col])
    cohort_keys = set(t.filter(pl.col("source") == "cohort")["person_key"])
    for source in SOURCES:
        keys = t.filter(pl.col("source") == source)["person_key"]
        in_cohort = keys.is_in(list(cohort_keys)).mean()
        assert 0.2 < in_cohort < 0.6, source  # matches and non-matches
    police_keys = t.filter(pl.col("source") == "police")["person_key"]
    assert police_keys.is_duplicated().any()  # within-source duplicates


def test_partner_records_carry_every_documented_error_kind(clean):
    kinds = set(clean.injected_errors.filter(pl.col("source") != "cohort")["kind"])
    assert kinds == set(noise.RECORDING_ERROR_RATES)
    assert clean.injected_errors.filter(pl.col("source") == "cohort").height == 0
    # and they are visible in the files themselves
    police_pc = clean.police["Post Code"].drop_nulls()
    assert police_pc.str.contains(r"[a-z]").any()
    assert police_pc.str.contains(r"^[A-Za-z0-9]+$").any()
    assert clean.dwp["NINO"].drop_nulls().str.contains(r"^[A-Z]{2} \d{2} \d{2} \d{2} [A-D]$").any()
    assert clean.dwp["Forename"].drop_nulls().str.contains(r"^[A-Z' -]+$").mean() > 0.5


def test_nicknames_and_day_month_swaps_are_real(clean):
    truth = clean.truth
    cohort = clean.cohort.join(
        truth.filter(pl.col("source") == "cohort"), left_on="Person ID", right_on="record_id")
    police = clean.police.join(
        truth.filter(pl.col("source") == "police"), left_on="Record ID", right_on="record_id")
    pairs = police.join(cohort, on="person_key")
    errs = clean.injected_errors.filter(pl.col("source") == "police")
    def with_kind(kind):
        return pairs.filter(pl.col("Record ID").is_in(errs.filter(pl.col("kind") == kind)["record_id"].to_list()))

    nick = with_kind("forename_nickname")
    variants = noise.reference.nicknames()
    ok = [
        f2.lower() in {v.lower() for v in variants.get(f1, [])} | {f1.lower()}
        for f1, f2 in zip(nick["Forename"], nick["First Name"], strict=True) if f2 is not None
    ]
    assert ok and sum(ok) / len(ok) > 0.7  # later typos may alter a few
    other_dob_errors = errs.filter(pl.col("kind").is_in(["dob_one_day_off", "dob_first_of_january"]))["record_id"]
    swap = with_kind("dob_day_month_swap").filter(~pl.col("Record ID").is_in(other_dob_errors.to_list()))
    assert swap.height > 0
    for iso, uk in zip(swap["DOB"], swap["Date of Birth"], strict=True):
        if iso is None:
            continue
        y, m, d = iso.split("-")
        dd, mm, yy = uk.split("/")
        assert (y, m, d) == (yy, dd, mm)  # ISO yyyy-mm-dd holds the UK day as the month


def test_error_rate_breaks_the_documented_share_of_cohort_rows(dirty):
    errs = dirty.injected_errors.filter((pl.col("source") == "cohort") & (pl.col("kind") != "duplicate_person"))
    assert errs.height == 100  # 5% of 2000, one fault per row
    assert errs["record_id"].n_unique() == 100
    assert set(errs["kind"]) == set(demo.extracts.COHORT_ERROR_KINDS)
    bad = dirty.cohort.join(errs, left_on="Person ID", right_on="record_id")
    nhs = bad.filter(pl.col("kind") == "nhs_check_digit")["NHS Number"]
    assert not any(stdnum_nhs.is_valid(n) for n in nhs)
    upn = bad.filter(pl.col("kind") == "upn_check_letter")["UPN"]
    assert not any(stdnum_upn.is_valid(u) for u in upn)
    nino = bad.filter(pl.col("kind") == "nino_format")["NI Number"]
    assert all(nino_scalar(n) is None for n in nino)
    pcs = bad.filter(pl.col("kind") == "postcode_format")["Postcode"]
    assert all(postcode_scalar(p) is None for p in pcs)
    future = bad.filter(pl.col("kind") == "future_dob")["Date of Birth"]
    assert all(int(d[-4:]) >= 2050 for d in future)
    assert bad.filter(pl.col("kind") == "family_id_missing")["Family ID"].null_count() > 0
    impossible = bad.filter(pl.col("kind") == "impossible_date")["Date of Birth"]
    assert impossible.str.to_date("%d/%m/%Y", strict=False).null_count() == impossible.len()


def test_consent_withdrawals_name_cohort_people(clean):
    cw = clean.consent_withdrawals
    assert cw.columns == ["person_id", "nino", "nhs_number"]
    assert cw.height == 20
    assert cw.select(pl.any_horizontal(pl.all().is_not_null())).to_series().all()
    assert set(cw["person_id"].drop_nulls()) <= set(clean.cohort["Person ID"])
    assert set(cw["nhs_number"].drop_nulls()) <= set(clean.cohort["NHS Number"].drop_nulls())
    ninos = {n.replace(" ", "") for n in cw["nino"].drop_nulls()}
    assert ninos <= set(clean.cohort["NI Number"].drop_nulls())
    assert cw["person_id"].null_count() > 0  # some name a person by another identifier only


def test_bad_arguments_are_usage_errors(tmp_path):
    with pytest.raises(UsageError):
        demo.generate_frames(0)
    with pytest.raises(UsageError):
        demo.generate_frames(10, la_code="E99999999")
    with pytest.raises(UsageError):
        demo.generate_frames(10, error_rate=2)
    (tmp_path / "x.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty"):
        demo.write_demo(tmp_path, 10)


def test_cli_writes_files_and_refuses_non_empty_dir(tmp_path):
    runner = CliRunner()
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo-data", "--out", str(out), "--people", "150", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.csv" for n in demo.FILES)
    assert "cohort.csv" in result.output
    again = runner.invoke(app, ["demo-data", "--out", str(out), "--people", "150"])
    assert again.exit_code == 2
    assert "not empty" in again.output and "--force" in again.output
    quiet = runner.invoke(
        app, ["--quiet", "demo-data", "--out", str(out), "--people", "150", "--seed", "5", "--force",
              "--error-rate", "0", "--la-code", "E08000025"]
    )
    assert quiet.exit_code == 0
    assert quiet.output == ""
    assert (out / "cohort.csv").read_text().splitlines()[1].startswith("E08000025,")
    machine = runner.invoke(app, ["demo-data", "--out", str(tmp_path / "j"), "--people", "50", "--json", "-"])
    assert machine.exit_code == 0
    summary = json.loads(machine.stdout)
    assert summary["files"]["cohort"]["rows"] == 50 and summary["seed"] == 42
    bad = runner.invoke(app, ["demo-data", "--out", str(tmp_path / "new"), "--la-code", "nope"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_forenames_fit_the_family_and_the_era(clean):
    c = clean.cohort.with_columns(pl.col("Date of Birth").str.to_date("%d/%m/%Y").dt.year().alias("born"))
    repeats = c.group_by("Family ID", "Forename").len().filter(pl.col("len") > 1)
    assert repeats.height <= 2  # siblings and parents rarely share a forename
    era = pl.read_csv(demo.reference.resources.files("tfkit.demo").joinpath("data", "forenames.csv").open("rb"))
    def only(e):
        return set(era.filter(pl.col("era") == e)["name"]) - set(era.filter(pl.col("era") != e)["name"])

    old_only, new_only = only("before_1998"), only("from_1998")
    assert not c.filter(pl.col("Forename").is_in(list(old_only)) & (pl.col("born") >= 1998)).height
    assert not c.filter(pl.col("Forename").is_in(list(new_only)) & (pl.col("born") < 1998)).height


def test_error_log_names_file_columns(clean):
    for source, frame in (("police", clean.police), ("school_attendance", clean.school_attendance),
                          ("dwp", clean.dwp)):
        cols = set(clean.injected_errors.filter(pl.col("source") == source)["column"])
        assert cols <= set(frame.columns), source


def test_tiny_cohorts_work():
    for n in (1, 2, 7):
        data = demo.generate_frames(n, seed=n)
        assert data.cohort.height == n
        assert data.consent_withdrawals.height == 1


def test_some_cohort_people_are_registered_twice(dirty, clean):
    assert dirty.cohort.height == 2000
    dups = dirty.injected_errors.filter(pl.col("kind") == "duplicate_person")
    assert dups.height == 20  # error_rate / 5
    keys = dirty.truth.filter(pl.col("source") == "cohort")
    twice = keys.filter(pl.col("person_key").is_duplicated())
    assert set(dups["record_id"]) <= set(twice["record_id"])
    assert twice.height == 40
    assert clean.truth.filter(pl.col("source") == "cohort")["person_key"].is_duplicated().sum() == 0


def test_events_happen_at_plausible_ages(clean):
    p = clean.police.drop_nulls("DOB").select(
        (pl.col("Offence Date").str.to_date() - pl.col("DOB").str.to_date()).dt.total_days() / 365.25
    ).to_series()
    assert p.min() > 9.0  # criminal responsibility from 10 (a day/month swap moves DOB < 1 year)
    d = clean.dwp.drop_nulls("DOB").select((pl.col("Claim Start") - pl.col("DOB")) / 365.25).to_series()
    assert d.min() > 14.9


def test_noise_scale_zero_gives_partner_records_that_agree_with_the_cohort():
    data = demo.generate_frames(300, seed=9, error_rate=0, noise_scale=0)
    assert data.injected_errors.height == 0
    truth = data.truth
    cohort = data.cohort.join(truth, left_on="Person ID", right_on="record_id")
    police = data.police.join(truth, left_on="Record ID", right_on="record_id").join(cohort, on="person_key")
    assert police.height > 0
    assert (police["Last Name"].str.to_lowercase() == police["Surname"].str.to_lowercase()).all()
    assert (police["Post Code"] == police["Postcode"]).all()
    with pytest.raises(UsageError):
        demo.generate_frames(10, noise_scale=-1)


def test_nhs_999_capacity_and_small_draws():
    from tfkit.demo import population

    assert len(population._nhs_pool()) == population.NHS_999_CAPACITY
    small = population.nhs_numbers(500, population.rng_for(1, 1))
    assert len(set(small)) == 500 and all(stdnum_nhs.is_valid(str(n)) for n in small)


def test_cli_defaults_match_the_generator():
    from tfkit import demo
    from tfkit.commands import demo as command

    assert (command.DEFAULT_SEED, command.DEFAULT_LA_CODE, command.DEFAULT_ERROR_RATE) == (
        demo.DEFAULT_SEED, demo.DEFAULT_LA_CODE, demo.DEFAULT_ERROR_RATE)


def test_hard_profile_has_twins_juniors_neighbours_and_heavier_errors():
    from tfkit.demo import generate_frames

    standard = generate_frames(3000, seed=5)
    hard = generate_frames(3000, seed=5, profile="hard")
    kinds = hard.injected_errors.group_by("kind").len()
    counts = dict(zip(kinds["kind"], kinds["len"]))
    assert counts.get("forename_initial_only", 0) > 0 and counts.get("dob_wrong", 0) > 0
    assert "forename_initial_only" not in set(standard.injected_errors["kind"])
    moved = hard.injected_errors.filter(pl.col("kind") == "postcode_moved").height
    assert moved > 2 * standard.injected_errors.filter(pl.col("kind") == "postcode_moved").height
    # Juniors: a boy who shares his father's forename, surname and address.
    cohort = hard.cohort
    same = cohort.group_by("Family ID", "Forename", "Surname").len().filter(pl.col("len") > 1)
    assert same.height > 0
    # The holdout profile is another population (different seed offset and mix).
    holdout = generate_frames(3000, seed=5, profile="holdout")
    assert not holdout.cohort["Forename"].equals(hard.cohort["Forename"])
