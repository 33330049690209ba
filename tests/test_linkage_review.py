"""Clean sources, clerical review files and `tfkit review apply` (issue 11, items 4 and 5)."""

from __future__ import annotations

import csv
import re
import json
import os
import stat

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.config import load_config
from tfkit.linkage import link
from tfkit.linkage.clustering import select_links
from tfkit.linkage.review import read_decisions, review_table
from tfkit.linkage.standardise import Prepared

from tests.test_extract_pipeline import config, demo_dir  # noqa: F401 - fixtures
from tests.test_linkage_cli import demo_frames as frames  # noqa: F401 - fixture
from tests.test_linkage_cli import small_model

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory, frames):
    folder = tmp_path_factory.mktemp("review")
    for name, frame in frames.items():
        frame.write_csv(folder / f"{name}.csv")
    return folder


# --------------------------------------------------------------------------- clean sources


def _prepared(sources: list[int]) -> Prepared:
    frame = pl.DataFrame({"_rid": list(range(len(sources))), "_source": pl.Series(sources, dtype=pl.UInt16),
                          "_record_id": [f"r{i}" for i in range(len(sources))]})
    return Prepared(frame=frame, sources=["cohort", "police", "school"])


def _pairs(edges: list[tuple[int, int, float]]) -> pl.DataFrame:
    return pl.DataFrame({"rid_l": [a for a, _, _ in edges], "rid_r": [b for _, b, _ in edges],
                         "match_weight": [w for _, _, w in edges], "match_probability": [0.99] * len(edges)})


def _groups(links: pl.DataFrame, n: int) -> list[set[int]]:
    from tfkit.linkage.clustering import components

    labels = components(n, links["rid_l"].to_numpy(), links["rid_r"].to_numpy())
    out: dict[int, set[int]] = {}
    for rid, label in enumerate(labels):
        out.setdefault(int(label), set()).add(rid)
    return sorted(out.values(), key=min)


def test_clean_source_never_holds_two_records_in_one_cluster():
    # rows: 0, 1 cohort (clean); 2, 3 police; 4 school
    prepared = _prepared([0, 0, 1, 1, 2])
    pairs = _pairs([
        (0, 1, 12.0),   # inside the clean source: never a link
        (2, 0, 10.0),   # police 2's best cohort record ...
        (2, 1, 4.0),    # ... so not this one (16 times less likely: not too close to call)
        (3, 1, 9.0),
        (3, 4, 5.0),    # police 3 and school 4 would bridge cohort 0 and cohort 1
        (4, 0, 7.0),
    ])
    links, stats = select_links(prepared, pairs, 0.9, clean=("cohort",))
    assert _groups(links, 5) == [{0, 2, 4}, {1, 3}]
    assert stats.links_above_threshold == 6 and stats.conflicts_resolved == 3
    # Without the constraint, everything is one cluster.
    unconstrained, _ = select_links(prepared, pairs, 0.9)
    assert _groups(unconstrained, 5) == [{0, 1, 2, 3, 4}]


def _prepared_with_values(sources: list[int], values: list[tuple]) -> Prepared:
    frame = _prepared(sources).frame.with_columns(
        pl.Series("forename", [v[0] for v in values], dtype=pl.Int32),
        pl.Series("dob", [v[1] for v in values], dtype=pl.Int32))
    return Prepared(frame=frame, sources=["cohort", "police", "school"])


def test_a_record_too_close_to_call_between_two_clean_records_links_to_neither():
    # A father and his junior in the cohort (0, 1: same name, another DOB); police 2 names him with no
    # DOB, so both score the same: given that only one can be him, each is a coin toss, p = 0.5.
    # Police 3 has the junior's DOB: 2^12 against 2^4, p = 0.996: linked to the junior.
    prepared = _prepared_with_values([0, 0, 1, 1], [(7, 100), (7, 9000), (7, None), (7, 9000)])
    pairs = _pairs([(2, 0, 12.0), (2, 1, 12.0), (3, 1, 12.0), (3, 0, 4.0)])
    links, stats = select_links(prepared, pairs, 0.9, clean=("cohort",))
    assert _groups(links, 4) == [{0}, {1, 3}, {2}]
    assert stats.ambiguous_links_dropped == 2 and stats.conflicts_resolved == 3
    # Each candidate alone would link (p = 0.9998): without a clean source nothing is dropped.
    unconstrained, stats = select_links(prepared, pairs, 0.9)
    assert unconstrained.height == 4 and stats.ambiguous_links_dropped == 0


def test_clean_records_holding_the_same_values_count_once():
    # The cohort holds one person twice (0, 1: the same values, two ids): the evidence cannot tell
    # them apart, so they are one candidate and police 2 links to the first, as before.
    prepared = _prepared_with_values([0, 0, 1], [(7, 100), (7, 100), (7, 100)])
    links, stats = select_links(prepared, _pairs([(2, 0, 12.0), (2, 1, 12.0)]), 0.9, clean=("cohort",))
    assert _groups(links, 3) == [{0, 2}, {1}]
    assert stats.ambiguous_links_dropped == 0


def test_ambiguity_is_judged_from_both_ends_between_clean_sources():
    # FEBRL4-like: two clean sources. Cohort 0 against police 1 and 2 (clean too), equally good.
    prepared = _prepared_with_values([0, 1, 1], [(7, 100), (7, 100), (8, 100)])
    links, stats = select_links(prepared, _pairs([(0, 1, 10.0), (0, 2, 10.0)]), 0.9, clean=("cohort", "police"))
    assert links.height == 0 and stats.ambiguous_links_dropped == 2
    # A clear winner links.
    links, _ = select_links(prepared, _pairs([(0, 1, 10.0), (0, 2, 2.0)]), 0.9, clean=("cohort", "police"))
    assert links.select("rid_l", "rid_r").rows() == [(0, 1)]


def test_decisions_force_links_and_non_links():
    prepared = _prepared([0, 0, 1, 1, 2])
    pairs = _pairs([(2, 0, 10.0), (3, 1, 9.0)])
    decisions = pl.DataFrame({"source_l": ["police", "cohort", "cohort"], "record_id_l": ["r2", "r1", "r9"],
                              "source_r": ["cohort", "school", "school"], "record_id_r": ["r0", "r4", "r4"],
                              "decision": ["reject", "accept", "accept"]})
    links, stats = select_links(prepared, pairs, 0.9, clean=("cohort",), decisions=decisions)
    assert _groups(links, 5) == [{0}, {1, 3, 4}, {2}]
    assert (stats.forced_links, stats.forced_non_links, stats.decisions_unmatched) == (1, 1, 1)


def test_rejected_pair_with_a_clean_record_stays_apart_through_other_records():
    # rows: 0 cohort (clean); 1 police; 2 school. Police 1 ~ cohort 0 rejected by a reviewer, but
    # police 1 ~ school 2 ~ cohort 0 would bring it back through the school record.
    prepared = _prepared([0, 1, 2])
    pairs = _pairs([(1, 0, 10.0), (1, 2, 9.0), (2, 0, 8.0)])
    decisions = pl.DataFrame({"source_l": ["cohort"], "record_id_l": ["r0"], "source_r": ["police"],
                              "record_id_r": ["r1"], "decision": ["reject"]})
    links, _ = select_links(prepared, pairs, 0.9, clean=("cohort",), decisions=decisions)
    assert _groups(links, 3) == [{0, 2}, {1}]


def test_twins_are_not_merged_through_a_partner_record(frames):
    """Twins: same surname, DOB and address; different forename and sex. The boy's police record
    may score against his sister too, but joins him alone, and the twins stay apart."""
    cohort, partners = frames["cohort"], frames["partners"]
    twin = {"surname": "Kowalski", "dob": "2011-03-14", "postcode": "E17 4QP", "person_key": None}
    extra_cohort = pl.DataFrame([
        {"record_id": "T-GIRL", "forename": "Zofia", "sex": "F", **twin},
        {"record_id": "T-BOY", "forename": "Jakub", "sex": "M", **twin},
    ], schema=cohort.schema)
    extra_police = pl.DataFrame([{"record_id": "police:T-BOY", "forename": "Jakub", "sex": "M", **twin}],
                                schema=partners.schema)
    data = {"cohort": pl.concat([cohort, extra_cohort]), "partners": pl.concat([partners, extra_police])}
    result = link(data, small_model(), threshold=0.5, clean=("cohort",))
    clusters = result.clusters
    boy = clusters.filter(pl.col("record_id") == "police:T-BOY")["cluster_id"][0]
    members = set(clusters.filter(pl.col("cluster_id") == boy)["record_id"])
    assert members == {"T-BOY", "police:T-BOY"}
    assert result.link_stats.clusters_with_two_clean_records == 0
    # No cluster anywhere holds two cohort records.
    per_cluster = clusters.filter(pl.col("source") == "cohort").group_by("cluster_id").len()
    assert per_cluster["len"].max() == 1


def test_clean_source_summary_counts(frames):
    result = link(frames, small_model(), mode="both", clean=("cohort",))
    constraints = result.summary()["constraints"]
    assert constraints["clean_sources"] == ["cohort"]
    assert constraints["clusters_with_two_clean_records"] == 0
    assert constraints["conflicts_resolved"] >= 0


def test_cli_clean_duplicate_ids_and_unknown_source_exit_2(tmp_path, frames):
    dup = frames["cohort"].with_columns(pl.lit("DUPID7").alias("record_id"))
    dup.write_csv(tmp_path / "cohort.csv")
    frames["partners"].write_csv(tmp_path / "partners.csv")
    args = ["link", str(tmp_path / "cohort.csv"), str(tmp_path / "partners.csv"), "--out", str(tmp_path / "o")]
    r = runner.invoke(app, [*args, "--clean", "cohort"])
    assert r.exit_code == 2, r.output
    assert "declared clean" in r.output and "share a record id" in r.output and "DUPID7" not in r.output
    r = runner.invoke(app, [*args, "--clean", "kohort"])
    assert r.exit_code == 2 and "cohort, partners" in r.output


def test_config_clean_defaults_to_the_cohort_and_checks_names(config):  # noqa: F811
    assert load_config(config).linkage_clean == ("cohort",)
    text = config.read_text()
    head, tail = text.split("[pseudonymise]", 1)
    config.write_text(head + '\n[linkage]\nclean = ["nobody"]\n\n[pseudonymise]' + tail)
    r = runner.invoke(app, ["extract", "--config", str(config)])
    assert r.exit_code == 2 and "nobody" in r.output


# --------------------------------------------------------------------------- review files and decisions


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _write_rows(rows: list[dict], path):
    """A review file as a reviewer saves it after filling in decisions."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_review_table_side_by_side_in_words(frames):
    result = link(frames, small_model(), review_lower=0.05, clean=("cohort",))
    table = review_table(result)
    assert table.height == result.review.height > 0
    for column in ("decision", "match_probability", "match_weight", "main reasons", "forename (left)",
                   "forename (right)", "forename standardised (left)", "dob standardised (right)",
                   "dob level", "dob weight", "postcode level"):
        assert column in table.columns, column
    row = table.row(0, named=True)
    assert row["forename standardised (left)"] is None or row["forename standardised (left)"].isupper()
    levels = set(table["dob level"].drop_nulls())
    dob = next(c for c in result.model.comparisons if c.name == "dob")
    assert levels <= {*dob.labels, "missing (no evidence)"} and levels - {"missing (no evidence)"}
    assert all(";" in r or "(" in r for r in table["main reasons"])
    assert table["match_probability"].is_sorted(descending=True)


def test_cli_review_files_private_and_decisions_applied(tmp_path, files):
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        args = ["link", str(files / "cohort.csv"), str(files / "partners.csv"), "-o", str(out), "--clean", "cohort",
                "--review-lower", "0.05", "--json", "-"]
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        folder = out / "review"
        assert _mode(folder) == 0o700
        assert _mode(folder / "review.csv") == 0o600 and _mode(folder / "review.xlsx") == 0o600
        read_back = pl.read_excel(folder / "review.xlsx", sheet_name="review")
        # a decision written into the review file and not applied: the rerun refuses to overwrite it
        first = list(csv.DictReader((folder / "review.csv").open(encoding="utf-8-sig")))
        first[0]["decision"] = "accept"
        pristine = (folder / "review.csv").read_bytes()
        _write_rows(first, folder / "review.csv")
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "not applied yet" in r.output and "tfkit review apply" in r.output
        (folder / "review.csv").write_bytes(pristine)
        assert "forename (left)" in read_back.columns and read_back.height > 1
        from openpyxl import load_workbook

        book = load_workbook(folder / "review.xlsx")
        assert book.sheetnames == ["review", "how to"] and "tfkit review apply" in book["how to"]["A4"].value
        assert book["review"].data_validations.dataValidation[0].formula1 == '"accept,reject"'
        rows = list(csv.DictReader((folder / "review.csv").open(encoding="utf-8-sig")))
        rows[0]["decision"] = "accept"
        rows[1]["decision"] = " Reject "
        decided = _write_rows(rows, tmp_path / "decided.csv")
        assert runner.invoke(app, ["keys", "generate", "--signing", "-o", str(tmp_path / "k" / "signing.key")]).exit_code == 0
        assert runner.invoke(app, ["keys", "generate", "-o", str(tmp_path / "k" / "master.key")]).exit_code == 0
        # a key that cannot sign: refused, and nothing of the decisions is kept (they would apply unaudited)
        r = runner.invoke(app, ["review", "apply", str(decided), "--out", str(out),
                                "--signing-key", str(tmp_path / "k" / "master.key")])
        assert r.exit_code == 2 and not (folder / "review_decisions.csv").exists() and not (out / "audit.jsonl").exists()
        r = runner.invoke(app, ["review", "apply", str(decided), "--out", str(out), "--json", "-",
                                "--signing-key", str(tmp_path / "k" / "signing.key")])
        assert r.exit_code == 0, r.output
        applied = json.loads(r.stdout)
        assert (applied["accepted"], applied["rejected"]) == (1, 1)
        assert _mode(folder / "review_decisions.csv") == 0o600
        log = (out / "audit.jsonl").read_text()
        assert '"event": "review_decisions"' in log
        assert rows[0]["record_id_l"] not in log and rows[0]["forename (left)"] not in log  # counts only
        # once the log is signed, an unsigned entry would break it: refused, nothing kept
        store = (folder / "review_decisions.csv").read_bytes()
        r = runner.invoke(app, ["review", "apply", str(decided), "--out", str(out)])
        assert r.exit_code == 2 and "--signing-key" in r.output and (out / "audit.jsonl").read_text() == log
        assert (folder / "review_decisions.csv").read_bytes() == store
        r = runner.invoke(app, args)
        summary = json.loads(r.stdout)
        assert summary["constraints"]["forced_links"] == 1 and summary["constraints"]["forced_non_links"] == 1
        # The accepted pair is linked, the rejected one is not, and neither is asked about again.
        clusters = pl.read_parquet(out / "clusters.parquet")

        def cluster_of(source, record_id):
            return clusters.filter((pl.col("source") == source) & (pl.col("record_id") == record_id))["cluster_id"][0]
        a, b = rows[0], rows[1]
        assert cluster_of(a["source_l"], a["record_id_l"]) == cluster_of(a["source_r"], a["record_id_r"])
        assert cluster_of(b["source_l"], b["record_id_l"]) != cluster_of(b["source_r"], b["record_id_r"])
        assert summary["review_pairs"] == len(rows) - 2
    finally:
        os.umask(old)


def test_review_file_neutralises_formulas(tmp_path, frames):
    cohort = frames["cohort"].with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("=HYPERLINK(\"x\")")).otherwise(pl.col("forename")).alias("forename"))
    result = link({"cohort": cohort, "partners": frames["partners"]}, small_model(), review_lower=0.01)
    table = review_table(result)
    from tfkit.linkage.review import write_review_files

    paths = write_review_files(table.with_columns(pl.lit("=1+1").alias("forename (left)")), tmp_path / "r")
    text = paths[0].read_text(encoding="utf-8-sig")
    assert "'=1+1" in text and ",=1+1" not in text
    assert pl.read_excel(paths[1], sheet_name="review")["forename (left)"][0] == "'=1+1"


def test_a_queue_too_long_for_a_spreadsheet_is_csv_only(tmp_path, frames, monkeypatch):
    """A national review band (about a million pairs at 10M x 10M) took the driver past 11 GiB in
    openpyxl: above XLSX_MAX_ROWS pairs the .xlsx is not written, the CSV holds every pair, a
    warning says so, and last run's spreadsheet does not stay beside the new CSV."""
    from tfkit.linkage import review as review_module

    result = link(frames, small_model(), review_lower=0.01)
    table = review_table(result)
    assert table.height > 2
    folder = tmp_path / "r"
    csv, xlsx = review_module.write_review_files(table, folder)
    monkeypatch.setattr(review_module, "XLSX_MAX_ROWS", table.height - 1)
    warned = []
    paths = review_module.write_review_files(table, folder, warn=lambda code, msg, **d: warned.append((code, msg, d)))
    assert paths == [csv] and not xlsx.exists()
    assert pl.read_csv(csv, infer_schema=False).height == table.height
    assert warned[0][0] == "review_xlsx_skipped" and f"{table.height:,} pairs" in warned[0][1]
    assert "review.csv holds every pair" in warned[0][1] and oct(csv.stat().st_mode & 0o777) == "0o600"


def test_bad_decision_is_a_clear_exit_2(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("source_l,record_id_l,source_r,record_id_r,decision\na,1,b,2,accept\na,3,b,4,maybe\n")
    (tmp_path / "out").mkdir()
    r = runner.invoke(app, ["review", "apply", str(path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "'maybe' is not accept or reject" in r.output and "line 3" in r.output
    path.write_text("a,b\n1,2\n")
    r = runner.invoke(app, ["review", "apply", str(path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "not a tfkit review file" in r.output
    r = runner.invoke(app, ["review", "apply", str(path)])
    assert r.exit_code == 2 and "--out" in r.output


def test_decisions_from_the_filled_in_workbook(tmp_path, frames):
    from openpyxl import load_workbook

    from tfkit.linkage.review import write_review_files

    result = link(frames, small_model(), review_lower=0.05, clean=("cohort",))
    xlsx = write_review_files(review_table(result), tmp_path / "r")[1]
    book = load_workbook(xlsx)
    sheet = book["review"]
    sheet["B2"], sheet["B3"] = "Accept", "reject"  # column B: decision
    book.save(xlsx)
    decided = read_decisions(xlsx)
    assert decided["decision"].to_list() == ["accept", "reject"]
    table = review_table(result)
    assert decided.select("record_id_l").to_series().to_list() == table["record_id_l"].head(2).to_list()


def test_decision_values_read_back_unescaped(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("source_l,record_id_l,source_r,record_id_r,decision\na,'-17,b,2,ACCEPT\na,3,b,4,\n")
    d = read_decisions(path)
    assert d.rows() == [("a", "-17", "b", "2", "accept")]


def _extract_with_police(config, text, police, tmp_path, settings):
    """`extract` with the config `text` plus a police source at `police` and linkage on, with a model
    of the `[settings]` lines given, under umask 022 (the files' own modes are what is checked)."""
    model = tmp_path / "linkage.toml"
    model.write_text("[settings]\n" + settings)
    head, tail = text.split("[pseudonymise]", 1)
    partners = f'\n[[sources]]\nname = "police"\npath = "{police}"\nschema = "police"\n'
    config.write_text(head + partners + f'\n[linkage]\nenabled = true\nmodel = "{model}"\n\n[pseudonymise]' + tail)
    cfg = load_config(config)
    from tfkit.pipeline import run_extract

    old = os.umask(0o022)
    try:
        return cfg, run_extract(cfg)
    finally:
        os.umask(old)


def test_extract_writes_review_file_beside_quarantine_and_applies_decisions(config, demo_dir, tmp_path):  # noqa: F811
    from tfkit.pipeline import run_extract

    # some pairs to review
    cfg, result = _extract_with_police(config, config.read_text(), demo_dir / "inputs" / "police.csv", tmp_path,
                                       "threshold = 0.99999999\nreview_lower = 0.0001\nu_sample_pairs = 100000\n")
    linkage = result.manifest["linkage"]
    assert linkage["clean_sources"] == ["cohort"] and linkage["clusters_with_two_clean_records"] == 0
    folder = cfg.quarantine_dir / cfg.package_name
    assert linkage["review_pairs"] > 0
    assert _mode(folder / "review.csv") == 0o600 and _mode(folder) == 0o700
    assert result.to_dict()["review_files"] == [str(folder / "review.csv"), str(folder / "review.xlsx")]
    rows = list(csv.DictReader((folder / "review.csv").open(encoding="utf-8-sig")))
    rows[0]["decision"] = "reject"
    # Decided in the review file itself, not applied yet: a rerun would rewrite it and lose the work.
    _write_rows(rows, folder / "review.csv")
    from tfkit.errors import UsageError

    with pytest.raises(UsageError, match="not applied yet"):
        run_extract(cfg, force=True)
    decided = _write_rows(rows, tmp_path / "decided.csv")
    r = runner.invoke(app, ["review", "apply", str(decided), "--config", str(config)])
    assert r.exit_code == 0, r.output
    from tfkit.package.publish import PackageExists

    with pytest.raises(PackageExists):  # new decisions are new inputs: not "up to date", so refused
        run_extract(cfg)
    again = run_extract(cfg, force=True)
    assert again.manifest["linkage"]["forced_non_links"] == 1
    assert again.manifest["linkage"]["review_pairs"] == linkage["review_pairs"] - 1
    assert "review_decisions" in cfg.audit_log.read_text()
    # A withdrawn person is left out of the review file, as out of the quarantine files.
    cohort_side = next(r for r in rows[1:] if "cohort" in (r["source_l"], r["source_r"]))
    person = cohort_side["record_id_l"] if cohort_side["source_l"] == "cohort" else cohort_side["record_id_r"]
    assert f"cohort,{person}," in (folder / "review.csv").read_text(encoding="utf-8-sig")
    withdrawals = tmp_path / "withdrawals.csv"
    withdrawals.write_text(f"person_id,nino,nhs_number\n{person},,\n")
    text = config.read_text()
    config.write_text(re.sub(r'withdrawals = "[^"]*"', f'withdrawals = "{withdrawals}"', text))
    run_extract(load_config(config), force=True)
    review = (folder / "review.csv").read_text(encoding="utf-8-sig")
    assert f"cohort,{person}," not in review and f",cohort,{person}" not in review


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=2, max_size=14).flatmap(lambda srcs: st.tuples(
    st.just(srcs),
    st.lists(st.tuples(st.integers(0, len(srcs) - 1), st.integers(0, len(srcs) - 1),
                       st.floats(-5, 20, allow_nan=False)), max_size=30),
    st.sets(st.sampled_from(["cohort", "police", "school"]), min_size=1))))
def test_clean_constraints_hold_on_any_graph(case):
    sources, raw, clean = case
    edges = [(a, b, w) for a, b, w in raw if a != b]
    prepared = _prepared(sources)
    pairs = _pairs(edges) if edges else _pairs([]).cast({"rid_l": pl.Int64, "rid_r": pl.Int64})
    links, stats = select_links(prepared, pairs, 0.9, clean=tuple(sorted(clean)))
    again, _ = select_links(prepared, pairs, 0.9, clean=tuple(sorted(clean)))
    assert links.equals(again)  # deterministic
    names = ["cohort", "police", "school"]
    clean_idx = {names.index(c) for c in clean}
    for group in _groups(links, len(sources)):
        for s in clean_idx:
            assert sum(sources[r] == s for r in group) <= 1  # never two records of a clean source
    given_edges = {(min(a, b), max(a, b)) for a, b, _ in edges}
    kept = {(min(a, b), max(a, b)) for a, b in zip(links["rid_l"], links["rid_r"])}
    assert kept <= given_edges
    assert stats.conflicts_resolved == len(edges) - links.height


# --------------------------------------------------------------------------- pairs too close to call reach the reviewer


def test_pairs_too_close_to_call_are_held_for_review():
    # The father and junior of the test above: police 2 is too close to call between them.
    prepared = _prepared_with_values([0, 0, 1, 1], [(7, 100), (7, 9000), (7, None), (7, 9000)])
    pairs = _pairs([(0, 2, 12.0), (1, 2, 12.0), (1, 3, 12.0), (0, 3, 4.0)])
    _, stats = select_links(prepared, pairs, 0.9, clean=("cohort",))
    assert stats.held_for_review.rows() == [(0, 2, "r"), (1, 2, "r")]
    assert "held_for_review" not in stats.to_dict()
    # One-to-one (as extract links) judges them first, so it links neither: a tie has no best, and
    # row order is no evidence. The reviewer sees both.
    links, stats = select_links(prepared, pairs, 0.9, clean=("cohort",), one_to_one=True)
    assert links.select("rid_l", "rid_r").rows() == [(1, 3)]
    assert stats.ambiguous_links_dropped == 2 and stats.conflicts_resolved >= 2
    assert stats.held_for_review.rows() == [(0, 2, "r"), (1, 2, "r")]
    # No clean source, nothing held.
    assert select_links(prepared, pairs, 0.9)[1].held_for_review.height == 0
    # A reviewer accepts one of them: a forced link, the clear best, so the clean-source rule keeps it.
    accept = pl.DataFrame({"source_l": ["cohort"], "record_id_l": ["r1"], "source_r": ["police"],
                           "record_id_r": ["r2"], "decision": ["accept"]})
    for one_to_one in (False, True):
        links, stats = select_links(prepared, pairs, 0.9, clean=("cohort",), decisions=accept, one_to_one=one_to_one)
        assert _groups(links, 4) == [{0}, {1, 2, 3}] if not one_to_one else (1, 2) in links.select("rid_l", "rid_r").rows()
        assert stats.held_for_review.height == 0 and stats.ambiguous_links_dropped == 0


FAMILY = {"surname": "Ashworth", "postcode": "E17 4QP", "sex": "M", "forename": "Dwayne"}


def with_father_and_junior(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """`frames` (cohort, partners) with a father and his junior (same name, sex and address; other
    DOBs) in the cohort, and a police record naming him with no DOB: it scores alike against both."""
    cohort, partners = frames["cohort"], frames["partners"]
    father_and_son = pl.DataFrame([{"record_id": "F-SR", "dob": "1971-06-02", **FAMILY},
                                   {"record_id": "F-JR", "dob": "1996-09-21", **FAMILY}])
    police = pl.DataFrame([{"record_id": "police:F", "dob": None, **FAMILY}], schema_overrides={"dob": pl.String})
    return {"cohort": pl.concat([cohort, father_and_son.cast({c: cohort.schema[c] for c in father_and_son.columns})],
                                how="diagonal"),
            "partners": pl.concat([partners, police.cast({c: partners.schema[c] for c in police.columns})],
                                  how="diagonal")}


@pytest.fixture(scope="module")
def family(frames):
    return with_father_and_junior(frames)


CLOSE = "too close to call between two clean records; not linked"


@pytest.mark.parametrize("one_to_one", [False, True])
def test_pairs_too_close_to_call_reach_the_review_files(family, tmp_path, one_to_one):
    from tfkit.linkage.review import write_review_files

    result = link(family, small_model(), clean=("cohort",), one_to_one=one_to_one)
    review = result.review
    close = review.filter(pl.col("review_reason") != "in the review band")
    assert close.select("record_id_l", "record_id_r").rows() == [("F-SR", "police:F"), ("F-JR", "police:F")]
    assert (close["match_probability"] >= result.threshold).all()
    band = review.filter(pl.col("review_reason") == "in the review band")["match_probability"]
    assert band.is_between(result.review_lower, result.threshold, closed="left").all()
    summary = result.summary()
    assert summary["review_pairs"] == review.height == band.len() + 2
    assert summary["review_pairs_by_reason"] == {"review_band": band.len(), "too_close_to_call": 2}
    # Held for review, not linked, with one-to-one links too (as extract links): a tie has no best.
    linked = set(result.clusters.filter(pl.col("cluster_id") == result.clusters.filter(
        pl.col("record_id") == "police:F")["cluster_id"][0])["record_id"])
    assert linked == {"police:F"}
    assert summary["constraints"]["ambiguous_links_dropped"] == 2
    # In the files: first, the two candidates together, the reason in words, both records side by side.
    table = review_table(result)
    assert table.height == review.height
    head = table.head(2)
    assert head["review reason"].to_list() == [CLOSE] * 2
    assert head["record_id_l"].to_list() == ["F-JR", "F-SR"]
    assert set(head["dob (left)"]) == {"1971-06-02", "1996-09-21"} and head["dob (right)"].to_list() == [None, None]
    assert (table["review reason"].tail(band.len()) == "in the review band").all()
    old = os.umask(0o022)
    try:
        paths = write_review_files(table, tmp_path / "r")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "r") == 0o700 and all(_mode(p) == 0o600 for p in paths)
    assert pl.read_excel(paths[1], sheet_name="review")["review reason"].head(2).to_list() == head["review reason"].to_list()
    assert review_table(result).equals(table)  # deterministic


def test_decisions_on_pairs_too_close_to_call_round_trip(tmp_path, family):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, frame in family.items():
        frame.write_csv(folder / f"{name}.csv")
    out = tmp_path / "out"
    args = ["link", str(folder / "cohort.csv"), str(folder / "partners.csv"), "-o", str(out), "--clean", "cohort",
            "--json", "-"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["review_pairs_by_reason"]["too_close_to_call"] == 2
    assert summary["review_pairs"] == sum(summary["review_pairs_by_reason"].values())
    parquet = pl.read_parquet(out / "review.parquet")
    assert parquet.height == summary["review_pairs"] and parquet["review_reason"].head(0).dtype == pl.String
    rows = list(csv.DictReader((out / "review" / "review.csv").open(encoding="utf-8-sig")))
    assert [(r["record_id_l"], r["review reason"]) for r in rows[:2]] == [("F-JR", CLOSE), ("F-SR", CLOSE)]
    rows[0]["decision"], rows[1]["decision"] = "accept", "reject"  # the junior it is
    r = runner.invoke(app, ["review", "apply", str(_write_rows(rows, tmp_path / "decided.csv")), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert '"event": "review_decisions"' in (out / "audit.jsonl").read_text()
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    again = json.loads(r.stdout)
    assert again["constraints"]["forced_links"] == 1 and again["constraints"]["forced_non_links"] == 1
    assert again["review_pairs_by_reason"]["too_close_to_call"] == 0  # decided: not asked again
    clusters = pl.read_parquet(out / "clusters.parquet")
    police = clusters.filter(pl.col("record_id") == "police:F")["cluster_id"][0]
    assert set(clusters.filter(pl.col("cluster_id") == police)["record_id"]) == {"police:F", "F-JR"}
    assert "F-SR" not in (out / "review" / "review.csv").read_text(encoding="utf-8-sig")


def test_extract_review_file_holds_pairs_too_close_to_call(config, demo_dir, tmp_path):  # noqa: F811
    """extract declares the cohort clean and links one-to-one: a police record too close to call
    between a father and his junior links to neither (as `link --clean`: a tie has no best), is
    counted, and both pairs are in the review file beside the quarantine; a reviewer's accept then
    forces the link."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cohort = pl.read_csv(demo_dir / "inputs" / "cohort.csv", infer_schema=False)
    adult = cohort.filter(pl.col("NI Number").is_not_null()).head(1)
    family = {"Forename": "Dwayne", "Surname": "Ashworth", "Gender": "M", "Postcode": "E17 4QP",
              "NI Number": None, "NHS Number": None, "UPN": None}
    father_and_son = pl.concat([adult.with_columns(**{k: pl.lit(v, dtype=pl.String) for k, v in family.items()},
                                                   **{"Person ID": pl.lit(pid), "Date of Birth": pl.lit(dob)})
                                for pid, dob in (("99000001", "02/06/1971"), ("99000002", "21/09/1996"))])
    pl.concat([cohort, father_and_son]).write_csv(inputs / "cohort.csv")
    police = pl.read_csv(demo_dir / "inputs" / "police.csv", infer_schema=False)
    him = police.head(1).with_columns(**{"Record ID": pl.lit("CR99000001"), "First Name": pl.lit("DWAYNE"),
                                         "Last Name": pl.lit("ASHWORTH"), "DOB": pl.lit(None, dtype=pl.String),
                                         "Sex": pl.lit("M"), "Post Code": pl.lit("E17 4QP")})
    pl.concat([police, him]).write_csv(inputs / "police.csv")
    text = config.read_text().replace(f"{demo_dir}/inputs/cohort.csv", str(inputs / "cohort.csv"))
    cfg, result = _extract_with_police(config, text, inputs / "police.csv", tmp_path, "u_sample_pairs = 100000\n")
    linkage = result.manifest["linkage"]
    assert linkage["review_pairs_by_reason"]["too_close_to_call"] >= 2
    assert linkage["review_pairs"] == sum(linkage["review_pairs_by_reason"].values())
    folder = cfg.quarantine_dir / cfg.package_name
    assert _mode(folder) == 0o700 and _mode(folder / "review.csv") == 0o600 and _mode(folder / "review.xlsx") == 0o600
    rows = list(csv.DictReader((folder / "review.csv").open(encoding="utf-8-sig")))
    held = [r for r in rows if "CR99000001" in (r["record_id_l"], r["record_id_r"])]
    assert {r["record_id_l"] for r in held} == {"99000001", "99000002"}
    assert [r["review reason"] for r in held] == [CLOSE, CLOSE]  # neither linked
    assert rows[:2] == held  # first in the file
    # Counted: the police record is one of the records linked to no person, and the counts reconcile.
    assert linkage["too_close_to_call"]["police"] >= 1 and linkage["ambiguous_links_dropped"] >= 2
    for name, linked in linkage["linked_to_person"].items():
        assert linked + linkage["not_linked_to_person"][name] == linkage["sources"][name]
    # A reviewer decides: the junior it is. The next run links him, and asks no more.
    for r in held:
        r["decision"] = "accept" if r["record_id_l"] == "99000002" else "reject"
    decided = _write_rows(held, tmp_path / "decided.csv")
    r = runner.invoke(app, ["review", "apply", str(decided), "--config", str(cfg.path)])
    assert r.exit_code == 0, r.output
    from tfkit.pipeline import run_extract

    again = run_extract(load_config(cfg.path), force=True).manifest["linkage"]
    assert (again["forced_links"], again["forced_non_links"]) == (1, 1)
    assert again["too_close_to_call"]["police"] == linkage["too_close_to_call"]["police"] - 1
    assert again["linked_to_person"]["police"] == linkage["linked_to_person"]["police"] + 1
    assert not (folder / "review.csv").exists()  # nothing left to review: no file
