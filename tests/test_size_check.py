"""The note a run gives when the cells it found are far wider than gSig (issue #16's IDEAS-file row)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.estimates import Estimates
from cnmflow.size_check import WIDE_RATIO, gsig_note, median_half_max_radius, radius_note

DIMS = (80, 80)


def _estimates(sigma: float, *, n: int = 6, rejected: tuple[int, ...] = ()) -> Estimates:
    """``n`` Gaussian footprints of sd ``sigma`` (half-max radius 1.177·sigma) on a grid, unit norm."""
    yy, xx = np.mgrid[:DIMS[0], :DIMS[1]]
    columns = []
    for k in range(n):
        centre = (12 + 18 * (k % 4), 12 + 18 * (k // 4 % 4))
        blob = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma ** 2)).ravel(order="F")
        columns.append(blob / np.linalg.norm(blob))
    T = 10
    zeros = np.zeros((n, T))
    return Estimates(A=sp.csc_matrix(np.column_stack(columns)), C=zeros, S=zeros, YrA=zeros, bl=np.zeros(n),
                     c1=np.zeros(n), g=np.zeros((n, 1)), neurons_sn=np.ones(n), lam=np.zeros(n), dims=DIMS,
                     sn=np.ones(DIMS[0] * DIMS[1]), b0=np.zeros(DIMS[0] * DIMS[1]),
                     idx_components_bad=np.array(rejected, dtype=int))


def test_cells_twice_as_wide_as_gsig_get_a_note_naming_gsig_and_their_radius():
    note = gsig_note(_estimates(5.0), 3.0)  # half-max radius ~5.9 px at gSig 3 (CA1's cells at the IDEAS file)
    assert note is not None
    assert "gSig=3" in note and "5.9 px" in note and "gSig to about 6 and gSiz to about 25" in note
    assert "cnmflow suggest" in note


def test_cells_of_gsigs_size_get_no_note():
    # gSig matched to the cells (1.2·gSig) and cortex L2/3's hand setting (cells 1.3–1.4·gSig) give none
    assert gsig_note(_estimates(5.0), 5.0) is None
    assert gsig_note(_estimates(3.5), 3.0) is None
    assert median_half_max_radius(_estimates(3.5)) < WIDE_RATIO * 3.0


def test_the_radius_is_read_on_the_accepted_components_only():
    # five wide and five narrow: the rejected ones do not count
    wide, narrow = _estimates(5.0, n=10), _estimates(2.5, n=10)
    A = sp.hstack([wide.A[:, :5], narrow.A[:, 5:]], format="csc")
    wide_rejected = Estimates(**{**wide.__dict__, "A": A, "idx_components_bad": np.arange(5)})
    narrow_rejected = Estimates(**{**wide.__dict__, "A": A, "idx_components_bad": np.arange(5, 10)})
    assert gsig_note(wide_rejected, 2.5) is None
    assert gsig_note(narrow_rejected, 2.5) is not None


def test_too_few_components_say_nothing_of_the_cells_size():
    assert median_half_max_radius(_estimates(5.0, n=4)) is None
    assert gsig_note(_estimates(5.0, n=4), 3.0) is None
    assert gsig_note(_estimates(5.0, n=7, rejected=(0, 1, 2)), 3.0) is None


def test_a_gsig_set_far_below_the_radius_read_from_the_movie_gets_a_note_before_the_fit():
    note = radius_note(3.0, 6.5)  # CA1's cells at the IDEAS file's gSig
    assert note is not None and "gSig=3 is set" in note and "6.5 px" in note and "gSig to about 6" in note
    assert radius_note(3.0, 4.3) is None  # cortex L2/3 at gSig 3 (1.4·gSig)
    assert radius_note(3.0, 2.5) is None
