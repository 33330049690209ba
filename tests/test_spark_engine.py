"""The Spark engine (local[2]) gives the polars engine's results; Spark never loads for polars jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from tfkit.cli import app
from tfkit.engine import EngineSettings, choose_engine, engine_from_table
from tfkit.errors import ConfigError
from tfkit.pseudonymise.link_keys import link_on_match_keys
from tests.febrl import febrl4_frames

runner = CliRunner()
KEYS = ["k1", "k2", "k3"]


def extract(n: int, seed: int, prefix: str, people: int = 1000) -> pl.DataFrame:
    """Match-key columns drawn from a small population, so values repeat on a side (ambiguous keys),
    some are null, and later keys resolve what earlier ones left."""
    rng = np.random.default_rng(seed)
    person = rng.integers(0, people, n)
    cols = {"person_id_pseudonym": [f"{prefix}{i}" for i in range(n)]}
    for j, k in enumerate(KEYS):
        coarse = person // (2 ** j)  # k1 is the finest key; k3 the coarsest (most ambiguous)
        v = np.where(rng.random(n) < 0.1, None, [f"{k}:{x}" for x in coarse]).tolist()
        cols[f"mk_{k}"] = v
    return pl.DataFrame(cols, schema={c: pl.String for c in cols})


@pytest.fixture(scope="module")
def extracts(tmp_path_factory):
    d = tmp_path_factory.mktemp("extracts")
    a, b = extract(300, 1, "a"), extract(900, 2, "b")
    a.write_parquet(d / "a.parquet")
    (d / "b").mkdir()  # B as a folder of parts, numbered in path order by both engines
    for i, part in enumerate((b[:400], b[400:])):
        part.write_parquet(d / "b" / f"part-{i:05d}.parquet")
    return d, a, b


@pytest.mark.parametrize("one_to_many", [False, True])
def test_link_keys_spark_equals_polars(spark, extracts, tmp_path, one_to_many):
    from tfkit.engine.spark.link_keys import link_on_match_keys_spark

    d, a, b = extracts
    want, want_counts = link_on_match_keys(a, b, KEYS, one_to_many=one_to_many)
    streamed, streamed_counts = link_on_match_keys(d / "a.parquet", d / "b", KEYS, one_to_many=one_to_many)
    got_df, got_counts = link_on_match_keys_spark(spark, str(d / "a.parquet"), str(d / "b"), KEYS,
                                                  checkpoint_dir=str(tmp_path / "ck"), one_to_many=one_to_many)
    got = pl.from_arrow(got_df.toArrow())
    assert want.height > 50 and any(c.ambiguous_values for c in want_counts)
    assert streamed.equals(want) and streamed_counts == want_counts
    assert got.schema == want.schema
    assert got.equals(want)
    assert got_counts == want_counts
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["pass_01_k1", "pass_02_k2", "pass_03_k3"]


def test_link_keys_cli_spark_writes_a_parquet_folder(spark, extracts, tmp_path):
    d, a, b = extracts
    out = tmp_path / "pairs"
    res = runner.invoke(app, ["link-keys", str(d / "a.parquet"), str(d / "b"), "--out", str(out),
                              "--keys", ",".join(KEYS), "--engine", "spark", "--json", "-"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    want, _ = link_on_match_keys(a, b, KEYS)
    assert summary["engine"] == "spark" and summary["pairs"] == want.height and summary["rows_b"] == 900
    assert out.is_dir() and not (tmp_path / "pairs.checkpoints").exists()
    assert pl.read_parquet(out / "*.parquet").equals(want)  # part files in order = the polars output


def test_polars_and_import_tfkit_never_import_pyspark(extracts, tmp_path):
    d, _, _ = extracts
    code = (
        "import sys, tfkit, tfkit.cli, tfkit.engine\n"
        "from typer.testing import CliRunner\n"
        f"r = CliRunner().invoke(tfkit.cli.app, ['link-keys', {str(d / 'a.parquet')!r}, {str(d / 'b')!r}, "
        f"'--out', {str(tmp_path / 'p.parquet')!r}, '--keys', 'k1,k2,k3'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert not [m for m in sys.modules if m.startswith(('pyspark', 'py4j'))], 'pyspark imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "TFKIT_KEY_FILE": ""})


def test_engine_settings_from_config(tmp_path):
    cfg = tmp_path / "tfkit.toml"
    cfg.write_text('la_code = "E09000031"\n[engine]\nkind = "spark"\nmaster = "local[2]"\n'
                   '[engine.spark]\n"spark.sql.shuffle.partitions" = 8\n"spark.sql.adaptive.enabled" = true\n')
    s = choose_engine(None, cfg)
    assert s == EngineSettings(kind="spark", master="local[2]",
                               conf={"spark.sql.shuffle.partitions": "8", "spark.sql.adaptive.enabled": "true"})
    assert choose_engine("polars", cfg).kind == "polars"  # --engine wins
    assert choose_engine(None, None).kind == "polars"
    with pytest.raises(ConfigError, match="unknown engine"):
        engine_from_table({"kind": "dask"})
    with pytest.raises(ConfigError, match="unknown key"):
        engine_from_table({"kind": "spark", "masters": "yarn"})


@pytest.mark.parametrize("master,message", [
    ("spark://127.0.0.1:1", "no Spark master answers"),
    ("nonsense://x", "unknown master URL"),
])
def test_spark_that_cannot_start_is_one_clear_message_exit_2(tmp_path, master, message):
    cfg = tmp_path / "engine.toml"
    cfg.write_text(f'[engine]\nkind = "spark"\nmaster = "{master}"\n')
    res = runner.invoke(app, ["link-keys", "a", "b", "--out", str(tmp_path / "o"), "--config", str(cfg)])
    assert res.exit_code == 2, res.output
    assert "the Spark engine cannot start" in res.output and message in res.output
    assert "Traceback" not in res.output


def test_no_java_is_one_clear_message(monkeypatch):
    from tfkit.engine.spark.session import SparkUnavailable, spark_session

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SparkUnavailable, match="no Java found"):
        spark_session(EngineSettings(kind="spark", master="local[1]"))


# --------------------------------------------------------------------------- pseudonymise


def test_pseudonymise_spark_gives_the_contract_vectors(spark, tmp_path):
    import datetime as dt

    from tfkit.engine.spark.pseudonymise import pseudonymised_frame
    from tfkit.pseudonymise import MasterKey
    from tfkit.pseudonymise.policy import ColumnRule, Policy

    from .conftest import CONTRACT_KEY_HEX
    from .test_contract import VECTORS

    key = MasterKey(bytes.fromhex(CONTRACT_KEY_HEX))
    rows = pl.DataFrame({"la_code": ["E09000031", "E09000031"], "person_id": ["12345", " "],
                         "nino": ["AB123456C", None], "nhs_number": ["9434765919", "123"],
                         "upn": ["B801200005001", ""], "forename": ["Siân", None], "surname": ["O'Brien-Smith", "X"],
                         "dob": [dt.date(1984, 1, 2), None], "postcode": ["SW1A 1AA", None]})
    policy = Policy("vectors", {c: ColumnRule("hash") for c in ("person_id", "nino", "nhs_number", "upn")}
                    | {"la_code": ColumnRule("keep")} | {c: ColumnRule("drop") for c in ("forename", "surname", "dob", "postcode")},
                    match_keys=("forename_surname_dob_postcode",))
    plan, df = pseudonymised_frame(spark.createDataFrame(rows.to_arrow()), key=key, project="nis", policy=policy)
    got = pl.from_arrow(df.toArrow())
    want = {f: v for p, f, _, v in VECTORS if p == "nis"}
    assert got.row(0, named=True) == {"la_code": "E09000031", "person_id_pseudonym": want["person_id"],
                                      "nino_pseudonym": want["nino"], "nhs_number_pseudonym": want["nhs_number"],
                                      "upn_pseudonym": want["upn"],
                                      "mk_forename_surname_dob_postcode": want["mk/forename_surname_dob_postcode"]}
    assert got.row(1)[1:] == (None,) * 5  # empty or invalid values: null pseudonyms, never a hash of ""
    plan_text = df._jdf.queryExecution().toString() + repr(plan)
    secrets = [CONTRACT_KEY_HEX] + [key.hmac_key_text("nis", f) for f in want]
    assert not any(s in plan_text for s in secrets)


def test_pseudonymise_cli_spark_equals_polars(spark, tmp_path, contract_key_file):
    from tfkit.demo import write_demo
    from tfkit.io import read_table
    from tfkit.pseudonymise import MasterKey, load_policy, pseudonymise
    from tfkit.schemas import load_schema, validate

    from .conftest import CONTRACT_KEY_HEX

    demo = write_demo(tmp_path / "demo", 300, seed=9)
    valid_path, _ = validate(read_table(demo["cohort"]), load_schema("nis")).write(tmp_path / "v", "cohort")
    out = tmp_path / "cohort_spark"
    res = runner.invoke(app, ["pseudonymise", str(valid_path), "--schema", "nis", "--project", "nis",
                              "--key", str(contract_key_file), "--allow-test-key", "--out", str(out), "--engine", "spark", "--json", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["key_fingerprint"] == "180a39191bd3ca09"
    want = pseudonymise(pl.read_parquet(valid_path), key=MasterKey(bytes.fromhex(CONTRACT_KEY_HEX)), project="nis",
                        policy=load_policy("nis"))
    got = pl.read_parquet(out / "*.parquet")
    assert got.columns == want.columns and got.height == want.height > 250
    assert got.equals(want.cast(got.schema)), (got.schema, want.schema)
    assert "mk_nino" in got.columns and got["mk_nino"].drop_nulls().str.len_chars().unique().to_list() == [64]


# --------------------------------------------------------------------------- link


PAIR_IDS = ["source_l", "record_id_l", "source_r", "record_id_r"]


def by_pair(pairs: pl.DataFrame) -> pl.DataFrame:
    """Pairs in one order: the Spark engine's pairs folder is not globally sorted (each part is in
    an order fixed by the inputs; `_with_record_ids`), the polars engine's file is."""
    return pairs.sort(PAIR_IDS)


def same_figures(got, want, rel: float = 1e-9) -> bool:
    """JSON-like values equal, floats to `rel`: the Spark engine scores as a Spark SQL projection
    (`link.score_spark`), equal to `predict.score` to rounding (~1e-15), so a mean of probabilities
    (the metrics' calibration) may differ from the polars engine's in its last digits."""
    if isinstance(got, dict):
        return isinstance(want, dict) and got.keys() == want.keys() and all(same_figures(got[k], want[k], rel)
                                                                             for k in got)
    if isinstance(got, (list, tuple)):
        return isinstance(want, (list, tuple)) and len(got) == len(want) and all(
            same_figures(a, b, rel) for a, b in zip(got, want))
    if isinstance(got, float) and isinstance(want, (int, float)) and not isinstance(want, bool):
        return got == want or abs(got - want) <= rel * max(abs(got), abs(want), 1e-300)
    return got == want


def part_bytes(folder) -> list[bytes]:
    """A Spark output folder's part files, in part order (their names hold the write's id)."""
    parts = sorted(folder.glob("part-*.parquet"))
    assert parts
    return [p.read_bytes() for p in parts]


def _assert_link_engines_agree(spark, frames, tmp_path, pairs_per_task=100, prepare="driver", **kw):
    from tfkit.engine.spark.link import link_spark
    from tfkit.linkage import link

    import copy

    want = link(frames, **copy.deepcopy(kw))  # each engine trains its own copy of the model
    got = link_spark(spark, frames, checkpoint_dir=str(tmp_path / "ck"), pairs_per_task=pairs_per_task, prepare=prepare,
                     **copy.deepcopy(kw))
    assert got.linker.model is not want.model and got.summary()["prepared_on"] == prepare
    pairs = by_pair(pl.from_arrow(got.pairs.toArrow()))
    assert pairs.columns == want.pairs.columns and pairs.height == want.pairs.height > 0
    wanted = by_pair(want.pairs)
    assert pairs.select(PAIR_IDS).equals(wanted.select(PAIR_IDS))
    levels = [c for c in want.pairs.columns if c.endswith("_level")]
    assert pairs.select(levels).equals(wanted.select(levels))
    for c in ("match_weight", "match_probability"):
        assert np.abs(pairs[c].to_numpy() - wanted[c].to_numpy()).max() < 1e-9
    assert got.linker.model.parameters() == want.model.parameters()
    clusters = pl.from_arrow(got.clusters.toArrow())
    assert clusters.equals(want.clusters.cast(clusters.schema))
    summary = got.summary()
    assert summary["links"] == int((want.pairs["match_probability"] >= want.threshold).sum())
    assert 1 <= summary["clustering"]["iterations"] <= 64
    return got


@pytest.mark.parametrize("pairs_per_task, mode", [(100, "link"), (1_000_000, "link"), (100, "dedupe"),
                                                   (1_000_000, "dedupe")])
def test_link_spark_equals_polars_on_generated_data(spark, tmp_path, pairs_per_task, mode):
    from tfkit.demo import generate_frames
    from tests.fixtures.demo_frames import cohort_and_partners

    frames = cohort_and_partners(generate_frames(400, seed=5), n_right=500, seed=0)
    frames = {k: v.drop("person_key") for k, v in frames.items()}
    if mode == "dedupe":  # one source holding both: the pairs within it
        frames = {"all": pl.concat([f.with_columns(pl.col("record_id").cast(pl.String) + f"-{k}")
                                    for k, f in frames.items()], how="diagonal_relaxed")}
    got = _assert_link_engines_agree(spark, frames, tmp_path, pairs_per_task=pairs_per_task, mode=mode, seed=3)
    rules = got.summary()["blocking"]["rules"]
    # 100 pairs a task: some blocks' rows were cut between two tasks (the pairs are unchanged)
    assert any(r["split_blocks"] for r in rules) or pairs_per_task > 100
    assert all(r["comparisons"] >= r["pairs_added"] and (r["largest_blocks"] or not r["comparisons"]) for r in rules)


def test_link_spark_equals_polars_on_febrl4(spark, tmp_path):
    frames = febrl4_frames(600)
    _assert_link_engines_agree(spark, frames, tmp_path, seed=1)  # no sex column: the Linker drops that comparison


def test_link_cli_spark_writes_the_polars_outputs(spark, tmp_path):
    from tfkit.demo import generate_frames
    from tests.fixtures.demo_frames import cohort_and_partners

    frames = cohort_and_partners(generate_frames(200, seed=8), n_right=250, seed=0)
    paths = []
    for name, frame in frames.items():
        paths.append(tmp_path / f"{name}.csv")
        frame.drop("person_key").write_csv(paths[-1])
    common = ["link", *map(str, paths), "--seed", "2"]
    assert runner.invoke(app, [*common, "--out", str(tmp_path / "p")]).exit_code == 0
    res = runner.invoke(app, [*common, "--out", str(tmp_path / "s"), "--engine", "spark", "--json", "-"])
    assert res.exit_code == 0, res.output
    again = runner.invoke(app, [*common, "--out", str(tmp_path / "s2"), "--engine", "spark"])
    assert again.exit_code == 0, again.output
    for name in ("pairs", "clusters", "review"):  # deterministic: the same parts, byte for byte
        assert part_bytes(tmp_path / "s" / f"{name}.parquet") == part_bytes(tmp_path / "s2" / f"{name}.parquet"), name
    summary = json.loads(res.stdout)
    assert summary["engine"] == "spark" and not (tmp_path / "s" / ".checkpoints").exists()
    for name in ("pairs", "clusters", "review"):
        want = pl.read_parquet(tmp_path / "p" / f"{name}.parquet")
        got = pl.read_parquet(tmp_path / "s" / f"{name}.parquet" / "*.parquet")
        assert got.columns == want.columns and got.height == want.height
        want = want.select(want.columns[:4]).cast(got.select(want.columns[:4]).schema)
        got = got.select(want.columns)
        assert (by_pair(got).equals(by_pair(want)) if name == "pairs" else got.equals(want)), name
    assert json.loads((tmp_path / "s" / "model.json").read_text()) == json.loads((tmp_path / "p" / "model.json").read_text())


def test_link_cli_spark_outputs_are_the_same_by_spark_s_writer_or_the_tasks(spark, tmp_path, monkeypatch):
    """A local path under a local master: each part written by its task (pyarrow, 0600 from its
    creation, `_SUCCESS` last); elsewhere (a Hadoop path, a cluster's master) Spark's own writer.
    Both give the same rows, columns and types."""
    import stat

    from tfkit.demo import generate_frames
    from tfkit.engine.spark import io as spark_io
    from tests.fixtures.demo_frames import cohort_and_partners

    frames = cohort_and_partners(generate_frames(150, seed=4), n_right=200, seed=0)
    paths = []
    for name, frame in frames.items():
        paths.append(tmp_path / f"{name}.csv")
        frame.drop("person_key").write_csv(paths[-1])
    common = ["link", *map(str, paths), "--seed", "2", "--engine", "spark"]
    assert spark_io.tasks_write_locally(spark, str(tmp_path / "t")) and not spark_io.tasks_write_locally(spark, "hdfs://nn/x")
    assert runner.invoke(app, [*common, "--out", str(tmp_path / "t")]).exit_code == 0
    monkeypatch.setattr(spark_io, "tasks_write_locally", lambda spark, path: False)
    assert runner.invoke(app, [*common, "--out", str(tmp_path / "j")]).exit_code == 0
    for name in ("pairs", "clusters", "review"):
        folder = tmp_path / "t" / f"{name}.parquet"
        assert (folder / "_SUCCESS").exists() and not list(folder.glob(".*"))
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in folder.glob("part-*"))
        got, want = (pl.read_parquet(tmp_path / w / f"{name}.parquet" / "*.parquet") for w in ("t", "j"))
        assert got.schema == want.schema and got.height == want.height > 0, name
        assert (by_pair(got).equals(by_pair(want)) if name == "pairs" else got.equals(want)), name


def test_write_parquet_by_tasks_replaces_the_folder_and_keeps_the_schema_when_empty(spark, tmp_path):
    import pyarrow as pa

    from tfkit.engine.spark.io import write_parquet_by_tasks

    folder = tmp_path / "out.parquet"
    folder.mkdir()
    (folder / "part-99999.stale.parquet").write_bytes(b"old")  # replaced whole
    df = spark.range(0, 10, numPartitions=3)
    double = lambda b: pa.RecordBatch.from_pydict({"id": b.column(0), "twice": pa.compute.multiply(b.column(0), 2)})  # noqa: E731
    schema = "id long, twice long"
    from pyspark.sql.types import _parse_datatype_string

    assert write_parquet_by_tasks(df, str(folder), _parse_datatype_string(schema), double) == 10
    got = pl.read_parquet(folder / "*.parquet")
    assert sorted(got["twice"].to_list()) == [2 * i for i in range(10)] and (folder / "_SUCCESS").exists()
    assert sorted(p.name for p in folder.glob("part-*")) == [f"part-{i:05d}.zstd.parquet" for i in range(3)]
    assert write_parquet_by_tasks(df.limit(0), str(folder), _parse_datatype_string(schema), double) == 0
    empty = pl.read_parquet(folder / "*.parquet")
    assert empty.height == 0 and empty.columns == ["id", "twice"] and len(list(folder.glob("part-*"))) == 1


def test_the_spark_extra_installs_what_pyspark_s_arrow_functions_need():
    """`pip install 'tfkit[spark]'` alone must run `link --engine spark`: pyspark's mapInArrow checks
    for pandas at call time (a new user's run stopped with an internal error without it)."""
    import re
    import tomllib
    from pathlib import Path

    extra = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["spark"]
    names = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0].lower() for d in extra}
    assert {"pyspark", "pandas"} <= names


def test_link_cli_spark_user_error_exits_2_and_leaves_no_output_folder(spark, tmp_path):
    """Sources without the model's columns: one clear error, exit 2, and no empty output folder left
    behind (the polars engine leaves none either)."""
    paths = []
    for name in ("a", "b"):
        paths.append(tmp_path / f"{name}.csv")
        pl.DataFrame({"Forename": ["Ann", "Bob"], "Surname": ["Lee", "Roe"]}).write_csv(paths[-1])
    res = runner.invoke(app, ["link", *map(str, paths), "--out", str(tmp_path / "out"), "--engine", "spark"])
    assert res.exit_code == 2, res.output
    assert "missing column(s) the model compares" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_spark_modules_import_before_any_session():
    """The CLI imports the Spark modules before it starts Spark: nothing may need a session at import."""
    code = "import tfkit.engine.spark.link, tfkit.engine.spark.link_keys, tfkit.engine.spark.pseudonymise"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_link_spark_cuts_a_rule_over_its_budget_as_polars_does(spark, tmp_path):
    # A budget small enough to bind on several rules: both engines leave out the same blocks
    # (largest first), and warn the same.
    from tfkit.demo import generate_frames
    from tfkit.linkage import LinkageModel
    from tests.fixtures.demo_frames import cohort_and_partners

    frames = cohort_and_partners(generate_frames(400, seed=5), n_right=500, seed=0)
    frames = {k: v.drop("person_key") for k, v in frames.items()}
    model = LinkageModel.default()
    model.settings.max_rule_pairs, model.settings.max_rule_pairs_per_record = 150, 0.0
    got = _assert_link_engines_agree(spark, frames, tmp_path, pairs_per_task=1_000_000, model=model, seed=3)
    cut = [r for r in got.summary()["blocking"]["rules"] if r["budget_limit"] is not None]
    assert cut and all(r["comparisons"] <= 150 and r["blocks_skipped"] for r in cut)
    assert sum(w["code"] == "rule_budget" for w in got.linker.model.warnings) == len(cut)
