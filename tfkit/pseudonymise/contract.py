"""Pseudonym construction v1: the interoperability contract of ../shared/reference/pseudonym-v1.md.

Changing any step here is a new contract version, never an edit: every LA with the same master key
and project must derive the same pseudonym for the same person.
"""

from __future__ import annotations

from tfkit.keys import (  # noqa: F401  (the contract's keys; they live in tfkit.keys)
    KEY_ENV_VAR,
    MasterKey,
    check_private_file,
    fingerprint,
    generate_key_file,
    load_key_file,
)

CONTRACT_VERSION = "v1"
CANONICAL_FIELDS = ("nino", "upn", "nhs_number", "person_id", "family_id")
