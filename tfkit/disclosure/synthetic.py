"""Synthetic pseudonymised-shaped person tables for tests and benchmarks of disclosure control.

The frame has the columns of a package's `data/person.parquet` (the brief's data model), built with
numpy in one pass: no real data, no identifiers, pseudonyms are random hex. The skew (a few large
postcode districts, a long tail of small ones) makes small equivalence classes appear as they do in
real returns.
"""

from __future__ import annotations

import numpy as np
import polars as pl

PROBLEMS = ("crime", "education", "children_in_need", "worklessness", "domestic_abuse", "health")
STATUSES = ("waiting", "in_progress", "completed", "disengaged")
AREAS = ("SW", "SE", "N", "E", "W", "NW", "CR", "BR", "TW", "KT")


def person_table(n: int, *, seed: int = 0, la_code: str = "E09000031", districts: int = 60) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    family_size = 3
    family = np.arange(n) // family_size
    # Zipf-like district sizes: a realistic long tail of small districts.
    weights = 1.0 / np.arange(1, districts + 1) ** 1.1
    weights /= weights.sum()
    district_of_family = rng.choice(districts, size=family.max() + 1, p=weights)
    district_idx = district_of_family[family]
    district_names = np.array([f"{AREAS[i % len(AREAS)]}{i // len(AREAS) + 1}" for i in range(districts)])
    adult = rng.random(n) < 0.45
    year = np.where(adult, rng.integers(1950, 2002, n), rng.integers(2002, 2019, n))
    month = rng.integers(1, 13, n)
    sex = rng.choice(np.array(["F", "M", "U"]), size=n, p=[0.5, 0.49, 0.01])
    problems = {f"problem_{p}": rng.random(n) < rate for p, rate in zip(PROBLEMS, (0.3, 0.35, 0.2, 0.4, 0.15, 0.3))}
    status = rng.choice(np.array(STATUSES), size=family.max() + 1, p=[0.3, 0.35, 0.25, 0.1])[family]
    comparison = (rng.random(family.max() + 1) < 0.2)[family]
    start_days = rng.integers(0, 900, n)
    hexes = rng.integers(0, 2**63, size=(n, 4), dtype=np.int64)
    frame = pl.DataFrame(
        {
            "person_id_pseudonym": hexes[:, 0],
            "family_id_pseudonym": family,
            "sex": sex,
            "dob_year": year,
            "dob_month": month,
            "postcode_district": district_names[district_idx],
            **problems,
            "intervention_status": status,
            "intervention_start": start_days,
            "comparison_group": comparison,
        }
    )
    return frame.select(
        pl.col("person_id_pseudonym").cast(pl.UInt64).map_batches(lambda s: s.hash(seed=seed)).cast(pl.String).str.pad_start(20, "0"),
        pl.col("family_id_pseudonym").hash(seed=seed + 1).cast(pl.String).str.pad_start(20, "0"),
        pl.col("sex"),
        pl.format("{}-{}", pl.col("dob_year"), pl.col("dob_month").cast(pl.String).str.pad_start(2, "0")).alias("dob_year_month"),
        pl.col("postcode_district"),
        *[pl.col(f"problem_{p}") for p in PROBLEMS],
        pl.col("intervention_status"),
        (pl.date(2019, 1, 1) + pl.duration(days=pl.col("intervention_start"))).alias("intervention_start"),
        pl.when(pl.col("intervention_status") == "completed")
        .then(pl.date(2019, 1, 1) + pl.duration(days=pl.col("intervention_start") + 180))
        .otherwise(None).alias("intervention_end"),
        pl.col("comparison_group"),
        pl.lit(la_code).alias("la_code"),
    )
