"""Write a complete, signed bag into a (staging) directory.

Order matters: payload files, their manifest, bag-info, manifest.json (which describes the payload),
signer.pub, the tag manifest over all of those, and last the signature over the tag manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tfkit.package import bag, manifest as manifest_mod
from tfkit.package.signing import public_key_fingerprint, public_key_pem, sign
from tfkit.parquet import write_parquet


@dataclass(frozen=True)
class BuiltBag:
    path: Path
    manifest: dict[str, Any]
    tagmanifest_sha256: str
    outputs: list[dict[str, Any]]


def statistics_columns(df: pl.DataFrame) -> list[str]:
    """Min/max statistics are plaintext in the footer: allow them only on non-text columns."""
    return [name for name, dtype in df.schema.items() if dtype not in (pl.String, pl.Categorical, pl.Binary)]


def write_tables(bag_dir: Path, tables: dict[str, pl.DataFrame],
                 metadata: dict[str, dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """One deterministic Parquet file per table; `metadata` adds footer key-values per table
    (fingerprints and names only: the footer is plaintext)."""
    (bag_dir / bag.PAYLOAD_DIR).mkdir(parents=True, exist_ok=True)
    outputs = []
    for table, df in sorted(tables.items()):
        rel = f"{bag.PAYLOAD_DIR}/{table}.parquet"
        path = write_parquet(df, bag_dir / rel, statistics=statistics_columns(df),
                             metadata={**(metadata or {}).get(table, {}), "tfkit.table": table})
        digest = bag.digest_file(bag_dir, rel)
        facts = manifest_mod.parquet_facts(path)
        if facts["rows"] != df.height:
            raise manifest_mod.ReconciliationError(f"{rel}: wrote {df.height} rows but the file holds {facts['rows']}")
        outputs.append({"path": rel, "table": table, "sha256": digest.sha256, "bytes": digest.bytes, **facts})
    return outputs


def build_bag(
    bag_dir: Path,
    *,
    tables: dict[str, pl.DataFrame],
    manifest: dict[str, Any],
    bag_info: list[tuple[str, str]],
    signing_key: Ed25519PrivateKey,
    bagging_date: dt.date | None = None,
    table_metadata: dict[str, dict[str, str]] | None = None,
) -> BuiltBag:
    """Write the payload and every tag file, then sign. `manifest` gets `outputs` and `signer` filled in."""
    outputs = write_tables(bag_dir, tables, table_metadata)
    return finish_bag(bag_dir, outputs, manifest=manifest, bag_info=bag_info, signing_key=signing_key,
                      bagging_date=bagging_date)


def finish_bag(
    bag_dir: Path,
    outputs: list[dict[str, Any]],
    *,
    manifest: dict[str, Any],
    bag_info: list[tuple[str, str]],
    signing_key: Ed25519PrivateKey,
    bagging_date: dt.date | None = None,
) -> BuiltBag:
    """The tag files over payload already written by write_tables, then the signature."""
    payload = [bag.digest_file(bag_dir, rel) for rel in bag.payload_paths(bag_dir)]
    bag.write_text(bag_dir / bag.PAYLOAD_MANIFEST, bag.manifest_text(payload))
    bag.write_text(bag_dir / bag.BAGIT_TXT, bag.bagit_txt())

    public = signing_key.public_key()
    signer_fp = public_key_fingerprint(public)
    info = list(bag_info) + [
        ("Bagging-Date", (bagging_date or dt.date.today()).isoformat()),
        ("Payload-Oxum", bag.payload_oxum(payload)),
        ("Tfkit-Signer-Fingerprint", signer_fp),
    ]
    bag.write_text(bag_dir / bag.BAG_INFO, bag.bag_info_text(info))

    manifest = {**manifest, "outputs": outputs, "signer": {"fingerprint": signer_fp, "algorithm": "Ed25519",
                                                            "public_key_file": bag.SIGNER_PUB,
                                                            "signature_file": bag.SIGNATURE,
                                                            "signed_file": bag.TAG_MANIFEST}}
    bag.write_text(bag_dir / bag.MANIFEST_JSON, manifest_mod.dumps(manifest))
    bag.write_bytes(bag_dir / bag.SIGNER_PUB, public_key_pem(public))

    tags = [bag.digest_file(bag_dir, name) for name in bag.TAG_FILES]
    tag_text = "".join(f"{d.sha256}  {d.path}\n" for d in tags)  # fixed order, bagit.txt first
    bag.write_text(bag_dir / bag.TAG_MANIFEST, tag_text)
    tag_bytes = tag_text.encode("utf-8")
    bag.write_bytes(bag_dir / bag.SIGNATURE, sign(signing_key, tag_bytes))
    return BuiltBag(bag_dir, manifest, hashlib.sha256(tag_bytes).hexdigest(), outputs)
