"""Settings take a bare glob string as one pattern (not as its characters, which matched every layer)."""

from __future__ import annotations

import pytest
from helpers import write_run

from grokwatch.scan import scan_folder
from grokwatch.settings import Settings


def test_string_glob_is_one_pattern():
    assert Settings(layers="fc1*").layers == ("fc1*",)
    assert Settings(exclude="fc3*", layers=["fc1*", "fc2*"]).exclude == ("fc3*",)
    assert Settings(layers=None).layers == ()
    with pytest.raises(ValueError):
        Settings(layers=[1, 2])


def test_string_glob_selects_only_matching_layers(tmp_path):
    run = write_run(tmp_path / "run", steps=(10,))
    assert {r.layer for r in scan_folder(run, Settings(layers="fc1*"), workers=1, cache=False)} == {
        "fc1.weight"
    }
    left = {r.layer for r in scan_folder(run, Settings(exclude="fc1*"), workers=1, cache=False)}
    assert left == {"fc2.weight", "fc3.weight"}


def test_split_qkv_results_cached_before_grouped_query_splitting_are_not_reused():
    """A cache written when --split-qkv kept grouped-query QKV whole must not serve today's split."""
    import json

    from grokwatch.settings import SPLIT_QKV_LAYOUT, Settings

    old_key = json.loads(Settings().cache_key()) | {"split_qkv": True}  # how version 1 keyed it
    new_key = json.loads(Settings(split_qkv=True).cache_key())
    assert new_key != old_key and new_key["split_qkv"] == SPLIT_QKV_LAYOUT == 2
    assert "split_qkv" not in json.loads(Settings().cache_key())  # off: old caches stay valid
