import numpy as np
import pytest

from cnmflow.engine.noise import noise_frame_indices, noise_psd, pixel_noise
from cnmflow.errors import ParameterError
from tests.paths import IDEAS, CAIMAN_REFERENCE

REF = f"{CAIMAN_REFERENCE}/"


def test_white_noise_sd():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, size=(50, 4000))
    sn = noise_psd(x)
    assert sn.shape == (50,)
    assert np.median(np.abs(sn / 2.0 - 1)) < 0.03
    for method in ("median", "logmexp"):
        assert np.all(np.isfinite(noise_psd(x, method=method)))
    assert np.ndim(noise_psd(x[0])) == 0


def test_slow_signal_is_ignored():
    rng = np.random.default_rng(1)
    t = np.arange(2000)
    x = 100 * np.sin(2 * np.pi * t / 200)[None] + rng.normal(0, 1.0, size=(10, 2000))
    assert np.all(np.abs(noise_psd(x) - 1.0) < 0.1)


def test_bad_args():
    with pytest.raises(ParameterError):
        noise_psd(np.zeros((2, 10)), method="max")
    with pytest.raises(ParameterError):
        pixel_noise(np.zeros((10, 10)))


def test_frame_blocks():
    assert noise_frame_indices(3000) is None
    idx = noise_frame_indices(10000, max_frames_per_block=100, n_blocks=3)
    assert len(idx) == 300 and idx[0] == 0 and idx[-1] == 9999 and 5000 - 100 < idx[150] < 5000 + 100


def test_pixel_noise_chunks_and_blocks(tmp_path):
    rng = np.random.default_rng(2)
    sd = np.linspace(1, 3, 6 * 7).reshape(6, 7)
    mov = (rng.normal(size=(700, 6, 7)) * sd).astype(np.float32)
    full = pixel_noise(mov)
    assert full.dtype == np.float32 and full.shape == (6, 7)
    np.testing.assert_allclose(pixel_noise(mov, chunk_pixels=5), full, rtol=1e-6)
    np.testing.assert_allclose(full, sd, rtol=0.15)
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float32, shape=mov.shape)
    mm[:] = mov
    blk = pixel_noise(mm, max_frames_per_block=100, n_blocks=3, chunk_pixels=14)
    ref = noise_psd(np.concatenate([mov[:100], mov[300:400], mov[600:]]).reshape(300, -1).T).reshape(6, 7)
    np.testing.assert_allclose(blk, ref, rtol=1e-5)


@pytest.mark.parametrize(
    "movie,summary",
    [
        (REF + "synth1p_128.tif", REF + "synth1p_128_caiman_summary.npz"),
        (str(IDEAS / "movie_part2_108x123x63.tiff"), REF + "part2_caiman_summary.npz"),
    ],
)
def test_matches_caiman_reference(movie, summary):
    import os

    if not (os.path.exists(movie) and os.path.exists(summary)):
        pytest.skip("CaImAn reference data not available")
    import tifffile

    mov = tifffile.imread(movie).astype(np.float32)
    ref = np.load(summary)["sn"]
    sn = pixel_noise(mov)
    assert np.max(np.abs(sn / ref - 1)) < 1e-3
