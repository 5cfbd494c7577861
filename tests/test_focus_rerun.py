"""benchmarks/focus_rerun.py: the focus test re-run on what a fit handed it gives the fit's own rejections and
ratios (so a change to the test can be measured on saved fits), and follows new thresholds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cnmflow.engine import fit
from cnmflow.params import build_params
from cnmflow.synthetic import simulate_1p

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from focus_rerun import FocusInputs, load, rerun  # noqa: E402
from stage_probes import probes  # noqa: E402


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A one-patch 1P fit (20 neurons, 96², the focus test judging them) and its focus inputs saved and loaded."""
    movie = simulate_1p(shape=(96, 96), n_frames=400, n_neurons=20, gsig=3, fr=10, rng=2, peak_snr=(5, 10)).movie
    focus = FocusInputs()
    with probes(*focus.hooks()):
        estimates = fit(movie, build_params(dict(gSig=3, gSiz=13, min_corr=0.8, min_pnr=6, fr=10, rf=None,
                                                 n_processes=1, focus_thr=0.95)))
    path = tmp_path_factory.mktemp("focus") / "fit.focus.npz"
    focus.save(path, traces=estimates.C.astype(np.float32))   # as saved by realistic_benchmark
    return movie, estimates, load(path)


def test_the_rerun_gives_the_fits_rejections_and_ratios(recorded):
    movie, estimates, inputs = recorded
    assert np.isfinite(estimates.focus_ratio).sum() >= 5          # the test ran and judged components
    test, rejected = rerun(movie, inputs)
    np.testing.assert_array_equal(rejected, estimates.idx_components_bad)
    np.testing.assert_array_equal(test.ratio, estimates.focus_ratio)


def test_the_rerun_follows_a_new_threshold(recorded):
    movie, estimates, inputs = recorded
    strict, _ = rerun(movie, inputs, focus_thr=1.5)
    off, rejected_off = rerun(movie, inputs, focus_thr=0.0)
    assert strict.rejected.size > 0 and off.rejected.size == 0 and rejected_off.size == 0


def test_the_saved_call_is_the_one_that_judged_the_returned_components():
    """A fit that merges a pair, finds the merged component rejected and undoes the merge returns the components an
    earlier focus test judged; the later call's indices are another set's (re-runs rejected shifted components)."""
    from types import SimpleNamespace

    focus = FocusInputs()
    unmerged, merged = np.arange(12.0).reshape(3, 4), np.arange(8.0).reshape(2, 4)
    for C in (unmerged, merged):
        result = SimpleNamespace(rejected=np.array([len(C) - 1]), ratio=np.ones(len(C)))
        focus._test(result, None, np.eye(4)[:, :len(C)], C, (2, 2), gsig=1.0)
    assert focus.judging(unmerged.astype(np.float32))["C"].shape == (3, 4)
    assert focus.judging(unmerged * np.array([[1.0], [0.5], [2.0]]))["C"].shape == (3, 4)   # a cut footprint's trace
    assert focus.judging()["C"].shape == (2, 4)
    with pytest.raises(ValueError, match="none of the 2 focus test calls"):
        focus.judging(np.zeros((4, 4)))
