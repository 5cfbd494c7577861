"""benchmarks/realistic_2p_benchmark.py: the 2P preset's variants fitted on the realistic two-photon simulator."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from realistic_2p_benchmark import main  # noqa: E402


def test_each_variant_is_fitted_and_scored_and_the_compactness_test_only_rejects(tmp_path, capsys):
    assert main(["--seeds", "3", "--frames", "300", "--shape", "96", "96", "--variants", "untested", "preset",
                 "--set", "n_processes=1", "rf=null", "K=12", "--results", str(tmp_path)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["3", "untested"], ["3", "preset"]]
    untested, preset = ({"K": int(row[2]), "precision": float(row[4]), "recall": float(row[5])} for row in rows)
    assert 0 < preset["K"] <= untested["K"]
    assert preset["precision"] >= untested["precision"] and preset["recall"] <= untested["recall"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["realistic2p_96x96x300_seed3.npy",
                                                           "realistic2p_96x96x300_seed3.truth.npz"]
