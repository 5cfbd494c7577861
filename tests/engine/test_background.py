"""Tests for the 1P ring background model (cnmflow.engine.background)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse

from cnmflow.engine.background import (
    RING_TEMPORAL_RANK,
    RingModel,
    fit_ring_model,
    ring_background,
    reduced_rank,
    ring_edge_radius,
    ring_offsets,
    ring_radius,
    ring_residual,
    subtract_background,
    undo_ring_residual,
)
from cnmflow.errors import ParameterError

NOISE = 1.0


def _gauss(rows, cols, cy, cx, sig):
    y, x = np.mgrid[:rows, :cols]
    return np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2.0 * sig**2))


def _slow_trace(rng, T, n_modes=4):
    t = np.arange(T)
    out = np.zeros(T)
    for _ in range(n_modes):
        period = rng.uniform(60, 400)
        out += rng.normal() * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return out / out.std()


def make_movie(rows=48, cols=57, T=300, n_neurons=4, n_blobs=4, seed=0):
    """Smooth strong background (big Gaussian blobs, independent slow traces) + neurons + noise.

    Returns movie (T, rows, cols) float32, A (csc, Fortran order), C (K, T), B_true (T, rows, cols).
    """
    rng = np.random.default_rng(seed)
    base = 60.0 + 20.0 * _gauss(rows, cols, rows * 0.4, cols * 0.6, 25.0)
    B = np.broadcast_to(base, (T, rows, cols)).copy()
    for _ in range(n_blobs):
        blob = _gauss(rows, cols, rng.uniform(0, rows), rng.uniform(0, cols), rng.uniform(10, 16))
        tr = 8.0 * _slow_trace(rng, T)
        B += tr[:, None, None] * blob[None]
    A_cols, C = [], []
    for _ in range(n_neurons):
        cy, cx = rng.uniform(8, rows - 8), rng.uniform(8, cols - 8)
        a = _gauss(rows, cols, cy, cx, 2.0)
        a[a < 0.05] = 0.0
        s = (rng.random(T) < 0.03) * rng.uniform(5, 15, T)
        c = np.zeros(T)
        for t in range(T):
            c[t] = (0.9 * c[t - 1] if t else 0.0) + s[t]
        A_cols.append(a.ravel(order="F"))
        C.append(c)
    A = scipy.sparse.csc_matrix(np.stack(A_cols, axis=1) if A_cols else np.zeros((rows * cols, 0)))
    C = np.array(C).reshape(n_neurons, T)
    AC = np.asarray(A @ C).T.reshape(T, cols, rows).transpose(0, 2, 1)
    movie = (B + AC + NOISE * rng.standard_normal((T, rows, cols))).astype(np.float32)
    return movie, A, C, B.astype(np.float32), AC.astype(np.float32)


# ----------------------------------------------------------------------------- reference


def _ref_downsample(img_stack, s):
    T, rows, cols = img_stack.shape
    dr, dc = -(-rows // s), -(-cols // s)
    out = np.zeros((T, dr, dc))
    for i in range(dr):
        for j in range(dc):
            out[:, i, j] = img_stack[:, i * s : (i + 1) * s, j * s : (j + 1) * s].mean(axis=(1, 2))
    return out


def reference_ring(py, px, dr, dc, radius):
    """Fortran indices of pixel (py, px)'s ring on a (dr, dc) grid: its on-grid ring points, and each
    off-grid one moved back along its ray to the last pixel before the edge, kept when at least
    ``ring_edge_radius`` from the pixel."""
    nearest = ring_edge_radius(radius)
    members = set()
    for dy, dx in ring_offsets(radius):
        qy, qx = py + dy, px + dx
        if not (0 <= qy < dr and 0 <= qx < dc):
            length = reach = np.hypot(dy, dx)
            if dy:
                reach = min(reach, (dr - 1 - py if dy > 0 else py) * length / abs(dy))
            if dx:
                reach = min(reach, (dc - 1 - px if dx > 0 else px) * length / abs(dx))
            qy = int(np.clip(np.rint(py + reach * dy / length), 0, dr - 1))
            qx = int(np.clip(np.rint(px + reach * dx / length), 0, dc - 1))
            if (qy - py) ** 2 + (qx - px) ** 2 < nearest**2:
                continue
        members.add(qx * dr + qy)
    return sorted(members)


def reference_fit(movie, A, C, *, radius, ssub_B):
    """Dense, straightforward ring fit: full residual, per-pixel ridge solve in float64."""
    T, rows, cols = movie.shape
    Y = movie.astype(np.float64)
    AC = np.asarray(A @ C).T.reshape(T, cols, rows).transpose(0, 2, 1) if A.shape[1] else 0.0
    R = Y - AC
    b0 = R.mean(axis=0).ravel(order="F")
    Rd = _ref_downsample(R, ssub_B)
    dr, dc = Rd.shape[1:]
    X = Rd.transpose(0, 2, 1).reshape(T, -1).T  # (d_ds, T), Fortran pixel order
    X = X - X.mean(axis=1, keepdims=True)
    W = np.zeros((dr * dc, dr * dc))
    for py in range(dr):
        for px in range(dc):
            ring = reference_ring(py, px, dr, dc, radius)
            XR = X[ring]
            G = XR @ XR.T
            w = np.linalg.solve(G + 1e-5 * np.trace(G) * np.eye(len(ring)), XR @ X[px * dr + py])
            W[px * dr + py, ring] = w
    return W, b0


# ----------------------------------------------------------------------------- tests


def test_ring_radius_values():
    assert ring_radius(gsiz=13, ring_size_factor=1.4, ssub_B=2) == 9  # 9.1
    assert ring_radius(gsiz=13, ring_size_factor=1.4, ssub_B=1) == 18  # 18.2
    assert ring_radius(gsiz=5, ring_size_factor=1.0, ssub_B=2) == 3  # 2.5 rounds half up
    assert ring_radius(gsiz=9, ring_size_factor=1.4, ssub_B=2) == 6  # 6.3
    assert ring_radius(gsiz=3, ring_size_factor=0.1, ssub_B=4) == 1  # never 0
    with pytest.raises(ParameterError, match="ssub_B"):
        ring_radius(gsiz=13, ring_size_factor=1.4, ssub_B=0)
    with pytest.raises(ParameterError, match="ring_size_factor"):
        ring_radius(gsiz=13, ring_size_factor=-1, ssub_B=1)


def test_ring_offsets_are_one_pixel_ring():
    for r in (1, 3, 6, 9):
        o = ring_offsets(r)
        dist = np.hypot(o[:, 0], o[:, 1])
        assert np.all((dist >= r) & (dist < r + 1))
        # every pixel of the disc of radius r+1 not in the open disc of radius r is there
        dy, dx = np.mgrid[-r - 1 : r + 2, -r - 1 : r + 2]
        dd = np.hypot(dy, dx)
        assert len(o) == np.count_nonzero((dd >= r) & (dd < r + 1))
    assert {tuple(v) for v in ring_offsets(1)} == {
        (-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)
    }


@pytest.mark.parametrize("ssub_B", [1, 2])
def test_sparsity_pattern_and_rings_completed_at_the_border(ssub_B):
    movie, A, C, _, _ = make_movie(rows=30, cols=33, T=80, n_neurons=2, seed=1)
    m = fit_ring_model(movie, A, C, gsiz=5, ring_size_factor=1.0, ssub_B=ssub_B, block_pixels=5)
    dr, dc = m.dims_ds
    assert m.W.shape == (dr * dc, dr * dc)
    assert isinstance(m.W, scipy.sparse.csr_matrix) and m.W.has_sorted_indices
    r = m.radius
    assert r == ring_radius(gsiz=5, ring_size_factor=1.0, ssub_B=ssub_B)
    nearest = ring_edge_radius(r)
    n_full = len(ring_offsets(r))
    for py in range(dr):
        for px in range(dc):
            p = px * dr + py
            cols = m.W.indices[m.W.indptr[p] : m.W.indptr[p + 1]]
            assert list(cols) == reference_ring(py, px, dr, dc, r)
            qy, qx = cols % dr, cols // dr
            dist = np.hypot(qy - py, qx - px)
            on_ring = (dist >= r) & (dist < r + 1)
            on_border = (qy == 0) | (qy == dr - 1) | (qx == 0) | (qx == dc - 1)
            # a point nearer than the ring is one pulled in from beyond the edge: on the border, not too near
            assert np.all(on_ring | (on_border & (dist >= nearest) & (dist < r + 1)))
    # interior pixel has the full ring; one near the corner has its cut ring completed along the border
    p_in = (dc // 2) * dr + dr // 2
    assert m.W.indptr[p_in + 1] - m.W.indptr[p_in] == n_full
    near_corner = nearest * dr + nearest
    clipped = sum(1 for dy, dx in ring_offsets(r) if 0 <= nearest + dy < dr and 0 <= nearest + dx < dc)
    assert clipped < m.W.indptr[near_corner + 1] - m.W.indptr[near_corner] <= n_full


def test_rings_stay_cut_at_the_sides_where_the_field_goes_on():
    """A patch's inner sides are no edge of the field: its rings there are left cut, as before."""
    movie, A, C, _, _ = make_movie(rows=30, cols=33, T=80, n_neurons=2, seed=1)
    kw = dict(gsiz=5, ring_size_factor=1.0, ssub_B=1, block_pixels=5)
    m = fit_ring_model(movie, A, C, cut_sides=["top", "left"], **kw)
    completed = fit_ring_model(movie, A, C, **kw)
    (rows, cols), r = m.dims, m.radius

    def members(model, py, px):
        p = px * rows + py
        return list(model.W.indices[model.W.indptr[p] : model.W.indptr[p + 1]])

    def clipped(py, px):
        return sorted((px + dx) * rows + py + dy for dy, dx in ring_offsets(r)
                      if 0 <= py + dy < rows and 0 <= px + dx < cols)

    for py, px in [(1, 20), (10, 1), (2, 2)]:   # rings cut by the top or the left side only
        assert members(m, py, px) == clipped(py, px)
    for py, px in [(rows - 3, 16), (15, cols - 2)]:   # by the bottom or the right only: completed
        assert members(m, py, px) == members(completed, py, px)
        assert len(members(m, py, px)) > len(clipped(py, px))
    with pytest.raises(ParameterError, match="cut_sides"):
        fit_ring_model(movie, A, C, cut_sides=["middle"], **kw)


def test_ring_cut_by_the_edge_predicts_the_edge_background_as_well_as_inside():
    """A smooth background with gradients across the field: a pixel near the edge, whose ring the
    edge cuts, must not be left with more background than one inside (the cut ring extrapolates)."""
    rng = np.random.default_rng(0)
    rows = cols = 48
    T = 400
    yy, xx = np.mgrid[:rows, :cols] / rows
    spatial = [_gauss(rows, cols, cy * rows, cx * cols, 0.35 * rows) for cy, cx in rng.uniform(-0.2, 1.2, (6, 2))]
    spatial += [yy, xx, yy * xx]
    temporal = 0.2 * rng.standard_normal((len(spatial), T)).cumsum(axis=1) + rng.standard_normal((len(spatial), T))
    movie = 100 + 20 * np.einsum("kij,kt->tij", np.array(spatial), temporal)
    movie = (movie + NOISE * rng.standard_normal((T, rows, cols))).astype(np.float32)
    m = fit_ring_model(movie, None, None, gsiz=9, ring_size_factor=1.4, ssub_B=1)
    residual_sd = ring_residual(m, movie.copy()).std(axis=0)
    row, col = np.mgrid[:rows, :cols]
    to_edge = np.minimum(np.minimum(row, rows - 1 - row), np.minimum(col, cols - 1 - col))
    inside = residual_sd[to_edge >= m.radius].mean()
    assert residual_sd[to_edge < 3].mean() < 1.2 * inside
    ends = (slice(0, 4), slice(-4, None))
    corners = [residual_sd[rs, cs].mean() for rs in ends for cs in ends]
    assert max(corners) < 1.6 * inside, (corners, inside)


@pytest.mark.parametrize("gsiz", [5, 9])  # rings of 20 pixels (batched LU) and of 40 (Cholesky, clipped at borders)
def test_blocked_equals_dense_reference(gsiz):
    movie, A, C, _, _ = make_movie(rows=20, cols=23, T=70, n_neurons=2, seed=2)
    r = ring_radius(gsiz=gsiz, ring_size_factor=1.0, ssub_B=2)
    W_ref, b0_ref = reference_fit(movie, A, C, radius=r, ssub_B=2)
    m = fit_ring_model(movie, A, C, gsiz=gsiz, ring_size_factor=1.0, ssub_B=2, block_pixels=4, chunk_frames=7)
    W = m.W.toarray()
    assert np.array_equal(W != 0, W_ref != 0)
    scale = np.abs(W_ref).max()
    np.testing.assert_allclose(W, W_ref, atol=5e-3 * scale)  # float32 box Gram: ill-conditioned directions
    np.testing.assert_allclose(m.b0, b0_ref, rtol=1e-5, atol=1e-4)
    # same prediction as the reference model
    X = _ref_downsample(movie - np.asarray((A @ C).T.reshape(70, 23, 20).transpose(0, 2, 1)), 2)
    X = X.transpose(0, 2, 1).reshape(70, -1).T
    X = X - X.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(W @ X, W_ref @ X, atol=1e-3 * np.abs(W_ref @ X).max())


def test_systems_cholesky_refuses_are_solved_by_lu(monkeypatch):
    """A ring system LAPACK's Cholesky calls not positive definite (rounding) still gets its weights."""
    import cnmflow.engine.background as background

    movie, A, C, _, _ = make_movie(rows=20, cols=23, T=70, n_neurons=2, seed=2)
    kw = dict(gsiz=9, ring_size_factor=1.0, ssub_B=2, block_pixels=4)   # 40-pixel rings: the Cholesky path
    cholesky = fit_ring_model(movie, A, C, **kw).W.toarray()
    monkeypatch.setattr(background, "_POSV", lambda system, target, lower: (None, None, 1))
    refused = fit_ring_model(movie, A, C, **kw).W.toarray()
    np.testing.assert_allclose(refused, cholesky, atol=1e-5 * np.abs(cholesky).max())


def reference_rank_fit(movie, A, C, *, radius, ssub_B, rank):
    """Dense ring fit with each ring's Gram modelled as rank-``rank`` covariances plus the exact
    variances: ``Z_R Z_Rᵀ + diag(‖x_i‖² − ‖z_i‖²)``, ``Z = X V`` on the ``rank`` leading right
    singular vectors ``V`` of the centred residual ``X``; the target covariances ``Z_R z_p``."""
    T, rows, cols = movie.shape
    AC = np.asarray(A @ C).T.reshape(T, cols, rows).transpose(0, 2, 1)
    Rd = _ref_downsample(movie.astype(np.float64) - AC, ssub_B)
    dr, dc = Rd.shape[1:]
    X = Rd.transpose(0, 2, 1).reshape(T, -1).T
    X = X - X.mean(axis=1, keepdims=True)
    Z = X @ np.linalg.svd(X, full_matrices=False)[2][:rank].T
    variance = (X * X).sum(axis=1)
    W = np.zeros((dr * dc, dr * dc))
    for py in range(dr):
        for px in range(dc):
            ring = reference_ring(py, px, dr, dc, radius)
            ZR = Z[ring]
            G = ZR @ ZR.T + np.diag(variance[ring] - (ZR * ZR).sum(axis=1))
            W[px * dr + py, ring] = np.linalg.solve(G + 1e-5 * variance[ring].sum() * np.eye(len(ring)),
                                                    ZR @ Z[px * dr + py])
    return W


@pytest.mark.parametrize("rank", [3, 12])
def test_temporal_rank_models_ring_covariances_as_low_rank(rank):
    movie, A, C, _, _ = make_movie(rows=20, cols=23, T=70, n_neurons=2, seed=2)
    r = ring_radius(gsiz=9, ring_size_factor=1.0, ssub_B=2)
    W_ref = reference_rank_fit(movie, A, C, radius=r, ssub_B=2, rank=rank)
    m = fit_ring_model(movie, A, C, gsiz=9, ring_size_factor=1.0, ssub_B=2, block_pixels=4, temporal_rank=rank)
    W = m.W.toarray()
    assert np.array_equal(W != 0, W_ref != 0)
    np.testing.assert_allclose(W, W_ref, atol=2e-3 * np.abs(W_ref).max())


def test_temporal_rank_of_every_frame_is_the_exact_model():
    movie, A, C, _, _ = make_movie(rows=20, cols=23, T=70, n_neurons=2, seed=2)
    kw = dict(gsiz=9, ring_size_factor=1.0, ssub_B=2, block_pixels=4)
    exact = fit_ring_model(movie, A, C, **kw).W.toarray()
    full_rank = fit_ring_model(movie, A, C, temporal_rank=70, **kw).W.toarray()
    np.testing.assert_allclose(full_rank, exact, atol=5e-3 * np.abs(exact).max())


def test_only_long_rings_are_fitted_on_low_rank_covariances():
    """gSiz 13 at ssub_B 2 (radius 9, 56 pixels) stays exact; gSiz 17 (radius 12, 80 pixels) does not."""
    assert reduced_rank(gsiz=13, ring_size_factor=1.4, ssub_B=2) is None
    assert reduced_rank(gsiz=17, ring_size_factor=1.4, ssub_B=2) == RING_TEMPORAL_RANK
    assert reduced_rank(gsiz=13, ring_size_factor=1.4, ssub_B=1) == RING_TEMPORAL_RANK


def test_low_temporal_rank_predicts_background_under_neurons():
    """Ring covariances of rank 4 (the background has 4 blobs) still predict the background."""
    movie, A, C, B_true, AC = make_movie(seed=4)
    m = fit_ring_model(movie, A, C, gsiz=9, ring_size_factor=1.4, ssub_B=2, block_pixels=16, temporal_rank=4)
    B = ring_background(m, movie, AC)
    assert (movie - B - AC).std() < 1.25 * NOISE
    assert np.abs(B - B_true).mean() < 0.5 * np.abs(B_true - B_true.mean(axis=0)).mean()


def test_frames_subset_equals_reference_on_subset():
    movie, A, C, _, _ = make_movie(rows=16, cols=18, T=90, n_neurons=1, seed=3)
    fr = slice(5, None, 3)
    r = ring_radius(gsiz=3, ring_size_factor=1.0, ssub_B=1)
    W_ref, b0_ref = reference_fit(movie[fr], A, C[:, fr], radius=r, ssub_B=1)
    m = fit_ring_model(movie, A, C, gsiz=3, ring_size_factor=1.0, ssub_B=1, block_pixels=6, chunk_frames=8, frames=fr)
    np.testing.assert_allclose(m.W.toarray(), W_ref, atol=5e-3 * np.abs(W_ref).max())
    np.testing.assert_allclose(m.b0, b0_ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("ssub_B", [1, 2])
def test_predicts_background_under_neurons(ssub_B):
    movie, A, C, B_true, AC = make_movie(seed=4)
    m = fit_ring_model(movie, A, C, gsiz=9, ring_size_factor=1.4, ssub_B=ssub_B, block_pixels=16)
    B = ring_background(m, movie, AC)
    assert B.dtype == np.float32 and B.shape == movie.shape
    rows, cols = m.dims
    for k in range(A.shape[1]):
        a = A[:, k].toarray().ravel().reshape((rows, cols), order="F")
        cy, cx = np.unravel_index(np.argmax(a), a.shape)
        corr = np.corrcoef(B[:, cy, cx], B_true[:, cy, cx])[0, 1]
        assert corr > 0.95, (k, corr)
    resid = movie - B - AC
    assert abs(resid.mean()) < 0.05
    assert resid.std() < 1.25 * NOISE, resid.std()
    # background error well below its fluctuation
    assert np.abs(B - B_true).mean() < 0.5 * np.abs(B_true - B_true.mean(axis=0)).mean()
    sub = subtract_background(m, movie[:5], AC[:5])
    np.testing.assert_allclose(sub, movie[:5] - B[:5], atol=1e-3)


def test_no_components():
    movie, A, C, B_true, AC = make_movie(rows=32, cols=32, T=120, n_neurons=0, seed=5)
    assert A.shape[1] == 0 and C.shape == (0, 120)
    m = fit_ring_model(movie, A, C, gsiz=7, ring_size_factor=1.4, ssub_B=2, block_pixels=8)
    B = ring_background(m, movie)
    assert np.corrcoef(B[:, 16, 16], B_true[:, 16, 16])[0, 1] > 0.95
    assert (movie - B).std() < 1.25 * NOISE
    m2 = fit_ring_model(movie, scipy.sparse.csc_matrix((32 * 32, 0)), np.zeros((0, 120)), gsiz=7,
                        ring_size_factor=1.4, ssub_B=2, block_pixels=32)
    np.testing.assert_allclose(m2.W.toarray(), m.W.toarray(), atol=5e-3 * abs(m.W).max())


def test_ring_residual_is_the_movie_less_background_and_neurons():
    movie, A, C, _, AC = make_movie(seed=8)
    m = fit_ring_model(movie, A, C, gsiz=9, ring_size_factor=1.4, ssub_B=2)
    expected = movie - ring_background(m, movie, AC) - AC
    np.testing.assert_allclose(ring_residual(m, movie, AC), expected, atol=1e-3)
    frames = movie.copy()
    fluctuation = np.empty((movie.shape[0], *m.dims_ds), dtype=np.float32)
    assert ring_residual(m, frames, AC, out=frames, fluctuation_out=fluctuation) is frames  # in place
    np.testing.assert_allclose(frames, expected, atol=1e-3)
    assert undo_ring_residual(m, frames, fluctuation, AC, out=frames) is frames
    np.testing.assert_allclose(frames, movie, rtol=1e-6)


def test_block_size_does_not_change_result():
    movie, A, C, _, _ = make_movie(rows=40, cols=37, T=100, seed=6)
    kw = dict(gsiz=7, ring_size_factor=1.4, ssub_B=2)
    m1 = fit_ring_model(movie, A, C, block_pixels=64, chunk_frames=1000, **kw)
    m2 = fit_ring_model(movie, A, C, block_pixels=3, chunk_frames=9, **kw)
    np.testing.assert_allclose(m2.W.toarray(), m1.W.toarray(), atol=5e-3 * abs(m1.W).max())
    np.testing.assert_allclose(m2.b0, m1.b0, rtol=1e-6, atol=1e-4)


def test_memmap_memory_bounded(tmp_path):
    T, rows, cols = 400, 128, 128
    path = tmp_path / "movie.dat"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(T, rows, cols))
    rng = np.random.default_rng(7)
    bg = 50 + 10 * _gauss(rows, cols, 60, 70, 40)
    tr = _slow_trace(rng, T)
    for t0 in range(0, T, 50):
        n = min(50, T - t0)
        mm[t0 : t0 + n] = bg[None] * (1 + 0.1 * tr[t0 : t0 + n, None, None]) + rng.standard_normal((n, rows, cols))
    mm.flush()
    del mm
    movie = np.memmap(path, dtype=np.float32, mode="r", shape=(T, rows, cols))
    a = _gauss(rows, cols, 40, 40, 2.0)
    a[a < 0.05] = 0
    A = scipy.sparse.csc_matrix(a.ravel(order="F")[:, None])
    C = rng.random((1, T))
    tracemalloc.start()
    try:
        m = fit_ring_model(movie, A, C, gsiz=9, ring_size_factor=1.4, ssub_B=2, block_pixels=16, chunk_frames=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(m, RingModel)
    assert peak < 0.25 * movie.nbytes, (peak, movie.nbytes)


def test_bad_input():
    movie, A, C, _, _ = make_movie(rows=16, cols=16, T=30, n_neurons=1, seed=8)
    with pytest.raises(ParameterError, match="C must have shape"):
        fit_ring_model(movie, A, C[:, :10], gsiz=5, ring_size_factor=1.0)
    with pytest.raises(ParameterError, match="A has"):
        fit_ring_model(movie, A[:100], C, gsiz=5, ring_size_factor=1.0)
    with pytest.raises(ParameterError, match="frames"):
        fit_ring_model(movie, A, C, gsiz=5, ring_size_factor=1.0, frames=slice(0, 1))
    with pytest.raises(ParameterError, match="temporal_rank"):
        fit_ring_model(movie, A, C, gsiz=5, ring_size_factor=1.0, temporal_rank=0)
