"""tfkit extract end to end on small demo data: package, readers, reruns, cron safety, consent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import bagit
import polars as pl
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.config import load_config
from tfkit.errors import DataCheckFailed
from tfkit.package import audit
from tfkit.package.publish import PackageExists, PackageLocked, output_lock
from tfkit.package.verify import verify_package
from tfkit.pipeline import prepare_demo, run_extract

PEOPLE = 300


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """Demo inputs, keys and config (generated once per module)."""
    out = tmp_path_factory.mktemp("demo")
    prepare_demo(out, people=PEOPLE, partners=())
    return out


@pytest.fixture
def config(demo_dir, tmp_path):
    """The demo config with its output and quarantine folders moved into this test's tmp_path."""
    text = (demo_dir / "tfkit.toml").read_text()
    for rel in ("inputs/", "keys/"):
        text = text.replace(f'"{rel}', f'"{demo_dir}/{rel}')
    text = text.replace('root = "packages"', f'root = "{tmp_path / "packages"}"')
    text = text.replace('quarantine_dir = "quarantine"', f'quarantine_dir = "{tmp_path / "quarantine"}"')
    # The pipeline's tests are not about the disclosure limits (tests/test_disclosure_*.py are): a
    # generous max_suppression keeps them from hanging on how this small cohort happens to be drawn.
    text = text.replace("[disclosure]\n", "[disclosure]\nmax_suppression = 0.5\n", 1)
    path = tmp_path / "tfkit.toml"
    path.write_text(text)
    return path


def test_extract_writes_a_valid_signed_package(config, demo_dir):
    result = run_extract(load_config(config))
    pkg = result.package
    assert pkg.name == "E09000031_nis_2019-H2"
    bagit.Bag(str(pkg)).validate()
    report = verify_package(pkg, public_key=demo_dir / "keys" / "demo-signing.pub")
    assert report.ok and report.authenticated and report.demo
    assert (pkg.parent / f"{pkg.name}.report.html").is_file() and not (pkg / "report.html").exists()
    info = (pkg / "bag-info.txt").read_text()
    assert "Tfkit-Demo: true" in info and "Payload-Oxum:" in info
    m = json.loads((pkg / "manifest.json").read_text())
    rec = m["reconciliation"][0]
    assert rec["rows_in"] == PEOPLE == rec["rows_out"] + rec["quarantined"] + rec["withdrawn"]
    assert m["demo"] is True and m["contract_version"] == "v1" and len(m["key_fingerprint"]) == 16
    assert m["outputs"][0]["rows"] == rec["rows_out"]
    # quarantine is LA-internal: outside the package, with the failing rows and reasons
    q = Path(result.sources[0].quarantine_file)
    assert q.is_file() and "packages" not in q.parts
    assert pl.read_csv(q, infer_schema=False).height == rec["quarantined"]
    # audit: entry appended, chain intact, cross-check with packages
    log = pkg.parent / "audit.jsonl"
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["event"] == "extract" and entry["package"] == pkg.name
    assert audit.verify_log(log, packages_root=pkg.parent).ok
    assert m["audit"]["chain_head"] == entry["hash"] and m["audit"]["entry_seq"] == entry["seq"] == 1


def test_readable_by_pyarrow_pandas_and_duckdb(config):
    import duckdb
    import pandas as pd
    import pyarrow.parquet as pq

    pkg = run_extract(load_config(config)).package
    path = pkg / "data" / "person.parquet"
    rows = json.loads((pkg / "manifest.json").read_text())["outputs"][0]["rows"]
    assert pq.read_table(path).num_rows == rows
    assert len(pd.read_parquet(path)) == rows
    assert duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0][0] == rows


def test_rerun_with_the_same_inputs_is_up_to_date_and_other_inputs_are_refused(config):
    cfg = load_config(config)
    first = run_extract(cfg)
    manifest_bytes = (first.package / "manifest.json").read_bytes()
    log_lines = len((first.package.parent / "audit.jsonl").read_text().splitlines())
    again = run_extract(cfg)  # cron, the next day: nothing changed, nothing to do, exit 0
    assert again.up_to_date and not first.up_to_date and again.package == first.package
    assert (first.package / "manifest.json").read_bytes() == manifest_bytes
    assert len((first.package.parent / "audit.jsonl").read_text().splitlines()) == log_lines
    result = CliRunner().invoke(app, ["--log-format", "json", "extract", "--config", str(config)])
    assert result.exit_code == 0 and '"package_up_to_date"' in result.stderr
    # a changed input (here the config) would make a different package: refused without --force
    config.write_text(config.read_text().replace("[pseudonymise]", "# edited\n[pseudonymise]"))
    with pytest.raises(PackageExists) as err:
        run_extract(load_config(config))
    assert err.value.exit_code == 2


def test_rerun_with_force_gives_byte_identical_data(config):
    cfg = load_config(config)
    first = run_extract(cfg).package
    data1 = (first / "data" / "person.parquet").read_bytes()
    second = run_extract(cfg, force=True).package
    assert (second / "data" / "person.parquet").read_bytes() == data1
    assert verify_package(second).ok
    m = json.loads((second / "manifest.json").read_text())
    assert m["audit"]["entry_seq"] == 2  # the package records its own entry, the second
    assert audit.verify_log(second.parent / "audit.jsonl", packages_root=second.parent).ok


def test_failed_forced_rerun_keeps_the_replaced_packages_la_internal_files(config, monkeypatch):
    from tfkit.pipeline import extract as extract_mod

    cfg = load_config(config)
    first = run_extract(cfg).package
    folder = cfg.quarantine_dir / cfg.package_name
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert before, "the demo config quarantines some rows"

    def broken(request):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(extract_mod, "write_package", broken)
    with pytest.raises(OSError):
        run_extract(cfg, force=True)
    # the package that stays keeps its quarantine and review files, byte for byte, and nothing is set aside
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not list(cfg.quarantine_dir.glob(".*.replaced")) and verify_package(first).ok
    monkeypatch.undo()
    second = run_extract(cfg, force=True).package  # a published rerun leaves no copy of the old files
    assert sorted(p.name for p in folder.iterdir()) == sorted(before) and not list(cfg.quarantine_dir.glob(".*"))
    assert verify_package(second).ok


def test_lock_held_by_another_run(config):
    cfg = load_config(config)
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from tfkit.package.publish import output_lock
        with output_lock(Path({str(cfg.output_root)!r}), {cfg.package_name!r}):
            print("locked", flush=True)
            time.sleep(30)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(PackageLocked):
            run_extract(cfg)
    finally:
        holder.kill()
        holder.wait()
    assert not cfg.package_dir.exists()


def test_exception_mid_write_leaves_no_package(config, monkeypatch):
    import tfkit.package.build as build

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build, "sign", boom)
    cfg = load_config(config)
    with pytest.raises(RuntimeError):
        run_extract(cfg)
    assert not cfg.package_dir.exists()
    assert not list(cfg.output_root.glob(".tmp-*"))


def test_killed_run_leaves_only_staging_which_the_next_run_cleans(config):
    cfg = load_config(config)
    code = textwrap.dedent(f"""
        import os
        import tfkit.package.build as build
        from tfkit.config import load_config
        from tfkit.pipeline import run_extract
        build.sign = lambda *a, **k: os._exit(9)  # killed after the data is written, before signing
        run_extract(load_config({str(config)!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert not cfg.package_dir.exists()
    staged = list(cfg.output_root.glob(".tmp-*"))
    assert len(staged) == 1 and (staged[0] / "data" / "person.parquet").exists()
    run_extract(cfg)
    assert cfg.package_dir.is_dir() and not list(cfg.output_root.glob(".tmp-*"))


def test_consent_withdrawals_counted_and_never_listed(config, demo_dir, tmp_path):
    cohort = pl.read_csv(demo_dir / "inputs" / "cohort.csv", infer_schema=False)
    valid_rows = cohort.filter(pl.col("Person ID").is_not_null()).head(50)
    # withdraw 3 people: one by person id, one by spaced NI number, one by hyphenated NHS number
    with_nino = valid_rows.filter(pl.col("NI Number").is_not_null()).row(1, named=True)
    with_nhs = valid_rows.filter(pl.col("NHS Number").is_not_null() & (pl.col("Person ID") != with_nino["Person ID"])).row(2, named=True)
    by_id = valid_rows.filter(~pl.col("Person ID").is_in([with_nino["Person ID"], with_nhs["Person ID"]])).row(0, named=True)
    nino = with_nino["NI Number"].replace(" ", "")
    nino_spaced = f"{nino[:2]} {nino[2:4]} {nino[4:6]} {nino[6:8]} {nino[8:]}".lower()
    nhs = with_nhs["NHS Number"].replace(" ", "")
    withdrawals = tmp_path / "withdrawals.csv"
    withdrawals.write_text(f"person_id,nino,nhs_number\n {by_id['Person ID']} ,,\n,{nino_spaced},\n,,{nhs[:3]}-{nhs[3:6]}-{nhs[6:]}\n"
                           "NOBODY-0000,,\n")  # a typo'd entry: matches no record, counted as unmatched
    text = config.read_text()
    text = text.replace(str(demo_dir / "inputs" / "consent_withdrawals.csv"), str(withdrawals))
    config.write_text(text)
    result = run_extract(load_config(config))
    rec = result.manifest["reconciliation"][0]
    expected = len({by_id["Person ID"], with_nino["Person ID"], with_nhs["Person ID"]})
    assert rec["withdrawn"] == expected
    assert result.manifest["consent_withdrawals"]["withdrawn_rows"] == {"cohort": expected}
    assert result.manifest["consent_withdrawals"]["unmatched_entries"] == 1
    # never listed: no withdrawn identifier in the manifest, the audit log, the report, the quarantine
    pkg = result.package
    texts = [(pkg / "manifest.json").read_text(), (pkg.parent / "audit.jsonl").read_text(),
             result.report.read_text()]
    if result.sources[0].quarantine_file:
        texts.append(Path(result.sources[0].quarantine_file).read_text())
    for value in (by_id["Person ID"], nino, nhs):
        assert all(value not in t for t in texts[:3])
    q = result.sources[0].quarantine_file
    if q:
        qids = pl.read_csv(q, infer_schema=False)["Person ID"].to_list()
        assert by_id["Person ID"] not in qids


def test_fail_on_invalid_stops_with_exit_1_and_no_package(config):
    config.write_text(config.read_text() + "\n[validation]\nfail_on_invalid = true\n")
    cfg = load_config(config)
    with pytest.raises(DataCheckFailed) as err:
        run_extract(cfg)
    assert err.value.exit_code == 1 and "fail_on_invalid" in str(err.value)
    assert not cfg.package_dir.exists()
    assert list((cfg.quarantine_dir / cfg.package_name).glob("*.quarantine.csv"))


def test_cli_extract_verify_json_and_exit_codes(config, demo_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["--log-format", "json", "extract", "--config", str(config), "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["ok"] and summary["demo"] and summary["package"].endswith("E09000031_nis_2019-H2")
    for line in res.stderr.splitlines():
        json.loads(line)  # every log line is JSON
    again = runner.invoke(app, ["extract", "--config", str(config)])
    assert again.exit_code == 0 and "already up to date" in again.output
    for force in ([], ["--force"]):  # a --json inside the package would change it after signing
        inside = Path(summary["package"]) / "run.json"
        refused = runner.invoke(app, ["extract", "--config", str(config), "--json", str(inside), *force])
        assert refused.exit_code == 2 and "inside the package" in refused.output and not inside.exists()
    pub = demo_dir / "keys" / "demo-signing.pub"
    ok = runner.invoke(app, ["verify", summary["package"], "--public-key", str(pub), "--json", "-"])
    assert ok.exit_code == 0, ok.output
    rep = json.loads(ok.stdout)
    assert rep["ok"] and rep["demo"] and rep["authenticated"]
    (Path(summary["package"]) / "extra.txt").write_text("x")
    bad = runner.invoke(app, ["verify", summary["package"]])
    assert bad.exit_code == 1 and "added file: extra.txt" in bad.output
    # made from the same inputs but altered since: not "up to date"; refused, --force rebuilds it
    damaged = runner.invoke(app, ["extract", "--config", str(config)])
    assert damaged.exit_code == 2 and "fails verification" in damaged.output and "--force" in damaged.output


def test_cli_extract_demo_from_scratch(tmp_path):
    runner = CliRunner()  # the demo as shipped (2,000 people): smaller ones need more suppression than allowed
    out = tmp_path / "demo-output"
    res = runner.invoke(app, ["extract", "--demo", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "tfkit verify" in res.stdout and "--public-key" in res.stdout and "DEMO" in res.stdout
    pkg = out / "packages" / "E09000031_nis_2019-H2"
    assert verify_package(pkg, public_key=out / "keys" / "demo-signing.pub").ok
    again = runner.invoke(app, ["extract", "--demo", "--out", str(out)])  # demo reruns replace the demo package
    assert again.exit_code == 0, again.output


def test_cli_init_writes_a_config_that_loads(tmp_path):
    runner = CliRunner()
    path = tmp_path / "tfkit.toml"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 0
    cfg = load_config(path)
    assert cfg.la_code == "E09000031" and cfg.sources[0].table == "person"
    assert runner.invoke(app, ["init", str(path)]).exit_code == 2


def test_missing_signing_key_is_a_clear_exit_2(config, tmp_path):
    config.write_text(config.read_text().replace("demo-signing.key", "nope.key"))
    res = CliRunner().invoke(app, ["extract", "--config", str(config)])
    assert res.exit_code == 2 and "signing key not found" in res.output and "tfkit keys generate --signing" in res.output


def test_linked_partner_sources(config, demo_dir):
    text = config.read_text()
    partners = "".join(
        f'\n[[sources]]\nname = "{name}"\npath = "{demo_dir}/inputs/{name}.csv"\nschema = "{name}"\n'
        for name in ("police", "school_attendance"))
    head, tail = text.split("[pseudonymise]", 1)
    config.write_text(head + partners + "\n[linkage]\nenabled = true\n\n[pseudonymise]" + tail)
    cfg = load_config(config)
    result = run_extract(cfg)
    pkg = result.package
    assert verify_package(pkg).ok
    m = result.manifest
    assert {o["path"] for o in m["outputs"]} == {"data/person.parquet", "data/police.parquet", "data/school_attendance.parquet"}
    for rec in m["reconciliation"]:
        assert rec["rows_in"] == rec["rows_out"] + rec["quarantined"] + rec["withdrawn"]
    person = pl.read_parquet(pkg / "data" / "person.parquet")
    police = pl.read_parquet(pkg / "data" / "police.parquet")
    linked = police.get_column("person_id_pseudonym").drop_nulls()
    assert linked.len() > 0 and m["linkage"]["linked_to_person"]["police"] >= linked.len()
    # linked rows carry the person table's own pseudonym (withdrawn people's records are gone)
    assert linked.is_in(person.get_column("person_id_pseudonym").implode()).all()


def test_parquet_footer_holds_no_text_statistics_and_names_its_key(config, demo_dir):
    import pyarrow.parquet as pq

    result = run_extract(load_config(config))
    path = result.package / "data" / "person.parquet"
    md = pq.read_metadata(path)
    schema = md.schema.to_arrow_schema()
    for rg in range(md.num_row_groups):
        for i in range(md.num_columns):
            col = md.row_group(rg).column(i)
            if str(schema.field(col.path_in_schema).type) == "string":
                assert col.statistics is None or not col.statistics.has_min_max, col.path_in_schema
    footer = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items() if k.startswith(b"tfkit.")}
    assert footer["tfkit.key_fingerprint"] == result.manifest["key_fingerprint"]
    assert footer["tfkit.table"] == "person" and footer["tfkit.pseudonym_contract"] == "v1"


def test_header_only_withdrawal_list_means_nobody_withdrew(tmp_path):
    from tfkit.pipeline.consent import load_withdrawals

    path = tmp_path / "w.csv"
    path.write_text("person_id,nino,nhs_number\n")
    w = load_withdrawals(path)
    assert w.entries == 0 and w.sha256 and w.split(pl.DataFrame({"person_id": ["1"]}))[1] == 0


def test_cli_audit_and_retention_from_config(config):
    runner = CliRunner()
    assert runner.invoke(app, ["extract", "--config", str(config)]).exit_code == 0
    res = runner.invoke(app, ["audit", "verify", "--config", str(config), "--json", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["entries"] == 1
    listed = runner.invoke(app, ["retention", "--config", str(config), "--json", "-"])
    assert listed.exit_code == 0 and json.loads(listed.stdout)["due"] == []


def test_disclosure_settings_from_the_config_reach_the_check_and_the_manifest(config):
    text = config.read_text()
    start = text.index("[disclosure]")
    end = text.find("\n[", start + 1)
    section = '[disclosure]\npolicy = "warn"\nk = 3\nquasi_identifiers = ["dob_year", "sex"]\nmax_suppression = 0.02\n'
    config.write_text(text[:start] + section + (text[end + 1:] if end >= 0 else ""))
    m = json.loads((run_extract(load_config(config)).package / "manifest.json").read_text())
    assert m["disclosure"]["k"] == 3 and m["disclosure"]["quasi_identifiers"] == ["dob_year", "sex"]
    assert m["disclosure"]["policy"] == "warn"
