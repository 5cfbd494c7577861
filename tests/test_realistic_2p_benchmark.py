"""benchmarks/realistic_2p_benchmark.py: the 2P preset's variants fitted on the realistic two-photon simulator."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from realistic_2p_benchmark import main  # noqa: E402


def test_each_variant_is_fitted_and_scored_and_the_compactness_test_only_rejects(tmp_path, capsys):
    assert main(["--seeds", "3", "--frames", "300", "--shape", "96", "96", "--variants", "preset", "compact",
                 "--set", "n_processes=1", "rf=null", "K=12", "--results", str(tmp_path)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [row[:2] for row in rows] == [["3", "preset"], ["3", "compact"]]
    preset, compact = ({"K": int(row[2]), "precision": float(row[4]), "recall": float(row[5])} for row in rows)
    assert 0 < compact["K"] <= preset["K"]
    assert compact["precision"] >= preset["precision"] and compact["recall"] <= preset["recall"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["realistic2p_96x96x300_seed3.npy",
                                                           "realistic2p_96x96x300_seed3.truth.npz"]
