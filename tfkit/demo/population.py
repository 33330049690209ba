"""The synthetic population: families, people and their true attributes and identifiers.

Everything is drawn with numpy in whole arrays (one call per attribute, or per name list), never
per person. The population is "the truth": extracts are renderings of it, with recording errors.
"""

from __future__ import annotations

import datetime as dt
import functools
from statistics import NormalDist

import numpy as np
import polars as pl

from tfkit.demo import reference
from tfkit.identifiers import NHS_WEIGHTS, UPN_ALPHABET, UPN_LA_NUMBERS

# The "as at" date of the return: ages, intervention dates and partner events are relative to it.
REFERENCE_DATE = dt.date(2019, 10, 1)
_EPOCH = dt.date(1970, 1, 1)
REFERENCE_DAYS = (REFERENCE_DATE - _EPOCH).days

# Family sizes 1..8. Programme families are larger than households in general.
COHORT_FAMILY_SIZE_P = np.array([0.06, 0.16, 0.24, 0.22, 0.15, 0.09, 0.05, 0.03])
BACKGROUND_FAMILY_SIZE_P = np.array([0.28, 0.30, 0.16, 0.14, 0.07, 0.03, 0.01, 0.01])

# Postcode inward letters never use C, I, K, M, O, V.
INWARD_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))
# NI number prefix letters (D, F, I, Q, U, V never; O never second) and never-issued pairs.
_NINO_FIRST = "ABCEGHJKLMNPRSTWXYZ"
_NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"
NINO_PREFIXES = np.array(
    [a + b for a in _NINO_FIRST for b in _NINO_SECOND if a + b not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}]
)
NINO_SUFFIXES = np.array(list("ABCD"))


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """An independent generator per stage, so changing one stage never shifts another's draws."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


# --------------------------------------------------------------------------- identifiers


@functools.cache
def _nhs_pool() -> np.ndarray:
    """Every valid NHS number in the 999 range (remainder-10 bodies have no check digit)."""
    body = np.arange(1_000_000, dtype=np.int64)
    total = np.full(len(body), 9 * (NHS_WEIGHTS[0] + NHS_WEIGHTS[1] + NHS_WEIGHTS[2]), dtype=np.int64)
    for i, w in enumerate(NHS_WEIGHTS[3:]):
        total += (body // 10 ** (5 - i) % 10) * w
    check = 11 - total % 11
    check[check == 11] = 0
    ok = check != 10
    return 9_990_000_000 + body[ok] * 10 + check[ok]


def nhs_numbers(k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct valid NHS numbers from the never-issued 999 range (909,091 exist)."""
    pool = _nhs_pool()
    if k > len(pool):
        raise ValueError(f"only {len(pool)} NHS numbers exist in the 999 range, {k} asked")
    return rng.choice(pool, size=k, replace=False)


def nhs_capacity() -> int:
    return len(_nhs_pool())


def nino_numbers(k: int, rng: np.random.Generator) -> pl.Series:
    """k distinct NI numbers of valid format (prefix, six digits, suffix A-D)."""
    space = len(NINO_PREFIXES) * 1_000_000 * 4
    code = rng.choice(space, size=k, replace=False)
    prefix = NINO_PREFIXES[code // 4_000_000]
    digits = code // 4 % 1_000_000
    suffix = NINO_SUFFIXES[code % 4]
    return (
        pl.DataFrame({"p": prefix, "d": digits, "s": suffix})
        .select(pl.col("p") + pl.col("d").cast(pl.String).str.zfill(6) + pl.col("s"))
        .to_series()
    )


def upn_check_letters(body_digits: np.ndarray) -> np.ndarray:
    """Check letters for an (n, 12) array of UPN body digits (characters 2-13, all numeric)."""
    weights = np.arange(2, 14)
    return np.array(list(UPN_ALPHABET))[(body_digits @ weights) % 23]


def upns(birth_year: np.ndarray, home_la: int, rng: np.random.Generator) -> pl.Series:
    """One permanent UPN per child: LA number (mostly the home LA's), establishment, year, serial."""
    k = len(birth_year)
    other_las = np.array(sorted(UPN_LA_NUMBERS - {home_la}))
    la = np.where(rng.random(k) < 0.88, home_la, rng.choice(other_las, size=k))
    # The school where the UPN was first allocated: a pool of primary schools (2xxx, 3xxx).
    schools = np.concatenate([np.arange(2000, 2100), np.arange(3000, 3060), np.arange(3300, 3320)])
    estab = rng.choice(schools, size=k)
    year = (birth_year + 5) % 100  # allocated on entering Reception
    serial = rng.integers(0, 1000, size=k)
    number = ((la * 10_000 + estab) * 100 + year) * 1000 + serial
    # Collisions (same school, year and serial) get a fresh serial until unique.
    for _ in range(50):
        _, first = np.unique(number, return_index=True)
        dup = np.ones(k, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        serial[dup] = rng.integers(0, 1000, size=int(dup.sum()))
        number = ((la * 10_000 + estab) * 100 + year) * 1000 + serial
    digits = np.stack([number // 10 ** (11 - i) % 10 for i in range(12)], axis=1)
    letters = upn_check_letters(digits)
    return (
        pl.DataFrame({"c": letters, "n": number})
        .select(pl.col("c") + pl.col("n").cast(pl.String).str.zfill(12))
        .to_series()
    )


def postcodes(k: int, la: reference.LocalAuthority, rng: np.random.Generator) -> pl.Series:
    """k postcodes in the LA's sectors (outward code, space, sector digit and two letters)."""
    sectors = np.array(la.sectors)
    sector = sectors[rng.integers(0, len(sectors), size=k)]
    a = INWARD_LETTERS[rng.integers(0, len(INWARD_LETTERS), size=k)]
    b = INWARD_LETTERS[rng.integers(0, len(INWARD_LETTERS), size=k)]
    return pl.DataFrame({"s": sector, "a": a, "b": b}).select(pl.col("s") + pl.col("a") + pl.col("b")).to_series()


def draw_names(groups: np.ndarray, lists: dict, rng: np.random.Generator) -> np.ndarray:
    """A name for each entry of `groups` (keys of `lists`), weighted by the list's rank weights."""
    out = np.empty(len(groups), dtype=object)
    for key in sorted(lists):  # fixed order: deterministic
        idx = np.flatnonzero(groups == key)
        if len(idx):
            nl = lists[key]
            out[idx] = np.array(nl.names, dtype=object)[rng.choice(len(nl.names), size=len(idx), p=nl.p)]
    return out


# --------------------------------------------------------------------------- people


def _family_layout(n: int, size_p: np.ndarray, rng: np.random.Generator):
    sizes = rng.choice(np.arange(1, 9), size=n // 2 + 10, p=size_p)
    ends = np.cumsum(sizes)
    last = int(np.searchsorted(ends, n))
    sizes = sizes[: last + 1].copy()
    sizes[-1] -= ends[last] - n
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    fam = np.repeat(np.arange(len(sizes)), sizes)
    member = np.arange(n) - starts[fam]
    return sizes, starts, fam, member


def people(
    n: int,
    la: reference.LocalAuthority,
    rng: np.random.Generator,
    *,
    size_p: np.ndarray,
    key_offset: int = 0,
    family_offset: int = 0,
) -> pl.DataFrame:
    """n people in families living in the LA, with their true names, dates of birth and identifiers."""
    sizes, starts, fam, member = _family_layout(n, size_p, rng)
    nf = len(sizes)

    # Family-level draws.
    n_parents = np.where(sizes == 1, 1, np.where(rng.random(nf) < 0.5, 2, 1))
    lone_female = rng.random(nf) < 0.9
    has_children = sizes > n_parents
    eldest = rng.integers(1, 20, size=nf)
    mother_at_first = rng.integers(17, 39, size=nf)
    communities = np.array(la.communities)
    fam_comm = communities[rng.choice(len(communities), size=nf, p=la.community_p)]
    father_comm = np.where(
        rng.random(nf) < 0.08, communities[rng.choice(len(communities), size=nf, p=la.community_p)], fam_comm
    )
    surname_lists = reference.surnames()
    fam_surname = draw_names(father_comm, surname_lists, rng)
    mother_surname = draw_names(fam_comm, surname_lists, rng)
    absent_father_surname = draw_names(fam_comm, surname_lists, rng)
    mother_takes_name = rng.random(nf) < 0.7
    home = postcodes(nf, la, rng).to_numpy()
    moved_to = postcodes(nf, la, rng).to_numpy()

    # Person-level roles and ages.
    np_f = n_parents[fam]
    two = np_f == 2
    role = np.where(
        member == 0,
        np.where(two | lone_female[fam], "mother", "father"),
        np.where((member == 1) & two, "father", "child"),
    )
    # Children are spaced 1-4 years apart; the eldest is old enough for the spacing.
    gap = np.where(member > np_f, rng.integers(1, 5, size=n), 0)
    eldest = np.maximum(eldest, np.bincount(fam, weights=gap, minlength=nf).astype(np.int64))
    mother_age = np.where(has_children, eldest + mother_at_first, rng.integers(17, 62, size=nf))
    father_age = np.maximum(mother_age + rng.integers(-3, 9, size=nf), 18)
    cum = np.cumsum(gap)
    before = np.concatenate([[0], cum])[starts]
    child_age = np.maximum(eldest[fam] - (cum - before[fam]), 0)
    age = np.select([role == "mother", role == "father"], [mother_age[fam], father_age[fam]], child_age)
    dob_days = REFERENCE_DAYS - (age * 365.2425).astype(np.int64) - rng.integers(0, 365, size=n)

    child_sex = np.where(rng.random(n) < 0.51, "M", "F")
    sex = np.select([role == "mother", role == "father"], ["F", "M"], child_sex)
    sex = np.where((role == "child") & (rng.random(n) < 0.004), "U", sex)

    person_comm = np.where(role == "father", father_comm[fam], fam_comm[fam])
    # Second-generation children often get names from the British list.
    name_comm = np.where(
        (role == "child") & (person_comm != "british") & (rng.random(n) < 0.12), "british", person_comm
    )
    name_sex = np.where(sex == "U", np.where(rng.random(n) < 0.5, "M", "F"), sex)
    forename = draw_names(np.char.add(np.char.add(name_comm.astype(str), "|"), name_sex.astype(str)),
                          {f"{c}|{s}": v for (c, s), v in reference.forenames().items()}, rng)

    u = rng.random(n)
    surname = np.select(
        [
            role == "father",
            (role == "mother") & two & mother_takes_name[fam],
            role == "mother",
            two,  # children of a couple
            lone_female[fam],  # children of a lone mother: hers or their father's name
        ],
        [
            fam_surname[fam],
            fam_surname[fam],
            mother_surname[fam],
            np.where(u < 0.9, fam_surname[fam], mother_surname[fam]),
            np.where(u < 0.55, mother_surname[fam], absent_father_surname[fam]),
        ],
        fam_surname[fam],
    ).astype(object)
    double_barrel = (role == "child") & two & (u > 0.97) & (mother_surname[fam] != fam_surname[fam])

    df = pl.DataFrame(
        {
            "person_key": np.arange(key_offset, key_offset + n),
            "family": fam + family_offset,
            "member": member,
            "family_size": sizes[fam],
            "role": role.astype(str),
            "sex": sex.astype(str),
            "age": age,
            "dob": dob_days,
            "community": person_comm.astype(str),
            "forename": forename.astype(str),
            "surname": surname.astype(str),
            "double_barrel": double_barrel,
            "mother_surname": mother_surname[fam].astype(str),
            "postcode": home[fam],
            "moved_postcode": moved_to[fam],
        }
    )
    df = df.with_columns(
        pl.format("K{}", pl.col("person_key").cast(pl.String).str.zfill(8)).alias("person_key"),
        pl.col("dob").cast(pl.Int32).cast(pl.Date),
        pl.when(pl.col("double_barrel"))
        .then(pl.col("mother_surname") + "-" + pl.col("surname"))
        .otherwise(pl.col("surname"))
        .alias("surname"),
    ).drop("double_barrel", "mother_surname")
    # Polish and other Slavic surnames take the feminine form for women and girls.
    df = df.with_columns(
        pl.when(pl.col("sex") == "F")
        .then(pl.col("surname").str.replace(r"(sk|ck|dzk)i$", "${1}a"))
        .otherwise(pl.col("surname"))
        .alias("surname")
    )

    # True identifiers: an NI number from 16, a UPN at school age (4-18).
    adult = df["age"].to_numpy() >= 16
    school = (df["age"].to_numpy() >= 4) & (df["age"].to_numpy() <= 18)
    nino = sparse_strings(n, adult, nino_numbers(int(adult.sum()), rng))
    birth_year = (df["dob"].dt.year().to_numpy())[school]
    upn = sparse_strings(n, school, upns(birth_year, la.dfe_number, rng))
    return df.with_columns(nino.alias("nino"), upn.alias("upn"))


def sparse_strings(n: int, mask: np.ndarray, values: pl.Series) -> pl.Series:
    """A string Series of length n: `values` where mask is true, null elsewhere."""
    return pl.Series(values=[None] * 0, dtype=pl.String).extend_constant(None, n).scatter(
        np.flatnonzero(mask), values
    )


# --------------------------------------------------------------------------- programme data

PROBLEMS = (
    "problem_crime",
    "problem_education",
    "problem_children_in_need",
    "problem_worklessness",
    "problem_domestic_abuse",
    "problem_health",
)
# Family-level prevalence among programme families and the correlation of their latent risks
# (crime with truancy, domestic abuse with children in need, worklessness with poor health).
PROBLEM_PREVALENCE = np.array([0.35, 0.45, 0.55, 0.65, 0.45, 0.70])
PROBLEM_CORRELATION = np.array(
    [
        [1.00, 0.35, 0.20, 0.25, 0.25, 0.15],
        [0.35, 1.00, 0.30, 0.20, 0.20, 0.20],
        [0.20, 0.30, 1.00, 0.15, 0.45, 0.25],
        [0.25, 0.20, 0.15, 1.00, 0.20, 0.35],
        [0.25, 0.20, 0.45, 0.20, 1.00, 0.30],
        [0.15, 0.20, 0.25, 0.35, 0.30, 1.00],
    ]
)
# Within a flagged family, the chance an eligible member carries the flag (one always does).
PROBLEM_PERSON_P = {
    "problem_crime": 0.6,
    "problem_education": 0.7,
    "problem_children_in_need": 0.9,
    "problem_worklessness": 0.8,
    "problem_domestic_abuse": 0.9,
    "problem_health": 0.5,
}
STATUS_P = {"in_progress": 0.35, "completed": 0.45, "disengaged": 0.20}
COMPARISON_SHARE = 0.30
PROGRAMME_START = dt.date(2015, 4, 1)


def programme(people_df: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Add headline-problem flags, intervention status and dates, and the comparison-group flag."""
    fams = people_df.group_by("family", maintain_order=True).agg(
        has_school_child=((pl.col("age") >= 5) & (pl.col("age") <= 16)).any(),
        has_child=(pl.col("age") < 18).any(),
    )
    nf = fams.height
    latent = rng.standard_normal((nf, 6)) @ np.linalg.cholesky(PROBLEM_CORRELATION).T
    eligible = np.ones((nf, 6), dtype=bool)
    eligible[:, 1] = fams["has_school_child"].to_numpy()
    eligible[:, 2] = fams["has_child"].to_numpy()
    latent = np.where(eligible, latent, -np.inf)
    thresholds = np.array([NormalDist().inv_cdf(1 - p) for p in PROBLEM_PREVALENCE])
    flagged = latent > thresholds
    # Every programme family meets at least two headline problems: its two strongest.
    top2 = np.argsort(-latent, axis=1, kind="stable")[:, :2]
    flagged[np.arange(nf)[:, None], top2] = True
    flagged &= eligible

    comparison = rng.random(nf) < COMPARISON_SHARE
    statuses = np.array(list(STATUS_P))
    status = np.where(comparison, "waiting", statuses[rng.choice(3, size=nf, p=list(STATUS_P.values()))])
    start_min = (PROGRAMME_START - _EPOCH).days
    recent = REFERENCE_DAYS - 365
    start = np.where(
        status == "in_progress",
        rng.integers(recent, REFERENCE_DAYS - 7, size=nf),
        rng.integers(start_min, recent, size=nf),
    )
    end = np.where(
        status == "completed",
        start + rng.integers(90, 541, size=nf),
        start + rng.integers(14, 241, size=nf),
    )
    end = np.minimum(end, REFERENCE_DAYS - 1)
    fam_cols = {
        "family": fams["family"].to_numpy(),
        "intervention_status": status,
        "intervention_start": np.where(status == "waiting", np.nan, start),
        "intervention_end": np.where(np.isin(status, ["completed", "disengaged"]), end, np.nan),
        "comparison_group": comparison,
    }
    for j, name in enumerate(PROBLEMS):
        fam_cols[f"fam_{name}"] = flagged[:, j]
    fam_df = pl.DataFrame(fam_cols).with_columns(
        pl.col("intervention_start", "intervention_end").fill_nan(None).cast(pl.Int32).cast(pl.Date)
    )
    df = people_df.join(fam_df, on="family", how="left", maintain_order="left")

    age = pl.col("age")
    person_eligible = {
        "problem_crime": age >= 10,
        "problem_education": (age >= 5) & (age <= 16),
        "problem_children_in_need": age < 18,
        "problem_worklessness": age >= 16,
        "problem_domestic_abuse": pl.col("role") != "child",
        "problem_health": pl.lit(True),
    }
    draws = rng.random((df.height, 6))
    exprs = []
    for j, name in enumerate(PROBLEMS):
        elig = person_eligible[name] & pl.col(f"fam_{name}")
        first = elig & (elig.cast(pl.Int32).cum_sum().over("family") == 1)
        exprs.append((elig & ((pl.Series(draws[:, j]) < PROBLEM_PERSON_P[name]) | first)).alias(name))
    return df.with_columns(exprs).drop([f"fam_{p}" for p in PROBLEMS])
