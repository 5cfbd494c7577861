"""The extraction results' cache stays within its bound, least recently used results first out."""

from __future__ import annotations

import os

from cnmflow.results_cache import mark_used, prune


def _result(folder, name, size, age_s):
    path = folder / name
    path.write_bytes(b"x" * size)
    when = 1_000_000 - age_s
    os.utime(path, (when, when))
    return path


def test_the_least_recently_used_results_go_until_the_rest_fit(tmp_path):
    old, middle, new = (_result(tmp_path, f"extract-{name}", 100, age) for name, age in
                        (("old", 300), ("middle", 200), ("new", 100)))
    assert prune(tmp_path, max_bytes=250) == [old]
    assert prune(tmp_path, max_bytes=100) == [middle]
    assert [p.name for p in tmp_path.iterdir()] == [new.name]


def test_the_runs_own_result_is_kept_even_over_the_bound(tmp_path):
    own = _result(tmp_path, "extract-own", 500, 400)   # the oldest, and larger than the bound alone
    other = _result(tmp_path, "extract-other", 10, 1)
    assert prune(tmp_path, max_bytes=100, keep=own) == [other]
    assert own.exists()


def test_a_result_served_again_counts_as_new(tmp_path):
    first = _result(tmp_path, "extract-first", 100, 200)
    second = _result(tmp_path, "extract-second", 100, 100)
    mark_used(first)
    assert prune(tmp_path, max_bytes=150) == [second]
    mark_used(tmp_path / "extract-gone")   # a result deleted meanwhile: nothing to mark, no error


def test_only_stored_results_are_touched(tmp_path):
    notes = _result(tmp_path, "notes.txt", 1000, 500)
    (tmp_path / "extract-a-folder").mkdir()
    assert prune(tmp_path, max_bytes=0) == [] and notes.exists()
    assert prune(tmp_path / "missing", max_bytes=0) == []
