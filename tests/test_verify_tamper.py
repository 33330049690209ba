"""Every kind of tampering is caught by tfkit verify, with a message that names it."""

from __future__ import annotations

import json
import shutil

import bagit
import polars as pl
import pytest

from tests.test_package_fixtures import NAME, PERSON, make_bag, manifest_for, signing_pair
from tfkit.package import bag
from tfkit.package.signing import load_signing_key, sign
from tfkit.package.verify import verify_package


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    root = tmp_path_factory.mktemp("signed")
    key, pub = signing_pair(root / "keys")
    return make_bag(root / NAME, key), pub, key


@pytest.fixture
def pkg(signed, tmp_path):
    src, pub, key = signed
    dst = tmp_path / NAME
    shutil.copytree(src, dst)
    return dst, pub, key


def failing(report, code):
    found = [c for c in report.checks if c.code == code and c.status == "fail"]
    assert found, f"expected {code} to fail; got {[(c.code, c.status, c.message) for c in report.checks]}"
    return " | ".join([found[0].message, *found[0].details])


def test_untouched_package_verifies_and_bagit_validates(pkg):
    path, pub, _ = pkg
    bagit.Bag(str(path)).validate()  # full validation: structure, completeness, every checksum
    report = verify_package(path, public_key=pub)
    assert report.ok and report.authenticated, [(c.code, c.message) for c in report.failures]
    assert verify_package(path).ok  # embedded key alone: integrity holds ...
    warn = [c for c in verify_package(path).checks if c.code == "signer.key"][0]
    assert warn.status == "warn" and "integrity, not who signed it" in warn.message  # ... authenticity not proved


def test_flipped_byte_in_parquet(pkg):
    path, pub, _ = pkg
    f = path / "data" / "person.parquet"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    assert "checksum mismatch: data/person.parquet" in failing(verify_package(path, public_key=pub), "bag.payload")


def test_edited_manifest_field(pkg):
    path, pub, _ = pkg
    m = json.loads((path / "manifest.json").read_text())
    m["key_fingerprint"] = "ffffffffffffffff"
    (path / "manifest.json").write_text(json.dumps(m))
    assert "checksum mismatch: manifest.json" in failing(verify_package(path, public_key=pub), "bag.tags")


def test_edited_manifest_with_rewritten_tagmanifest_breaks_the_signature(pkg):
    path, pub, _ = pkg
    m = json.loads((path / "manifest.json").read_text())
    m["reconciliation"][0]["withdrawn"] = 0
    (path / "manifest.json").write_text(json.dumps(m))
    tags = [bag.digest_file(path, n) for n in bag.TAG_FILES]
    (path / bag.TAG_MANIFEST).write_text("".join(f"{d.sha256}  {d.path}\n" for d in tags))
    report = verify_package(path, public_key=pub)
    assert "signature invalid" in failing(report, "signature")


def test_altered_signature(pkg):
    path, pub, _ = pkg
    sig = bytearray((path / bag.SIGNATURE).read_bytes())
    sig[0] ^= 0x01
    (path / bag.SIGNATURE).write_bytes(bytes(sig))
    assert "signature invalid" in failing(verify_package(path, public_key=pub), "signature")


def test_removed_signature(pkg):
    path, pub, _ = pkg
    (path / bag.SIGNATURE).unlink()
    assert "removed file: signature.ed25519" in failing(verify_package(path, public_key=pub), "signature")


def test_added_payload_file(pkg):
    path, pub, _ = pkg
    (path / "data" / "extra.csv").write_text("nhs\n")
    report = verify_package(path, public_key=pub)
    assert "added file: data/extra.csv" in failing(report, "bag.payload")
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(path)).validate()


def test_added_top_level_file(pkg):
    path, pub, _ = pkg
    (path / "notes.txt").write_text("hello")
    assert "added file: notes.txt" in failing(verify_package(path, public_key=pub), "bag.tags")


def test_removed_payload_file(pkg):
    path, pub, _ = pkg
    (path / "data" / "person.parquet").unlink()
    report = verify_package(path, public_key=pub)
    assert "removed file: data/person.parquet" in failing(report, "bag.payload")


def test_removed_tag_file(pkg):
    path, pub, _ = pkg
    (path / bag.MANIFEST_JSON).unlink()
    assert "removed file: manifest.json" in failing(verify_package(path, public_key=pub), "bag.tags")


def test_swapped_public_key_resigned_by_someone_else(pkg, tmp_path):
    """An attacker rebuilds the bag with their own key: only an independently held key exposes it."""
    path, pub, _ = pkg
    evil, _ = signing_pair(tmp_path / "evil")
    shutil.rmtree(path)
    make_bag(path, evil)
    assert verify_package(path).ok  # self-consistent: integrity only
    report = verify_package(path, public_key=pub)
    assert "swapped public key" in failing(report, "signer.key")
    assert "signature invalid" in failing(report, "signature")


def test_swapped_signer_pub_only(pkg, tmp_path):
    path, pub, _ = pkg
    _, evil_pub = signing_pair(tmp_path / "evil")
    shutil.copy(evil_pub, path / bag.SIGNER_PUB)
    report = verify_package(path)
    assert "checksum mismatch: signer.pub" in failing(report, "bag.tags")
    assert "signature invalid" in failing(report, "signature")


def test_key_fingerprint_mismatch(pkg):
    path, pub, _ = pkg
    report = verify_package(path, public_key=pub, expect_key_fingerprint="0123456789abcdef")
    assert "key fingerprint mismatch" in failing(report, "key.fingerprint")
    assert verify_package(path, public_key=pub, expect_key_fingerprint="180a39191bd3ca09").ok


def test_reconciliation_that_does_not_add_up(tmp_path):
    key, pub = signing_pair(tmp_path / "keys")
    m = manifest_for()
    m["reconciliation"][0]["rows_in"] += 5  # signed, but the arithmetic is wrong
    path = make_bag(tmp_path / NAME, key, manifest=m)
    assert "reconciliation does not add up for source 'cohort'" in failing(verify_package(path, public_key=pub), "reconciliation")


def test_reconciliation_rows_out_disagree_with_table(tmp_path):
    key, pub = signing_pair(tmp_path / "keys")
    m = manifest_for()
    m["reconciliation"][0]["rows_out"] -= 1
    m["reconciliation"][0]["quarantined"] += 1
    path = make_bag(tmp_path / NAME, key, manifest=m)
    assert "for table 'person'" in failing(verify_package(path, public_key=pub), "reconciliation")


def test_unknown_contract_version(tmp_path):
    key, pub = signing_pair(tmp_path / "keys")
    m = manifest_for()
    m["contract_version"] = "v9"
    path = make_bag(tmp_path / NAME, key, manifest=m)
    assert "unknown pseudonym contract version 'v9'" in failing(verify_package(path, public_key=pub), "contract")


def test_planted_nhs_numbers_and_name_column(tmp_path):
    key, pub = signing_pair(tmp_path / "keys")
    planted = PERSON.with_columns(
        nhs=pl.Series(["943 476 5919", "9999999999", None, "hello"]),
        nhs_int=pl.Series([9434765919, 1, 2, 3], dtype=pl.Int64),
        forename=pl.Series(["Ann", "Bob", "Cy", "Di"]),
        ni=pl.Series(["ab 12 34 56 c", None, None, None]),
        pc=pl.Series(["sw1a1aa", "E1", None, None]),
        upn=pl.Series(["B801200005001", None, None, None]),
    )
    path = make_bag(tmp_path / NAME, key, table=planted)
    report = verify_package(path, public_key=pub)
    text = failing(report, "identifiers")
    assert "column 'nhs' holds 2 value(s) shaped like raw NHS numbers" in text
    assert "column 'nhs_int' holds 1 value(s) shaped like raw NHS numbers" in text
    assert "column 'forename' looks like a name" in text
    assert "raw NI numbers" in text and "raw UPNs" in text and "full postcodes" in text
    assert "9434765919" not in json.dumps(report.to_dict()) and "943 476 5919" not in json.dumps(report.to_dict())
    # pseudonymised match-key columns named after names are not flagged
    assert all(f["column"] != "mk_forename_surname_dob_postcode" for f in report.findings)
