"""Detached Ed25519 signatures over a package (the `cryptography` package).

The keys themselves (PEM files, 0600, fingerprints) are tfkit.keys'.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tfkit.keys import (  # noqa: F401  (signing keys live in tfkit.keys, with every other key)
    generate_signing_key_pair,
    load_public_key,
    load_signing_key,
    public_key_fingerprint,
    public_key_path_for,
    public_key_pem,
)


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
