"""Valid parameters never crash: p=2 on movies shorter than OASIS' 100-frame window shift (#14 case 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cnmflow
from cnmflow.synthetic import simulate_1p, write_tiff
from tests.paths import IDEAS

PART2 = IDEAS / "movie_part2_108x123x63.isxd"


def _extract_p2(movie: Path, output_dir: Path, **table):
    result = cnmflow.extract([movie], output_dir, params={"p": 2, **table})
    estimates = result.extraction.estimates
    assert estimates.C.shape[1] == estimates.S.shape[1]
    assert np.all(np.isfinite(estimates.C)) and np.all(estimates.S >= 0)
    return estimates


@pytest.mark.parametrize("n_frames, tsub", [(70, 2), (63, 1)])
def test_p2_on_a_short_simulated_movie_runs(tmp_path, n_frames, tsub):
    simulated = simulate_1p(shape=(40, 48), n_frames=n_frames, n_neurons=4, gsig=3.0, fr=10.0,
                            peak_snr=(8, 12), rng=5)
    movie = write_tiff(tmp_path / "movie.tif", simulated.movie, fr=10.0)
    estimates = _extract_p2(movie, tmp_path / "out", rf=None, gSiz=13, min_corr=0.7, min_pnr=5, tsub=tsub,
                            n_processes=1)
    assert estimates.C.shape[0] >= 1 and estimates.C.shape[1] == n_frames


def test_p2_on_the_real_part2_sample_runs(tmp_path):
    if not PART2.exists():
        pytest.skip("sample movie absent")
    estimates = _extract_p2(PART2, tmp_path / "out", min_corr=0.5, min_pnr=5)
    assert estimates.C.shape[1] == 63
