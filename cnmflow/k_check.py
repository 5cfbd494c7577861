"""Whether K, the most components a patch may return, stopped the search, and what to tell the user then.

The seed's 2P preset sets K 4, and the spec asks users to set K to the cells a patch holds. A patch of the
preset's size (rf 40: 81 × 81 px) at two-photon cortex density holds far more: on the realistic 2P simulator
(~50 cells per 256² at 1.17 µm/px) the preset with K 4 found 40–44% of the cells on three unseen movies, where
K 'auto' — the search running until nothing stands out of its surround — found 84–94% at precision .88–.89
(F1 at IoU > 0.3 .57 → .86–.91; benchmarks/findings/two_photon_realistic.md). A search that K stopped returns
exactly K components, so when most patches return K the note says so, with the fix, after the fit.
"""

from __future__ import annotations

from cnmflow.engine.estimates import Estimates

#: Share of the patches returning K components from which the note is given.
SATURATED_SHARE = 0.5
#: Methods whose K bounds a search (sparse_NMF's K is the factorisation's rank: always reached).
SEARCHES = ("corr_pnr", "greedy_roi")


def k_note(estimates: Estimates, *, K: int | None, method_init: str) -> str | None:
    """A note when K components per patch stopped the search in most patches, else None."""
    at_k, n_patches = estimates.patches_at_k
    if K is None or method_init not in SEARCHES or n_patches == 0 or at_k < SATURATED_SHARE * n_patches:
        return None
    return (f"K={K} stopped the search in {at_k} of {n_patches} patches (each returned the {K} components K allows): "
            f"they likely hold more cells, which are missing; set K=auto (the search then runs until nothing stands "
            f"out of its surround) or a larger K")


def k_hint(*, K: int | None, method_init: str) -> str | None:
    """Before a run (``cnmflow suggest``): where greedy_roi's search is cut at a fixed K, what K=auto does."""
    if K is None or method_init != "greedy_roi":
        return None
    return (f"K={K} is set: greedy_roi stops each patch's search at {K} components; K=auto searches until nothing "
            f"stands out of its surround (on realistic 2P cortex the seed preset's K 4 at rf 40 found 40–44% of the "
            f"cells, K=auto 84–94%)")
