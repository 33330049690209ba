"""Pseudonym construction v1: the interoperability contract of ../shared/reference/pseudonym-v1.md.

Changing any step here is a new contract version, never an edit: every LA with the same master key
and project must derive the same pseudonym for the same person.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from functools import lru_cache
from pathlib import Path

import polars as pl
import polars_hash  # noqa: F401  (registers the .chash namespace)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tfkit.errors import KeyFileError

CONTRACT_VERSION = "v1"
KEY_ENV_VAR = "TFKIT_KEY_FILE"
CANONICAL_FIELDS = ("nino", "upn", "nhs_number", "person_id", "family_id")
_KEY_FILE_RE = re.compile(r"[0-9a-f]{64}\n?")


class MasterKey:
    """A 32-byte master key. Its repr and str show only the fingerprint, so it cannot leak by printing."""

    __slots__ = ("_secret", "source")

    def __init__(self, secret: bytes, source: str | None = None) -> None:
        if len(secret) != 32:
            raise KeyFileError("a master key must be exactly 32 bytes", file=source)
        self._secret = secret
        self.source = source

    @property
    def fingerprint(self) -> str:
        return fingerprint(self._secret)

    def domain_key(self, project: str, field: str) -> bytes:
        return _domain_key(self._secret, project, field)

    def hmac_key_text(self, project: str, field: str) -> str:
        """The HMAC key of the contract: the domain key's lowercase hex, as text."""
        return self.domain_key(project, field).hex()

    def pseudonym(self, normalised_value: str | None, project: str, field: str) -> str | None:
        """Scalar pseudonym (for tests and single look-ups). Null or empty values give None."""
        if normalised_value is None or normalised_value == "":
            return None
        key = self.hmac_key_text(project, field).encode("ascii")
        return hmac.new(key, normalised_value.encode("utf-8"), hashlib.sha256).hexdigest()

    def pseudonym_expr(self, normalised: pl.Expr, project: str, field: str) -> pl.Expr:
        """Vectorised pseudonym of an already-normalised text column (null or empty gives null)."""
        key = self.hmac_key_text(project, field)
        return (
            pl.when(normalised.is_null() | (normalised == ""))
            .then(None)
            .otherwise(normalised.chash.hmac_sha256(key=key))
        )

    def __repr__(self) -> str:
        return f"MasterKey(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __reduce__(self):  # never pickle the secret into a cache or a worker by accident
        raise TypeError("MasterKey cannot be pickled")


def fingerprint(secret: bytes) -> str:
    return hmac.new(secret, b"tfkit/v1/fingerprint", hashlib.sha256).hexdigest()[:16]


@lru_cache(maxsize=256)
def _domain_key(secret: bytes, project: str, field: str) -> bytes:
    info = b"tfkit/v1/" + project.encode("utf-8") + b"/" + field.encode("utf-8")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


# --------------------------------------------------------------------------- key files


def generate_key_file(path: str | Path) -> MasterKey:
    """Write 32 CSPRNG bytes as 64 hex characters, mode 0600, refusing to overwrite."""
    path = Path(path)
    if path.exists():
        raise KeyFileError(
            "key file already exists; refusing to overwrite it",
            file=path,
            hint="choose another --out path; delete the old key only if nothing still needs it",
        )
    if not path.parent.exists():
        raise KeyFileError("the folder for the key file does not exist", file=path)
    secret = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secret.hex() + "\n")
    os.chmod(path, 0o600)
    return MasterKey(secret, source=str(path))


def check_private_file(path: Path) -> None:
    """Refuse a key file readable or writable by group or others, as ssh does."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file permissions {stat.S_IMODE(mode):04o} are too open: group or others can access it",
            file=path,
            hint=f"run: chmod 600 {path}",
        )


def load_key_file(path: str | Path | None) -> MasterKey:
    """Load a master key from --key or $TFKIT_KEY_FILE. There is no default key."""
    if path is None or str(path) == "":
        env = os.environ.get(KEY_ENV_VAR)
        if not env:
            raise KeyFileError(
                "no key file given",
                hint=f"pass --key FILE or set {KEY_ENV_VAR}; make one with: tfkit keys generate --out FILE",
            )
        path = env
    path = Path(path)
    if path.is_dir():
        raise KeyFileError("is a folder, not a key file", file=path, hint="give the key file itself, e.g. keys/master.key")
    if not path.is_file():
        raise KeyFileError("key file not found", file=path, hint="check the path, or make one with tfkit keys generate")
    text = path.read_text(encoding="ascii", errors="replace")
    if "-----BEGIN" not in text:  # a PEM (signing or public) key is the wrong key, whatever its mode
        check_private_file(path)
    if not _KEY_FILE_RE.fullmatch(text):
        # Never echo the content: it may be a key in the wrong form.
        if "-----BEGIN" in text:
            hint = "this is a PEM (signing or public) key; pass the master key from: tfkit keys generate --out FILE"
        elif re.fullmatch(r"[0-9a-fA-F]{64}\s*", text):
            hint = "write the hex in lowercase, on one line (e.g. tr A-F a-f), or fix the line ending"
        else:
            hint = "check this is the master key file; make one with: tfkit keys generate --out FILE"
        raise KeyFileError(
            "malformed key file: it must hold exactly 64 lowercase hex characters, optionally one newline",
            file=path, hint=hint,
        )
    return MasterKey(bytes.fromhex(text.strip()), source=str(path))
