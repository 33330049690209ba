"""Synthetic, realistic English LA extracts for demos, tests and benchmarks (no real people).

    data = generate_frames(n_people=1000, seed=42, la_code="E09000031", error_rate=0.01)
    paths = write_demo("demo-out", n_people=1000, seed=42)

The same arguments always give byte-identical files. Work is vectorised (numpy draws, polars
expressions): 1,000 people take well under a second, 1,000,000 well under a minute.

What is generated
-----------------
A population of families living in the LA (the "truth"), rendered as files:

- cohort.csv: the programme cohort, `n_people` people in families of 1-8 (parents and children,
  plausible ages, 3% of later children twins of the child before, shared household postcode (0.3%
  of families with no fixed abode: ZZ99 3VZ), surnames mostly shared: 70% of mothers in couples take
  the family name, children of lone mothers carry hers or their father's, 3% double-barrelled,
  feminine forms of Polish surnames, Kaur for most Sikh women). Names drawn with Zipf-like weights
  from the lists in tfkit/demo/data/ by community (British, Irish, Eastern European,
  Pakistani/Bangladeshi, Indian, West African, Caribbean, Turkish, Somali; mix per LA; 8% of
  fathers from another community; 12% of children of other communities with British names;
  forenames fit the birth year, so Tracey is a mother and Isla a daughter). Postcodes in real sectors of the LA (Waltham Forest:
  E4, E10, E11, E17). NHS numbers: 90% present, all from the never-issued 999 range with valid
  check digits. NI numbers: people 16+ only, 88% present (50% at 16-17). UPNs: ages 4-18, 95%
  present, valid check letters, 88% with the LA's own DfE number. Sex M/F, 0.4% of children U.
  Headline problems: family-level correlated risks (crime with truancy, domestic abuse with
  children in need, worklessness with poor health), every family meeting at least two, assigned to
  eligible members (education to ages 5-16, children in need to under-18s, worklessness to 16+).
  30% of families form the comparison group ("waiting", no dates); the rest are in_progress (35%),
  completed (45%) or disengaged (20%) with start/end dates between April 2015 and the reference
  date 1 October 2019.
- Invalid cohort rows, `error_rate` of rows (default 1%, 0 for a clean cohort), one fault each in
  equal shares: nhs_check_digit, nino_format (D prefix, TN prefix, E suffix, a digit short),
  impossible_date (30/02, 31/04, 31/11, month 13), future_dob (2050s), unknown_code (Gender "X",
  Intervention Status "closed" or Comparison Group "?"), upn_check_letter, postcode_format (inward
  letter C), family_id_missing (a person in no family). Each is listed in injected_errors.csv. A further error_rate / 5 of rows (0.2% by
  default) are people registered twice: a second row in the same family with a later Person ID,
  the NHS number half the time and no NI number (kind duplicate_person; truth maps both rows to
  the same person_key). Not invalid in itself: deduplication should find them.
- police.csv: 85% of people flagged for crime, 4% of other cohort people 10+, and 1.5 times as
  many non-cohort people 10+. 30% of people have 2-4 records (a fifth of repeats are the same
  incident keyed twice). Offences from April 2015, never before the age of 10. Half the records
  have names in capitals.
- school_attendance.csv: 92% of cohort children aged 5-16 and twice as many non-cohort pupils; 2%
  dual-registered (two records). Persistent absence for the education-flagged.
- dwp.csv: 75% of cohort people 16+ flagged for worklessness, 10% of other cohort adults, 1.5 times
  as many non-cohort adults; 6% hold two claims, which start from April 2012 and never before 16.
  70% of records have names in capitals.
- Recording errors in partner records (rate per record; see noise.RECORDING_ERROR_RATES): nickname
  or spelling variant 5% (where one exists), surname change 4% of women 18+ (married or double-
  barrelled), accents dropped 60% of accented names, accents added 1%, punctuation dropped 30% of
  names with ' - or space, forename typo 3%, surname typo 3% (edit distance 1, a quarter 2, QWERTY
  neighbours), forename/surname swap 1%, forename missing 0.5%, day/month swap 2% offered (bites
  where day <= 12 and differs from the month), DOB one day off 1.5%, DOB missing 1%, DOB keyed as
  1 January 0.5%, title in the forename ("Mrs Sarah") 1% of adults, stray spaces around the
  surname 1%, sex the wrong way round 0.3%, sex missing 1%, moved postcode 6% (the family's new
  address), postcode missing 3%, lower-case 5%, unspaced 6%, NINO missing 4%, spaced "AB 12 34 56
  C" 15%, lower-case 3%, UPN missing 3%.
  `noise_scale` multiplies all these rates (0: none). Every error that changed a value is listed
  in injected_errors.csv.
- truth.csv: (source, record_id, person_key) for every record of every file, cohort included
  (record_id = Person ID). Never an input to tfkit's pipeline.
- consent_withdrawals.csv: 1% of cohort people; 45% named by person_id only, 15% by NI number only,
  15% by NHS number only, 25% by all three (10% of NI numbers spaced).
- injected_errors.csv: (source, record_id, column, kind), one line per deliberately wrong cell,
  `column` being the file's own header. Like truth.csv, for measuring tfkit, never an input.

File formats
------------
UTF-8 without BOM, LF line ends, a header row, quotes only where needed, empty field = missing.
Records of partner files are in ascending record-id order, which says nothing about who they are.

- cohort.csv: LA Code, Family ID (F + 7 digits), Person ID (8 digits), Forename, Surname,
  Date of Birth (dd/mm/yyyy), Gender (M/F/U), Postcode ("E17 4PQ"), NI Number ("QQ123456C"),
  UPN (13 characters), NHS Number (10 digits), Crime/ASB, Education, Children Who Need Help,
  Worklessness, Domestic Abuse, Health (Y/N), Intervention Status (waiting, in_progress,
  completed, disengaged), Intervention Start, Intervention End (dd/mm/yyyy or empty),
  Comparison Group (Y/N).
- police.csv: Record ID (CR + 8 digits), First Name, Last Name, DOB (yyyy-mm-dd), Sex (M/F/U),
  Post Code, Offence Date (yyyy-mm-dd), Offence Category.
- school_attendance.csv: Pupil Ref (SP + 7 digits), UPN, GIVEN_NAME, FAMILY_NAME, BIRTH_DATE
  (dd/mm/yyyy), GENDER, POSTCODE, School URN (6 digits), Sessions Possible, Sessions Missed
  (integers).
- dwp.csv: Claim Ref (CLM + 9 digits), NINO, Forename, Surname, DOB (Excel serial number, 1900
  date system: 25569 = 1970-01-01), Postcode, Benefit, Claim Start (Excel serial number).
- truth.csv: source (cohort, police, school_attendance, dwp), record_id, person_key (K + 8 digits).
- consent_withdrawals.csv: person_id, nino, nhs_number.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from tfkit.demo import extracts, noise, population, reference
from tfkit.errors import UsageError

DEFAULT_LA_CODE = "E09000031"
DEFAULT_SEED = 42
DEFAULT_ERROR_RATE = 0.01
MAX_PEOPLE = 1_000_000
# Non-cohort people in the LA from whom partner non-matches are drawn, per cohort person.
BACKGROUND_RATIO = 2.0
# People registered twice in the cohort (second Person ID), as a share of error_rate: 0.2% by default.
DUPLICATE_SHARE_OF_ERROR_RATE = 0.2

FILES = ("cohort", "police", "school_attendance", "dwp", "truth", "consent_withdrawals", "injected_errors")
HEADERS = {
    "cohort": extracts.COHORT_COLUMNS,
    "police": extracts.POLICE_COLUMNS,
    "school_attendance": extracts.SCHOOL_COLUMNS,
    "dwp": extracts.DWP_COLUMNS,
    "truth": extracts.TRUTH_COLUMNS,
    "consent_withdrawals": extracts.CONSENT_COLUMNS,
    "injected_errors": extracts.INJECTED_ERROR_COLUMNS,
}

__all__ = ["DemoData", "PROFILES", "Profile", "generate_frames", "write_demo", "FILES", "HEADERS", "REFERENCE_DATE"]
REFERENCE_DATE = population.REFERENCE_DATE

# Independent random streams per stage.
_STREAMS = {"cohort_people": 1, "background": 2, "programme": 3, "cohort": 4, "police": 5,
            "school_attendance": 6, "dwp": 7, "consent": 8}


@dataclass(frozen=True)
class Profile:
    """A population and error regime for the generator. `standard` is the documented default."""

    name: str
    community_mix: dict[str, float] | None = None  # per cent by community (else the LA's own mix)
    twin_share: float = population.TWIN_SHARE
    junior_share: float = 0.0      # boys with a father at home who carry his forename
    neighbour_share: float = 0.0   # non-cohort families living at a cohort family's postcode
    rates: dict[str, float] | None = None  # recording-error rates replacing noise.RECORDING_ERROR_RATES
    seed_offset: int = 0


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard"),
    # Linkage at its hardest in an English city: whole families at one address with twins and
    # juniors, neighbours on the same streets who are not in the cohort, a city's name mix (South
    # Asian, Polish, Romanian, Lithuanian and Turkish names, with and without diacritics, and their
    # transliteration variants as recording errors), and heavier errors: DOB wrong or missing in 8%
    # of records, moved postcodes 20%, changed and hyphenated surnames, initials only.
    "hard": Profile(
        "hard",
        community_mix={"british": 30, "pakistani_bangladeshi": 20, "indian": 10, "eastern_european": 18,
                       "turkish": 10, "somali": 4, "west_african": 4, "caribbean": 4},
        twin_share=0.10, junior_share=0.15, neighbour_share=0.30,
        rates={"dob_missing": 0.03, "dob_wrong": 0.03, "dob_day_month_swap": 0.03, "dob_one_day_off": 0.02,
               "postcode_moved": 0.20, "surname_change": 0.12, "forename_nickname": 0.10, "accent_dropped": 0.80,
               "forename_initial_only": 0.03, "forename_typo": 0.04, "surname_typo": 0.04, "name_swap": 0.02},
    ),
    # Reported, never tuned on: another seed, mix and error regime of the same kind.
    "holdout": Profile(
        "holdout",
        community_mix={"british": 38, "indian": 14, "eastern_european": 14, "west_african": 10, "caribbean": 8,
                       "turkish": 6, "irish": 6, "pakistani_bangladeshi": 4},
        twin_share=0.06, junior_share=0.10, neighbour_share=0.20,
        rates={"dob_missing": 0.04, "dob_wrong": 0.02, "dob_day_month_swap": 0.02, "postcode_moved": 0.15,
               "surname_change": 0.08, "forename_nickname": 0.07, "forename_initial_only": 0.02,
               "forename_typo": 0.035, "surname_typo": 0.035},
        seed_offset=7919,
    ),
}


@dataclass(frozen=True)
class DemoData:
    """The generated extracts, as polars DataFrames with exactly the CSV files' headers."""

    cohort: pl.DataFrame
    police: pl.DataFrame
    school_attendance: pl.DataFrame
    dwp: pl.DataFrame
    truth: pl.DataFrame
    consent_withdrawals: pl.DataFrame
    injected_errors: pl.DataFrame
    la_code: str
    seed: int
    n_people: int
    error_rate: float
    noise_scale: float = 1.0

    def frames(self) -> dict[str, pl.DataFrame]:
        return {name: getattr(self, name) for name in FILES}


def _check_arguments(n_people: int, error_rate: float, noise_scale: float, la_code: str) -> reference.LocalAuthority:
    if not 1 <= n_people <= MAX_PEOPLE:
        raise UsageError(f"--people must be between 1 and {MAX_PEOPLE:,}, got {n_people:,}",
                         hint="the 999 NHS number range holds about 909,000 valid numbers")
    if not 0 <= error_rate <= 0.5:
        raise UsageError(f"--error-rate must be between 0 and 0.5, got {error_rate}")
    if not 0 <= noise_scale <= 5:
        raise UsageError(f"--noise-scale must be between 0 and 5, got {noise_scale}")
    return reference.local_authority(la_code)


def generate_frames(
    n_people: int,
    seed: int = DEFAULT_SEED,
    la_code: str = DEFAULT_LA_CODE,
    error_rate: float = DEFAULT_ERROR_RATE,
    noise_scale: float = 1.0,
    profile: str = "standard",
) -> DemoData:
    """Generate a cohort of `n_people` and its partner extracts, deterministically from `seed`.

    `error_rate` is the share of cohort rows made invalid (0: a clean cohort). `noise_scale`
    multiplies every partner recording-error rate (0: partner records agree with the cohort's
    truth, 2: twice the documented rates), for linkage benchmarks at other difficulties.
    `profile` picks a population and error regime from PROFILES ("standard", "hard", "holdout").
    """
    la = _check_arguments(n_people, error_rate, noise_scale, la_code)
    if profile not in PROFILES:
        raise UsageError(f"unknown generator profile {profile!r}", hint=f"use one of: {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    seed += prof.seed_offset
    if prof.community_mix:
        shares = np.array(list(prof.community_mix.values()), dtype=np.float64)
        la = dataclasses.replace(la, communities=tuple(prof.community_mix), community_p=shares / shares.sum())
    base = noise.RECORDING_ERROR_RATES | noise.PROFILE_ERROR_RATES | (prof.rates or {})
    rates = {kind: min(1.0, rate * noise_scale) for kind, rate in base.items()}
    rng = {name: population.rng_for(seed, stream) for name, stream in _STREAMS.items()}
    duplicates = int(round(n_people * error_rate * DUPLICATE_SHARE_OF_ERROR_RATE)) if n_people > 1 else 0
    family = {"twin_share": prof.twin_share, "junior_share": prof.junior_share}
    cohort_people = population.people(
        n_people - duplicates, la, rng["cohort_people"], size_p=population.COHORT_FAMILY_SIZE_P, **family
    )
    n_background = max(int(n_people * BACKGROUND_RATIO), 50)
    background = population.people(
        n_background, la, rng["background"], size_p=population.BACKGROUND_FAMILY_SIZE_P,
        key_offset=n_people, family_offset=int(cohort_people["family"].max()) + 1, **family
    )
    if prof.neighbour_share > 0:
        background = _neighbours(background, cohort_people, prof.neighbour_share, population.rng_for(seed, 99))
    cohort_people = population.programme(cohort_people, rng["programme"])

    cohort, cohort_errors, ids = extracts.cohort(cohort_people, la, error_rate, duplicates, rng["cohort"])
    # Partner extracts draw from everyone in the LA: cohort people (rows 0..n-1) and others.
    everyone = pl.concat([cohort_people.select(background.columns), background])
    police, police_truth, police_errors = extracts.police(cohort_people, background, everyone, rng["police"], rates)
    school, school_truth, school_errors = extracts.school_attendance(
        cohort_people, background, everyone, rng["school_attendance"], rates
    )
    dwp, dwp_truth, dwp_errors = extracts.dwp(cohort_people, background, everyone, rng["dwp"], rates)
    cohort_truth = ids.select(pl.lit("cohort").alias("source"), pl.col("person_id").alias("record_id"), "person_key")
    truth = pl.concat([cohort_truth, police_truth, school_truth, dwp_truth])
    return DemoData(
        cohort=cohort,
        police=police,
        school_attendance=school,
        dwp=dwp,
        truth=truth,
        consent_withdrawals=extracts.consent_withdrawals(ids, rng["consent"]),
        injected_errors=pl.concat([cohort_errors, police_errors, school_errors, dwp_errors]),
        la_code=la_code,
        seed=seed,
        n_people=n_people,
        error_rate=error_rate,
        noise_scale=noise_scale,
    )


def _neighbours(background: pl.DataFrame, cohort_people: pl.DataFrame, share: float,
                rng: np.random.Generator) -> pl.DataFrame:
    """`share` of non-cohort families moved to a cohort family's postcode: next door, same street."""
    families = background["family"].unique().sort()
    chosen = families.filter(pl.Series(rng.random(families.len()) < share))
    homes = cohort_people.group_by("family").agg(pl.col("postcode").first()).sort("family")["postcode"]
    new_home = pl.DataFrame({"family": chosen, "_home": homes.gather(rng.integers(0, homes.len(), chosen.len()))})
    return (background.join(new_home, on="family", how="left", maintain_order="left")
            .with_columns(pl.coalesce("_home", "postcode").alias("postcode")).drop("_home"))


def write_demo(
    out_dir: str | os.PathLike,
    n_people: int,
    seed: int = DEFAULT_SEED,
    la_code: str = DEFAULT_LA_CODE,
    error_rate: float = DEFAULT_ERROR_RATE,
    *,
    noise_scale: float = 1.0,
    force: bool = False,
) -> dict[str, Path]:
    """Write the demo files as `<out_dir>/<name>.csv` (UTF-8, LF, quotes only where needed).

    Refuses a non-empty `out_dir` unless `force`, which replaces only the demo's own files.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory", hint="choose another --out")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(
            f"output directory {out} is not empty",
            hint="choose an empty or new directory, or pass --force to overwrite the demo files in it",
        )
    data = generate_frames(n_people, seed=seed, la_code=la_code, error_rate=error_rate, noise_scale=noise_scale)
    from tfkit.validation.quarantine import private_folder

    # Synthetic, but shaped like raw identifiers: kept as tfkit keeps real ones (0600 in a 0700 folder),
    # so a demo never teaches a habit the real thing must not have.
    private_folder(out)
    paths = {}
    for name, df in data.frames().items():
        path = out / f"{name}.csv"
        # Write beside the target, then rename: a reader never sees half a file.
        tmp = out / f".{name}.csv.{os.getpid()}.tmp"
        try:
            df.write_csv(tmp, line_terminator="\n", quote_style="necessary", null_value="")
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        paths[name] = path
    return paths
