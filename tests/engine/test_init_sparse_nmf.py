"""sparse_NMF recovers overlapping, elongated (dendrite-like) components."""

import numpy as np
import pytest
from scipy.signal import lfilter

from cnmflow.engine.init.sparse_nmf import initialize_sparse_nmf
from cnmflow.errors import ParameterError

DIMS = (40, 40)


def _segment(p0, p1, width=1.0):
    """Image of a thin line from p0 to p1 (row, col), Gaussian cross-section of sd ``width``."""
    yy, xx = np.mgrid[:DIMS[0], :DIMS[1]]
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    length = np.linalg.norm(p1 - p0)
    u = (p1 - p0) / length
    rel = np.stack([yy - p0[0], xx - p0[1]], axis=-1)
    along = np.clip(rel @ u, 0, length)
    dist = np.linalg.norm(rel - along[..., None] * u, axis=-1)
    return np.exp(-0.5 * (dist / width) ** 2)


def _arc(centre, radius, start, stop, width=1.0):
    """Image of a thin circular arc (angles in radians)."""
    yy, xx = np.mgrid[:DIMS[0], :DIMS[1]]
    angle = np.arctan2(yy - centre[0], xx - centre[1])
    inside = (angle >= start) & (angle <= stop)
    dist = np.abs(np.hypot(yy - centre[0], xx - centre[1]) - radius)
    return np.where(inside, np.exp(-0.5 * (dist / width) ** 2), 0.0)


def _dendrites(*, noise=1.0, baseline=20.0, T=600, rng=0):
    """Four crossing thin structures with independent sparse activity, on a flat baseline."""
    gen = np.random.default_rng(rng)
    shapes = np.stack([
        _segment((3, 5), (36, 30)), _segment((30, 2), (8, 37)),
        _segment((20, 0), (22, 39)), _arc((20, 20), 14, -2.5, 0.5),
    ])
    shapes /= shapes.max(axis=(1, 2), keepdims=True)
    spikes = (gen.random((len(shapes), T)) < 0.02) * gen.uniform(0.5, 1.5, (len(shapes), T))
    traces = 5.0 * lfilter([1.0], [1.0, -0.9], spikes, axis=1)
    movie = np.einsum("kt,kij->tij", traces, shapes) + baseline + noise * gen.standard_normal((T, *DIMS))
    return movie.astype(np.float32), shapes, traces


def _best_cosine(shapes, A):
    truth = shapes.transpose(0, 2, 1).reshape(len(shapes), -1)  # Fortran pixel order
    truth = truth / np.linalg.norm(truth, axis=1, keepdims=True)
    est = A / np.maximum(np.linalg.norm(A, axis=0), 1e-12)
    return (truth @ est).max(axis=1)


@pytest.fixture(scope="module")
def data():
    return _dendrites()


@pytest.fixture(scope="module")
def result(data):
    return initialize_sparse_nmf(data[0], K=4, nb=1)


def test_each_dendrite_is_recovered(data, result):
    _, shapes, _ = data
    assert np.all(_best_cosine(shapes, result.A) >= 0.8), _best_cosine(shapes, result.A)


def test_extra_components_do_not_spoil_the_recovery(data):
    movie, shapes, _ = data
    res = initialize_sparse_nmf(movie, K=6, nb=1)
    assert np.all(_best_cosine(shapes, res.A) >= 0.8)


def test_a_long_patch_starts_from_block_means_and_still_recovers_every_dendrite(data, monkeypatch):
    from cnmflow.engine.init import sparse_nmf
    from cnmflow.engine.patch_frames import PatchStorage

    movie, shapes, _ = data
    monkeypatch.setattr(sparse_nmf, "START_MAX_FRAMES", 150)      # 600 frames: blocks of 4
    frames = PatchStorage(memory_bytes=0).allocate(movie.shape)  # and read from a scratch file
    frames[:] = movie
    res = initialize_sparse_nmf(frames, K=4, nb=1)
    frames.close()
    assert res.C.shape == (res.A.shape[1], movie.shape[0])
    assert np.all(_best_cosine(shapes, res.A) >= 0.8), _best_cosine(shapes, res.A)


def test_noisier_data_still_recovered():
    movie, shapes, _ = _dendrites(noise=3.0, rng=1)
    res = initialize_sparse_nmf(movie, K=4, nb=1)
    assert np.all(_best_cosine(shapes, res.A) >= 0.8), _best_cosine(shapes, res.A)


def test_footprints_are_sparse_and_alpha_controls_it(data, result):
    movie, shapes, _ = data
    true_support = (shapes > 1e-3).reshape(len(shapes), -1).mean()
    dense = initialize_sparse_nmf(movie, K=4, nb=1, alpha=0.0)
    sparse_fraction = (result.A > 0).mean()
    assert sparse_fraction < 1.5 * true_support
    assert (dense.A > 0).mean() > 1.5 * sparse_fraction


def test_result_types_shapes_order(data, result):
    movie = data[0]
    T, h, w = movie.shape
    K = result.A.shape[1]
    assert result.A.shape == (h * w, K) and result.C.shape == (K, T)
    assert result.b.shape == (h * w, 1) and result.f.shape == (1, T)
    assert result.score.shape == (h, w)
    for name in ("A", "C", "b", "f"):
        arr = getattr(result, name)
        assert arr.dtype == np.float32 and np.all(arr >= 0), name
    np.testing.assert_allclose(np.linalg.norm(result.A, axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(result.b, axis=0), 1.0, rtol=1e-5)
    energy = np.linalg.norm(result.C, axis=1)
    assert np.all(np.diff(energy) <= 0)  # ordered by energy
    # the background holds the flat baseline
    assert np.allclose((result.b @ result.f).mean(), 20.0, rtol=0.05)


def test_nb_zero_gives_an_empty_background(data):
    res = initialize_sparse_nmf(data[0], K=4, nb=0)
    assert res.b.shape == (40 * 40, 0) and res.f.shape == (0, data[0].shape[0])


def test_deterministic(data, result):
    again = initialize_sparse_nmf(data[0], K=4, nb=1)
    for name in ("A", "C", "b", "f", "score"):
        np.testing.assert_array_equal(getattr(result, name), getattr(again, name))


@pytest.mark.parametrize("bad, name", [
    ({"K": 0}, "K"), ({"nb": -1}, "nb"), ({"alpha": -1.0}, "alpha"), ({"alpha": float("inf")}, "alpha"),
    ({"iterations": 0}, "iterations"),
])
def test_bad_parameters_are_named(bad, name):
    with pytest.raises(ParameterError, match=name):
        initialize_sparse_nmf(np.zeros((10, 8, 8), np.float32), **({"K": 2, "nb": 1} | bad))


def test_bad_movie_is_rejected():
    with pytest.raises(ParameterError, match="n_frames"):
        initialize_sparse_nmf(np.zeros((8, 8), np.float32), K=2, nb=1)
    with pytest.raises(ParameterError, match="K=70"):
        initialize_sparse_nmf(np.zeros((100, 8, 8), np.float32), K=70, nb=1)
