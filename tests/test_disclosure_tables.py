"""Disclosure control covers every published table, not just the person table.

The demo package (cohort + police + school attendance, linked) must pass `tfkit disclosure check`
in every table; a linked partner row carries no quasi-identifier finer than (or different from) its
person's; `verify` fails a package whose partner table is made k-unsafe and re-signed with the key;
and `max_suppression` is a limit, not a hint."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.config import load_config
from tfkit.disclosure import Hierarchy, Level, apply_policy
from tfkit.disclosure.partners import control_tables
from tfkit.disclosure.policy import DisclosureRiskTooHigh
from tfkit.package.manifest import footer_metadata
from tfkit.package.verify import verify_package
from tfkit.pipeline import prepare_demo, run_extract

runner = CliRunner()
QIS = ["dob_year_band", "sex", "postcode_area"]  # at the ladder's first rungs (TWO_LEVELS)
TWO_LEVELS = (Hierarchy("dob_year", (Level("dob_year_band", "year_band", 5),)),
              Hierarchy("postcode_district", (Level("postcode_area", "postcode_area"),)))
PARTNERS = ("police", "school_attendance")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The default demo (2,000 people, police and school attendance linked), extracted once."""
    out = tmp_path_factory.mktemp("demo")
    result = run_extract(load_config(prepare_demo(out)))
    return result, out


def _table(result, name: str) -> pl.DataFrame:
    return pl.read_parquet(result.package / "data" / f"{name}.parquet")


def _published(result) -> list[str]:
    """The person table's published quasi-identifiers (the demo's: 5-year bands and sex, its postcode
    removed, the LA being the geography)."""
    return result.manifest["disclosure"]["published"]["quasi_identifiers"]


def test_every_table_of_the_demo_package_passes_the_disclosure_check(demo):
    result, _ = demo
    res = runner.invoke(app, ["disclosure", "check", str(result.package), "--json", "-"])
    assert res.exit_code == 0, res.output
    checked = json.loads(res.stdout)
    assert checked["passed"] and set(checked["tables"]) == {"person", *PARTNERS}
    qis = _published(result)
    assert qis == ["dob_year_band", "sex"]
    recorded = result.manifest["disclosure"]["tables"]
    max_suppression = result.manifest["disclosure"]["max_suppression"]
    for name, report in checked["tables"].items():
        assert report["quasi_identifiers"] == qis and report["records_below_k"] == 0 and report["smallest_class"] >= 10
        assert report["person_key"][0] == "person_id_pseudonym" and report["people"] <= report["records"]
        # each file on its own too, as the QA pass ran it
        alone = runner.invoke(app, ["disclosure", "check", str(result.package / "data" / f"{name}.parquet"),
                                    *[a for q in qis for a in ("--qi", q)]])
        assert alone.exit_code == 0, alone.output
        rec = recorded[name]
        assert rec["k"] == 10 and rec["quasi_identifiers"] == qis and rec["k_anonymous"]
        assert rec["person_key"] == report["person_key"] and rec["people"] == report["people"]
        assert rec["records"] == _table(result, name).height == report["records"]
        assert rec["share_suppressed"] <= max_suppression and rec["fully_suppressed"] == report["fully_suppressed"]
    # rows are never dropped: every table's rows reconcile with the manifest
    for rec in result.manifest["reconciliation"]:
        assert _table(result, rec["table"]).height == rec["rows_out"]


def test_partner_rows_carry_no_finer_quasi_identifiers_than_their_person(demo):
    result, _ = demo
    qis = _published(result)
    person = _table(result, "person").select("person_id_pseudonym", *[pl.col(q).alias(f"p_{q}") for q in qis])
    suppressed = person.filter(pl.all_horizontal([pl.col(f"p_{q}").is_null() for q in qis]))
    assert suppressed.height > 0
    seen_suppressed = 0
    for name in PARTNERS:
        table = _table(result, name)
        assert not {"dob", "dob_year_month", "dob_year", "postcode", "postcode_sector", "postcode_district",
                    "postcode_area"} & set(table.columns)
        linked = table.filter(pl.col("person_id_pseudonym").is_not_null()).join(person, on="person_id_pseudonym", how="left")
        assert linked.height > 0
        for q in qis:  # a linked row shows exactly its person's published value (null where suppressed there)
            assert linked.filter(pl.col(q).ne_missing(pl.col(f"p_{q}"))).height == 0, (name, q)
        of_suppressed = table.join(suppressed, on="person_id_pseudonym", how="semi")
        assert of_suppressed.select(pl.all_horizontal([pl.col(q).is_null() for q in qis]).all()).item()
        seen_suppressed += of_suppressed.height
    assert seen_suppressed > 0  # the demo has suppressed people with police or school rows


def _resign_with(package, out, key_path, change) -> None:
    """A copy of `package` with one table changed by `change`, re-signed with the real key: only the
    disclosure re-check can tell."""
    from tfkit.package.build import finish_bag, write_tables
    from tfkit.package.signing import load_signing_key

    shutil.copytree(package, out)
    manifest = json.loads((out / "manifest.json").read_text())
    tables, footers = {}, {}
    for path in sorted((out / "data").glob("*.parquet")):
        tables[path.stem] = change(path.stem, pl.read_parquet(path))
        footers[path.stem] = {k: v for k, v in footer_metadata(path).items() if k.startswith("tfkit.")}
    shutil.rmtree(out / "data")
    bag_info = [tuple(line.split(": ", 1)) for line in (out / "bag-info.txt").read_text().splitlines()
                if ": " in line and not line.startswith(("Bagging-Date", "Payload-Oxum", "Bag-Size"))]
    for tag in out.glob("tagmanifest-*.txt"):
        tag.unlink()
    outputs = write_tables(out, tables, footers)
    manifest.pop("outputs", None)
    manifest.pop("signer", None)
    finish_bag(out, outputs, manifest=manifest, bag_info=bag_info, signing_key=load_signing_key(key_path))


def test_verify_fails_a_package_whose_partner_table_is_made_k_unsafe(demo, tmp_path):
    result, out = demo
    key, pub = out / "keys" / "demo-signing.key", out / "keys" / "demo-signing.pub"
    intact = tmp_path / "intact" / result.package.name
    _resign_with(result.package, intact, key, lambda name, frame: frame)
    assert verify_package(intact, public_key=pub).ok  # the re-signing itself breaks nothing

    def unsafe(name, frame):  # one police record gets a year-of-birth band of its own
        if name != "police":
            return frame
        return frame.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("1900-1904"))
                                  .otherwise(pl.col("dob_year_band")).alias("dob_year_band"))

    tampered = tmp_path / "tampered" / result.package.name
    _resign_with(result.package, tampered, key, unsafe)
    report = verify_package(tampered, public_key=pub)
    failing = [c.code for c in report.checks if c.status == "fail"]
    assert failing == ["disclosure"], [(c.code, c.message) for c in report.checks if c.status != "pass"]
    check = next(c for c in report.checks if c.code == "disclosure")
    assert "data/police.parquet" in check.message
    res = runner.invoke(app, ["disclosure", "check", str(tampered)])
    assert res.exit_code == 1


def test_verify_fails_a_partner_table_with_quasi_identifiers_and_no_record(demo, tmp_path):
    result, out = demo
    copy = tmp_path / "norecord" / result.package.name
    shutil.copytree(result.package, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["disclosure"]["tables"] = {"person": manifest["disclosure"]["tables"]["person"]}
    from tfkit.disclosure.verification import verify_published

    status, message, _ = verify_published(copy, manifest)
    assert status == "fail" and "records no disclosure check" in message and "police" in message


def test_control_tables_blanks_a_suppressed_persons_partner_rows():
    # 20 people in one class once widened, and one lone person (suppressed); the partner holds the lone person's
    # record with their exact month and district, plus 12 unlinked records.
    person = pl.DataFrame({
        "person_id_pseudonym": [f"p{i}" for i in range(21)],
        "dob_year_month": [f"{1980 + i % 5}-01" for i in range(20)] + ["1958-06"],  # years and districts
        "sex": ["F"] * 20 + ["M"],                                                  # both need widening
        "postcode_district": [["E17", "E10", "E11", "E4"][i % 4] for i in range(20)] + ["E4"],
    })
    partner = pl.DataFrame({
        "record_id_pseudonym": [f"r{i}" for i in range(14)],
        "dob_year_month": ["1958-06", "1980-03"] + ["1981-05"] * 12,
        "sex": ["M", "X"] + ["F"] * 12,
        "postcode_district": ["E4", "E5"] + ["E11"] * 12,
        "person_id_pseudonym": ["p20", "p0"] + [None] * 12,
    })
    tables, _, records = control_tables({"person": person, "police": partner}, "person", "generalise",
                                        quasi_identifiers=("dob_year", "sex", "postcode_district"), k=10,
                                        sensitive=None, l=2, max_suppression=0.5, hierarchies=TWO_LEVELS)
    police = tables["police"]
    assert police.height == partner.height and police.columns[:4] == ["record_id_pseudonym", "dob_year_band", "sex", "postcode_area"]
    assert police.row(0) == ("r0", None, None, None, "p20")  # suppressed with their person
    assert police.row(1)[1:4] == ("1980-1984", "F", "E")  # the person's published values, not the partner's "X"
    assert records["police"]["suppressed_with_person"] == 1 and records["police"]["linked_rows_from_person"] == 2
    assert records["police"]["k_anonymous"] and records["police"]["quasi_identifiers"] == QIS


def test_max_suppression_is_a_limit_for_apply_policy():
    # 30 people, each their own year and district (all in area E): at 10-year bands and postcode
    # areas they are three classes of 10; a child born 2020, alone, is 1 of 31 (3%) blanked ...
    df = pl.DataFrame({"dob_year_month": [f"{1950 + i}-01" for i in range(30)] + ["2020-01"], "sex": ["F"] * 31,
                       "postcode_district": [f"E{i}" for i in range(31)]})
    out, outcome = apply_policy(df, "generalise")
    assert outcome.passed and outcome.records_suppressed == 1
    assert {g.level for g in outcome.generalised} == {"dob_year_band_10", "postcode_area"}
    # ... but 9 people cannot be k-anonymous for k=10 at any level
    with pytest.raises(DisclosureRiskTooHigh, match="more than max_suppression = 5%") as err:
        apply_policy(df.head(9), "generalise")
    assert "raise [disclosure] max_suppression" in err.value.hint and err.value.exit_code == 1
    out, outcome = apply_policy(df.head(9), "generalise", max_suppression=1.0)  # allowed: everything blanked, rows kept
    assert out.height == 9 and outcome.records_suppressed == 9


def test_a_small_demo_is_refused_not_signed_with_most_records_blanked(tmp_path):
    config = prepare_demo(tmp_path / "small", people=100)
    res = runner.invoke(app, ["extract", "--config", str(config)])
    assert res.exit_code == 1, res.output
    assert "max_suppression" in res.output and "drop a quasi-identifier" in res.output
    cfg = load_config(config)
    assert not cfg.package_dir.exists()
    assert not any((cfg.output_root).glob("*.parquet")) and not any(cfg.output_root.glob("**/*.parquet"))
