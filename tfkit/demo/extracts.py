"""Render the population as the files an LA and its partners would send: cohort, police, school
attendance, DWP, consent withdrawals, and the ground truth linking every record to a person."""

from __future__ import annotations

import numpy as np
import polars as pl

from tfkit.demo import noise, population, reference
from tfkit.identifiers import UPN_ALPHABET

COHORT_COLUMNS = (
    "LA Code", "Family ID", "Person ID", "Forename", "Surname", "Date of Birth", "Gender", "Postcode",
    "NI Number", "UPN", "NHS Number", "Crime/ASB", "Education", "Children Who Need Help", "Worklessness",
    "Domestic Abuse", "Health", "Intervention Status", "Intervention Start", "Intervention End",
    "Comparison Group",
)
POLICE_COLUMNS = ("Record ID", "First Name", "Last Name", "DOB", "Sex", "Post Code", "Offence Date", "Offence Category")
SCHOOL_COLUMNS = (
    "Pupil Ref", "UPN", "GIVEN_NAME", "FAMILY_NAME", "BIRTH_DATE", "GENDER", "POSTCODE", "School URN",
    "Sessions Possible", "Sessions Missed",
)
DWP_COLUMNS = ("Claim Ref", "NINO", "Forename", "Surname", "DOB", "Postcode", "Benefit", "Claim Start")
TRUTH_COLUMNS = ("source", "record_id", "person_key")
CONSENT_COLUMNS = ("person_id", "nino", "nhs_number")
INJECTED_ERROR_COLUMNS = ("source", "record_id", "column", "kind")

# How complete the LA's own identifiers are in the cohort.
COHORT_NHS_COVERAGE = 0.90
COHORT_NINO_COVERAGE_ADULT = 0.88  # 18+
COHORT_NINO_COVERAGE_16_17 = 0.50
COHORT_UPN_COVERAGE = 0.95

# Invalid cohort rows, each with one of these faults, in equal shares of `error_rate`.
COHORT_ERROR_KINDS = (
    "nhs_check_digit", "nino_format", "impossible_date", "future_dob", "unknown_code",
    "upn_check_letter", "postcode_format", "family_id_missing",
)

PROBLEM_HEADERS = {
    "problem_crime": "Crime/ASB",
    "problem_education": "Education",
    "problem_children_in_need": "Children Who Need Help",
    "problem_worklessness": "Worklessness",
    "problem_domestic_abuse": "Domestic Abuse",
    "problem_health": "Health",
}

OFFENCE_CATEGORIES = {
    "Anti-social behaviour": 0.24, "Violence against the person": 0.20, "Theft": 0.14,
    "Criminal damage and arson": 0.10, "Public order offences": 0.08, "Drug offences": 0.08,
    "Burglary": 0.05, "Vehicle offences": 0.05, "Possession of weapons": 0.03, "Robbery": 0.03,
}
BENEFITS = {
    "Universal Credit": 0.38, "Employment and Support Allowance": 0.18, "Jobseeker's Allowance": 0.12,
    "Income Support": 0.10, "Housing Benefit": 0.10, "Personal Independence Payment": 0.07,
    "Carer's Allowance": 0.05,
}

_EXCEL_EPOCH_OFFSET = 25569  # Excel serial of 1970-01-01 (1900 date system)


def uk_date(expr: pl.Expr) -> pl.Expr:
    return expr.dt.strftime("%d/%m/%Y")


def iso_date(expr: pl.Expr) -> pl.Expr:
    return expr.dt.strftime("%Y-%m-%d")


def excel_serial(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Int32) + _EXCEL_EPOCH_OFFSET


def yes_no(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr).then(pl.lit("Y")).otherwise(pl.lit("N"))


def unique_ids(k: int, digits: int, prefix: str, rng: np.random.Generator) -> pl.Series:
    """k distinct random identifiers like PREFIX + `digits` digits (no leading zero), ascending."""
    low = 10 ** (digits - 1)
    numbers = np.sort(rng.choice(9 * low, size=k, replace=False)) + low
    return pl.select(pl.lit(prefix) + pl.Series(numbers).cast(pl.String)).to_series()


# --------------------------------------------------------------------------- cohort


def cohort(
    people: pl.DataFrame, la: reference.LocalAuthority, error_rate: float, duplicates: int, rng: np.random.Generator
):
    """The LA's programme cohort as exported, and the log of deliberately invalid cells.

    `duplicates` people are registered twice: a second row, later Person ID, same family, with the
    NHS number half the time and no NI number (a person appearing twice in the case system)."""
    n = people.height
    age = people["age"].to_numpy()
    nhs_shown = rng.random(n) < COHORT_NHS_COVERAGE
    if nhs_shown.sum() > population.nhs_capacity():
        keep = rng.choice(np.flatnonzero(nhs_shown), size=population.nhs_capacity(), replace=False)
        nhs_shown = np.zeros(n, dtype=bool)
        nhs_shown[keep] = True
    nhs = population.sparse_strings(
        n, nhs_shown, pl.Series(population.nhs_numbers(int(nhs_shown.sum()), rng)).cast(pl.String)
    )
    nino_p = np.where(age >= 18, COHORT_NINO_COVERAGE_ADULT, COHORT_NINO_COVERAGE_16_17)
    nino_shown = rng.random(n) < nino_p
    upn_shown = rng.random(n) < COHORT_UPN_COVERAGE

    fam_ids = people["family"].unique(maintain_order=True)
    family_id = pl.DataFrame({"family": fam_ids, "family_id": unique_ids(len(fam_ids), 7, "F", rng)})
    person_ids = unique_ids(n + duplicates, 8, "", rng)
    people = people.with_columns(
        person_id=person_ids.head(n),
        nhs_number=nhs,
        nino=pl.when(pl.Series(nino_shown)).then(pl.col("nino")),
        upn=pl.when(pl.Series(upn_shown)).then(pl.col("upn")),
        duplicate=pl.lit(False),
    ).join(family_id, on="family", how="left", maintain_order="left")
    if duplicates:
        again = people[np.sort(rng.choice(n, size=duplicates, replace=False))].with_columns(
            person_id=person_ids.tail(duplicates),
            nhs_number=pl.when(pl.Series(rng.random(duplicates) < 0.5)).then(pl.col("nhs_number")),
            nino=pl.lit(None, dtype=pl.String),
            duplicate=pl.lit(True),
        )
        # The second registration sits with its family, after the members registered first.
        people = pl.concat([people, again]).sort("family", "duplicate", "member", maintain_order=True)

    out = people.select(
        pl.lit(la.la_code).alias("LA Code"),
        pl.col("family_id").alias("Family ID"),
        pl.col("person_id").alias("Person ID"),
        pl.col("forename").alias("Forename"),
        pl.col("surname").alias("Surname"),
        uk_date(pl.col("dob")).alias("Date of Birth"),
        pl.col("sex").alias("Gender"),
        pl.col("postcode").alias("Postcode"),
        pl.col("nino").alias("NI Number"),
        pl.col("upn").alias("UPN"),
        pl.col("nhs_number").alias("NHS Number"),
        *[yes_no(pl.col(p)).alias(h) for p, h in PROBLEM_HEADERS.items()],
        pl.col("intervention_status").alias("Intervention Status"),
        uk_date(pl.col("intervention_start")).alias("Intervention Start"),
        uk_date(pl.col("intervention_end")).alias("Intervention End"),
        yes_no(pl.col("comparison_group")).alias("Comparison Group"),
    )
    out, errors = _invalid_cohort_rows(out, error_rate, rng)
    duplicate_log = people.filter("duplicate").select(
        pl.lit("cohort").alias("source"), pl.col("person_id").alias("record_id"),
        pl.lit("Person ID").alias("column"), pl.lit("duplicate_person").alias("kind"),
    )
    errors = pl.concat([errors, duplicate_log])
    return out, errors, people.select("person_key", "person_id", "nino", "nhs_number")


def _invalid_cohort_rows(df: pl.DataFrame, error_rate: float, rng: np.random.Generator):
    """Break `error_rate` of the rows, one fault each, for validation to catch."""
    n = df.height
    k = int(round(n * error_rate))
    empty = pl.DataFrame(schema={c: pl.String for c in INJECTED_ERROR_COLUMNS})
    if k == 0:
        return df, empty
    used = np.zeros(n, dtype=bool)
    u = rng.random(n)
    logs = []
    eligible = {
        "nhs_check_digit": df["NHS Number"].is_not_null().to_numpy(),
        "nino_format": df["NI Number"].is_not_null().to_numpy(),
        "upn_check_letter": df["UPN"].is_not_null().to_numpy(),
    }
    per_kind = np.diff(np.linspace(0, k, len(COHORT_ERROR_KINDS) + 1).round().astype(int))
    masks = {}
    for kind, count in zip(COHORT_ERROR_KINDS, per_kind, strict=True):
        pool = np.flatnonzero(eligible.get(kind, np.ones(n, dtype=bool)) & ~used)
        rows = rng.choice(pool, size=min(count, len(pool)), replace=False)
        used[rows] = True
        m = np.zeros(n, dtype=bool)
        m[rows] = True
        masks[kind] = pl.Series(m)
    uu = pl.Series(u)
    nhs, nino, upn, dob, pc = (pl.col(c) for c in ("NHS Number", "NI Number", "UPN", "Date of Birth", "Postcode"))
    bump = (uu * 9).floor().cast(pl.Int32) + 1
    nhs_bad = nhs.str.slice(0, 9) + ((nhs.str.slice(9, 1).cast(pl.Int32) + bump) % 10).cast(pl.String)
    nino_bad = (
        pl.when(uu < 0.25).then(pl.lit("D") + nino.str.slice(1))  # D is never a prefix letter
        .when(uu < 0.5).then(pl.lit("TN") + nino.str.slice(2))  # never-issued prefix
        .when(uu < 0.75).then(nino.str.slice(0, 8) + pl.lit("E"))  # suffix beyond A-D
        .otherwise(nino.str.slice(0, 7) + nino.str.slice(8, 1))  # a digit short
    )
    impossible = pl.concat_str(
        [
            pl.when(uu < 0.4).then(pl.lit("30/02")).when(uu < 0.6).then(pl.lit("31/04"))
            .when(uu < 0.8).then(pl.lit("31/11")).otherwise(pl.lit("12/13")),
            dob.str.slice(6, 4),
        ],
        separator="/",
    )
    future = dob.str.slice(0, 6) + (2050 + (uu * 10).floor().cast(pl.Int32)).cast(pl.String)
    letter_idx = pl.col("UPN").str.slice(0, 1).replace_strict(
        {c: i for i, c in enumerate(UPN_ALPHABET)}, default=0, return_dtype=pl.Int32
    )
    upn_bad = ((letter_idx + bump) % 23).replace_strict(
        dict(enumerate(UPN_ALPHABET)), return_dtype=pl.String
    ) + upn.str.slice(1)
    pc_bad = pc.str.slice(0, pc.str.len_chars() - 1) + pl.lit("C")  # inward letters never C
    code_col = np.array(["Gender", "Intervention Status", "Comparison Group"])[(u * 3).astype(int) % 3]
    unknown = masks["unknown_code"].to_numpy()
    changes = [
        ("nhs_check_digit", "NHS Number", masks["nhs_check_digit"], nhs_bad),
        ("nino_format", "NI Number", masks["nino_format"], nino_bad),
        ("impossible_date", "Date of Birth", masks["impossible_date"], impossible),
        ("future_dob", "Date of Birth", masks["future_dob"] & ~masks["impossible_date"], future),
        ("upn_check_letter", "UPN", masks["upn_check_letter"], upn_bad),
        ("postcode_format", "Postcode", masks["postcode_format"], pc_bad),
        ("unknown_code", "Gender", pl.Series(unknown & (code_col == "Gender")), pl.lit("X")),
        ("unknown_code", "Intervention Status", pl.Series(unknown & (code_col == "Intervention Status")),
         pl.lit("closed")),
        ("unknown_code", "Comparison Group", pl.Series(unknown & (code_col == "Comparison Group")), pl.lit("?")),
        ("family_id_missing", "Family ID", masks["family_id_missing"], pl.lit(None, dtype=pl.String)),
    ]
    # Each row has at most one fault, so every change can be made in one pass.
    out = df.with_columns(
        pl.when(pl.any_horizontal(pl.lit(m) for _, c, m, _ in changes if c == col))
        .then(pl.coalesce(pl.when(pl.lit(m)).then(new) for _, c, m, new in changes if c == col))
        .otherwise(pl.col(col))
        .alias(col)
        for col in dict.fromkeys(c for _, c, _, _ in changes)
    )
    for kind, col, m, _ in changes:
        logs.append(
            out.filter(m).select(
                pl.lit("cohort").alias("source"), pl.col("Person ID").alias("record_id"),
                pl.lit(col).alias("column"), pl.lit(kind).alias("kind"),
            )
        )
    return out, pl.concat(logs)


# --------------------------------------------------------------------------- partner extracts


def _records(
    people: pl.DataFrame, chosen: np.ndarray, extra_p: list[float], rng: np.random.Generator
) -> pl.DataFrame:
    """One row per record: each chosen person once, some of them 2-4 times (within-source duplicates)."""
    copies = 1 + rng.choice(len(extra_p), size=len(chosen), p=extra_p)
    idx = np.repeat(chosen, copies)
    copy_no = np.arange(len(idx)) - np.repeat(np.cumsum(copies) - copies, copies)
    return people[idx].with_columns(pl.Series("copy_no", copy_no))


def _select(mask_p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.flatnonzero(rng.random(len(mask_p)) < mask_p)


def _non_matches(eligible: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `count` distinct non-cohort people (indices into background) among the eligible."""
    pool = np.flatnonzero(eligible)
    return rng.choice(pool, size=min(count, len(pool)), replace=False)


def _event_days(records: pl.DataFrame, min_age: int, first_day: int, rng: np.random.Generator) -> pl.Series:
    """A date (as a Date series) between `first_day` and the reference date, and not before the
    person's `min_age` birthday: no offences at six, no benefit claims at twelve."""
    dob = records["dob"].cast(pl.Int32).to_numpy().astype(np.int64)
    lower = np.minimum(np.maximum(first_day, dob + int(min_age * 365.25)), population.REFERENCE_DAYS - 1)
    days = lower + (rng.random(len(dob)) * (population.REFERENCE_DAYS - lower)).astype(np.int64)
    return pl.Series(days).cast(pl.Int32).cast(pl.Date)


def _noisy(records: pl.DataFrame, rng: np.random.Generator, fields: tuple[str, ...], rates=None):
    """Recording errors on names, DOB and postcode, and on the optional `fields` the source holds."""
    table = reference.surnames()
    alt = table.lookup(table.draw(records["community"].to_numpy(), rng))
    inj = noise.ErrorInjector(records, rng, rates)
    inj.names(alt)
    inj.dob()
    if "sex" in fields:
        inj.sex()
    inj.postcode()
    if "nino" in fields:
        inj.nino()
    if "upn" in fields:
        inj.upn()
    return inj.df, inj.error_log()


def _upper_some(df: pl.DataFrame, share: float, rng: np.random.Generator) -> pl.DataFrame:
    """Some systems hold names in capitals."""
    up = pl.Series(rng.random(df.height) < share)
    return df.with_columns(
        pl.when(up).then(pl.col(c).str.to_uppercase()).otherwise(pl.col(c)).alias(c) for c in ("forename", "surname")
    )


def _finish(df: pl.DataFrame, log: pl.DataFrame, source: str, id_col: str, ids: pl.Series,
            headers: dict[str, str], rng: np.random.Generator):
    """Shuffle the records (row order must say nothing about people or families), number them with
    ascending record ids as a system export would, and split off the truth and the error log."""
    perm = rng.permutation(df.height)
    position = np.empty(df.height, dtype=np.int64)
    position[perm] = np.arange(df.height)  # where each original record ends up
    df = df[perm].with_columns(ids.alias(id_col))
    truth = df.select(pl.lit(source).alias("source"), pl.col(id_col).alias("record_id"), "person_key")
    log = log.with_columns(pl.Series("_pos", position).gather(log["_row"].cast(pl.Int64))).sort(
        "_pos", "column", "kind"
    )
    errors = pl.DataFrame({
        "source": pl.repeat(source, log.height, dtype=pl.String, eager=True),
        "record_id": ids.gather(log["_pos"]),
        "column": log["column"].replace(headers),
        "kind": log["kind"],
    })
    return df.select(id_col, *headers.values()), truth, errors


def police(cohort_people, background, everyone, rng, rates=None):
    age_c = cohort_people["age"].to_numpy()
    p = np.where(cohort_people["problem_crime"].to_numpy(), 0.85, np.where(age_c >= 10, 0.04, 0.0))
    matched = _select(p, rng)
    others = _non_matches(background["age"].to_numpy() >= 10, int(len(matched) * 1.5), rng)
    chosen = np.concatenate([matched, others + cohort_people.height])
    recs = _records(everyone, chosen, [0.7, 0.2, 0.07, 0.03], rng)
    n = recs.height
    cats = population.pick(
        OFFENCE_CATEGORIES, rng.choice(len(OFFENCE_CATEGORIES), size=n, p=list(OFFENCE_CATEGORIES.values()))
    )
    # Offences since the programme started, from the age of criminal responsibility (10).
    first_day = (population.PROGRAMME_START - population._EPOCH).days
    recs = recs.with_columns(_event_days(recs, 10, first_day, rng).alias("offence_date"),
                             pl.Series("offence_category", cats))
    recs, log = _noisy(recs, rng, ("sex",), rates)
    recs = _upper_some(recs, 0.5, rng)
    # A fifth of repeat records are the same incident keyed twice: same date and category.
    same = (recs["copy_no"].to_numpy() > 0) & (rng.random(n) < 0.2)
    recs = recs.with_columns(
        pl.when(pl.Series(same)).then(pl.col(c).shift(1)).otherwise(pl.col(c)).alias(c)
        for c in ("offence_date", "offence_category")
    )
    headers = dict(zip(
        ("forename", "surname", "dob", "sex", "postcode", "offence_date", "offence_category"), POLICE_COLUMNS[1:],
        strict=True,
    ))
    out = recs.with_columns(iso_date(pl.col("dob")), iso_date(pl.col("offence_date"))).rename(headers)
    ids = unique_ids(n, 8, "CR", rng)
    return _finish(out, log, "police", "Record ID", ids, headers, rng)


def school_attendance(cohort_people, background, everyone, rng, rates=None):
    age_c = cohort_people["age"].to_numpy()
    school_age_c = (age_c >= 5) & (age_c <= 16)
    matched = _select(np.where(school_age_c, 0.92, 0.0), rng)
    age_b = background["age"].to_numpy()
    others = _non_matches((age_b >= 5) & (age_b <= 16), int(len(matched) * 2), rng)
    # Persistent absence: the programme's education problem, or about 8% of other pupils.
    absent = np.concatenate([cohort_people["problem_education"].to_numpy(), rng.random(background.height) < 0.08])
    chosen = np.concatenate([matched, others + cohort_people.height])
    recs = _records(everyone.with_columns(absent=pl.Series(absent)), chosen, [0.98, 0.02], rng)
    edu_per_record = recs["absent"].to_numpy()
    recs, log = _noisy(recs, rng, ("sex", "upn"), rates)
    n = recs.height
    urns = rng.choice(np.arange(100000, 150000), size=60, replace=False)
    possible = rng.integers(300, 381, size=n)
    rate = np.where(edu_per_record, rng.beta(3, 8, size=n), rng.beta(1.2, 25, size=n))
    recs = recs.with_columns(
        pl.Series("school_urn", urns[rng.integers(0, len(urns), size=n)]).cast(pl.String),
        pl.Series("possible", possible),
        pl.Series("missed", np.round(possible * rate).astype(np.int64)),
    )
    headers = dict(zip(
        ("upn", "forename", "surname", "dob", "sex", "postcode", "school_urn", "possible", "missed"),
        SCHOOL_COLUMNS[1:], strict=True,
    ))
    out = recs.with_columns(uk_date(pl.col("dob"))).rename(headers)
    ids = unique_ids(n, 7, "SP", rng)
    return _finish(out, log, "school_attendance", "Pupil Ref", ids, headers, rng)


def dwp(cohort_people, background, everyone, rng, rates=None):
    age_c = cohort_people["age"].to_numpy()
    p = np.where(
        cohort_people["problem_worklessness"].to_numpy() & (age_c >= 16), 0.75, np.where(age_c >= 18, 0.10, 0.0)
    )
    matched = _select(p, rng)
    others = _non_matches(background["age"].to_numpy() >= 18, int(len(matched) * 1.5), rng)
    chosen = np.concatenate([matched, others + cohort_people.height])
    recs = _records(everyone, chosen, [0.94, 0.06], rng)
    n = recs.height
    benefit = population.pick(BENEFITS, rng.choice(len(BENEFITS), size=n, p=list(BENEFITS.values())))
    # Claims from three years before the programme, from the age of 16.
    first_day = (population.PROGRAMME_START - population._EPOCH).days - 3 * 365
    recs = recs.with_columns(pl.Series("benefit", benefit), _event_days(recs, 16, first_day, rng).alias("claim_start"))
    recs, log = _noisy(recs, rng, ("nino",), rates)
    recs = _upper_some(recs, 0.7, rng)
    headers = dict(zip(
        ("nino", "forename", "surname", "dob", "postcode", "benefit", "claim_start"), DWP_COLUMNS[1:], strict=True,
    ))
    out = recs.with_columns(excel_serial(pl.col("dob")), excel_serial(pl.col("claim_start"))).rename(headers)
    ids = unique_ids(n, 9, "CLM", rng)
    return _finish(out, log, "dwp", "Claim Ref", ids, headers, rng)


# --------------------------------------------------------------------------- consent withdrawals

CONSENT_WITHDRAWAL_SHARE = 0.01


def consent_withdrawals(ids: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """About 1% of cohort people, named by person_id, NI number or NHS number, or several of them."""
    n = ids.height
    k = max(1, int(round(n * CONSENT_WITHDRAWAL_SHARE))) if n else 0
    rows = np.sort(rng.choice(n, size=k, replace=False))
    chosen = ids[rows]
    u = pl.Series(rng.random(k))
    spaced = pl.Series(rng.random(k) < 0.1)
    mode = (
        pl.when(u < 0.45).then(pl.lit("person_id"))
        .when((u < 0.6) & pl.col("nino").is_not_null()).then(pl.lit("nino"))
        .when((u < 0.75) & pl.col("nhs_number").is_not_null()).then(pl.lit("nhs_number"))
        .when(u >= 0.75).then(pl.lit("all"))
        .otherwise(pl.lit("person_id"))
    )
    return chosen.with_columns(mode.alias("mode")).select(
        pl.when(pl.col("mode").is_in(["person_id", "all"])).then(pl.col("person_id")).alias("person_id"),
        pl.when(pl.col("mode").is_in(["nino", "all"]))
        .then(pl.when(spaced).then(noise.spaced_nino(pl.col("nino"))).otherwise(pl.col("nino")))
        .alias("nino"),
        pl.when(pl.col("mode").is_in(["nhs_number", "all"])).then(pl.col("nhs_number")).alias("nhs_number"),
    )
