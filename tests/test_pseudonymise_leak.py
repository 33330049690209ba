"""No raw identifier in any byte of any output file, and byte-identical outputs on reruns.

Every output file of `tfkit pseudonymise` (and a pairs file of `tfkit link-keys`) is scanned:
- the file as written (zstd), byte for byte;
- the same table rewritten with compression NONE, so every value is visible as plain bytes
  (64-character hex pseudonyms are blanked first: a digit run inside an HMAC output is a
  coincidence, not a leak);
- every cell read back as text, for short values too (names of 3 letters and more);
- the footer: min/max statistics of every column chunk and the key-value metadata, via pyarrow.
"""

import io
import os
import re

import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.demo import write_demo

from .conftest import CONTRACT_KEY_HEX

SOURCES = {"cohort": "nis", "police": "police", "school_attendance": "school_attendance", "dwp": "dwp"}
IDENTIFIER_HEADERS = {
    "cohort": ["Family ID", "Person ID", "Forename", "Surname", "Postcode", "NI Number", "UPN", "NHS Number"],
    "police": ["Record ID", "First Name", "Last Name", "Post Code"],
    "school_attendance": ["Pupil Ref", "UPN", "GIVEN_NAME", "FAMILY_NAME", "POSTCODE"],
    "dwp": ["Claim Ref", "NINO", "Forename", "Surname", "Postcode"],
}
HEX_PSEUDONYM = re.compile(rb"[0-9a-f]{64}")


def raw_identifiers(paths, min_length: int = 5) -> set[bytes]:
    """Every raw identifier value of every input, as written and in its normalised forms."""
    values: set[str] = set()
    for source, headers in IDENTIFIER_HEADERS.items():
        df = pl.read_csv(paths[source], infer_schema=False)
        for h in headers:
            for v in df[h].drop_nulls().unique().to_list():
                v = v.strip()
                values |= {v, v.upper(), re.sub(r"\s+", "", v.upper())}
                if h in ("Person ID", "Family ID"):
                    values.add(f"E09000031:{v}")
    return {v.encode("utf-8") for v in values if len(v) >= min_length}


def scan(blob: bytes, needles: set[bytes], what: str) -> None:
    """Every occurrence of every needle, via a set of the needles' shortest-length prefixes."""
    k = min(len(n) for n in needles)
    by_prefix: dict[bytes, list[bytes]] = {}
    for n in needles:
        by_prefix.setdefault(n[:k], []).append(n)
    leaks = {n for i in range(len(blob) - k + 1) if blob[i:i + k] in by_prefix
             for n in by_prefix[blob[i:i + k]] if blob.startswith(n, i)}
    assert not leaks, f"{len(leaks)} raw identifier value(s) found in {what}: {sorted(leaks)[:5]}"


def test_scan_finds_a_planted_identifier():
    with pytest.raises(AssertionError, match="1 raw identifier"):
        scan(b"xxAB123456Cyy", {b"AB123456C", b"ZZZZZZ"}, "a planted blob")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak")
    paths = write_demo(root / "demo", 800, seed=5, error_rate=0.0)
    key = root / "master.key"
    key.write_text(CONTRACT_KEY_HEX + "\n")
    os.chmod(key, 0o600)
    runner = CliRunner()
    written = []
    for run in ("first", "second"):
        for source, schema in SOURCES.items():
            out = root / run / f"{source}.parquet"
            res = runner.invoke(app, ["pseudonymise", str(paths[source]), "--schema", schema, "--project", "nis",
                                      "--key", str(key), "--allow-test-key", "--out", str(out)])
            assert res.exit_code == 0, res.output
            written.append(out)
        pairs = root / run / "pairs.parquet"
        res = runner.invoke(app, ["link-keys", str(root / run / "cohort.parquet"), str(root / run / "police.parquet"),
                                  "--out", str(pairs), "--one-to-many"])
        assert res.exit_code == 0, res.output
        written.append(pairs)
    return paths, written


def test_no_raw_identifier_in_any_byte(outputs):
    paths, written = outputs
    # Compressed bytes look random: short needles would match by chance, so >= 5 bytes there; the
    # decompressed text (pseudonyms blanked) is scanned for every name of 3 or more letters too.
    needles = raw_identifiers(paths) | {CONTRACT_KEY_HEX.encode()}
    short_needles = raw_identifiers(paths, min_length=3) | needles
    assert len(needles) > 1000
    for path in written:
        scan(path.read_bytes(), needles, f"{path} as written")
        table = pq.read_table(path)
        plain = io.BytesIO()
        pq.write_table(table, plain, compression="NONE", use_dictionary=True, write_statistics=True)
        scan(HEX_PSEUDONYM.sub(b"-", plain.getvalue()), needles, f"{path} uncompressed")
        # every text cell read back (pseudonyms blanked), for names of 3 or more letters as well
        frame = pl.read_parquet(path)
        cells = [frame.columns] + [frame[c].drop_nulls().cast(pl.String).to_list() for c in frame.columns]
        text = "\n".join(v for col in cells for v in col).encode("utf-8")
        text = HEX_PSEUDONYM.sub(b"-", text)
        scan(text, needles, f"{path} values")
        words = set(re.findall(rb"[A-Za-z0-9'-]+", text))  # short names as whole words ("Ben", not "Benefit")
        assert not words & short_needles, f"{path} values: {sorted(words & short_needles)[:5]}"
        meta = pq.ParquetFile(path).metadata
        kv = meta.metadata or {}
        scan(b"\n".join(kv.values()), needles, f"{path} footer metadata")  # ARROW:schema is base64
        footer = [v for k, v in kv.items() if k != b"ARROW:schema"]
        for rg in range(meta.num_row_groups):
            for col in range(meta.num_columns):
                stats = meta.row_group(rg).column(col).statistics
                if stats is not None and stats.has_min_max:
                    footer += [str(stats.min).encode(), str(stats.max).encode()]
        scan(b"\n".join(footer), short_needles, f"{path} footer statistics")


def test_footer_has_fingerprint_not_key(outputs):
    _, written = outputs
    meta = pq.ParquetFile(written[0]).schema_arrow.metadata
    assert meta[b"tfkit.key_fingerprint"] == b"180a39191bd3ca09"
    assert meta[b"tfkit.pseudonym_contract"] == b"v1"
    # pseudonyms and match keys carry no min/max statistics
    md = pq.ParquetFile(written[0]).metadata
    for col in range(md.num_columns):
        c = md.row_group(0).column(col)
        if c.path_in_schema.endswith("_pseudonym") or c.path_in_schema.startswith("mk_"):
            assert c.statistics is None or not c.statistics.has_min_max


def test_reruns_are_byte_identical(outputs):
    _, written = outputs
    half = len(written) // 2
    for first, second in zip(written[:half], written[half:], strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_the_scan_catches_a_policy_that_keeps_names(outputs, tmp_path):
    """The scan is sensitive: raw values written in the clear are caught. (A policy that keeps them
    is refused before anything is written, so the careless file is written by hand here.)"""
    from tfkit.errors import ConfigError
    from tfkit.io import read_table
    from tfkit.parquet import write_parquet
    from tfkit.pseudonymise import MasterKey, load_policy_file, pseudonymise_file
    from tfkit.schemas import load_schema, validate

    paths, _ = outputs
    careless = tmp_path / "careless.toml"
    careless.write_text('[columns]\n"*" = "keep"\n')
    out = tmp_path / "careless.parquet"
    with pytest.raises(ConfigError, match="direct identifier"):
        pseudonymise_file(paths["police"], schema="police", key=MasterKey(bytes(32)), project="nis", out=out,
                          policy=load_policy_file(careless))
    assert not out.exists()
    write_parquet(validate(read_table(paths["police"]), load_schema("police")).valid, out)
    with pytest.raises(AssertionError, match="raw identifier"):
        scan(out.read_bytes() + repr(pq.ParquetFile(out).metadata.row_group(0).column(1).statistics).encode(),
             raw_identifiers(paths), "a careless output")
