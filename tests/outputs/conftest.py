"""What the end-to-end output tests (export, NWB) share: one simulated 1P movie, cut into a series by each test."""

from __future__ import annotations

import pytest

from cnmflow.synthetic import simulate_1p


@pytest.fixture(scope="module")
def simulated():
    """300 frames, 48x56, 6 cells of radius 3 at 10 Hz: ``EXTRACT_PARAMS`` finds them in seconds."""
    return simulate_1p(shape=(48, 56), n_frames=300, n_neurons=6, gsig=3.0, fr=10.0, peak_snr=(8, 12), rng=3)


@pytest.fixture(scope="session")
def real_isxd_run(tmp_path_factory):
    """(the IDEAS sample isxd, its output folder without NWB files): extracted once for the tests that only read
    the folder (test_export's timing) or copy it (test_nwb's NWB written afterwards); skipped without the sample."""
    import cnmflow
    from tests.paths import IDEAS

    movie = IDEAS / "movie_part2_108x123x63.isxd"
    if not movie.exists():
        pytest.skip("sample isxd absent (../shared/data/ideas)")
    out = tmp_path_factory.mktemp("real-isxd") / "out"
    cnmflow.extract([movie], out, params={"min_corr": 0.5, "min_pnr": 5, "gSiz": 13, "n_processes": 1}, nwb=False)
    return movie, out
