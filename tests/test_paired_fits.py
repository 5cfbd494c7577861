"""benchmarks/paired_fits.py: two fits of one movie compared neuron by neuron — each shared neuron's IoU change,
the neurons only one fit finds, and each fit's unmatched components — so a change's effect on shapes is read apart
from which neurons happen to be matched."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from paired_fits import compare, pooled  # noqa: E402


def _disc(centre, radius, shape=(40, 40)):
    rows, cols = np.indices(shape)
    return (np.hypot(rows - centre[0], cols - centre[1]) <= radius).astype(np.float32)


def _fit(footprints, rejected=()):
    return {"footprints": np.stack(footprints), "C": np.zeros((len(footprints), 5)),
            "idx_components_bad": np.asarray(rejected, dtype=int)}


def test_shared_neurons_iou_changes_and_the_neurons_only_one_fit_finds():
    truth = {"footprints": np.stack([_disc((10, 10), 4), _disc((10, 30), 4), _disc((30, 20), 4)])}
    # A: neuron 0 a little off, neuron 1 found, a false positive; B: neuron 0 exact, neuron 2 instead of 1
    a = _fit([_disc((10, 11), 4), _disc((10, 30), 4), _disc((30, 5), 3)])
    b = _fit([_disc((10, 10), 4), _disc((30, 20), 4), _disc((10, 30), 4)], rejected=[2])
    paired = compare(truth, a, b)
    assert len(paired.iou_changes) == 1 and paired.iou_changes[0] > 0.1      # neuron 0, matched in both, closer in B
    assert (paired.only_a_30, paired.only_b_30) == (1, 1)                     # neuron 1 in A only, neuron 2 in B only
    assert (paired.false_a, paired.false_b) == (1, 0)                         # B's third component is rejected
    both = pooled([paired, paired]).summary()
    assert both["shape"] == {"n": 2, "mean": round(paired.iou_changes[0], 4), "up": 1.0, "down": 0.0}
    assert both["only_a_30"] == 2 and both["false_a"] == 2
