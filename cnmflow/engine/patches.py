"""Splitting the field of view into overlapping patches (rf, stride) and putting results back.

A patch is ``(2·rf+1)²`` pixels and neighbours overlap by ``stride`` pixels; the last patch on
each axis is aligned to the border so every pixel is covered. Patches are independent, which is
what lets them run in separate processes or on a cluster.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cnmflow.pixel_order import image_to_column


@dataclass(frozen=True)
class PatchBox:
    """A rectangle of the field of view: rows ``[row0, row1)``, columns ``[col0, col1)``."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.row1 - self.row0, self.col1 - self.col0)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.row0 + self.row1 - 1) / 2, (self.col0 + self.col1 - 1) / 2)

    def slices(self) -> tuple[slice, slice]:
        return slice(self.row0, self.row1), slice(self.col0, self.col1)


def _axis_starts(length: int, size: int, step: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, step))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def patch_boxes(dims: tuple[int, int], *, rf: int | None, stride: int) -> list[PatchBox]:
    """The patches covering a ``dims`` field of view; ``rf=None`` gives one patch."""
    rows, cols = dims
    if rf is None:
        return [PatchBox(0, rows, 0, cols)]
    size = 2 * rf + 1
    step = max(size - stride, 1)
    return [PatchBox(r, min(r + size, rows), c, min(c + size, cols))
            for r in _axis_starts(rows, size, step) for c in _axis_starts(cols, size, step)]


def embed_footprints(A_patch: np.ndarray, box: PatchBox, dims: tuple[int, int]) -> sp.csc_matrix:
    """Patch footprints (patch pixels, K) in Fortran order → full field of view (pixels, K)."""
    rows, _ = dims
    prow, pcol = box.shape
    local = np.arange(prow * pcol)
    local_row, local_col = local % prow, local // prow
    global_index = (box.col0 + local_col) * rows + (box.row0 + local_row)
    dense = np.asarray(A_patch)
    nz_pixels, nz_comps = np.nonzero(dense)
    return sp.csc_matrix((dense[nz_pixels, nz_comps], (global_index[nz_pixels], nz_comps)),
                         shape=(dims[0] * dims[1], dense.shape[1]), dtype=np.float32)


def centers_of_mass(A: sp.spmatrix, dims: tuple[int, int]) -> np.ndarray:
    """(K, 2) intensity-weighted (row, col) centres of Fortran-ordered footprints."""
    A = sp.csc_matrix(A)
    pixels = np.arange(A.shape[0])
    row_of, col_of = pixels % dims[0], pixels // dims[0]
    mass = np.asarray(A.sum(axis=0)).ravel()
    mass = np.where(mass > 0, mass, 1.0)
    rows = np.asarray(A.T @ row_of).ravel() / mass
    cols = np.asarray(A.T @ col_of).ravel() / mass
    return np.column_stack([rows, cols])


#: An orphan (a dropped component no other patch found: no duplicate from another patch) is kept when at most this
#: share of its weight lies within 1 px of its patch's inner border — a cell the nearer patch missed, not a copy
#: clipped by the patch's edge (h20orphan, findings/footprint_fidelity.md).
ORPHAN_EDGE_SHARE = 0.05


def deduplicate(A: sp.spmatrix, owners: np.ndarray, boxes: list[PatchBox], dims: tuple[int, int], *,
                overlap: float = 0.5, orphan_edge_share: float = ORPHAN_EDGE_SHARE,
                merging: Callable[[], np.ndarray] | None = None) -> np.ndarray:
    """del_duplicates: which components to keep so that each neuron is kept from one patch only.

    A component is kept when its patch's centre is the nearest to the component's centre of mass
    (as in CaImAn; it also drops what a patch finds at its edge, where its background model is
    weakest, when a neighbour covers that place better). A dropped component with no kept duplicate
    from another patch (footprint cosine similarity above ``overlap``) is kept after all when
    - it has a dropped duplicate (two copies straddling the line between two patch centres each find
      the other patch nearer; the first one seen is kept, one copy per neuron), or
    - it has no duplicate at all (an orphan: the nearer patch did not find that cell) and at most
      ``orphan_edge_share`` of its weight lies within 1 px of its patch's inner border (a footprint
      cut by that border is a clipped copy of a cell the neighbour holds at a lower cosine) and, given
      ``merging`` (a function giving the (K, K) pairs the merge step would join, ``merging.merging_pairs``;
      called once, and only when an orphan gets this far), it would not be merged into a kept component: such
      an orphan is a fragment of a neuron another patch holds, and the merge would pour the fragment into that
      neuron's component (on the demo movie the merged trace then failed the transient rule and the neuron
      was lost; lead, session 20).
    """
    A = sp.csc_matrix(A)
    keep = keep_nearest_patch(centers_of_mass(A, dims), owners, boxes)
    duplicate = footprint_similarity(A) > overlap
    duplicate &= owners[:, None] != owners[None, :]
    edge_share = inner_border_shares(A, owners, boxes, dims)
    pairs = None if merging is None else functools.cache(merging)
    for k in np.flatnonzero(~keep):
        if duplicate[k, keep].any():
            continue
        if duplicate[k, ~keep].any():
            keep[k] = True
        elif edge_share[k] <= orphan_edge_share and (pairs is None or not pairs()[k, keep].any()):
            keep[k] = True
    return keep


def inner_border_shares(A: sp.spmatrix, owners: np.ndarray, boxes: list[PatchBox], dims: tuple[int, int],
                        *, width: int = 1) -> np.ndarray:
    """(K,) share of each footprint's weight within ``width`` px of its own patch's sides that are not the
    field's edge (where a patch cuts a cell off); 0 for an all-zero footprint."""
    A = sp.csc_matrix(A)
    total = np.asarray(A.sum(axis=0)).ravel()
    on_border = np.zeros(A.shape[1])
    for index in np.unique(owners):
        mine = np.flatnonzero(owners == index)
        border = image_to_column(inner_border(boxes[index], dims, width=width).astype(np.float32))
        on_border[mine] = np.asarray(A[:, mine].T @ border).ravel()
    return np.where(total > 0, on_border / np.where(total > 0, total, 1.0), 0.0)


def inner_border(box: PatchBox, dims: tuple[int, int], *, width: int = 1) -> np.ndarray:
    """Boolean image of the pixels of ``box`` within ``width`` px of a side that is not the field's edge."""
    mask = np.zeros(dims, dtype=bool)
    rows, cols = box.slices()
    if box.row0 > 0:
        mask[box.row0:box.row0 + width, cols] = True
    if box.row1 < dims[0]:
        mask[box.row1 - width:box.row1, cols] = True
    if box.col0 > 0:
        mask[rows, box.col0:box.col0 + width] = True
    if box.col1 < dims[1]:
        mask[rows, box.col1 - width:box.col1] = True
    return mask


def footprint_similarity(A: sp.spmatrix) -> np.ndarray:
    """(K, K) cosine similarity of the footprints (columns of ``A``); all-zero columns give 0."""
    A = sp.csc_matrix(A)
    norms = np.sqrt(np.asarray(A.multiply(A).sum(axis=0)).ravel())
    unit = sp.csc_matrix(A @ sp.diags(1.0 / np.where(norms > 0, norms, 1.0)))
    return (unit.T @ unit).toarray()


def keep_nearest_patch(centers: np.ndarray, owners: np.ndarray, boxes: list[PatchBox]) -> np.ndarray:
    """Whether each component's own patch has the centre nearest to the component's centre.

    ``centers`` (K, 2) component centres, ``owners`` (K,) index of the patch that found each.
    Only patches containing the centre compete, so a border component is not lost.
    """
    patch_centers = np.array([box.center for box in boxes])
    keep = np.zeros(len(centers), dtype=bool)
    for k, (center, owner) in enumerate(zip(centers, owners)):
        inside = [i for i, box in enumerate(boxes)
                  if box.row0 <= center[0] < box.row1 and box.col0 <= center[1] < box.col1]
        candidates = inside or list(range(len(boxes)))
        distances = np.linalg.norm(patch_centers[candidates] - center, axis=1)
        keep[k] = candidates[int(np.argmin(distances))] == owner
    return keep


def stitch_images(images: list[np.ndarray], boxes: list[PatchBox], dims: tuple[int, int]) -> np.ndarray:
    """Per-patch images → one image; each pixel from the patch whose centre is nearest.

    Seeding images are local (a filter of radius ~2·gSig and 8-neighbour correlations), so with
    overlaps wider than twice that radius the stitched image equals one computed on the whole
    field of view, at no extra pass over the movie.
    """
    rows, cols = np.mgrid[:dims[0], :dims[1]]
    best = np.full(dims, np.inf)
    out = np.zeros(dims, dtype=np.float32)
    for image, box in zip(images, boxes):
        region = box.slices()
        center = box.center
        distance = np.hypot(rows[region] - center[0], cols[region] - center[1])
        closer = distance < best[region]
        out[region] = np.where(closer, image, out[region])
        best[region] = np.where(closer, distance, best[region])
    return out
