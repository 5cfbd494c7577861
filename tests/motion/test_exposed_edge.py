"""Components peaking on the edge a motion correction left without data are rejected (motion/exposed_edge)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cnmflow.engine import Estimates
from cnmflow.motion import CropBox
from cnmflow.motion.exposed_edge import peaks_on_exposed_edge, reject_on_exposed_edge
from cnmflow.pixel_order import images_to_columns

DIMS = (40, 50)


def _blobs(peaks) -> sp.csc_matrix:
    rr, cc = np.mgrid[:DIMS[0], :DIMS[1]]
    images = [np.exp(-0.5 * ((rr - r) ** 2 + (cc - c) ** 2) / 4.0) for r, c in peaks]
    return sp.csc_matrix(images_to_columns(np.asarray(images)))


def test_each_side_is_read_on_its_own_strip():
    A = _blobs([(1, 25), (38, 25), (20, 2), (20, 47), (20, 25), (4, 25)])
    crop = CropBox(top=2, bottom=3, left=3, right=2)
    # row 1 < top 2; row 38 >= 40 - 3; col 2 < left 3; col 47 < 50 - 2 stays; the centre and row 4 stay
    assert peaks_on_exposed_edge(A, DIMS, crop).tolist() == [0, 1, 2]
    assert peaks_on_exposed_edge(A, DIMS, CropBox()).size == 0   # nothing exposed, nothing rejected


def test_rejection_adds_to_the_engines_own_and_keeps_the_components():
    A = _blobs([(1, 25), (20, 25), (38, 25)])
    zeros = np.zeros(3)
    estimates = Estimates(A=A, C=np.ones((3, 10), np.float32), S=np.zeros((3, 10)), YrA=np.zeros((3, 10)), bl=zeros,
                          c1=zeros, g=np.zeros((3, 1)), neurons_sn=zeros, lam=zeros, dims=DIMS, sn=np.zeros(2000),
                          b0=np.zeros(2000), idx_components_bad=np.array([1]))
    newly = reject_on_exposed_edge(estimates, CropBox(top=2, bottom=2))
    assert newly.tolist() == [0, 2]
    assert estimates.idx_components_bad.tolist() == [0, 1, 2] and estimates.K == 3
