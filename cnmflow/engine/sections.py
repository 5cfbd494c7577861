"""The engine's parameters as typed sections, one per stage: each stage reads only its own.

A :class:`~cnmflow.params.Params` holds every value of the analysis table; the engine's stages
need a handful each. :meth:`EngineSettings.from_params` is the one place the table becomes engine
settings, and building them *is* the engine's check of what it supports: a combination this
engine cannot run is refused there, naming the parameter, before any compute.

Field names are the table's (CaImAn's) names, so a section reads like the table it came from.
Sizes are in full-resolution pixels and frames; the patch-grid sizes (after ``ssub``) are
derived in one place (:attr:`InitSection.gsig_patch`, :attr:`InitSection.gsiz_patch`).
Sections are frozen dataclasses of plain values: they pickle to worker processes and Dask.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnmflow.errors import ParameterError
from cnmflow.params import Params
from cnmflow.settings import load_settings

#: Initialisation methods this engine implements.
SUPPORTED_INIT = ("corr_pnr", "greedy_roi", "sparse_NMF")
#: Rounds of (spatial, temporal) updates that refit adds on the full field of view.
REFIT_ROUNDS = 2


@dataclass(frozen=True)
class PatchLayout:
    """Where the patches lie and how many run at once (:mod:`cnmflow.engine.fitting`)."""

    rf: int | None          # half-size of a patch; None: one patch covers the field of view
    stride: int             # overlap of neighbouring patches
    n_processes: int        # local worker processes
    del_duplicates: bool    # keep each component found in several patches once


@dataclass(frozen=True)
class InitSection:
    """What one patch's initialisation reads (:mod:`cnmflow.engine.init`, the patch jobs)."""

    method_init: str        # "corr_pnr" (1P), "greedy_roi" (2P) or "sparse_NMF" (dendrites)
    K: int | None           # most components per patch; None: no limit (corr_pnr), the area's bound (greedy_roi)
    gSig: float             # neuron radius (full-resolution pixels)
    gSiz: int               # half-size of a neuron's box (full-resolution pixels)
    tsub: int               # temporal downsampling of the patch
    ssub: int               # spatial downsampling of the patch
    min_corr: float         # corr_pnr: seed threshold on the correlation image
    min_pnr: float          # corr_pnr: seed threshold on the PNR image (full-rate units)
    center_psf: bool        # filter with a zero-mean kernel when seeding
    border_pix: int         # footprint pixels this close to the field of view's edge are zeroed
    nb: int                 # the movie's background components (greedy_roi removes that many before scoring)
    patch_nb: int           # background components this patch fits (nb when one patch covers the field of view)
    rolling_sum: bool       # greedy_roi: score by the best rolling sum rather than the whole movie
    normalize_init: bool    # greedy_roi: divide each pixel by its median first

    @property
    def gsig_patch(self) -> float:
        """The neuron radius on the patch's ``ssub`` grid (pixels)."""
        return self.gSig / self.ssub

    @property
    def gsiz_patch(self) -> int:
        """The half-size of a neuron's box on the patch's ``ssub`` grid (pixels, at least 1)."""
        return max(int(round(self.gSiz / self.ssub)), 1)

    @property
    def low_rank(self) -> bool:
        """Whether the background is CNMF's low-rank ``b·f`` (2P) rather than CNMF-E's ring (1P)."""
        return self.method_init != "corr_pnr"


@dataclass(frozen=True)
class RingSection:
    """CNMF-E's ring background (1P): in each patch and on the full field of view."""

    gSiz: int                           # the ring's radius follows the neuron's box (full resolution)
    ring_size_factor: float
    ssub_B: int                         # spatial downsampling of the ring model
    update_background_components: bool  # refit the ring between rounds
    halo_tail: bool = False             # footprints' halos carried along their decay (patch_job/one_photon)


@dataclass(frozen=True)
class PatchJobSettings:
    """Everything one patch job reads; it travels to each worker with the job."""

    init: InitSection
    ring: RingSection


@dataclass(frozen=True)
class LowRankSection:
    """CNMF's global low-rank background (2P), assembled from the patches' own components."""

    nb: int                     # global background components
    low_rank_background: bool   # compress the patches' components into nb global ones


@dataclass(frozen=True)
class MergeSection:
    """Merging of components, and the shape filters on what merging leaves."""

    merge_thr: float        # trace correlation above which two overlapping components merge
    drop_wide: bool         # drop components too wide to be neurons (not for dendrites: sparse_NMF)
    gSig: float             # neuron radius the width is judged against
    fr: float | None        # frame rate (None: 30 fps) and decay time judge whether a trace
    decay_time: float       # decays like a transient
    tsub: int               # temporal downsampling of the merged traces


@dataclass(frozen=True)
class TraceSection:
    """Traces (deconvolution) and footprint updates on the full field of view."""

    p: int                  # order of the autoregressive model
    fr: float | None        # frame rate; None: no prior on the decay
    decay_time: float
    bas_nonneg: bool        # non-negative baseline
    gSig: float             # footprints grow within their support dilated by round(gSig)
    update_background_components: bool  # update the low-rank background's footprints too


@dataclass(frozen=True)
class RoundsSection:
    """How many (background, traces, footprints) rounds run on the full field of view."""

    only_init: bool         # one round after the patches' initialisation, else two
    refit: bool             # REFIT_ROUNDS more

    @property
    def count(self) -> int:
        return (1 if self.only_init else 2) + (REFIT_ROUNDS if self.refit else 0)


@dataclass(frozen=True)
class QualitySection:
    """The components' quality measures (SNR, spatial correlation), the focus test (1P) and the compactness test
    (2P somata)."""

    fr: float | None        # None: 30 fps
    decay_time: float
    focus_thr: float = 0.0  # 1P: focus ratio below which a component is rejected (engine/in_focus); 0: off
    halo_thr: float = 0.0   # 1P, with focus_thr: halo ratio above which it is rejected (engine/in_focus); 0: off
    min_skew: float = 0.0   # 1P, with focus_thr: trace skewness below which it is rejected (engine/trace_shape); 0: off
    typical_size: bool = False  # 1P: accepted footprints far larger than the typical one cut (engine/typical_size)
    compact_thr: float = 0.0  # 2P greedy_roi: weight share near the centre below which a component is rejected
    gSig: float = 3.0       # neuron radius the focus test's windows are measured in
    tsub: int = 1           # the focus test regresses the movie at the patches' rate


@dataclass(frozen=True)
class EngineSettings:
    """The engine's sections together; build them with :meth:`from_params`, which checks them."""

    layout: PatchLayout
    init: InitSection
    ring: RingSection
    low_rank: LowRankSection
    merging: MergeSection
    traces: TraceSection
    rounds: RoundsSection
    quality: QualitySection

    @property
    def patch_job(self) -> PatchJobSettings:
        return PatchJobSettings(init=self.init, ring=self.ring)

    @classmethod
    def from_params(cls, params: Params) -> "EngineSettings":
        """The sections of ``params``, after refusing what this engine cannot do with a
        :class:`~cnmflow.errors.ParameterError` that names the parameter.

        Pure (it reads nothing but ``params``), so a worker can rebuild it; the machine's settings
        are checked by :func:`check_supported`."""
        _check_supported_method(params)
        _check_background_components(params)
        return cls(layout=_layout(params), init=_init(params), ring=_ring(params), low_rank=_low_rank(params),
                   merging=_merging(params), traces=_traces(params),
                   rounds=RoundsSection(only_init=params.only_init, refit=params.refit),
                   quality=_quality(params))


def check_supported(params: Params) -> None:
    """Refuse, before any compute, what this version of the engine cannot do, or a bad machine
    setting (``$CNMFLOW_CHUNK_MB``, ``$CNMFLOW_PATCH_MB``, ``$CNMFLOW_SCRATCH_DIR``)."""
    load_settings()
    EngineSettings.from_params(params)


def _check_supported_method(params: Params) -> None:
    if params.method_init not in SUPPORTED_INIT:
        raise ParameterError(
            f"method_init={params.method_init!r} is not available in this version of cnmflow "
            f"(available: {', '.join(SUPPORTED_INIT)})")


def _check_background_components(params: Params) -> None:
    if params.method_init == "corr_pnr" and params.nb > 0:
        raise ParameterError(
            f"nb={params.nb} with method_init='corr_pnr': CNMF-E models the 1P background with the ring model; "
            "use nb=0 for corr_pnr, or method_init='greedy_roi' for a low-rank (2P) background")
    if params.method_init != "corr_pnr" and params.nb > 0 and params.rf is not None and params.nb_patch == 0:
        raise ParameterError(
            f"nb={params.nb} with nb_patch=0: the global background is assembled from the patches' own "
            "background components; set nb_patch >= 1 (the 2P preset uses 1) or rf=None (one patch)")


def _layout(params: Params) -> PatchLayout:
    return PatchLayout(rf=params.rf, stride=params.stride, n_processes=params.n_processes,
                       del_duplicates=params.del_duplicates)


def _init(params: Params) -> InitSection:
    return InitSection(
        method_init=params.method_init, K=params.K, gSig=params.gSig, gSiz=params.gSiz, tsub=params.tsub,
        ssub=params.ssub, min_corr=params.min_corr, min_pnr=params.min_pnr, center_psf=params.center_psf,
        border_pix=params.border_pix, nb=params.nb, patch_nb=params.nb if params.rf is None else params.nb_patch,
        rolling_sum=params.rolling_sum, normalize_init=params.normalize_init)


def _ring(params: Params) -> RingSection:
    return RingSection(gSiz=params.gSiz, ring_size_factor=params.ring_size_factor, ssub_B=params.ssub_B,
                       update_background_components=params.update_background_components,
                       halo_tail=params.halo_tail)


def _low_rank(params: Params) -> LowRankSection:
    return LowRankSection(nb=params.nb, low_rank_background=params.low_rank_background)


def _merging(params: Params) -> MergeSection:
    return MergeSection(merge_thr=params.merge_thr, drop_wide=params.method_init != "sparse_NMF", gSig=params.gSig,
                        fr=params.fr, decay_time=params.decay_time, tsub=params.tsub)


def _quality(params: Params) -> QualitySection:
    """The focus test only under the ring model (1P): 2P cells are imaged in focus by design. The compactness test
    only for greedy_roi's somata (sparse_NMF's dendrites are long by nature)."""
    one_photon = params.method_init == "corr_pnr"   # as InitSection.low_rank
    return QualitySection(fr=params.fr, decay_time=params.decay_time,
                          focus_thr=params.focus_thr if one_photon else 0.0, halo_thr=params.halo_thr,
                          min_skew=params.min_skew, typical_size=one_photon, gSig=params.gSig, tsub=params.tsub,
                          compact_thr=params.compact_thr if params.method_init == "greedy_roi" else 0.0)


def _traces(params: Params) -> TraceSection:
    return TraceSection(p=params.p, fr=params.fr, decay_time=params.decay_time, bas_nonneg=params.bas_nonneg,
                        gSig=params.gSig, update_background_components=params.update_background_components)
