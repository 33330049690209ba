"""Keys: master keys, signing keys, fingerprints, permission checks, and telling key kinds apart.

* A **master key** (pseudonym-v1): 32 CSPRNG bytes, stored as 64 lowercase hex characters in a file
  of mode 0600. Its fingerprint is HMAC-SHA256(master, "tfkit/v1/fingerprint")[:16 hex]; its domain
  keys are HKDF-SHA256(master, info="tfkit/v1/<project>/<field>"). A key with obviously low entropy
  (one byte repeated, a short repeating pattern, a counting sequence, a published test vector) is
  refused unless the caller allows test keys: `keys generate` is the only way to make a key.
* A **signing key**: Ed25519, private key in a PEM file of mode 0600, public key (`.pub`) beside
  it. Its fingerprint is SHA-256 over the raw public key [:16 hex].
* Keys never reach a log, a report or an error message: only fingerprints do, and a key pasted
  where a path belongs is reported by its length and shape (tfkit.masking.shown_path).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tfkit.errors import KeyFileError, UsageError

KEY_ENV_VAR = "TFKIT_KEY_FILE"
FINGERPRINT_RE = re.compile(r"[0-9a-f]{16}")
_KEY_FILE_RE = re.compile(r"[0-9a-f]{64}\n?")
# Published master keys: pseudonym-v1's test vector (anyone can compute every pseudonym made with it).
KNOWN_TEST_KEYS = frozenset({bytes(range(32))})


# --------------------------------------------------------------------------- master keys


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

    def pseudonym_expr(self, normalised: "pl.Expr", project: str, field: str) -> "pl.Expr":
        """Vectorised pseudonym of an already-normalised text column (null or empty gives null)."""
        import polars as pl
        import polars_hash  # noqa: F401  (registers the .chash namespace)

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


def weakness(secret: bytes) -> str | None:
    """Why a master key is obviously not random (None when nothing is seen). 32 random bytes hold
    about 30 distinct values; the patterns below appear by chance with negligible probability."""
    if secret in KNOWN_TEST_KEYS:
        return "it is a published test key (pseudonym-v1's test vector)"
    if len(set(secret)) == 1:
        return "every byte is the same"
    for period in (2, 4, 8, 16):
        if secret == secret[:period] * (len(secret) // period):
            return f"it repeats a {period}-byte pattern"
    steps = {(b - a) % 256 for a, b in zip(secret, secret[1:])}
    if len(steps) == 1:
        return "its bytes count up or down in equal steps"
    if len(set(secret)) < 12:
        return f"it holds only {len(set(secret))} distinct byte values"
    return None


def _private_folder(path: Path) -> None:
    """A key's folder: created with mode 0700 when missing (README's first step makes keys/)."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    elif not path.parent.is_dir():
        raise KeyFileError("the folder for the key file is a file", file=path.parent, hint="choose another --out path")


def _refuse_existing(path: Path) -> None:
    if path.is_dir():
        raise KeyFileError("is a folder: give the key file's path inside it", file=path,
                           hint=f"e.g. --out {path / 'master.key'}")
    if path.exists():
        raise KeyFileError("key file already exists; refusing to overwrite it", file=path,
                           hint="choose another --out path; delete the old key only if nothing still needs it")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def generate_key_file(path: str | Path) -> MasterKey:
    """Write 32 CSPRNG bytes as 64 hex characters, mode 0600, refusing to overwrite."""
    path = Path(path)
    _refuse_existing(path)
    _private_folder(path)
    secret = os.urandom(32)
    _write_private(path, (secret.hex() + "\n").encode("ascii"))
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


def _key_path(path: str | Path | None) -> Path:
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
        from tfkit.masking import key_shaped

        # a key pasted where its path belongs is never echoed, not even in the hint
        make = "tfkit keys generate --out FILE" if key_shaped(str(path)) else f"tfkit keys generate --out {path}"
        raise KeyFileError("key file not found", file=path, hint=f"check the path, or make one with: {make}")
    return path


def load_key_file(path: str | Path | None, *, allow_test_key: bool = False) -> MasterKey:
    """Load a master key from --key or $TFKIT_KEY_FILE. There is no default key. A low-entropy key
    is refused unless `allow_test_key` (tests, and the contract's published vectors)."""
    path = _key_path(path)
    text = path.read_text(encoding="ascii", errors="replace")
    if "-----BEGIN" not in text and re.fullmatch(r"[0-9a-fA-F]{64}\s*", text):
        check_private_file(path)  # a key's mode matters; an extract given by mistake is named below
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
    secret = bytes.fromhex(text.strip())
    if not allow_test_key and (why := weakness(secret)):
        raise KeyFileError(
            f"refusing a master key with obviously low entropy: {why}", file=path,
            hint="make a real key with: tfkit keys generate --out FILE (for tests only: --allow-test-key)")
    return MasterKey(secret, source=str(path))


# --------------------------------------------------------------------------- signing keys


def public_key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """First 16 hex characters of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_path_for(private_path: str | Path) -> Path:
    """`signing.key` -> `signing.pub` (the convention `keys generate --signing` writes)."""
    p = Path(private_path)
    return p.with_suffix(".pub") if p.suffix else p.with_name(p.name + ".pub")


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def generate_signing_key_pair(private_path: str | Path) -> tuple[Path, Path, str]:
    """Write a new Ed25519 private key (PEM, 0600) and its public key beside it (`.pub`).

    Returns (private path, public path, public-key fingerprint). Refuses to overwrite either file.
    """
    private_path = Path(private_path)
    public_path = public_key_path_for(private_path)
    for p in (private_path, public_path):
        _refuse_existing(p)
    _private_folder(private_path)
    key = Ed25519PrivateKey.generate()
    _write_private(private_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    public = key.public_key()
    public_path.write_bytes(public_key_pem(public))
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


# --------------------------------------------------------------------------- kinds and fingerprints


def key_kind(path: Path) -> str:
    """"master", "signing" or "public", told apart by the file's content (never printed); a file
    that is none of them (an extract, a config) is refused as not a key, whatever its mode."""
    path = _key_path(path)
    head = path.read_bytes()[:80]
    if head.startswith(b"-----BEGIN PUBLIC KEY"):
        return "public"
    if head.startswith(b"-----BEGIN") and b"PRIVATE KEY" in head:
        return "signing"
    if re.fullmatch(rb"[0-9a-fA-F]{64}\s*", path.read_bytes()[:128]):
        return "master"
    raise KeyFileError("is not a key file: not a 64-hex master key nor a PEM signing or public key", file=path,
                       hint="give a key file made by tfkit keys generate")


def key_fingerprint(path: Path) -> tuple[str, str]:
    """(kind, fingerprint) of a master key, signing key or public key file."""
    kind = key_kind(path)
    if kind == "public":
        return kind, public_key_fingerprint(load_public_key(path))
    if kind == "signing":
        return kind, public_key_fingerprint(load_signing_key(path).public_key())
    return kind, load_key_file(path, allow_test_key=True).fingerprint  # a fingerprint never reveals the key


def parse_fingerprint(text: str | None, option: str = "--expect-key-fingerprint") -> str | None:
    """A key fingerprint as given on the command line (16 hex characters), lower-cased; a usage
    error (exit 2) otherwise, never echoing a value that may be the key itself."""
    if text is None:
        return None
    value = text.strip().lower()
    if FINGERPRINT_RE.fullmatch(value):
        return value
    from tfkit.masking import key_shaped, shape_of

    shown = shape_of(text) if key_shaped(text) else repr(text)
    raise UsageError(f"{option} {shown} is not a key fingerprint (16 hex characters)",
                     hint="print a key's fingerprint with: tfkit keys fingerprint KEYFILE")
