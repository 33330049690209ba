"""`tfkit verify`: everything an auditor needs to trust a package, as a typed report.

Checks (each a `Check` with a code, a status and a message naming what broke):
  bag.files          regular files only: no symlink, FIFO, device or socket anywhere, no folder but data/
  package.staging    not an unpublished staging folder (publish removes the staging marker last)
  bag.structure      bagit.txt, bag-info.txt, manifests and data/ present and well formed
  bag.payload        every payload file listed, present and matching its SHA-256; nothing extra; Payload-Oxum
  bag.tags           every tag file matching the tag manifest; nothing at the top level but the signature
  signature          the Ed25519 signature over tagmanifest-sha256.txt
  signer.key         the key it was checked with: an independently held --public-key, or only the embedded one
  manifest.signer    manifest.json's signer fingerprint is the key that signed
  package.name       the folder's name is the package id (LA_return_period) in manifest.json and bag-info.txt
  manifest.outputs   each data file's hash, size, rows and schema as manifest.json says; no undescribed file
  reconciliation     rows_in = rows_out + quarantined + withdrawn + excluded per source; tables add up
  contract           a pseudonym contract version this tfkit knows
  disclosure         k, the smallest class and the share below k recomputed from person.parquet match
                     the manifest; a fail/generalise policy's data is k-anonymous (tfkit.disclosure.verification)
  key.fingerprint    the master-key fingerprint, when --expect-key-fingerprint is given
  demo               demo packages are reported (a warning, not a failure)
  identifiers        no value or column in any data file shaped like a raw identifier
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfkit.disclosure.verification import verify_published
from tfkit.errors import InputFileError
from tfkit.package import bag
from tfkit.package.manifest import footer_metadata, parquet_facts
from tfkit.package.scan import scan_bag
from tfkit.package.signing import load_public_key, public_key_fingerprint, verify_signature

KNOWN_CONTRACTS = ("v1",)
PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass
class Check:
    code: str
    status: str
    message: str
    details: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "status": self.status, "message": self.message, "details": self.details}


@dataclass
class VerifyReport:
    package: str
    checks: list[Check] = field(default_factory=list)
    demo: bool | None = None
    key_fingerprint: str | None = None
    signer_fingerprint: str | None = None
    authenticated: bool = False  # checked against an independently held public key
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def add(self, code: str, status: str, message: str, details: list[str] | None = None) -> Check:
        check = Check(code, status, message, details or [])
        self.checks.append(check)
        return check

    def conclude(self, code: str, problems: list[str], passed: str) -> Check:
        """FAIL naming the first problem (all of them in details), or PASS with `passed`."""
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return self.add(code, FAIL, problems[0] + more, problems)
        return self.add(code, PASS, passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package, "ok": self.ok, "demo": self.demo, "authenticated": self.authenticated,
            "key_fingerprint": self.key_fingerprint, "signer_fingerprint": self.signer_fingerprint,
            "checks": [c.to_dict() for c in self.checks], "identifier_findings": self.findings,
        }


def verify_package(
    package: str | Path,
    *,
    public_key: str | Path | None = None,
    expect_key_fingerprint: str | None = None,
    scan_identifiers: bool = True,
) -> VerifyReport:
    root = Path(package)
    if root.is_file():
        raise InputFileError("is a file, not a folder: a package is the folder tfkit extract wrote", file=root,
                             hint="pass the package's folder, e.g. packages/E09000031_nis_2019-H2")
    if not root.is_dir():
        raise InputFileError("package folder not found", file=root, hint="pass the package's folder, e.g. packages/E09000031_nis_2019-H2")
    if not any((root / name).exists() for name in (bag.BAGIT_TXT, bag.MANIFEST_JSON, bag.PAYLOAD_DIR)):
        # Nothing of a package is there (a wrong folder, not a damaged package): a usage error.
        raise InputFileError(f"is not a tfkit package: it has no {bag.BAGIT_TXT}, {bag.MANIFEST_JSON} or "
                             f"{bag.PAYLOAD_DIR}/", file=root,
                             hint="pass the package's folder, e.g. packages/E09000031_nis_2019-H2")
    report = VerifyReport(str(root))
    trusted_key = load_public_key(public_key) if public_key else None  # a bad path is the user's error (exit 2)

    report.conclude("bag.files", bag.foreign_entries(root), "regular files only, and no folder but data/")
    _staging(root, report)
    if not _structure(root, report):
        return report
    payload_hashes = _payload(root, report)
    _tags(root, report)
    manifest = _load_manifest(root, report)
    embedded_fp = _signature(root, report, trusted_key)
    if manifest is None:
        return report
    report.demo = bool(manifest.get("demo"))
    report.key_fingerprint = manifest.get("key_fingerprint")
    _manifest_signer(manifest, embedded_fp, report)
    _name(root, manifest, report)
    _outputs(root, manifest, payload_hashes, report)
    _reconciliation(manifest, report)
    _contract(manifest, report)
    report.add("disclosure", *verify_published(root, manifest))  # recomputed from data/person.parquet
    _key_fingerprint(manifest, expect_key_fingerprint, report)
    if report.demo:
        report.add("demo", WARN, "DEMO package: made from synthetic data with demo keys; not for submission to ONS")
    else:
        report.add("demo", PASS, "not a demo package")
    if scan_identifiers:
        _identifiers(root, report)
    return report


# --------------------------------------------------------------------------- checks


def _staging(root: Path, report: VerifyReport) -> None:
    if os.path.lexists(root / bag.STAGING_MARKER):
        report.add("package.staging", FAIL,
                   f"unpublished staging folder: it holds {bag.STAGING_MARKER}, so the run that wrote it never "
                   "published it (it was interrupted); it is not a package",
                   ["rerun tfkit extract: it removes stale staging folders"])
    else:
        report.add("package.staging", PASS, "a published package, not a staging folder")


def _name(root: Path, manifest: dict[str, Any], report: VerifyReport) -> None:
    folder = Path(os.path.abspath(root)).name
    fields = [manifest.get(k) for k in ("la_code", "return", "period")]
    expected = "_".join(str(f) for f in fields) if all(isinstance(f, str) and f for f in fields) else None
    external = bag.parse_bag_info(_text(root / bag.BAG_INFO)).get("External-Identifier")
    problems = []
    if expected is None:
        problems.append("manifest.json does not name the package: la_code, return and period are needed")
    elif folder != expected:
        problems.append(f"renamed package: the folder is {folder}, but manifest.json says the package is {expected}")
    if external != expected:
        problems.append(f"bag-info.txt's External-Identifier is {external!r}, manifest.json says {expected!r}")
    report.conclude("package.name", problems, f"folder, manifest.json and bag-info.txt agree: {expected}")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if bag.is_regular(path) else ""


def _structure(root: Path, report: VerifyReport) -> bool:
    problems = []
    for name in (bag.BAGIT_TXT, bag.BAG_INFO, bag.PAYLOAD_MANIFEST, bag.TAG_MANIFEST):
        if not bag.is_regular(root / name):
            problems.append(f"{name} is missing")
    if not bag.is_real_dir(root / bag.PAYLOAD_DIR):
        problems.append("data/ is missing")
    if bag.is_regular(root / bag.BAGIT_TXT):
        text = (root / bag.BAGIT_TXT).read_bytes()
        info = bag.parse_bag_info(text.decode("utf-8", "replace"))
        if text.startswith(b"\xef\xbb\xbf") or "BagIt-Version" not in info or "Tag-File-Character-Encoding" not in info:
            problems.append("bagit.txt is not a BagIt declaration")
    if problems:
        # Like conclude: the first problem in the message, every one in details (rendered once each).
        report.conclude("bag.structure", [f"not a complete bag: {problems[0]}", *problems[1:]], "")
        return False
    report.add("bag.structure", PASS, "BagIt structure present")
    return True


def _read_manifest_file(root: Path, name: str, report: VerifyReport, code: str) -> dict[str, str] | None:
    try:
        return bag.parse_manifest((root / name).read_text(encoding="utf-8"), name)
    except (ValueError, UnicodeDecodeError) as err:
        report.add(code, FAIL, f"{name} is malformed: {err}")
        return None


def _payload(root: Path, report: VerifyReport) -> dict[str, str]:
    entries = _read_manifest_file(root, bag.PAYLOAD_MANIFEST, report, "bag.payload")
    if entries is None:
        return {}
    problems, computed = [], {}
    on_disk = set(bag.payload_paths(root))
    for rel, expected in sorted(entries.items()):
        if rel not in on_disk:
            problems.append(f"removed file: {rel} is listed in {bag.PAYLOAD_MANIFEST} but missing")
            continue
        actual = bag.sha256_file(root / rel)
        computed[rel] = actual
        if actual != expected:
            problems.append(f"checksum mismatch: {rel} has SHA-256 {actual[:16]}..., the manifest says {expected[:16]}...")
    for rel in sorted(on_disk - set(entries)):
        problems.append(f"added file: {rel} is not listed in {bag.PAYLOAD_MANIFEST}")
    oxum = bag.parse_bag_info(_text(root / bag.BAG_INFO)).get("Payload-Oxum")
    if oxum:
        actual_oxum = f"{sum((root / r).stat().st_size for r in on_disk)}.{len(on_disk)}"
        if oxum != actual_oxum:
            problems.append(f"Payload-Oxum in {bag.BAG_INFO} is {oxum}, the payload is {actual_oxum}")
    report.conclude("bag.payload", problems, f"{len(entries)} payload file(s) complete and matching their SHA-256")
    return computed


def _tags(root: Path, report: VerifyReport) -> None:
    entries = _read_manifest_file(root, bag.TAG_MANIFEST, report, "bag.tags")
    if entries is None:
        return
    problems = []
    for name in bag.TAG_FILES:
        if name not in entries:
            problems.append(f"{name} is not listed in {bag.TAG_MANIFEST}")
    for rel, expected in sorted(entries.items()):
        path = root / rel
        if not bag.is_regular(path):
            problems.append(f"removed file: {rel} is listed in {bag.TAG_MANIFEST} but missing")
        elif bag.sha256_file(path) != expected:
            problems.append(f"checksum mismatch: {rel} was changed after the package was signed")
    allowed = set(entries) | set(bag.UNLISTED_TOP_LEVEL) | {bag.PAYLOAD_DIR}
    for name in sorted(os.listdir(root)):
        if name not in allowed and name != bag.STAGING_MARKER:  # the marker has its own check
            problems.append(f"added file: {name} is not part of the package")
    report.conclude("bag.tags", problems, f"{len(entries)} tag file(s) match {bag.TAG_MANIFEST}")


def _load_manifest(root: Path, report: VerifyReport) -> dict[str, Any] | None:
    path = root / bag.MANIFEST_JSON
    if not bag.is_regular(path):
        report.add("manifest.outputs", FAIL, "removed file: manifest.json is missing")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data
    except (ValueError, UnicodeDecodeError) as err:
        report.add("manifest.outputs", FAIL, f"manifest.json is not valid JSON: {err}")
        return None


def _signature(root: Path, report: VerifyReport, trusted_key) -> str | None:
    """Check the signature; returns the embedded signer.pub's fingerprint (None when unreadable)."""
    embedded = None
    embedded_fp = None
    if bag.is_regular(root / bag.SIGNER_PUB):
        try:
            embedded = load_public_key(root / bag.SIGNER_PUB)
            embedded_fp = public_key_fingerprint(embedded)
        except Exception:  # a tampered or junk key file is a finding, not a crash
            embedded = None
    report.signer_fingerprint = embedded_fp
    sig_path = root / bag.SIGNATURE
    if not bag.is_regular(sig_path):
        report.add("signature", FAIL, f"removed file: {bag.SIGNATURE} is missing: the package is unsigned")
    key = trusted_key or embedded
    if trusted_key is not None:
        trusted_fp = public_key_fingerprint(trusted_key)
        if embedded_fp is not None and embedded_fp != trusted_fp:
            report.add("signer.key", FAIL,
                       f"swapped public key: the package's {bag.SIGNER_PUB} (fingerprint {embedded_fp}) is not the "
                       f"key you hold (fingerprint {trusted_fp})")
        else:
            report.add("signer.key", PASS, f"checked against the public key you hold (fingerprint {trusted_fp})")
            report.authenticated = True
    elif embedded is not None:
        report.add("signer.key", WARN,
                   f"checked only against the package's own {bag.SIGNER_PUB} (fingerprint {embedded_fp}): this proves "
                   "integrity, not who signed it; pass --public-key with the signer's key obtained separately")
    else:
        report.add("signer.key", FAIL, f"{bag.SIGNER_PUB} is missing or not an Ed25519 public key, and no --public-key was given")
    if key is not None and bag.is_regular(sig_path):
        signed = (root / bag.TAG_MANIFEST).read_bytes()
        if verify_signature(key, sig_path.read_bytes(), signed):
            report.add("signature", PASS, f"Ed25519 signature over {bag.TAG_MANIFEST} is valid")
        else:
            report.add("signature", FAIL, f"signature invalid: {bag.SIGNATURE} does not match {bag.TAG_MANIFEST} "
                                          "under the signer's key (the signature or the tag manifest was altered)")
    return embedded_fp


def _manifest_signer(manifest: dict[str, Any], embedded_fp: str | None, report: VerifyReport) -> None:
    recorded = (manifest.get("signer") or {}).get("fingerprint")
    if embedded_fp is None:
        return
    if recorded != embedded_fp:
        report.add("manifest.signer", FAIL, f"manifest.json says signer fingerprint {recorded}, "
                                            f"but {bag.SIGNER_PUB} has fingerprint {embedded_fp}")
    else:
        report.add("manifest.signer", PASS, f"signer fingerprint {embedded_fp} matches manifest.json")


def _outputs(root: Path, manifest: dict[str, Any], payload_hashes: dict[str, str], report: VerifyReport) -> None:
    outputs = manifest.get("outputs")
    if not isinstance(outputs, list):
        report.add("manifest.outputs", FAIL, "manifest.json has no outputs list")
        return
    problems, described = [], set()
    on_disk = set(bag.payload_paths(root))
    for out in outputs:
        rel = out.get("path", "?")
        described.add(rel)
        path = root / rel
        if not isinstance(rel, str) or not bag.is_regular(path) or rel not in on_disk:
            problems.append(f"removed file: {rel} is described in manifest.json but missing")
            continue
        sha = payload_hashes.get(rel) or bag.sha256_file(path)
        if sha != out.get("sha256"):
            problems.append(f"{rel}: SHA-256 differs from manifest.json")
        if path.stat().st_size != out.get("bytes"):
            problems.append(f"{rel}: {path.stat().st_size} bytes, manifest.json says {out.get('bytes')}")
        try:
            facts = parquet_facts(path)
        except Exception as err:  # corrupt Parquet is a finding
            problems.append(f"{rel}: not a readable Parquet file ({type(err).__name__})")
            continue
        if facts["rows"] != out.get("rows"):
            problems.append(f"{rel}: {facts['rows']} rows, manifest.json says {out.get('rows')}")
        if facts["schema"] != out.get("schema"):
            problems.append(f"{rel}: schema differs from manifest.json")
        footer_fp = footer_metadata(path).get("tfkit.key_fingerprint")
        if footer_fp is not None and footer_fp != manifest.get("key_fingerprint"):
            problems.append(f"{rel}: its footer says key fingerprint {footer_fp}, manifest.json says "
                            f"{manifest.get('key_fingerprint')}")
    for rel in sorted(on_disk):
        if rel not in described:
            problems.append(f"added file: {rel} is not described in manifest.json")
    report.conclude("manifest.outputs", problems, f"{len(outputs)} data file(s) match manifest.json (hash, bytes, rows, schema)")


def _reconciliation(manifest: dict[str, Any], report: VerifyReport) -> None:
    rec = manifest.get("reconciliation")
    if not isinstance(rec, list) or not rec:
        report.add("reconciliation", FAIL, "manifest.json has no reconciliation")
        return
    problems = []
    out_by_table: dict[str, int] = {}
    for r in rec:
        try:
            excluded = sum(int(v) for v in (r.get("excluded") or {}).values())
            total = int(r["rows_out"]) + int(r["quarantined"]) + int(r["withdrawn"]) + excluded
            if int(r["rows_in"]) != total:
                problems.append(f"reconciliation does not add up for source {r.get('source')!r}: rows_in {r['rows_in']} "
                                f"!= rows_out {r['rows_out']} + quarantined {r['quarantined']} + withdrawn "
                                f"{r['withdrawn']} + excluded {excluded} = {total}")
            out_by_table[r["table"]] = out_by_table.get(r["table"], 0) + int(r["rows_out"])
        except (KeyError, TypeError, ValueError):
            problems.append(f"reconciliation entry for {r.get('source') if isinstance(r, dict) else r!r} is malformed")
    for out in manifest.get("outputs") or []:
        table = out.get("table")
        if table in out_by_table and out_by_table[table] != out.get("rows"):
            problems.append(f"reconciliation does not add up for table {table!r}: sources put {out_by_table[table]} "
                            f"rows out, {out.get('path')} holds {out.get('rows')}")
    report.conclude("reconciliation", problems, f"rows in = rows out + quarantined + withdrawn for {len(rec)} source(s)")


def _contract(manifest: dict[str, Any], report: VerifyReport) -> None:
    version = manifest.get("contract_version")
    if version in KNOWN_CONTRACTS:
        report.add("contract", PASS, f"pseudonym contract {version}")
    else:
        report.add("contract", FAIL, f"unknown pseudonym contract version {version!r} (this tfkit knows {', '.join(KNOWN_CONTRACTS)})")


def _key_fingerprint(manifest: dict[str, Any], expected: str | None, report: VerifyReport) -> None:
    actual = manifest.get("key_fingerprint")
    if expected is None:
        report.add("key.fingerprint", PASS, f"master-key fingerprint {actual} (not compared: no --expect-key-fingerprint)")
    elif actual == expected.strip().lower():
        report.add("key.fingerprint", PASS, f"master-key fingerprint {actual} as expected")
    else:
        report.add("key.fingerprint", FAIL, f"key fingerprint mismatch: the package was made with key {actual}, expected {expected}")


def _identifiers(root: Path, report: VerifyReport) -> None:
    findings = scan_bag(root)
    report.findings = [f.to_dict() for f in findings]
    report.conclude("identifiers", [f.message if f.kind == "unreadable" else f"raw identifier found: {f.message}"
                                    for f in findings],
                    "no value or column shaped like a raw identifier in any data file")
