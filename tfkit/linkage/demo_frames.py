"""The demo generator's extracts as canonical linkage frames, with the truth joined (tests, benchmarks).

The truth column (`person_key`) is for evaluation only; it never drives the linkage itself.
"""

from __future__ import annotations

import polars as pl

CANONICAL = ("record_id", "forename", "surname", "dob", "sex", "postcode")
HEADER_MAPS: dict[str, dict[str, str]] = {
    "cohort": {"Person ID": "record_id", "Forename": "forename", "Surname": "surname",
               "Date of Birth": "dob", "Gender": "sex", "Postcode": "postcode"},
    "police": {"Record ID": "record_id", "First Name": "forename", "Last Name": "surname", "DOB": "dob",
               "Sex": "sex", "Post Code": "postcode"},
    "school_attendance": {"Pupil Ref": "record_id", "GIVEN_NAME": "forename", "FAMILY_NAME": "surname",
                          "BIRTH_DATE": "dob", "GENDER": "sex", "POSTCODE": "postcode"},
    "dwp": {"Claim Ref": "record_id", "Forename": "forename", "Surname": "surname", "DOB": "dob",
            "Postcode": "postcode"},
}


def canonical(data, source: str) -> pl.DataFrame:
    """One demo extract renamed to canonical columns, all text, plus `person_key` from truth.csv."""
    frame = getattr(data, source).rename(HEADER_MAPS[source])
    frame = frame.select([pl.col(c).cast(pl.String) if c in frame.columns else pl.lit(None, dtype=pl.String).alias(c)
                          for c in CANONICAL])
    truth = data.truth.filter(pl.col("source") == source).select("record_id", "person_key")
    return frame.join(truth, on="record_id", how="left", maintain_order="left")


def cohort_and_partners(data, n_right: int | None = None, seed: int = 0) -> dict[str, pl.DataFrame]:
    """`cohort` and `partners` (police, school and DWP records stacked; sampled to `n_right` if given)."""
    partners = pl.concat([canonical(data, s).with_columns(pl.lit(s).alias("partner"))
                          for s in ("police", "school_attendance", "dwp")])
    partners = partners.with_columns(pl.format("{}:{}", "partner", "record_id").alias("record_id")).drop("partner")
    if n_right is not None and n_right < partners.height:
        partners = partners.sample(n_right, seed=seed, shuffle=False)
    return {"cohort": canonical(data, "cohort"), "partners": partners}
