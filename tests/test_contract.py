"""Pseudonym contract v1: every vector of ../shared/reference/pseudonym-v1.md, and cross-checks."""

import hashlib
import hmac
import os

import polars as pl
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from tfkit.errors import KeyFileError
from tfkit.pseudonymise.contract import MasterKey, generate_key_file, load_key_file

from .conftest import CONTRACT_KEY_HEX

VECTORS = [
    ("nis", "nino", "AB123456C", "064c5ad0b6d0173f2f23f3290da7519ac29daea0fa3d12c013e966eb382d68c0"),
    ("nis", "nhs_number", "9434765919", "c9f0e1a90e949ac50f6ba6103fa9e99b9a5414d0506577a53b88e1eca11fbc48"),
    ("nis", "upn", "B801200005001", "296fe8f71d08f59bf42392c62950224777844991f2bde74626368a2c9dd1a543"),
    ("nis", "person_id", "E09000031:12345", "cdc61b678255e90dc584ba72af41d489077411073000de2a00532bb48cafe27f"),
    ("fpd-2019h2", "nino", "AB123456C", "da3860f36d56bb31bea82364bc9b44cd27fbb063bf5733fb369c205355690945"),
    ("nis", "mk/forename_surname_dob_postcode", "SIAN|OBRIENSMITH|19840102|SW1A1AA",
     "577032397c7d4ff695ed829cd01488ca3c08e8707258a1496e7969de54ec8701"),
]

KEY = MasterKey(bytes.fromhex(CONTRACT_KEY_HEX))


def test_fingerprint_vector():
    assert KEY.fingerprint == "180a39191bd3ca09"


@pytest.mark.parametrize("project,field,value,expected", VECTORS)
def test_vectors_scalar_and_vectorised(project, field, value, expected):
    assert KEY.pseudonym(value, project, field) == expected
    out = pl.DataFrame({"v": [value, None, ""]}).select(KEY.pseudonym_expr(pl.col("v"), project, field))
    assert out.to_series().to_list() == [expected, None, None]


def _reference(secret: bytes, project: str, field: str, value: str) -> str:
    """Independent construction: cryptography's HKDF, then the stdlib's HMAC."""
    dk = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
              info=b"tfkit/v1/" + project.encode() + b"/" + field.encode()).derive(secret)
    return hmac.new(dk.hex().encode("ascii"), value.encode("utf-8"), hashlib.sha256).hexdigest()


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.text(min_size=1, max_size=20),
       st.sampled_from(["nino", "upn", "nhs_number", "person_id", "family_id", "mk/x"]),
       st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=20))
def test_random_values_cross_check(secret, project, field, values):
    key = MasterKey(secret)
    got = pl.DataFrame({"v": values}, schema={"v": pl.String}).select(
        key.pseudonym_expr(pl.col("v"), project, field)).to_series().to_list()
    assert got == [_reference(secret, project, field, v) for v in values]


# RFC 4231 HMAC-SHA256 test cases 1, 2 and 4 (the polars-hash kernel takes a text key, so the
# cases whose keys are valid UTF-8 text are checked through it as well as through the stdlib).
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (bytes(range(1, 26)), b"\xcd" * 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
]


@pytest.mark.parametrize("key,msg,expected", RFC4231)
def test_rfc4231(key, msg, expected):
    assert hmac.new(key, msg, hashlib.sha256).hexdigest() == expected
    if all(b < 0x80 for b in key) and all(b < 0x80 for b in msg):
        got = pl.DataFrame({"m": [msg.decode()]}).select(
            pl.col("m").chash.hmac_sha256(key=key.decode())).item()
        assert got == expected


def test_key_files(tmp_path, contract_key_file, monkeypatch):
    assert load_key_file(contract_key_file, allow_test_key=True).fingerprint == "180a39191bd3ca09"
    monkeypatch.setenv("TFKIT_KEY_FILE", str(contract_key_file))
    assert load_key_file(None, allow_test_key=True).fingerprint == "180a39191bd3ca09"
    monkeypatch.delenv("TFKIT_KEY_FILE")
    with pytest.raises(KeyFileError, match="no key file"):
        load_key_file(None)
    os.chmod(contract_key_file, 0o640)
    with pytest.raises(KeyFileError, match="too open"):
        load_key_file(contract_key_file)
    bad = tmp_path / "bad.key"
    bad.write_text(CONTRACT_KEY_HEX.upper())
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileError, match="malformed") as info:
        load_key_file(bad)
    assert CONTRACT_KEY_HEX.upper() not in str(info.value)
    new = generate_key_file(tmp_path / "new.key")
    assert (os.stat(tmp_path / "new.key").st_mode & 0o777) == 0o600
    assert load_key_file(tmp_path / "new.key").fingerprint == new.fingerprint
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_key_file(tmp_path / "new.key")


def test_key_never_printed():
    assert CONTRACT_KEY_HEX not in repr(KEY) and CONTRACT_KEY_HEX not in str(KEY)
