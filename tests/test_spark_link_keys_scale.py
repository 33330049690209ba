"""link-keys on Spark as run at national scale: the lean pass (broadcast or shuffled anti-join of the
matched rows, A's values broadcast to B's scan or both shuffled, counts as observed metrics, only the
pairs checkpointed) still equals the polars engine."""

from __future__ import annotations

import polars as pl
import pytest

from tests.test_spark_engine import KEYS, extracts  # noqa: F401  (the shared fixture)
from tfkit.pseudonymise.link_keys import link_on_match_keys


@pytest.mark.parametrize("broadcast", [True, False])
def test_spark_passes_equal_polars_with_broadcast_or_shuffled_joins(spark, extracts, tmp_path, monkeypatch, broadcast):  # noqa: F811
    from tfkit.engine.spark import link_keys as spark_link_keys

    if not broadcast:  # as at national size on both sides: the matched rows and A's values are not broadcast
        monkeypatch.setattr(spark_link_keys, "BROADCAST_MATCHED_ROWS", -1)
        monkeypatch.setattr(spark_link_keys, "BROADCAST_A_ROWS", -1)
    d, a, b = extracts
    want, want_counts = link_on_match_keys(a, b, KEYS)
    seen = []
    got_df, got_counts = spark_link_keys.link_on_match_keys_spark(
        spark, str(d / "a.parquet"), str(d / "b"), KEYS, checkpoint_dir=str(tmp_path / "ck"), on_key=seen.append)
    assert pl.from_arrow(got_df.toArrow()).equals(want)
    assert got_counts == want_counts and seen == want_counts  # on_key: each pass's counts, in order
    # Only the pairs are checkpointed (the matched rows are read back from them): no copy of the inputs.
    assert sorted(str(p.relative_to(tmp_path / "ck")) for p in (tmp_path / "ck").glob("*/*")) == [
        f"pass_{i:02d}_{k}/pairs" for i, k in enumerate(KEYS, start=1)]


def test_polars_on_key_reports_each_pass(extracts):  # noqa: F811
    d, a, b = extracts
    seen = []
    _, counts = link_on_match_keys(d / "a.parquet", d / "b", KEYS, one_to_many=True, on_key=seen.append)
    assert seen == counts and [c.match_key for c in seen] == KEYS
