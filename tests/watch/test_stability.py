"""A file is ready only when two different scans saw the same size and mtime."""

from __future__ import annotations

from cnmflow.watch.ledger import Ledger
from cnmflow.watch.scan import Observation
from cnmflow.watch.stability import readiness


def _ready(ledger: Ledger, obs: Observation, scan_id: str, now: float = 100.0, min_age_s: float = 0.0):
    previous = ledger.observe([obs], scan_id=scan_id, now=now)
    return readiness(previous[obs.path], obs, scan_id=scan_id, now=now, min_age_s=min_age_s)


def test_ready_on_the_second_scan_with_the_same_size_and_mtime(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as ledger:
        obs = Observation("a.tif", 10, 1)
        assert "first seen" in _ready(ledger, obs, "scan1")
        assert _ready(ledger, obs, "scan2") is None
        assert _ready(ledger, obs, "scan3") is None


def test_a_growing_file_waits_until_it_stops_changing(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as ledger:
        assert _ready(ledger, Observation("a.tif", 10, 1), "s1") is not None
        assert "changed" in _ready(ledger, Observation("a.tif", 20, 2), "s2")
        assert "changed" in _ready(ledger, Observation("a.tif", 30, 3), "s3")
        assert _ready(ledger, Observation("a.tif", 30, 3), "s4") is None


def test_a_touched_file_counts_as_changed(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as ledger:
        _ready(ledger, Observation("a.tif", 10, 1), "s1")
        assert _ready(ledger, Observation("a.tif", 10, 2), "s2") is not None


def test_the_same_scan_twice_is_not_two_scans(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as ledger:
        obs = Observation("a.tif", 10, 1)
        _ready(ledger, obs, "s1")
        assert _ready(ledger, obs, "s1") is not None


def test_minimum_unchanged_time(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as ledger:
        obs = Observation("a.tif", 10, 1)
        _ready(ledger, obs, "s1", now=100.0)
        assert "needs 30" in _ready(ledger, obs, "s2", now=110.0, min_age_s=30)
        assert _ready(ledger, obs, "s3", now=131.0, min_age_s=30) is None


def test_a_vanished_file_is_forgotten(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as ledger:
        obs = Observation("a.tif", 10, 1)
        _ready(ledger, obs, "s1")
        ledger.observe([], scan_id="s2")
        assert "first seen" in _ready(ledger, obs, "s3")


def test_an_empty_file_waits_for_its_data(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as ledger:
        empty = Observation("a.tif", 0, 1)
        for scan in ("s1", "s2", "s3"):
            assert "empty (0 bytes)" in _ready(ledger, empty, scan)
        assert "changed" in _ready(ledger, Observation("a.tif", 10, 2), "s4")
        assert _ready(ledger, Observation("a.tif", 10, 2), "s5") is None
