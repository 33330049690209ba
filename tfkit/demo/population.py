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

ROLES = ("mother", "father", "child")
MOTHER, FATHER, CHILD = range(3)
SEX_CODES = ("F", "M", "U")

# The "as at" date of the return: ages, intervention dates and partner events are relative to it.
REFERENCE_DATE = dt.date(2019, 10, 1)
_EPOCH = dt.date(1970, 1, 1)
REFERENCE_DAYS = (REFERENCE_DATE - _EPOCH).days

# Family sizes 1..8. Programme families are larger than households in general.
COHORT_FAMILY_SIZE_P = np.array([0.06, 0.16, 0.24, 0.22, 0.15, 0.09, 0.05, 0.03])
TWIN_SHARE = 0.03  # of second and later children
NO_FIXED_ABODE_SHARE = 0.003  # of families
BACKGROUND_FAMILY_SIZE_P = np.array([0.28, 0.30, 0.16, 0.14, 0.07, 0.03, 0.01, 0.01])

# Postcode inward letters never use C, I, K, M, O, V.
INWARD_LETTERS = tuple("ABDEFGHJLNPQRSTUWXYZ")
# NI number prefix letters (D, F, I, Q, U, V never; O never second) and never-issued pairs.
_NINO_FIRST = "ABCEGHJKLMNPRSTWXYZ"
_NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"
NINO_PREFIXES = tuple(
    a + b for a in _NINO_FIRST for b in _NINO_SECOND if a + b not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
)
NINO_SUFFIXES = tuple("ABCD")


def rng_for(seed: int, stream: int) -> np.random.Generator:
    """An independent generator per stage, so changing one stage never shifts another's draws."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


# --------------------------------------------------------------------------- identifiers


def _nhs_check_digits(body: np.ndarray) -> np.ndarray:
    """Check digits for 999 + six-digit bodies; 10 where the number cannot be issued."""
    total = np.full(len(body), 9 * (NHS_WEIGHTS[0] + NHS_WEIGHTS[1] + NHS_WEIGHTS[2]), dtype=np.int64)
    for i, w in enumerate(NHS_WEIGHTS[3:]):
        total += (body // 10 ** (5 - i) % 10) * w
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


@functools.cache
def _nhs_pool() -> np.ndarray:
    """Every valid NHS number in the 999 range."""
    body = np.arange(1_000_000, dtype=np.int64)
    check = _nhs_check_digits(body)
    ok = check != 10
    return 9_990_000_000 + body[ok] * 10 + check[ok]


def nhs_numbers(k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct valid NHS numbers from the never-issued 999 range (909,091 exist)."""
    if k < 100_000:
        # Small k: draw distinct bodies, drop the 1 in 11 that has no check digit.
        body = rng.choice(1_000_000, size=int(k * 1.2) + 50, replace=False).astype(np.int64)
        check = _nhs_check_digits(body)
        ok = np.flatnonzero(check != 10)[:k]
        if len(ok) == k:
            return 9_990_000_000 + body[ok] * 10 + check[ok]
    pool = _nhs_pool()
    if k > len(pool):
        raise ValueError(f"only {len(pool)} NHS numbers exist in the 999 range, {k} asked")
    return rng.choice(pool, size=k, replace=False)


# How many valid numbers the 999 range holds (1,000,000 bodies less the 1 in 11 with no check digit).
NHS_999_CAPACITY = 909_091


def nhs_capacity() -> int:
    return NHS_999_CAPACITY


def nino_numbers(k: int, rng: np.random.Generator) -> pl.Series:
    """k distinct NI numbers of valid format (prefix, six digits, suffix A-D)."""
    space = len(NINO_PREFIXES) * 1_000_000 * 4
    code = rng.choice(space, size=k, replace=False)
    digits = pl.Series(code // 4 % 1_000_000).cast(pl.String).str.zfill(6)
    return pick(NINO_PREFIXES, code // 4_000_000) + digits + pick(NINO_SUFFIXES, code % 4)


def upn_check_letters(body: np.ndarray) -> pl.Series:
    """Check letters for 12-digit all-numeric UPN bodies (characters 2-13) given as integers."""
    total = np.zeros(len(body), dtype=np.int64)
    for i in range(12):
        total += (body // 10 ** (11 - i) % 10) * (i + 2)
    return pick(UPN_ALPHABET, total % 23)


def upns(birth_year: np.ndarray, home_la: int, rng: np.random.Generator) -> pl.Series:
    """One permanent UPN per child: LA number (mostly the home LA's), establishment, year, serial."""
    k = len(birth_year)
    other_las = np.array(sorted(UPN_LA_NUMBERS - {home_la}))
    la = np.where(rng.random(k) < 0.88, home_la, rng.choice(other_las, size=k))
    # The school where the UPN was first allocated: a pool of primary schools (2xxx, 3xxx).
    schools = np.concatenate([np.arange(2000, 2300), np.arange(3000, 3100), np.arange(3300, 3350)])
    estab = rng.choice(schools, size=k)
    year = (birth_year + 5) % 100  # allocated on entering Reception
    # Serials are unique within (LA, school, year): the r-th child of a group gets
    # (start + r * step) mod 1000 with a step coprime to 1000, so no two collide (groups stay far
    # below 1,000 children); any overflow moves to another school and is drawn again.
    group = (la * 10_000 + estab) * 100 + year
    serial = np.zeros(k, dtype=np.int64)
    todo = np.arange(k)
    for _ in range(20):
        order = todo[np.argsort(group[todo], kind="stable")]
        g = group[order]
        first = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
        sizes = np.diff(np.concatenate([first, [len(order)]]))
        rank = np.arange(len(order)) - np.repeat(first, sizes)
        start = rng.integers(0, 1000, size=len(first))
        step = rng.choice(np.array([1, 3, 7, 9, 11, 13, 17, 19, 21, 23, 27, 29, 31, 33, 37]), size=len(first))
        serial[order] = (np.repeat(start, sizes) + rank * np.repeat(step, sizes)) % 1000
        over = order[rank >= 1000]
        if len(over) == 0:
            break
        estab[over] = rng.choice(schools, size=len(over))
        group[over] = (la[over] * 10_000 + estab[over]) * 100 + year[over]
        todo = np.flatnonzero(np.isin(group, group[over]))  # whole groups, drawn again
    number = group * 1000 + serial
    return upn_check_letters(number) + pl.Series(number).cast(pl.String).str.zfill(12)


def pick(values, positions: np.ndarray) -> pl.Series:
    """values[positions] as a polars String Series (no numpy unicode arrays: they convert slowly)."""
    return pl.Series(list(values), dtype=pl.String).gather(positions)


def postcodes(k: int, la: reference.LocalAuthority, rng: np.random.Generator) -> pl.Series:
    """k postcodes in the LA's sectors (outward code, space, sector digit and two letters)."""
    sector = pick(la.sectors, rng.integers(0, len(la.sectors), size=k))
    a = pick(INWARD_LETTERS, rng.integers(0, len(INWARD_LETTERS), size=k))
    b = pick(INWARD_LETTERS, rng.integers(0, len(INWARD_LETTERS), size=k))
    return sector + a + b


# --------------------------------------------------------------------------- people


def _family_layout(n: int, size_p: np.ndarray, rng: np.random.Generator):
    """Family sizes drawn until they hold n people (the last family cut to fit), and for each person
    their family index and position in it (parents first)."""
    sizes = rng.choice(np.arange(1, 9), size=n, p=size_p)  # n families always hold n people
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
    twin_share: float | None = None,
    junior_share: float = 0.0,
) -> pl.DataFrame:
    """n people in families living in the LA, with their true names, dates of birth and identifiers.

    `twin_share` of second and later children are twins of the child before (TWIN_SHARE by
    default); `junior_share` of boys with a father at home carry his forename (none by default)."""
    twin_share = TWIN_SHARE if twin_share is None else twin_share
    sizes, starts, fam, member = _family_layout(n, size_p, rng)
    nf = len(sizes)

    # Family-level draws.
    n_parents = np.where(sizes == 1, 1, np.where(rng.random(nf) < 0.5, 2, 1))
    lone_female = rng.random(nf) < 0.9
    has_children = sizes > n_parents
    eldest = rng.integers(1, 20, size=nf)
    mother_at_first = rng.integers(17, 39, size=nf)
    comm_codes = la.community_codes
    fam_comm = comm_codes[rng.choice(len(comm_codes), size=nf, p=la.community_p)]
    father_comm = np.where(
        rng.random(nf) < 0.08, comm_codes[rng.choice(len(comm_codes), size=nf, p=la.community_p)], fam_comm
    )
    surname_table = reference.surnames()
    fam_surname = surname_table.draw(father_comm, rng)
    mother_surname = surname_table.draw(fam_comm, rng)
    absent_father_surname = surname_table.draw(fam_comm, rng)
    mother_takes_name = rng.random(nf) < 0.7
    # A few families have no fixed abode: the NHS pseudo-postcode ZZ99 3VZ.
    home = postcodes(nf, la, rng).scatter(np.flatnonzero(rng.random(nf) < NO_FIXED_ABODE_SHARE), "ZZ99 3VZ")
    moved_to = postcodes(nf, la, rng)

    # Person-level roles (0 mother, 1 father, 2 child) and ages.
    np_f = n_parents[fam]
    two = np_f == 2
    role = np.where(
        member == 0,
        np.where(two | lone_female[fam], MOTHER, FATHER),
        np.where((member == 1) & two, FATHER, CHILD),
    )
    is_mother, is_father, is_child = role == MOTHER, role == FATHER, role == CHILD
    # Children are spaced 1-4 years apart; the eldest is old enough for the spacing.
    twin = (member > np_f) & (rng.random(n) < twin_share)  # born with the sibling before them
    gap = np.where(member > np_f, np.where(twin, 0, rng.integers(1, 5, size=n)), 0)
    eldest = np.maximum(eldest, np.bincount(fam, weights=gap, minlength=nf).astype(np.int64))
    mother_age = np.where(has_children, eldest + mother_at_first, rng.integers(17, 62, size=nf))
    father_age = np.maximum(mother_age + rng.integers(-3, 9, size=nf), 18)
    cum = np.cumsum(gap)
    before = np.concatenate([[0], cum])[starts]
    child_age = np.maximum(eldest[fam] - (cum - before[fam]), 0)
    age = np.select([is_mother, is_father], [mother_age[fam], father_age[fam]], child_age)
    dob_days = REFERENCE_DAYS - (age * 365.2425).astype(np.int64) - rng.integers(0, 365, size=n)
    dob_days[twin] = dob_days[np.flatnonzero(twin) - 1]
    born_from_split = dob_days >= (dt.date(reference.ERA_SPLIT_YEAR, 1, 1) - _EPOCH).days

    # Sex codes index SEX_CODES: 0 F, 1 M, 2 U.
    child_sex = np.where(rng.random(n) < 0.51, 1, 0)
    sex = np.select([is_mother, is_father], [0, 1], child_sex)
    sex = np.where(is_child & (rng.random(n) < 0.004), 2, sex)

    person_comm = np.where(is_father, father_comm[fam], fam_comm[fam])
    # Second-generation children often get names from the British list.
    british = reference.communities().index("british")
    name_comm = np.where(is_child & (person_comm != british) & (rng.random(n) < 0.12), british, person_comm)
    name_sex = np.where(sex == 2, rng.integers(0, 2, size=n), sex)
    name_group = (name_comm * 2 + name_sex) * 2 + born_from_split
    forename = reference.forenames().draw(name_group, rng)
    # Parents rarely give two children (or a child and themselves) the same forename: redraw repeats.
    for _ in range(5):
        key = fam.astype(np.int64) * 1_000_000 + reference.forenames().name_ids[forename]
        order = np.argsort(key, kind="stable")
        repeat = order[np.concatenate([[False], key[order][1:] == key[order][:-1]])]
        if len(repeat) == 0:
            break
        forename[repeat] = reference.forenames().draw(name_group[repeat], rng)
    if junior_share > 0:
        # Juniors: a son named after his father (the father is member 1 of a two-parent family).
        junior = is_child & (sex == 1) & two & (rng.random(n) < junior_share)
        forename[junior] = forename[starts[fam[junior]] + 1]

    u = rng.random(n)
    surname = np.select(
        [
            is_father,
            is_mother & two & mother_takes_name[fam],
            is_mother,
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
    )
    double_barrel = is_child & two & (u > 0.97) & (mother_surname[fam] != fam_surname[fam])

    df = pl.DataFrame(
        {
            "person_key": np.arange(key_offset, key_offset + n),
            "family": fam + family_offset,
            "member": member,
            "family_size": sizes[fam],
            "role": pick(ROLES, role),
            "sex": pick(SEX_CODES, sex),
            "age": age,
            "dob": dob_days,
            "community": person_comm,
            "forename": reference.forenames().lookup(forename),
            "surname": surname_table.lookup(surname),
            "double_barrel": double_barrel,
            "mother_surname": surname_table.lookup(mother_surname[fam]),
            "postcode": home.gather(fam),
            "moved_postcode": moved_to.gather(fam),
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
    # Polish and other Slavic surnames take the feminine form for women and girls; most Sikh women
    # and girls in a Singh family are Kaur.
    female = pl.col("sex") == "F"
    df = df.with_columns(
        pl.when(female & (pl.col("surname") == "Singh") & pl.Series(rng.random(n) < 0.7))
        .then(pl.lit("Kaur"))
        .when(female)
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
    return pl.repeat(None, n, dtype=pl.String, eager=True).scatter(np.flatnonzero(mask), values)


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
STATUSES = ("waiting", *STATUS_P)
COMPARISON_SHARE = 0.30
PROGRAMME_START = dt.date(2015, 4, 1)


def programme(people_df: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Add headline-problem flags, intervention status and dates, and the comparison-group flag.

    `people_df` holds each family as a contiguous run of rows (as `people` makes it)."""
    n = people_df.height
    family = people_df["family"].to_numpy()
    age = people_df["age"].to_numpy()
    is_child = (people_df["role"] == "child").to_numpy()
    starts = np.flatnonzero(np.concatenate([[True], family[1:] != family[:-1]]))
    nf = len(starts)
    fam_of_row = np.repeat(np.arange(nf), np.diff(np.append(starts, n)))

    # Who can carry each problem (columns in PROBLEMS order); a family can meet it if anyone can.
    person_eligible = np.stack(
        [age >= 10, (age >= 5) & (age <= 16), age < 18, age >= 16, ~is_child, np.ones(n, dtype=bool)], axis=1
    )
    eligible = np.logical_or.reduceat(person_eligible, starts, axis=0)
    latent = rng.standard_normal((nf, 6)) @ np.linalg.cholesky(PROBLEM_CORRELATION).T
    latent = np.where(eligible, latent, -np.inf)
    thresholds = np.array([NormalDist().inv_cdf(1 - p) for p in PROBLEM_PREVALENCE])
    flagged = latent > thresholds
    # Every programme family meets at least two headline problems: its two strongest.
    top2 = np.argsort(-latent, axis=1, kind="stable")[:, :2]
    flagged[np.arange(nf)[:, None], top2] = True
    flagged &= eligible

    # Within a flagged family, eligible members carry the flag at PROBLEM_PERSON_P; the first always.
    elig = person_eligible & flagged[fam_of_row]
    running = np.cumsum(elig, axis=0)
    before = np.vstack([np.zeros((1, 6), dtype=running.dtype), running])[starts]
    first = elig & (running - before[fam_of_row] == 1)
    person_p = np.array([PROBLEM_PERSON_P[p] for p in PROBLEMS])
    flags = elig & ((rng.random((n, 6)) < person_p) | first)

    comparison = rng.random(nf) < COMPARISON_SHARE
    status = np.where(comparison, 0, 1 + rng.choice(3, size=nf, p=list(STATUS_P.values())))  # index STATUSES
    start_min = (PROGRAMME_START - _EPOCH).days
    recent = REFERENCE_DAYS - 365
    in_progress, completed = status == 1, status == 2
    start = np.where(
        in_progress, rng.integers(recent, REFERENCE_DAYS - 7, size=nf), rng.integers(start_min, recent, size=nf)
    )
    end = np.where(completed, start + rng.integers(90, 541, size=nf), start + rng.integers(14, 241, size=nf))
    end = np.minimum(end, REFERENCE_DAYS - 1)

    def dates(days: np.ndarray, known: np.ndarray) -> pl.Expr:
        d = pl.Series(days[fam_of_row]).cast(pl.Int32).cast(pl.Date)
        return pl.when(pl.Series(known[fam_of_row])).then(d)

    return people_df.with_columns(
        pick(STATUSES, status[fam_of_row]).alias("intervention_status"),
        dates(start, status != 0).alias("intervention_start"),
        dates(end, status >= 2).alias("intervention_end"),
        pl.Series("comparison_group", comparison[fam_of_row]),
        *(pl.Series(name, flags[:, j]) for j, name in enumerate(PROBLEMS)),
    )
