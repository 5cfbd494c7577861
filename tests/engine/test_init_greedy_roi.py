"""greedy_roi finds the neurons of simulated 2P movies, and each flag does what it documents."""

import numpy as np
import pytest
from scipy.signal import lfilter

from cnmflow.pixel_order import frames_to_pixels
from cnmflow.engine.init import greedy_roi
from cnmflow.engine.summary_images import separable_filter
from cnmflow.engine.init.greedy_roi import initialize_greedy_roi
from cnmflow.engine.init.low_rank import LowRankInit
from cnmflow.engine.patch_frames import PatchStorage, as_frames
from cnmflow.errors import ParameterError
from cnmflow.scoring import score
from cnmflow.synthetic import simulate_2p

GSIG, GSIZ = 3.0, 7


def _score(sim, res: LowRankInit):
    return score(sim.truth.footprints, res.A, dims=sim.truth.dims,
                 truth_traces=sim.truth.calcium, estimated_traces=res.C)


def _background_error(sim, res: LowRankInit) -> float:
    truth = frames_to_pixels(sim.truth.background()).T.astype(np.float64)
    return float(np.linalg.norm(res.b.astype(np.float64) @ res.f - truth) / np.linalg.norm(truth))


def _residual_sd(movie, res: LowRankInit) -> float:
    Yp = frames_to_pixels(movie).T.astype(np.float64)
    model = res.A.astype(np.float64) @ res.C + res.b.astype(np.float64) @ res.f
    return float(np.sqrt(np.mean((Yp - model) ** 2)))


def _peak(res: LowRankInit, k: int, dims) -> np.ndarray:
    image = res.A[:, k].reshape(dims, order="F")
    return np.array(np.unravel_index(np.argmax(image), dims))


# --------------------------------------------------------------------------- accuracy on simulate_2p
@pytest.fixture(scope="module")
def sim64():
    return simulate_2p(shape=(64, 64), n_frames=500, n_neurons=10, nb=2, rng=0)


@pytest.fixture(scope="module")
def sim48():
    return simulate_2p(shape=(48, 48), n_frames=500, n_neurons=6, nb=1, rng=1)


@pytest.mark.parametrize("which, nb", [("sim64", 2), ("sim48", 1)])
@pytest.mark.parametrize("k_factor", [1.0, 1.5])
def test_finds_the_neurons_and_the_background(request, which, nb, k_factor):
    sim = request.getfixturevalue(which)
    K = int(round(k_factor * sim.truth.n_neurons))
    res = initialize_greedy_roi(sim.movie, K=K, gsig=GSIG, gsiz=GSIZ, nb=nb)
    result = _score(sim, res)
    assert result.f1 >= 0.85, result.summary()
    assert result.median_trace_corr >= 0.9, result.summary()
    assert res.A.shape[1] <= K
    assert _background_error(sim, res) < 0.2
    # everything in movie units (normalize_init maps A and b back): what is left is the noise
    assert _residual_sd(sim.movie, res) < 1.1 * sim.truth.noise_sd


def test_result_types_and_shapes(sim48):
    res = initialize_greedy_roi(sim48.movie, K=6, gsig=GSIG, gsiz=GSIZ, nb=1)
    T, h, w = sim48.movie.shape
    K = res.A.shape[1]
    assert res.A.shape == (h * w, K) and res.C.shape == (K, T)
    assert res.b.shape == (h * w, 1) and res.f.shape == (1, T)
    assert res.score.shape == (h, w)
    for name in ("A", "C", "b", "f", "score"):
        assert getattr(res, name).dtype == np.float32, name
    for name in ("A", "C", "b", "f"):
        assert np.all(getattr(res, name) >= 0), name


def test_k_caps_the_number_of_components(sim64):
    res = initialize_greedy_roi(sim64.movie, K=3, gsig=GSIG, gsiz=GSIZ, nb=2)
    result = _score(sim64, res)
    assert res.A.shape[1] == 3 and result.n_matched == 3


def test_a_patch_without_neurons_gives_no_components():
    gen = np.random.default_rng(5)
    movie = (200 + 10 * gen.standard_normal((300, 32, 32))).astype(np.float32)
    res = initialize_greedy_roi(movie, K=5, gsig=GSIG, gsiz=GSIZ, nb=1)
    assert res.A.shape == (32 * 32, 0) and res.C.shape == (0, 300)
    assert res.b.shape == (32 * 32, 1)
    assert np.allclose(res.b @ res.f, 200, rtol=0.05)


# --------------------------------------------------------------------------- flags, on made-up movies
def _trace(T, times, amplitude, tau=8.0):
    spikes = np.zeros(T)
    for t in times:
        spikes[t] += 1.0
    c = lfilter([1.0], [1.0, -np.exp(-1.0 / tau)], spikes)
    return amplitude * c / c.max()


def _movie(dims, neurons, *, baseline=100.0, noise=5.0, rng=0):
    """neurons: ((row, col), sigma, trace); baseline: a number or an (h, w) image."""
    T = len(neurons[0][2])
    yy, xx = np.mgrid[:dims[0], :dims[1]]
    movie = np.broadcast_to(np.asarray(baseline, float), dims)[None] + np.zeros((T, 1, 1))
    for (r, c), sigma, trace in neurons:
        shape = np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * sigma ** 2))
        movie += trace[:, None, None] * shape[None]
    movie += noise * np.random.default_rng(rng).standard_normal(movie.shape)
    return movie.astype(np.float32)


def _found(res, dims, centres) -> int:
    """Index of the centre nearest to the only component's peak."""
    assert res.A.shape[1] == 1
    peak = _peak(res, 0, dims)
    return int(np.argmin([np.hypot(*(peak - np.array(c))) for c in centres]))


def _assert_flag_swaps_the_pick(movie, dims, centres, flag: str, *, picks_first: bool, **kwargs) -> None:
    """With ``flag=picks_first`` the search scores ``centres[0]`` higher and picks it (K=1); with the
    other value it scores and picks ``centres[1]``."""
    for value, winner in ((picks_first, 0), (not picks_first, 1)):
        result = initialize_greedy_roi(movie, **{flag: value}, **kwargs)
        assert _found(result, dims, centres) == winner, (flag, value)
        assert result.score[centres[winner]] > result.score[centres[1 - winner]], (flag, value)


def test_rolling_sum_finds_a_single_burst_that_the_full_sum_ranks_lower():
    T, dims = 600, (40, 40)
    burst = _trace(T, [300, 303, 306], 60.0)  # one short, strong episode
    steady = _trace(T, list(range(10, T - 10, 50)), 30.0)  # weaker events all along
    burst, steady = burst - np.median(burst), steady - np.median(steady)  # what the method scores
    assert np.sum(steady ** 2) > 1.5 * np.sum(burst ** 2)  # more energy in total ...
    window = np.convolve(steady ** 2, np.ones(100), "valid").max()
    assert np.convolve(burst ** 2, np.ones(100), "valid").max() > 2 * window  # ... less in any 100 frames
    centres = [(10, 10), (28, 28)]
    # only this flag at work: no background (nb=0; with a static one, its traces would follow
    # the busiest neuron and take part of its score) and no normalisation (the busy neuron
    # raises its own median, the divisor)
    movie = _movie(dims, [(centres[0], GSIG, burst), (centres[1], GSIG, steady)], baseline=0.0)
    _assert_flag_swaps_the_pick(movie, dims, centres, "rolling_sum", picks_first=True,
                                K=1, gsig=GSIG, gsiz=GSIZ, nb=0, rolling_length=100, normalize_init=False)


def test_normalize_init_favours_a_relative_change_in_a_dim_region():
    T, dims = 500, (40, 60)
    baseline = np.broadcast_to(np.linspace(50.0, 1000.0, dims[1]), dims)
    centres = [(20, 10), (20, 50)]
    dim = _trace(T, list(range(15, T, 40)), 40.0)  # ~ +35 % on a baseline of ~ 120
    bright = _trace(T, list(range(35, T, 40)), 80.0)  # ~ +10 % on a baseline of ~ 850
    movie = _movie(dims, [(centres[0], GSIG, dim), (centres[1], GSIG, bright)], baseline=baseline)
    kwargs = dict(K=1, gsig=GSIG, gsiz=GSIZ, nb=1)
    normalised = initialize_greedy_roi(movie, normalize_init=True, **kwargs)
    raw = initialize_greedy_roi(movie, normalize_init=False, **kwargs)
    assert _found(normalised, dims, centres) == 0
    assert _found(raw, dims, centres) == 1
    # both in movie units: the model explains the movie down to its noise; a static background
    # (nothing for the background's traces to follow) does not eat the neurons
    both = initialize_greedy_roi(movie, K=2, gsig=GSIG, gsiz=GSIZ, nb=1)
    assert both.A.shape[1] == 2 and _residual_sd(movie, both) < 1.1 * 5.0
    # integer movies (uint16 tif) give the same components
    as_uint16 = initialize_greedy_roi(np.round(movie).astype(np.uint16), K=2, gsig=GSIG, gsiz=GSIZ, nb=1)
    assert as_uint16.A.shape[1] == 2
    assert np.all(np.sum(as_uint16.A * both.A, axis=0) > 0.99)


def test_center_psf_favours_neuron_sized_blobs_over_larger_structures():
    T, dims = 500, (40, 40)
    gsig, gsiz = 2.5, 6
    centres = [(12, 12), (28, 28)]
    large = _trace(T, list(range(15, T, 40)), 40.0)
    small = _trace(T, list(range(35, T, 40)), 40.0)
    movie = _movie(dims, [(centres[0], 7.0, large), (centres[1], gsig, small)], baseline=0.0)
    _assert_flag_swaps_the_pick(movie, dims, centres, "center_psf", picks_first=False, K=1, gsig=gsig, gsiz=gsiz, nb=0)


@pytest.mark.parametrize("nb", [0, 1, 2])
def test_nb_sets_the_background_rank(nb):
    sim = simulate_2p(shape=(32, 32), n_frames=200, n_neurons=3, nb=2, gsig=2.5, rng=7)
    res = initialize_greedy_roi(sim.movie, K=3, gsig=2.5, gsiz=6, nb=nb)
    assert res.b.shape == (32 * 32, nb) and res.f.shape == (nb, 200)
    assert res.b.dtype == np.float32 and res.f.dtype == np.float32
    if nb == 2:  # the simulated background's rank
        assert _score(sim, res).n_matched == 3


def test_deterministic():
    sim = simulate_2p(shape=(32, 32), n_frames=200, n_neurons=3, nb=1, gsig=2.5, rng=2)
    one = initialize_greedy_roi(sim.movie, K=4, gsig=2.5, gsiz=6, nb=1)
    two = initialize_greedy_roi(sim.movie, K=4, gsig=2.5, gsiz=6, nb=1)
    for name in ("A", "C", "b", "f", "score"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))


# --------------------------------------------------------------------------- validation
_GOOD = dict(K=2, gsig=2.0, gsiz=5, nb=1)


@pytest.mark.parametrize("bad, name", [
    ({"K": 0}, "K"), ({"K": 2.5}, "K"), ({"nb": -1}, "nb"), ({"gsig": 0}, "gSig"),
    ({"gsig": float("nan")}, "gSig"), ({"gsiz": 0}, "gSiz"), ({"rolling_length": 0}, "rolling_length"),
])
def test_bad_parameters_are_named(bad, name):
    movie = np.zeros((10, 16, 16), np.float32)
    with pytest.raises(ParameterError, match=name):
        initialize_greedy_roi(movie, **(_GOOD | bad))


@pytest.mark.parametrize("movie, match", [
    (np.zeros((16, 16), np.float32), "n_frames, rows, cols"),
    (np.zeros((3, 16, 16), np.float32), "at least 4"),
    (np.full((10, 16, 16), np.nan, np.float32), "NaN"),
])
def test_bad_movies_are_rejected(movie, match):
    with pytest.raises(ParameterError, match=match):
        initialize_greedy_roi(movie, **_GOOD)


# --------------------------------------------------------------------------- score maps
@pytest.mark.parametrize("window", [None, 1, 7, 40])
@pytest.mark.parametrize("positive", [False, True])
def test_energy_is_the_largest_sum_of_squares_over_a_window(window, positive):
    F = np.random.default_rng(3).normal(size=(40, 13)).astype(np.float32)
    x = np.maximum(F, 0.0) if positive else F.astype(np.float64)
    squares = x.astype(np.float64) ** 2
    if window is None:
        expected = squares.sum(axis=0)
    else:
        expected = np.lib.stride_tricks.sliding_window_view(squares, window, axis=0).sum(axis=-1).max(axis=0)
    np.testing.assert_allclose(greedy_roi._energy(F, window, positive=positive), expected, rtol=1e-12)


@pytest.mark.parametrize("center_psf", [False, True])
def test_subtracting_a_component_refreshes_every_score_it_changes(center_psf):
    """Only the pixels the footprint's filtered image reaches are updated: the filtered copies must
    still be the filtered residual, and the maps equal maps computed afresh from them, bit for bit."""
    sim = simulate_2p(shape=(40, 40), n_frames=150, n_neurons=4, nb=1, gsig=2.5, rng=5)
    R = as_frames(np.ascontiguousarray(sim.movie - np.median(sim.movie, axis=0), dtype=np.float32))
    st = greedy_roi._Greedy(R, gsig=2.5, gsiz=6, window=30, center_psf=center_psf, storage=PatchStorage())
    found_a, _ = greedy_roi._greedy_components(st, 3)
    assert len(found_a) >= 2
    for F, centered in ((st.Fs, center_psf), (st.Fc, True)):
        fresh = separable_filter(st.R[:], st.gsig, st.gsiz, centered)
        np.testing.assert_allclose(F[:], fresh, rtol=0, atol=1e-4 * float(np.abs(fresh).max()))
    np.testing.assert_array_equal(st.score, st._map(st.Fs))
    np.testing.assert_array_equal(st.contrast, st._map(st.Fc, positive=True))


@pytest.mark.parametrize("shape", [(5, 30, 24), (3, 4, 9), (2, 1, 12)])
@pytest.mark.parametrize("centered", [False, True])
def test_filter_matches_scipy_filtering_line_by_line(shape, centered):
    """The matrix-product filter is the Gaussian (replicate borders) or the Gaussian minus its box
    mean on point-reflected borders, also on axes shorter than the kernel."""
    import scipy.ndimage as ndi

    frames = np.random.default_rng(4).normal(size=shape).astype(np.float32) + 50.0
    gsig, gsiz = 2.5, 6
    sig = (0, gsig, gsig)
    if centered:
        padded = np.pad(frames.astype(np.float64), ((0, 0), (gsiz, gsiz), (gsiz, gsiz)), mode="reflect",
                        reflect_type="odd")
        full = (ndi.gaussian_filter(padded, sigma=sig, truncate=gsiz / gsig, mode="nearest")
                - ndi.uniform_filter(padded, size=(1, 2 * gsiz + 1, 2 * gsiz + 1), mode="nearest"))
        expected = full[:, gsiz:gsiz + shape[1], gsiz:gsiz + shape[2]]
    else:
        expected = ndi.gaussian_filter(frames.astype(np.float64), sigma=sig, truncate=gsiz / gsig, mode="nearest")
    got = separable_filter(frames, gsig, gsiz, centered)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
