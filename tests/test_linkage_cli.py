"""End to end on a small generated set, determinism, and the CLI's errors (exit 2, clear messages)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.demo import generate_frames
from tfkit.linkage import LinkageModel, link
from tests.fixtures.demo_frames import cohort_and_partners

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_frames():
    return cohort_and_partners(generate_frames(1500, seed=5), n_right=1500, seed=0)


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory, demo_frames):
    folder = tmp_path_factory.mktemp("link")
    paths = []
    for name, frame in demo_frames.items():
        path = folder / f"{name}.csv"
        frame.rename({"forename": "First Name"} if name == "partners" else {}).write_csv(path)
        paths.append(path)
    return paths


def small_model() -> LinkageModel:
    model = LinkageModel.default()
    model.settings.u_sample_pairs = 100_000
    return model


def test_end_to_end_f1_above_floor(demo_frames):
    result = link(demo_frames, small_model(), truth_column="person_key")
    at = result.metrics["at_threshold"]
    assert at["f1"] > 0.93, at
    assert result.metrics["blocking_recall"] > 0.97
    assert result.metrics["best_f1"]["f1"] >= at["f1"]
    # Nothing lost: every input record is in the clusters output exactly once.
    assert result.clusters.height == sum(f.height for f in demo_frames.values())
    # Outputs hold ids, levels and scores, never names.
    assert not {"forename", "surname", "dob", "postcode"} & set(result.pairs.columns)
    assert {"forename_level", "dob_level", "postcode_level", "sex_level", "match_probability"} <= set(result.pairs.columns)


def test_em_m_close_to_labels(demo_frames):
    by_em = link(demo_frames, small_model()).model
    by_labels = link(demo_frames, small_model(), truth_column="person_key", train_on_labels=True).model
    for name in ("forename", "surname", "dob", "postcode"):
        assert abs(by_em.m[name][0] - by_labels.m[name][0]) < 0.08, name


def test_one_to_one_links_each_record_at_most_once(demo_frames):
    result = link(demo_frames, small_model(), one_to_one=True)
    linked = result.clusters.filter(pl.col("cluster_size") > 1)
    assert linked.group_by("cluster_id", "source").len()["len"].max() == 1


def test_cli_writes_outputs_deterministically(tmp_path, demo_files):
    outs = []
    for run in ("one", "two"):
        out = tmp_path / run
        res = runner.invoke(app, ["link", *map(str, demo_files), "--out", str(out), "--map", "First Name=forename",
                                  "--truth", "person_key", "--seed", "3", "--json", "-",
                                  "--report", str(out / "report.html")])
        assert res.exit_code == 0, res.output
        outs.append(out)
        summary = json.loads(res.stdout)
        assert summary["metrics"]["at_threshold"]["f1"] > 0.9
    for name in ("pairs.parquet", "clusters.parquet", "review.parquet", "model.json", "summary.json", "metrics.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    review = pl.read_parquet(outs[0] / "review.parquet")
    # The default threshold (0.65) and review floor (0.1): docs/benchmarks.md, issue 11.
    assert review["match_probability"].is_between(0.1, 0.65, closed="left").all()
    page = (outs[0] / "report.html").read_text()
    assert "<svg" in page and "https:" not in page and "http:" not in page.replace("http://www.w3.org", "")


def test_cli_hints_at_clean_sources_in_link_mode(tmp_path, demo_files):
    base = ["link", *map(str, demo_files), "--map", "First Name=forename"]
    res = runner.invoke(app, base + ["--out", str(tmp_path / "a")])
    assert res.exit_code == 0 and "no source is declared clean" in res.stdout
    res = runner.invoke(app, base + ["--out", str(tmp_path / "b"), "--clean", "cohort"])
    assert res.exit_code == 0 and "declared clean" not in res.stdout
    res = runner.invoke(app, base + ["--out", str(tmp_path / "c"), "--json", "-"])
    assert "no source is declared clean" not in res.stdout and json.loads(res.stdout)  # JSON alone on stdout


def test_cli_missing_mapped_column_is_exit_2(tmp_path, demo_files):
    res = runner.invoke(app, ["link", *map(str, demo_files), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "forename" in res.output and "--map" in res.output


def test_cli_map_naming_absent_column_is_exit_2(tmp_path, demo_files):
    res = runner.invoke(app, ["link", *map(str, demo_files), "--out", str(tmp_path / "o"), "--map", "Nope=forename"])
    assert res.exit_code == 2 and "Nope" in res.output


def test_cli_empty_source_and_all_null_field(tmp_path, demo_frames):
    left = tmp_path / "left.csv"
    demo_frames["cohort"].write_csv(left)
    empty = tmp_path / "empty.csv"
    demo_frames["cohort"].head(0).write_csv(empty)
    res = runner.invoke(app, ["link", str(left), str(empty), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "empty" in res.output
    nulls = tmp_path / "nulls.csv"
    demo_frames["cohort"].head(20).with_columns(pl.lit(None, dtype=pl.String).alias("dob")).write_csv(nulls)
    res = runner.invoke(app, ["link", str(left), str(nulls), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "dob" in res.output


def test_cli_bad_options(tmp_path, demo_files):
    base = ["link", *map(str, demo_files), "--out", str(tmp_path / "o"), "--map", "First Name=forename"]
    res = runner.invoke(app, base + ["--threshold", "0.4", "--review-lower", "0.6"])
    assert res.exit_code == 2 and "review" in res.output
    bad_model = tmp_path / "m.toml"
    bad_model.write_text("[settings]\ncolour = 1\n")
    res = runner.invoke(app, base + ["--model", str(bad_model)])
    assert res.exit_code == 2 and "settings.colour" in res.output
    res = runner.invoke(app, ["link", str(demo_files[0]), "--out", str(tmp_path / "o"), "--mode", "link"])
    assert res.exit_code == 2 and "two sources" in res.output


def test_optional_sex_column_may_be_absent_from_a_source(demo_frames):
    frames = {"cohort": demo_frames["cohort"], "partners": demo_frames["partners"].drop("sex")}
    result = link(frames, small_model(), truth_column="person_key")
    assert result.metrics["at_threshold"]["f1"] > 0.9
    assert (result.pairs["sex_level"] == -1).all()  # no evidence either way


def test_three_sources_link_and_dedupe(demo_frames):
    cohort = demo_frames["cohort"]
    partners = demo_frames["partners"]
    half = partners.height // 2
    frames = {"cohort": cohort, "p1": partners.head(half), "p2": partners.tail(partners.height - half)}
    result = link(frames, small_model(), mode="both", truth_column="person_key")
    assert result.metrics["at_threshold"]["f1"] > 0.9
    assert set(result.pairs["source_l"]) | set(result.pairs["source_r"]) == {"cohort", "p1", "p2"}


def test_sources_sharing_no_one_still_give_every_output(tmp_path):
    a = pl.DataFrame({"record_id": ["1", "2"], "forename": ["Ann", "Bob"], "surname": ["Lee", "Fox"],
                      "dob": ["1990-01-01", "1980-02-02"], "postcode": ["E17 5LA", "E10 5PD"], "sex": ["F", "M"]})
    b = pl.DataFrame({"record_id": ["x", "y"], "forename": ["Cat", "Dan"], "surname": ["Ray", "Poe"],
                      "dob": ["1970-01-01", "1960-02-02"], "postcode": ["E4 6PJ", "E11 1AA"], "sex": ["F", "M"]})
    a.write_csv(tmp_path / "a.csv")
    b.write_csv(tmp_path / "b.csv")
    res = runner.invoke(app, ["link", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(tmp_path / "o"),
                              "--report", str(tmp_path / "o" / "r.html")])
    assert res.exit_code == 0, res.output
    assert pl.read_parquet(tmp_path / "o" / "pairs.parquet").height == 0
    assert pl.read_parquet(tmp_path / "o" / "clusters.parquet")["cluster_id"].n_unique() == 4


def test_cli_same_file_twice_is_exit_2(tmp_path, demo_files):
    res = runner.invoke(app, ["link", str(demo_files[0]), str(demo_files[0]), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "given twice" in res.output and "--mode dedupe" in res.output
    assert not (tmp_path / "o").exists()


def test_cli_map_onto_an_existing_column_is_exit_2(tmp_path, demo_files):
    # QA: `--map forename=surname` on a file with a surname stopped with an internal error (exit 3).
    res = runner.invoke(app, ["link", str(demo_files[0]), "--out", str(tmp_path / "o"), "--map", "forename=surname"])
    assert res.exit_code == 2, res.output
    assert "two columns named 'surname'" in res.output and "Traceback" not in res.output


def test_cli_map_through_a_schema_points_at_the_schema_names(tmp_path):
    # Through --schema the headers are the schema's names already: "see the file's first line" misled.
    from tfkit.demo import write_demo

    cohort = write_demo(tmp_path / "demo", 60)["cohort"]
    res = runner.invoke(app, ["link", str(cohort), "--out", str(tmp_path / "o"), "--schema", "nis",
                              "--map", "Nope=forename"])
    assert res.exit_code == 2, res.output
    assert "tfkit schemas show nis" in " ".join(res.output.split())
