"""Shared builders for package tests (a small signed bag made without the rest of the pipeline)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tfkit.package.build import build_bag
from tfkit.package.signing import generate_signing_key_pair, load_signing_key

PERSON = pl.DataFrame({
    "la_code": ["E09000031"] * 4,
    "person_id_pseudonym": [c * 64 for c in "abcd"],
    "mk_forename_surname_dob_postcode": [c * 64 for c in "0123"],
    "sex": ["M", "F", "U", "F"],
    "dob_year_month": ["1984-01", "1990-02", "2001-12", "2010-07"],
    "postcode_district": ["SW1A", "E1", "N16", "SE15"],
    "problem_crime": [True, False, True, None],
    "sessions_missed": [3, 0, 12, 7],
})


NAME = "E09000031_nis_2019-H2"  # the package id manifest_for describes: make_bag's folder must be named so


def manifest_for(rows_out: int = 4) -> dict:
    return {
        "contract_version": "v1", "key_fingerprint": "180a39191bd3ca09", "demo": False,
        "la_code": "E09000031", "return": "nis", "period": "2019-H2",
        "retention": {"days": 10, "destroy_after": "2030-01-01"},
        "reconciliation": [{"source": "cohort", "table": "person", "rows_in": rows_out + 3, "rows_out": rows_out,
                            "quarantined": 2, "withdrawn": 1, "excluded": {}}],
        "audit": {"log": "audit.jsonl", "chain_head": "0" * 64},
    }


def signing_pair(folder: Path) -> tuple[Ed25519PrivateKey, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    private, public, _ = generate_signing_key_pair(folder / "signing.key")
    return load_signing_key(private), public


def make_bag(path: Path, key: Ed25519PrivateKey, table: pl.DataFrame = PERSON, manifest: dict | None = None) -> Path:
    manifest = manifest or manifest_for(table.height)
    if "disclosure" not in manifest:  # as extract records it (policy warn: 4 records are never k-anonymous)
        from tfkit.disclosure import check
        from tfkit.disclosure.verification import published_summary

        manifest["disclosure"] = {"published": published_summary("warn", check(table), 2)}
    external = "_".join(str(manifest.get(k)) for k in ("la_code", "return", "period"))
    build_bag(path, tables={"person": table}, manifest=manifest,
              bag_info=[("Source-Organization", "E09000031"), ("External-Identifier", external)], signing_key=key)
    return path
