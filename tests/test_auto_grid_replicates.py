"""benchmarks/auto_grid_replicates.py: #18's per-movie bar judged on each point's mean over a movie and its
perturbed copies, so that one fit's noise neither fails auto nor lifts the grid's best."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from auto_grid_replicates import BAR, PERTURBATION, comparison, replicates, summary  # noqa: E402


def test_copies_differ_from_the_movie_by_a_hundredth_of_its_noise():
    rng = np.random.default_rng(0)
    movie = (100 + 5 * rng.standard_normal((400, 16, 16))).astype(np.float32)
    copies = replicates(movie, 3)
    assert copies[0] is movie and len(copies) == 3
    added = [float((copy - movie).std()) for copy in copies[1:]]
    assert all(abs(sd - PERTURBATION * 5) < 0.1 * PERTURBATION * 5 for sd in added)
    assert not np.array_equal(copies[1], copies[2])                       # two different perturbations


def _record(name, auto, best, K=(10, 10, 10)):
    return {"movie": name, "radius_err": 0.0, "auto": {"mean": auto, "K": list(K)}, "best": {"gSig": 5},
            "gap": round(auto - best, 4)}


def test_the_verdict_counts_a_movie_within_the_bar_and_flags_a_miss_and_a_run_without_cells():
    records = [_record("ca1_128x128x800_seed1", 0.80, 0.80 + BAR - 0.001),
               _record("ca1_128x128x800_seed2", 0.70, 0.80),
               _record("cortex_l23_128x128x800_seed1", 0.00, 0.50, K=(0, 3, 2))]
    lines = summary(records).splitlines()
    assert "MISS" not in lines[0] and "MISS" in lines[1]
    assert "MISS" in lines[2] and "ZERO CELLS" in lines[2]
    assert "ca1_128x128x800: 1 of 2 within 0.02" in lines
    assert lines[-1] == "all: 1 of 3"


def test_a_change_is_read_movie_by_movie_then_counted_as_the_rule_written_first_reads_it():
    before = [_record("ca1_seed1", 0.80, 0.85), _record("ca1_seed2", 0.70, 0.71), _record("cortex_seed1", 0.60, 0.60)]
    after = [_record("ca1_seed1", 0.84, 0.85), _record("ca1_seed2", 0.65, 0.71), _record("cortex_seed2", 0.9, 0.9)]
    lines = comparison(before, after).splitlines()
    assert len(lines) == 3, "a movie in only one file is left out"
    assert "0.800 → 0.840 (+0.040)" in lines[0] and "gap -0.050 → -0.010" in lines[0]
    assert lines[-1] == (f"within {BAR}: 1 → 1 of 2; mean F1@0.5 0.750 → 0.745 (-0.0050); "
                         f"up > {BAR}: 1, down > {BAR}: 1")
