import os

import numpy as np
import pytest
import scipy.ndimage as ndi

from cnmflow.engine.noise import noise_psd
from cnmflow.engine.summary_images import (
    correlation_image,
    correlation_pnr,
    filter_frames,
    filter_kernel,
)
from cnmflow.errors import ParameterError
from tests.paths import IDEAS, CAIMAN_REFERENCE

REF = f"{CAIMAN_REFERENCE}/"


def test_kernel_shapes_and_sums():
    for gsig in (1, 2.5, 3, 4):
        k = filter_kernel(gsig, center_psf=False)
        assert k.shape == (2 * int(2 * gsig) + 1,) * 2
        assert abs(k.sum() - 1) < 1e-12
        h = filter_kernel(gsig, center_psf=True)
        assert h.shape == k.shape
        assert abs(h.sum()) < 1e-12
        assert h[h.shape[0] // 2, h.shape[1] // 2] == h.max() > 0
        assert h[0, 0] == 0  # outside the disc
        np.testing.assert_allclose(h, h.T)
    with pytest.raises(ParameterError):
        filter_kernel(0, center_psf=True)


def test_filter_frames_matches_direct_correlation():
    rng = np.random.default_rng(0)
    frames = rng.normal(100, 10, size=(3, 20, 17)).astype(np.float32)
    for center in (True, False):
        k = filter_kernel(2, center_psf=center)
        ref = np.stack([ndi.correlate(f.astype(np.float64), k, mode="nearest") for f in frames])
        out = filter_frames(frames, gsig=2, center_psf=center)
        assert out.dtype == np.float32 and out.shape == frames.shape
        np.testing.assert_allclose(out, ref, atol=2e-3)


def _direct(movie, gsig, thr=3.0):
    f = filter_frames(movie, gsig=gsig, center_psf=True).astype(np.float64)
    f -= f.mean(0)
    sn = noise_psd(f.reshape(len(f), -1).T).reshape(f.shape[1:])
    pnr = np.maximum(f.max(0) / sn, 0)
    z = np.where(f >= thr * sn, f, 0)
    z = (z - z.mean(0)) / np.where(z.std(0) > 0, z.std(0), np.inf)
    k = np.ones((3, 3))
    k[1, 1] = 0
    nb = np.stack([ndi.correlate(zz, k, mode="constant") for zz in z])
    cnt = ndi.correlate(np.ones(f.shape[1:]), k, mode="constant")
    return (z * nb).mean(0) / cnt, pnr, sn


def test_streaming_equals_in_memory(tmp_path):
    rng = np.random.default_rng(1)
    T, H, W = 300, 24, 19
    yy, xx = np.mgrid[:H, :W]
    a = np.exp(-((yy - 10) ** 2 + (xx - 8) ** 2) / 8.0)
    c = np.maximum(rng.normal(size=T), 0) ** 3
    mov = (a[None] * c[:, None, None] * 20 + rng.normal(size=(T, H, W)) + 50).astype(np.float32)
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float32, shape=mov.shape)
    mm[:] = mov
    cn_ref, pnr_ref, sn_ref = _direct(mov, 2)
    s = correlation_pnr(mm, gsig=2, chunk_frames=37, band_bytes=4 * T * W * 9)
    np.testing.assert_allclose(s.noise, sn_ref, rtol=1e-4)
    np.testing.assert_allclose(s.pnr, pnr_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s.correlation, cn_ref, atol=1e-4)
    assert s.correlation[10, 8] > 0.5
    # given noise: same images
    s2 = correlation_pnr(mov, gsig=2, noise=s.noise)
    np.testing.assert_allclose(s2.correlation, s.correlation, atol=1e-5)
    # a movie small enough to filter once (a patch) gives the same images as the banded passes,
    # the Gaussian kernel (separable: matrix products) as well as the centred one (FFT)
    for center_psf in (True, False):
        banded = correlation_pnr(mm, gsig=2, center_psf=center_psf, chunk_frames=37, band_bytes=4 * T * W * 9)
        once = correlation_pnr(mm, gsig=2, center_psf=center_psf, chunk_frames=37)
        for name in ("noise", "pnr", "correlation", "max_filtered", "mean"):
            np.testing.assert_allclose(getattr(once, name), getattr(banded, name), rtol=1e-4, atol=1e-4)
    # long-movie path (noise from blocks) runs and stays close
    s3 = correlation_pnr(mov, gsig=2, max_frames_per_block=50, n_blocks=3)
    assert np.median(np.abs(s3.noise / s.noise - 1)) < 0.2


def test_correlation_threshold_equals_a_thresholded_copy():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(150, 9, 11)).astype(np.float32)
    thr = rng.uniform(-0.5, 0.5, size=(9, 11)).astype(np.float32)
    np.testing.assert_array_equal(correlation_image(z, threshold=thr), correlation_image(np.where(z >= thr, z, 0)))


def test_filter_chunks_do_not_change_the_result(monkeypatch):
    from cnmflow.engine import chunking

    frames = np.random.default_rng(4).normal(size=(23, 17, 20)).astype(np.float32)
    whole = filter_frames(frames, gsig=2, center_psf=True)
    monkeypatch.setattr(chunking, "FILTER_CHUNK_BYTES", 8 * 25 * 28 * 5)  # 5 padded frames a chunk, 3 last
    np.testing.assert_array_equal(filter_frames(frames, gsig=2, center_psf=True), whole)


def test_correlation_image_constant_pixels():
    z = np.zeros((10, 4, 4))
    assert np.all(correlation_image(z) == 0)


@pytest.mark.parametrize(
    "movie,summary",
    [
        (REF + "synth1p_128.tif", REF + "synth1p_128_caiman_summary.npz"),
        (str(IDEAS / "movie_part2_108x123x63.tiff"), REF + "part2_caiman_summary.npz"),
    ],
)
def test_matches_caiman_reference(movie, summary):
    if not (os.path.exists(movie) and os.path.exists(summary)):
        pytest.skip("CaImAn reference data not available")
    import tifffile

    mov = tifffile.imread(movie).astype(np.float32)
    ref = np.load(summary)
    s = correlation_pnr(mov, gsig=3, center_psf=True, chunk_frames=128)
    assert np.max(np.abs(s.correlation - ref["cn"])) < 0.002
    rel = np.abs(s.pnr - ref["pnr"]) / np.maximum(ref["pnr"], 1e-3)
    assert np.max(rel) < 1e-3
