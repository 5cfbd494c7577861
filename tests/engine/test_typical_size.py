"""1P footprints far larger than the fit's typical one are cut back to their brightest weights (issue #16)."""

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.estimates import Estimates
from cnmflow.engine.sections import EngineSettings
from cnmflow.engine.typical_size import MAX_AREA_RATIO, MIN_POPULATION, cut_to_area, weight_areas, within_typical_size
from cnmflow.params import build_params
from cnmflow.pixel_order import image_to_column

DIMS = (64, 64)


def _cell(centre: tuple[int, int], *, plateau: float = 0.0) -> np.ndarray:
    """A soma through a scattering PSF (Gaussian core, exponential halo), optionally on a flat plateau of this
    share of its peak out to 24 px: the light a dim cell's trace picked up, painted back around it."""
    yy, xx = np.mgrid[:DIMS[0], :DIMS[1]]
    r = np.hypot(yy - centre[0], xx - centre[1])
    image = 0.7 * np.exp(-r ** 2 / (2 * 2.5 ** 2)) + 0.3 * np.exp(-r / 3.0)
    image = np.where(r <= 12, image, 0.0)
    image = np.maximum(image, np.where(r <= 24, plateau, 0.0))
    return image_to_column(image / image.max())


def _population(n: int, *, plateau_on: int | None = None) -> sp.csc_matrix:
    gen = np.random.default_rng(3)
    centres = [tuple(int(v) for v in gen.integers(14, 50, size=2)) for _ in range(n)]
    return sp.csc_matrix(np.column_stack([_cell(c, plateau=0.06 if k == plateau_on else 0.0)
                                          for k, c in enumerate(centres)]))


def test_the_area_holding_ninety_percent_of_a_flat_disc_is_ninety_percent_of_its_pixels():
    assert weight_areas(sp.csc_matrix(np.ones((200, 1)))).tolist() == [180]
    assert weight_areas(sp.csc_matrix(np.zeros((200, 1)))).tolist() == [0]


def test_a_footprint_on_a_plateau_is_cut_to_the_bound_and_keeps_its_core_and_the_others_are_untouched():
    A = _population(14, plateau_on=5)
    areas = weight_areas(A)
    bound = MAX_AREA_RATIO * np.median(areas)
    assert areas[5] > 2 * bound        # the plateau makes it several times the typical footprint

    cut, cut_columns = within_typical_size(A)
    assert cut_columns.tolist() == [5]

    after = weight_areas(cut)
    assert after[5] <= bound
    assert after[5] >= 0.9 * bound     # cut to the bound, not below it
    untouched = np.arange(14) != 5
    assert (cut[:, untouched] != A[:, untouched]).nnz == 0
    before, kept = A[:, 5].toarray().ravel(), cut[:, 5].toarray().ravel()
    core = before >= 0.2
    np.testing.assert_array_equal(kept[core], before[core])    # the soma and its near halo stay as they were
    assert np.all(kept[kept > 0] >= before[~core & (kept == 0)].max(initial=0.0))  # only the lowest weights go


def test_nothing_is_cut_without_a_population_to_read_the_typical_size_on():
    A = _population(MIN_POPULATION - 1, plateau_on=2)
    cut, cut_columns = within_typical_size(A)
    assert cut is A and cut_columns.size == 0


def test_cutting_keeps_the_highest_weights_wherever_they_lie_and_a_tail_within_the_last_tenth_stays():
    weights = np.array([0.0, 0.2, 5.0, 0.2, 4.0, 0.2, 0.2, 0.2])
    assert cut_to_area(weights, 1).tolist() == [0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    # 5 and 4 hold 90% of the whole: its area is already 2, nothing to cut
    np.testing.assert_array_equal(cut_to_area(weights, 2), weights)


def test_only_the_ring_background_fit_cuts_large_footprints():
    one_photon = EngineSettings.from_params(build_params({"method_init": "corr_pnr", "nb": 0}))
    two_photon = EngineSettings.from_params(build_params({"method_init": "greedy_roi", "K": 4}))
    assert one_photon.quality.typical_size and not two_photon.quality.typical_size


def test_cut_footprints_are_scaled_back_to_unit_norm_and_the_model_keeps_its_light_where_they_are_kept():
    gen = np.random.default_rng(5)
    A = _population(12, plateau_on=4)
    A = sp.csc_matrix(A @ sp.diags(1 / np.sqrt(np.asarray(A.multiply(A).sum(axis=0)).ravel())))
    K, T = A.shape[1], 50
    C = gen.gamma(2.0, size=(K, T)).astype(np.float32)
    zeros = np.zeros(K)
    estimates = Estimates(A=A, C=C, S=C.copy(), YrA=gen.normal(size=(K, T)).astype(np.float32), bl=zeros + 1,
                          c1=zeros, g=np.zeros((K, 1)), neurons_sn=zeros + 1, lam=zeros, dims=DIMS,
                          sn=np.ones(A.shape[0]), b0=np.zeros(A.shape[0]))

    cut = estimates.with_footprints(*within_typical_size(estimates.A))

    np.testing.assert_allclose(np.sqrt(np.asarray(cut.A.multiply(cut.A).sum(axis=0)).ravel()), 1.0, rtol=1e-5)
    kept = cut.A[:, 4].toarray().ravel() > 0
    assert 0 < kept.sum() < (A[:, 4].toarray().ravel() > 0).sum()
    np.testing.assert_allclose((cut.A @ cut.C)[kept], (A @ C)[kept], rtol=1e-4)
    scale = cut.C[4, 0] / C[4, 0]
    assert scale < 1
    np.testing.assert_allclose([cut.YrA[4, 0] / estimates.YrA[4, 0], cut.bl[4], cut.neurons_sn[4]], scale, rtol=1e-4)
    np.testing.assert_array_equal(cut.C[np.arange(K) != 4], C[np.arange(K) != 4])


def test_only_the_columns_named_are_read_for_the_typical_size_and_cut():
    """The fit names the accepted components: a rejected broad source keeps the footprint that holds its light."""
    A = _population(14, plateau_on=5)
    broad = sp.csc_matrix(_cell((32, 32), plateau=0.5)[:, None])   # an out-of-focus blob, rejected by the focus test
    A = sp.hstack([A, broad]).tocsc()
    accepted = np.arange(14)

    cut, _ = within_typical_size(A, among=accepted)

    assert (cut[:, 14] != A[:, 14]).nnz == 0
    assert weight_areas(cut[:, [5]])[0] <= MAX_AREA_RATIO * np.median(weight_areas(A[:, accepted]))
