"""Ed25519 signing keys and detached signatures (the `cryptography` package).

The private key lives in a PEM file with mode 0600 (refused when group or others can read it, as
for master keys); the public key is a PEM file that may be shared. Fingerprints, never keys, go
into manifests and logs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tfkit.errors import KeyFileError
from tfkit.pseudonymise.contract import check_private_file


def public_key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """First 16 hex characters of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_path_for(private_path: str | Path) -> Path:
    """`signing.key` -> `signing.pub` (the convention `keys generate --signing` writes)."""
    p = Path(private_path)
    return p.with_suffix(".pub") if p.suffix else p.with_name(p.name + ".pub")


def generate_signing_key_pair(private_path: str | Path) -> tuple[Path, Path, str]:
    """Write a new Ed25519 private key (PEM, 0600) and its public key beside it (`.pub`).

    Returns (private path, public path, public-key fingerprint). Refuses to overwrite either file.
    """
    private_path = Path(private_path)
    public_path = public_key_path_for(private_path)
    for p in (private_path, public_path):
        if p.exists():
            raise KeyFileError("file already exists; refusing to overwrite it", file=p,
                               hint="choose another --out path")
    if not private_path.parent.exists():
        raise KeyFileError("the folder for the key file does not exist", file=private_path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.chmod(private_path, 0o600)
    public = key.public_key()
    public_path.write_bytes(public.public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path, public_key_fingerprint(public)


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    path = Path(path)
    if not path.is_file():
        raise KeyFileError("signing key not found", file=path,
                           hint="make one with: tfkit keys generate --signing --out FILE")
    check_private_file(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise KeyFileError("not a PEM Ed25519 private key", file=path,
                           hint="give the signing key from: tfkit keys generate --signing --out FILE "
                                "(the 64-hex master key is a different key)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError("the signing key must be an Ed25519 key", file=path)
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    path = Path(path)
    if not path.is_file():
        raise KeyFileError("public key not found", file=path, hint="give the signer's .pub file")
    content = path.read_bytes()
    try:
        key = serialization.load_pem_public_key(content)
    except (ValueError, TypeError):
        hint = ("this is the PRIVATE signing key: give its public half, the .pub file beside it"
                if b"PRIVATE KEY" in content else "give the signer's .pub file (PEM)")
        raise KeyFileError("not a PEM Ed25519 public key", file=path, hint=hint) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError("the public key must be an Ed25519 key", file=path)
    return key


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return key.sign(data)


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
