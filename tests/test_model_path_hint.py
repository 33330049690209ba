"""A missing model file's hint fits both ways of naming it: `tfkit link --model` and `[linkage] model`
in the config (extract has no --model option)."""

import pytest

from tfkit.errors import TfkitError
from tfkit.linkage.model import LinkageModel


def test_missing_model_file_hint_names_both_ways(tmp_path):
    with pytest.raises(TfkitError) as caught:
        LinkageModel.load(tmp_path / "nope.toml")
    text = str(caught.value) + " " + str(getattr(caught.value, "hint", ""))
    assert "[linkage] model" in text and "--model" in text
