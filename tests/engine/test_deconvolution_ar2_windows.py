"""AR(2) deconvolution of traces shorter than OASIS' NNLS window shift (issue #14, case 2).

``constrained_onnlsAR2`` moves its NNLS window by 100 frames; a trace of 50-99 frames made
its last solve take a negative-length slice and fail with a shape error, which crashed
``--set p=2`` runs on short movies in the final trace update.
"""

import numpy as np
import pytest

from cnmflow.engine.deconvolution import deconvolve_trace


def _trace(n: int, *, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = 2.0 + 0.2 * rng.standard_normal(n)
    for t in (n // 4, n // 2):  # two AR(2)-shaped transients
        y[t:] += 3.0 * (0.95 ** np.arange(n - t) - 0.75 ** np.arange(n - t))
    return y


@pytest.mark.parametrize("n", [49, 50, 63, 75, 99, 100, 101, 150])
def test_p2_deconvolves_every_length_around_the_window_shift(n):
    d = deconvolve_trace(_trace(n, seed=n), p=2)
    assert d.c.shape == d.s.shape == (n,)
    assert np.all(np.isfinite(d.c)) and np.all(d.s >= 0) and len(d.g) == 2
    assert d.s.max() > 0, "the transients are found"


def test_p2_short_trace_finds_the_transients_it_was_given():
    y = _trace(80, seed=1)
    d = deconvolve_trace(y, p=2, g=(1.7, -0.712), sn=0.2)
    assert np.corrcoef(d.c + d.bl, y)[0, 1] > 0.9
