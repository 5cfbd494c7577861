"""Simulator (ground truth, determinism, model properties) and movie writers."""

from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse
from scipy.signal import lfilter

from cnmflow.errors import InputError, ParameterError
from cnmflow.synthetic import (
    GroundTruth,
    SimulatedMovie,
    ar_coefficients,
    simulate_1p,
    simulate_2p,
    write_avi,
    write_isxd,
    write_tiff,
)

SMALL = dict(shape=(48, 56), n_frames=300, n_neurons=10)


@pytest.fixture(scope="module")
def sim1p() -> SimulatedMovie:
    return simulate_1p(**SMALL, vessel=True, rng=3)


@pytest.fixture(scope="module")
def sim2p() -> SimulatedMovie:
    return simulate_2p(**SMALL, nb=2, rng=4)


def _residual(sim: SimulatedMovie) -> np.ndarray:
    t = sim.truth
    return sim.movie - t.neurons() - t.background()


# ------------------------------------------------------------------ shapes, dtypes, determinism
@pytest.mark.parametrize("fn", [simulate_1p, simulate_2p])
def test_shapes_and_dtypes(fn):
    sim = fn(**SMALL, rng=1)
    t = sim.truth
    T, (rows, cols), K = 300, SMALL["shape"], 10
    assert isinstance(t, GroundTruth)
    assert sim.movie.shape == (T, rows, cols) and sim.movie.dtype == np.float32
    assert sim.movie.flags.c_contiguous
    assert t.footprints.shape == (K, rows, cols) and t.footprints.dtype == np.float32
    np.testing.assert_allclose(t.footprints.reshape(K, -1).max(axis=1), 1.0)
    assert t.footprints.min() >= 0
    assert t.calcium.shape == (K, T) and t.calcium.dtype == np.float32
    assert t.spikes.shape == (K, T) and t.spikes.dtype == np.float32
    assert t.centers.shape == (K, 2)
    assert t.background_mean.shape == (rows, cols) and t.background_mean.dtype == np.float32
    assert np.isfinite(sim.movie).all()
    A = t.A()
    assert isinstance(A, scipy.sparse.csc_matrix) and A.shape == (rows * cols, K)
    # Fortran pixel order
    k = 4
    np.testing.assert_array_equal(A[:, k].toarray().reshape((rows, cols), order="F"), t.footprints[k])
    # every neuron fires: several transients
    assert ((t.spikes > 0).sum(axis=1) >= 2).all()


def test_deterministic_and_rng_forms():
    a = simulate_1p(shape=(32, 32), n_frames=80, n_neurons=5, vessel=True, rng=7)
    b = simulate_1p(shape=(32, 32), n_frames=80, n_neurons=5, vessel=True, rng=7)
    c = simulate_1p(shape=(32, 32), n_frames=80, n_neurons=5, vessel=True, rng=np.random.default_rng(7))
    d = simulate_1p(shape=(32, 32), n_frames=80, n_neurons=5, vessel=True, rng=8)
    np.testing.assert_array_equal(a.movie, b.movie)
    np.testing.assert_array_equal(a.truth.calcium, b.truth.calcium)
    np.testing.assert_array_equal(a.truth.footprints, b.truth.footprints)
    np.testing.assert_array_equal(a.movie, c.movie)  # Generator(seed) == seed
    assert not np.array_equal(a.movie, d.movie)
    # no global RNG use
    state = np.random.get_state()[1].copy()
    simulate_2p(shape=(32, 32), n_frames=50, n_neurons=3, rng=1)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    # the layout does not depend on the movie length
    e = simulate_1p(shape=(32, 32), n_frames=40, n_neurons=5, vessel=True, rng=7)
    np.testing.assert_array_equal(a.truth.footprints, e.truth.footprints)


def test_centres_separated_and_inside():
    sim = simulate_1p(shape=(64, 64), n_frames=20, n_neurons=25, gsig=3.0, rng=2)
    c = sim.truth.centers
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1)) + np.eye(len(c)) * 1e9
    assert d.min() >= 6.0 - 1e-9  # default min_distance = 2·gsig
    assert (c >= 3.0).all() and (c <= 64 - 1 - 3.0).all()
    with pytest.raises(ParameterError, match="n_neurons"):
        simulate_1p(shape=(16, 16), n_frames=10, n_neurons=50, rng=0)


# ------------------------------------------------------------------ 1P model
def test_1p_noise_and_peak_snr_measured_on_output(sim1p):
    t = sim1p.truth
    res = _residual(sim1p)
    noise = float(res.std())
    assert abs(noise - t.noise_sd) / t.noise_sd < 0.02
    snr = t.calcium.max(axis=1) * t.footprints.reshape(t.n_neurons, -1).max(axis=1) / noise
    assert snr.min() >= 3.0 * 0.97 and snr.max() <= 10.0 * 1.03
    # and the neurons really are in the movie: at each footprint peak, movie − background ≈ calcium
    for k in range(t.n_neurons):
        r, c = np.unravel_index(np.argmax(t.footprints[k]), t.footprints[k].shape)
        y = sim1p.movie[:, r, c] - t.background()[:, r, c]
        assert np.corrcoef(y, t.calcium[k])[0, 1] > 0.3


def test_1p_background_dominates(sim1p):
    t = sim1p.truth
    mean_peak = float(t.calcium.max(axis=1).mean())
    bg = float(t.background_mean.mean())
    assert bg >= 3.0 * mean_peak  # default background_ratio 5 (vs the 6.5·noise_sd nominal peak)
    np.testing.assert_allclose(sim1p.movie.mean(axis=0).mean(), bg + t.neurons().mean(), rtol=0.01)
    assert t.background_mean.min() > 0
    # spatially smooth but not flat, and it fluctuates in time by more than the noise somewhere
    assert t.background_mean.max() / t.background_mean.min() > 1.5
    b = t.background()
    assert b.std(axis=0).max() > t.noise_sd
    # background is much smoother in time than the noise: frame-to-frame steps are small
    assert np.abs(np.diff(b, axis=0)).mean() < 0.2 * t.noise_sd


def test_1p_vessel_is_dark_band():
    kw = dict(shape=(48, 48), n_frames=30, n_neurons=4, rng=5)
    with_v = simulate_1p(vessel=True, **kw).truth
    without = simulate_1p(vessel=False, **kw).truth
    ratio = with_v.background_mean / without.background_mean
    assert ratio.min() < 0.8  # 25–40% darker on the vessel
    assert (ratio > 0.99).mean() > 0.3  # but only along a band


def test_1p_shot_noise_option():
    sim = simulate_1p(shape=(32, 32), n_frames=200, n_neurons=3, shot_noise=True, rng=1)
    res = _residual(sim)
    bright = sim.truth.background_mean > np.median(sim.truth.background_mean)
    assert res[:, bright].std() > res[:, ~bright].std()


@pytest.mark.parametrize("p", [1, 2])
def test_calcium_follows_ar_recurrence(p):
    sim = simulate_1p(shape=(32, 32), n_frames=200, n_neurons=4, p=p, fr=10.0, decay_time=0.5, rng=11)
    t = sim.truth
    g = ar_coefficients(fr=10.0, decay_time=0.5, p=p)
    assert t.g == pytest.approx(g)
    assert len(t.g) == p
    if p == 1:
        assert t.g[0] == pytest.approx(np.exp(-1 / (0.5 * 10.0)))
    c = t.calcium.astype(np.float64)
    s = t.spikes.astype(np.float64)
    pred = s.copy()
    pred[:, 1:] += t.g[0] * c[:, :-1]
    if p == 2:
        pred[:, 2:] += t.g[1] * c[:, :-2]
    np.testing.assert_allclose(pred, c, atol=1e-3 * c.max())
    np.testing.assert_allclose(lfilter([1.0], np.r_[1.0, -np.array(t.g)], s, axis=1), c, atol=1e-3 * c.max())
    assert (t.spikes >= 0).all() and (t.spikes > 0).mean() < 0.2  # sparse


# ------------------------------------------------------------------ 2P model
def test_2p_background_low_rank(sim2p):
    t = sim2p.truth
    assert t.background_spatial.shape[0] == 2 and (t.background_spatial >= 0).all()
    assert (t.background_temporal > 0).all()
    bg_plus_noise = (sim2p.movie - t.neurons()).reshape(sim2p.movie.shape[0], -1)
    sv = np.linalg.svd(bg_plus_noise.astype(np.float64), compute_uv=False)
    T, P = bg_plus_noise.shape
    noise_floor = t.noise_sd * (np.sqrt(T) + np.sqrt(P))
    assert sv[1] > 3 * noise_floor  # nb = 2 strong components
    assert sv[2] < 1.1 * noise_floor  # the rest is noise
    # weaker than 1P: background comparable to the neurons' peaks
    assert t.background_mean.mean() < 2.0 * t.calcium.max(axis=1).mean()
    res = _residual(sim2p)
    assert abs(res.std() - t.noise_sd) / t.noise_sd < 0.02


def test_bad_parameters():
    with pytest.raises(ParameterError, match="p="):
        simulate_1p(p=3, n_frames=10)
    with pytest.raises(ParameterError, match="peak_snr"):
        simulate_1p(peak_snr=(5, 2), n_frames=10)
    with pytest.raises(InputError, match="n_frames"):
        simulate_2p(n_frames=0)
    with pytest.raises(ParameterError, match="shape"):
        simulate_1p(shape=(4, 4))


# ------------------------------------------------------------------ writers
@pytest.fixture(scope="module")
def small_movie() -> np.ndarray:
    return simulate_1p(shape=(20, 24), n_frames=12, n_neurons=2, rng=0).movie


def test_write_tiff_float32_roundtrip(tmp_path, small_movie):
    import tifffile

    p = write_tiff(tmp_path / "m.tif", small_movie, fr=30.0)
    assert p == tmp_path / "m.tif" and sorted(x.name for x in tmp_path.iterdir()) == ["m.tif"]
    with tifffile.TiffFile(p) as tf:
        assert tf.is_imagej
        assert tf.imagej_metadata["finterval"] == pytest.approx(1 / 30)
        data = tf.asarray()
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, small_movie)


def test_write_tiff_uint16_and_no_fr(tmp_path, small_movie):
    import tifffile

    p = write_tiff(tmp_path / "u.tif", small_movie, fr=None, dtype="uint16")
    with tifffile.TiffFile(p) as tf:
        assert "finterval" not in (tf.imagej_metadata or {})
        data = tf.asarray()
    assert data.dtype == np.uint16 and data.shape == small_movie.shape
    np.testing.assert_array_equal(data, np.clip(np.rint(small_movie), 0, 65535).astype(np.uint16))
    q = write_tiff(tmp_path / "a.tif", small_movie - 500.0, fr=10.0, dtype="uint16", scale="auto", compression="zlib")
    d2 = tifffile.imread(q)
    assert d2.min() == 0 and d2.max() == 65535
    with pytest.raises(ParameterError, match="dtype"):
        write_tiff(tmp_path / "x.tif", small_movie, fr=10.0, dtype="int8")
    with pytest.raises(ParameterError, match="movie"):
        write_tiff(tmp_path / "x.tif", small_movie[0], fr=10.0)


def test_write_isxd_roundtrip_exact_period_and_dropped(tmp_path, small_movie):
    import isx

    p = write_isxd(tmp_path / "m.isxd", small_movie, fr=30.0, start_s=12.5, pixel_size_um=2.5, dropped=(3, 7))
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.isxd"]
    m = isx.Movie.read(str(p))
    tm = m.timing
    assert tm.num_samples == 12
    assert Fraction(tm.period._impl.num, tm.period._impl.den) == Fraction(1, 30)
    assert tm.start._impl.secs_since_epoch.num / tm.start._impl.secs_since_epoch.den == pytest.approx(12.5)
    assert list(tm.dropped) == [3, 7]
    assert m.spacing.num_pixels == (20, 24)
    assert m.spacing._impl.pixel_width._as_float() == pytest.approx(2.5)
    assert m.data_type == np.float32
    for i in range(12):
        frame = m.get_frame_data(i)
        if i in (3, 7):
            assert not frame.any()  # isx reads dropped frames as zeros
        else:
            np.testing.assert_array_equal(frame, small_movie[i])
    del m


def test_write_avi_roundtrip(tmp_path, small_movie):
    import av

    p = write_avi(tmp_path / "m.avi", small_movie, fr=20.0)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.avi"]
    with av.open(str(p)) as c:
        st = c.streams.video[0]
        assert st.average_rate == 20
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(frames) == small_movie.shape[0]
    got = np.stack(frames).astype(np.float64)
    lo, hi = float(small_movie.min()), float(small_movie.max())
    expected = (small_movie - lo) * 255.0 / (hi - lo)
    assert got.shape == small_movie.shape
    assert np.abs(got - expected).max() <= 0.51  # lossless codec: only the 8-bit rounding
