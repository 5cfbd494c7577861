"""Patch tiling, placing patch footprints back into the field of view, and del_duplicates."""

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.patches import PatchBox, centers_of_mass, embed_footprints, keep_nearest_patch, patch_boxes


def test_one_patch_when_rf_unset():
    assert patch_boxes((50, 60), rf=None, stride=20) == [PatchBox(0, 50, 0, 60)]


def test_patches_cover_every_pixel_and_overlap_by_stride():
    boxes = patch_boxes((100, 130), rf=20, stride=10)
    covered = np.zeros((100, 130), int)
    for box in boxes:
        assert box.shape == (41, 41)
        covered[box.slices()] += 1
    assert covered.min() >= 1
    starts = sorted({box.row0 for box in boxes})
    assert starts[1] - starts[0] == 41 - 10


def test_small_field_of_view_is_one_patch():
    assert patch_boxes((30, 30), rf=40, stride=20) == [PatchBox(0, 30, 0, 30)]


def test_embed_footprints_uses_fortran_pixel_order():
    box = PatchBox(2, 5, 3, 7)
    local = np.zeros((3, 4))
    local[1, 2] = 1.0
    A = embed_footprints(local.ravel(order="F")[:, None], box, (10, 12))
    image = A[:, 0].toarray().reshape((10, 12), order="F")
    assert image[3, 5] == 1.0 and image.sum() == 1.0


def test_centers_of_mass():
    image = np.zeros((9, 9))
    image[2, 6] = 1.0
    image[4, 6] = 1.0
    A = sp.csc_matrix(image.ravel(order="F")[:, None])
    np.testing.assert_allclose(centers_of_mass(A, (9, 9)), [[3.0, 6.0]])


def test_keep_nearest_patch_keeps_exactly_one_copy_of_a_duplicate():
    boxes = [PatchBox(0, 41, 0, 41), PatchBox(0, 41, 31, 72)]
    centers = np.array([[20.0, 33.0], [20.0, 33.5]])     # one neuron found by both patches
    keep = keep_nearest_patch(centers, np.array([0, 1]), boxes)
    assert keep.tolist() == [True, False]


def test_deduplicate_keeps_one_copy_when_both_copies_prefer_the_other_patch():
    from cnmflow.engine.patches import deduplicate

    dims = (128, 81)
    boxes = [PatchBox(0, 81, 0, 81), PatchBox(47, 128, 0, 81)]   # centres at rows 40 and 87
    yy, xx = np.mgrid[:128, :81]

    def blob(row):
        return np.exp(-((yy - row) ** 2 + (xx - 40) ** 2) / 8.0).ravel(order="F")

    # Found near row 64 by both patches; each copy's centre is nearer the *other* patch's centre.
    A = sp.csc_matrix(np.column_stack([blob(64.0), blob(63.0)]))
    keep = deduplicate(A, np.array([0, 1]), boxes, dims)
    assert keep.sum() == 1


def test_stitched_seeding_images_equal_whole_field_images():
    """Seeding images are local, so patches overlapping by more than the filter give the same picture."""
    from cnmflow.engine.movie_source import MovieSource
    from cnmflow.engine.resample import downsample
    from cnmflow.engine.patch_job.dispatch import fit_patch
    from cnmflow.engine.patches import stitch_images
    from cnmflow.engine.sections import EngineSettings
    from cnmflow.engine.summary_images import correlation_pnr
    from cnmflow.params import build_params
    from cnmflow.synthetic import simulate_1p

    simulated = simulate_1p(shape=(60, 90), n_frames=200, n_neurons=8, gsig=3.0, fr=10.0, rng=2)
    params = build_params({"fr": 10.0, "gSiz": 13, "min_corr": 0.8, "min_pnr": 8, "rf": 20, "stride": 16})
    dims = (60, 90)
    boxes = patch_boxes(dims, rf=params.rf, stride=params.stride)
    assert len(boxes) >= 4
    job = EngineSettings.from_params(params).patch_job
    results = [fit_patch(MovieSource.of(simulated.movie), box, job, fov_dims=dims) for box in boxes]
    whole = correlation_pnr(downsample(simulated.movie, tsub=params.tsub, ssub=1), gsig=params.gSig,
                            center_psf=True)
    stitched = stitch_images([r.correlation for r in results], boxes, dims)
    np.testing.assert_allclose(stitched, whole.correlation, atol=1e-3)
    # The PNR image is reported on the scale min_pnr applies to: divided by sqrt(tsub * ssub**2).
    np.testing.assert_allclose(stitch_images([r.pnr for r in results], boxes, dims),
                               whole.pnr / np.sqrt(params.tsub), rtol=1e-3, atol=1e-3)


def _blob_field(dims, row, col=40.0):
    yy, xx = np.mgrid[:dims[0], :dims[1]]
    return np.exp(-((yy - row) ** 2 + (xx - col) ** 2) / 8.0)


def test_deduplicate_keeps_a_cell_only_the_farther_patch_found():
    """An orphan: found by patch 0 only, its centre nearer patch 1's centre, which did not find it. Dropping it
    would lose the cell; a component with a kept copy from another patch is still dropped."""
    from cnmflow.engine.patches import deduplicate

    dims = (128, 81)
    boxes = [PatchBox(0, 81, 0, 81), PatchBox(47, 128, 0, 81)]   # centres at rows 40 and 87
    orphan = _blob_field(dims, 68.0).ravel(order="F")              # 19 px from patch 1's centre, 28 from patch 0's
    copy_0, copy_1 = _blob_field(dims, 75.0, 20.0), _blob_field(dims, 75.5, 20.0)   # one cell, both patches
    copy_0[81:] = 0.0                                              # patch 0 sees rows < 81 only
    A = sp.csc_matrix(np.column_stack([orphan, copy_0.ravel(order="F"), copy_1.ravel(order="F")]))
    keep = deduplicate(A, np.array([0, 0, 1]), boxes, dims)
    assert keep.tolist() == [True, False, True]


def test_deduplicate_drops_an_orphan_cut_by_its_patch_border():
    """A footprint cut by its patch's inner border (here patch 0's last row, 80) is a clipped copy of a cell the
    neighbour holds under another shape, not a missed cell: dropped as before."""
    from cnmflow.engine.patches import deduplicate

    dims = (128, 81)
    boxes = [PatchBox(0, 81, 0, 81), PatchBox(47, 128, 0, 81)]
    clipped = _blob_field(dims, 79.0)
    clipped[81:] = 0.0
    wider = np.maximum(_blob_field(dims, 82.0), 0.6 * _blob_field(dims, 86.0, 46.0))   # patch 1's shape, cosine < 0.5
    A = sp.csc_matrix(np.column_stack([clipped.ravel(order="F"), wider.ravel(order="F")]))
    assert deduplicate(A, np.array([0, 1]), boxes, dims).tolist() == [False, True]


def test_deduplicate_drops_an_orphan_the_merge_step_would_pour_into_a_kept_component():
    """An orphan whose footprint touches a kept component of another patch and whose trace follows it is a fragment
    of that neuron, not a missed cell: kept, the merge step would join the two and the fragment would spoil the
    neuron's component (on the demo movie the merged trace failed the transient rule and the neuron was lost)."""
    from cnmflow.engine.merging import merging_pairs
    from cnmflow.engine.patches import deduplicate

    dims = (128, 81)
    boxes = [PatchBox(0, 81, 0, 81), PatchBox(47, 128, 0, 81)]   # centres at rows 40 and 87
    fragment = _blob_field(dims, 68.0)                             # patch 0's, nearer patch 1's centre
    kept = _blob_field(dims, 74.0)                                 # patch 1's own component, 6 px away: overlapping
    A = sp.csc_matrix(np.column_stack([fragment.ravel(order="F"), kept.ravel(order="F")]) * (
        np.column_stack([fragment.ravel(order="F"), kept.ravel(order="F")]) > 0.01))
    rng = np.random.default_rng(0)
    neuron = rng.exponential(size=300)
    follows = np.vstack([neuron + 0.1 * rng.normal(size=300), neuron])
    unrelated = np.vstack([rng.exponential(size=300), neuron])
    owners = np.array([0, 1])
    fragment_dropped = deduplicate(A, owners, boxes, dims, merging=lambda: merging_pairs(A, follows, 0.8))
    cell_kept = deduplicate(A, owners, boxes, dims, merging=lambda: merging_pairs(A, unrelated, 0.8))
    assert fragment_dropped.tolist() == [False, True] and cell_kept.tolist() == [True, True]


def test_deduplicate_asks_for_the_merge_steps_pairs_once_and_only_for_an_orphan():
    """The merge step's pairs (a K×K trace correlation) are computed only where an orphan could be kept, once."""
    from cnmflow.engine.merging import merging_pairs
    from cnmflow.engine.patches import deduplicate

    dims = (128, 81)
    boxes = [PatchBox(0, 81, 0, 81), PatchBox(47, 128, 0, 81)]
    orphans = sp.csc_matrix(np.column_stack([_blob_field(dims, 30.0).ravel(order="F"),
                                             _blob_field(dims, 60.0, 20.0).ravel(order="F"),
                                             _blob_field(dims, 60.0, 60.0).ravel(order="F")]))
    C = np.random.default_rng(1).exponential(size=(3, 200))
    asked = []

    def pairs():
        asked.append(1)
        return merging_pairs(orphans, C, 0.8)

    owners = np.array([0, 1, 1])   # the last two: patch 1's, nearer patch 0's centre, no duplicate anywhere
    assert deduplicate(orphans, owners, boxes, dims, merging=pairs).tolist() == [True, True, True]
    assert asked == [1]
    asked.clear()
    assert deduplicate(orphans, np.array([0, 0, 0]), boxes, dims, merging=pairs).tolist() == [True, True, True]
    assert asked == []   # each component in its nearest patch: no orphan, no trace correlation
