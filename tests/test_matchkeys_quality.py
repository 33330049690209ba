"""Link quality of the match keys on generated data with ground truth (both sides pseudonymised)."""

import polars as pl
import pytest

from tfkit.demo import write_demo
from tfkit.io import read_table
from tfkit.pseudonymise import MasterKey, link_on_match_keys, load_policy, pseudonymise
from tfkit.schemas import load_schema, validate

KEY = MasterKey(bytes(range(32)))
SOURCES = {"cohort": "nis", "police": "police", "school_attendance": "school_attendance", "dwp": "dwp"}


@pytest.fixture(scope="module")
def extracts(tmp_path_factory):
    paths = write_demo(tmp_path_factory.mktemp("demo"), 1500, seed=11)
    out = {}
    for source, schema in SOURCES.items():
        valid = validate(read_table(paths[source]), load_schema(schema)).valid
        ids = valid.select(pl.col("person_id" if schema == "nis" else "record_id").alias("record_id"))
        out[source] = (ids, pseudonymise(valid, key=KEY, project="nis", policy=load_policy(schema)))
    truth = pl.read_csv(paths["truth"], infer_schema=False)
    return out, truth


def quality(extracts, source, one_to_many):
    frames, truth = extracts
    (a_ids, a), (b_ids, b) = frames["cohort"], frames[source]
    pairs, counts = link_on_match_keys(a, b, one_to_many=one_to_many)
    ka = truth.filter(pl.col("source") == "cohort").select("record_id", ka="person_key")
    kb = truth.filter(pl.col("source") == source).select("record_id", kb="person_key")
    found = pl.DataFrame({"a": a_ids["record_id"].gather(pairs["a_row"]), "b": b_ids["record_id"].gather(pairs["b_row"])})
    found = found.join(ka, left_on="a", right_on="record_id").join(kb, left_on="b", right_on="record_id")
    true_links = a_ids.join(ka, on="record_id").join(b_ids.join(kb, on="record_id"), left_on="ka", right_on="kb").height
    correct = int((found["ka"] == found["kb"]).sum())
    assert sum(c.pairs for c in counts) == pairs.height
    return correct / pairs.height, correct / true_links


@pytest.mark.parametrize("source,one_to_many,min_recall", [
    ("police", True, 0.95), ("school_attendance", True, 0.95), ("dwp", True, 0.95), ("dwp", False, 0.85),
])
def test_precision_and_recall(extracts, source, one_to_many, min_recall):
    precision, recall = quality(extracts, source, one_to_many)
    assert precision > 0.98
    assert recall > min_recall
