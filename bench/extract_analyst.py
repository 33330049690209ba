"""The plain pandas + hmac script an analyst would otherwise write (the benchmark's peer).

Read the cohort CSV, hash five identifier columns with HMAC-SHA256, generalise DOB to year-month
and postcode to district, drop names, write Parquet. No validation, no reconciliation, no bag.

    python bench/extract_analyst.py COHORT.csv KEYFILE OUT.parquet
"""

import hashlib
import hmac
import sys

import pandas as pd

cohort, key_file, out = sys.argv[1:4]
key = bytes.fromhex(open(key_file).read().strip())

df = pd.read_csv(cohort, dtype=str, keep_default_na=False)


def pseudonym(value: str, field: str) -> str | None:
    if not value:
        return None
    domain = hmac.new(key, f"nis/{field}".encode(), hashlib.sha256).hexdigest().encode()
    return hmac.new(domain, value.encode(), hashlib.sha256).hexdigest()


for column, field in [("Person ID", "person_id"), ("Family ID", "family_id"), ("NI Number", "nino"),
                      ("UPN", "upn"), ("NHS Number", "nhs_number")]:
    df[field + "_pseudonym"] = [pseudonym(v.replace(" ", "").upper(), field) for v in df[column]]

dob = pd.to_datetime(df["Date of Birth"], format="%d/%m/%Y", errors="coerce")
df["dob_year_month"] = dob.dt.strftime("%Y-%m")
df["postcode_district"] = df["Postcode"].str.upper().str.replace(" ", "").str[:-3]
df = df.drop(columns=["Person ID", "Family ID", "NI Number", "UPN", "NHS Number", "Forename", "Surname",
                      "Date of Birth", "Postcode"])
df.to_parquet(out, index=False, compression="zstd")
