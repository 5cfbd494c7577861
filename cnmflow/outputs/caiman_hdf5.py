"""The whole model in CaImAn's ``cnm.save`` hdf5 layout, and reading such files back.

Layout (so that CaImAn's ``load_CNMF`` reads our files, and we read CaImAn's):

- top level: ``dims``, ``dview`` ("NoneType"), ``remove_very_bad_comps``, ``skip_refinement``,
  the attribute ``mmap_file``, the groups ``estimates/`` and ``params/``;
- sparse matrices (``A``, ``W``) are groups holding ``data``, ``indices``, ``indptr`` and
  ``shape`` of the CSC form;
- an unset value (Python ``None``) is the variable-length string dataset ``"NoneType"``;
- a Python string is an attribute of its group, a list or tuple of strings a fixed-length
  bytes array, other tuples numeric arrays, bools HDF5 booleans;
- ``params/<group>/`` for every group CaImAn writes.

Written to a temporary file in the destination folder and renamed into place, so a failed
write never leaves a partial file under the final name.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import h5py
import numpy as np
import scipy.sparse as sp

from cnmflow.atomic_write import atomic_path
from cnmflow.version import __version__
from cnmflow.engine.estimates import Estimates
from cnmflow.params import Params, to_caiman_groups

#: The value CaImAn stores for ``None``.
NONE_STRING = "NoneType"

#: The CaImAn release whose layout these files follow (stored as ``params/data/caiman_version``).
CAIMAN_LAYOUT_VERSION = "1.11.3"

#: CaImAn 1.x defaults of every ``params`` group, taken from a file CaImAn 1.11.3 wrote with
#: ``cnm.save`` (a CNMF-E run, IDEAS sample ``sample_cellset_msr_1.hdf5``).  Values we have are
#: replaced by ours (``to_caiman_groups``); the few values that described that particular run
#: (input paths, movie size, frame count, machine) are replaced by CaImAn's generic defaults
#: here and filled per run by the writer (marked "per run").  ``None`` is written as "NoneType",
#: strings as group attributes, tuples as arrays.
CAIMAN_PARAM_DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {
        "caiman_version": CAIMAN_LAYOUT_VERSION,  # the layout's version, not a CaImAn install
        "decay_time": 0.4,
        "dims": None,                       # per run: the movie's (rows, cols)
        "dxy": (1, 1),
        "fnames": None,                     # per run: the input movies, when given
        "fr": 30.0,
        "last_commit": f"cnmflow-{__version__}",  # who wrote the file (CaImAn: its git commit)
        "var_name_hdf5": "mov",
    },
    "init": {
        "alpha_snmf": 0.5,
        "center_psf": True,
        "gSig": (3, 3),
        "gSiz": (11, 11),
        "init_iter": 2,
        "K": None,
        "kernel": None,
        "lambda_gnmf": 1,
        "max_iter_snmf": 500,
        "maxIter": 5,
        "method_init": "corr_pnr",
        "min_corr": 0.8,
        "min_pnr": 10,
        "nb": 0,
        "nIter": 5,
        "normalize_init": False,
        "options_local_NMF": None,
        "perc_baseline_snmf": 20,
        "ring_size_factor": 1.4,
        "rolling_length": 100,
        "rolling_sum": True,
        "SC_kernel": "heat",
        "SC_nnn": 20,
        "SC_normalize": True,
        "SC_sigma": 1,
        "SC_thr": 0,
        "SC_use_NN": False,
        "seed_method": "auto",
        "sigma_smooth_snmf": (0.5, 0.5, 0.5),
        "ssub": 1,
        "ssub_B": 2,
        "tsub": 2,
    },
    "merging": {
        "do_merge": True,
        "merge_parallel": False,
        "merge_thr": 0.7,
    },
    "motion": {
        "border_nan": "copy",
        "gSig_filt": (6, 6),
        "indices": ("slice(None, None, None)", "slice(None, None, None)"),
        "is3D": False,
        "max_deviation_rigid": 3,
        "max_shifts": (24, 24),
        "min_mov": None,
        "niter_rig": 1,
        "nonneg_movie": True,
        "num_frames_split": 80,
        "num_splits_to_process_els": None,
        "num_splits_to_process_rig": None,
        "overlaps": (48, 48),
        "pw_rigid": False,
        "shifts_opencv": True,
        "splits_els": 150,
        "splits_rig": 150,
        "strides": (96, 96),
        "upsample_factor_grid": 4,
        "use_cuda": False,
    },
    "online": {
        "batch_update_suff_stat": False,
        "dist_shape_update": False,
        "ds_factor": 1,
        "epochs": 1,
        "expected_comps": 500,
        "full_XXt": False,
        "init_batch": 200,                  # per run: CaImAn's fit sets it to the frame count
        "init_method": "bare",
        "iters_shape": 5,
        "max_comp_update_shape": math.inf,
        "max_num_added": 5,
        "max_shifts_online": 10,
        "min_num_trial": 5,
        "min_SNR": 3,
        "minibatch_shape": 100,
        "minibatch_suff_stat": 5,
        "motion_correct": True,
        "movie_name_online": "online_movie.mp4",  # the file has it inside that run's temp folder
        "n_refit": 0,
        "N_samples_exceptionality": 12,
        "normalize": False,
        "num_times_comp_updated": math.inf,
        "opencv_codec": "H264",
        "path_to_model": "/ideas/caiman_data/model/cnn_model_online.h5",
        "ring_CNN": False,
        "rval_thr": 0.85,
        "save_online_movie": False,
        "show_movie": False,
        "simultaneously": False,
        "sniper_mode": False,
        "stop_detection": False,
        "test_both": False,
        "thresh_CNN_noisy": 0.5,
        "thresh_fitness_delta": -50,
        "thresh_fitness_raw": -79.2927146581242,  # log_ndtr(-min_SNR) * N_samples_exceptionality
        "thresh_overlap": 0.5,
        "update_freq": 200,
        "update_num_comps": True,
        "use_corr_img": False,
        "use_dense": True,
        "use_peak_max": True,
        "W_update_factor": 1,
    },
    "patch": {
        "border_pix": 0,
        "del_duplicates": True,
        "in_memory": True,
        "low_rank_background": None,
        "memory_fact": 1,
        "n_processes": 7,                   # per run: ours
        "nb_patch": 0,
        "only_init": True,
        "p_patch": 0,
        "p_ssub": 2,
        "p_tsub": 2,
        "remove_very_bad_comps": False,
        "rf": 40,
        "skip_refinement": False,
        "stride": 20,
    },
    "preprocess": {
        "check_nan": True,
        "compute_g": False,
        "include_noise": False,
        "lags": 5,
        "max_num_samples_fft": 3072,
        "n_pixels_per_process": None,       # per run: pixels // n_processes, as CaImAn sets it
        "noise_method": "mean",
        "noise_range": (0.25, 0.5),
        "p": 1,
        "pixels": None,
        "sn": None,
    },
    "quality": {
        "cnn_lowest": 0.1,
        "gSig_range": None,
        "max_ecc": 3,
        "min_cnn_thr": 0.9,
        "min_SNR": 3,
        "rval_lowest": -1,
        "rval_thr": 0.85,
        "SNR_lowest": 0.5,
        "use_cnn": False,
        "use_ecc": False,
    },
    "ring_CNN": {
        "loss_fn": "pct",
        "lr": 0.001,
        "lr_scheduler": None,
        "max_epochs": 100,
        "n_channels": 2,
        "path_to_model": None,
        "patience": 3,
        "pct": 0.01,
        "remove_activity": False,
        "reuse_model": False,
        "use_add": False,
        "use_bias": False,
        "width": 5,
    },
    "spatial": {
        "dist": 3,
        "expandCore": ((0, 0, 1, 0, 0), (0, 1, 1, 1, 0), (1, 1, 1, 1, 1), (0, 1, 1, 1, 0), (0, 0, 1, 0, 0)),
        "extract_cc": True,
        "maxthr": 0.1,
        "medw": None,
        "method_exp": "dilate",
        "method_ls": "lasso_lars",
        "n_pixels_per_process": None,       # per run: pixels // n_processes, as CaImAn sets it
        "nb": 0,
        "normalize_yyt_one": True,
        "nrgthr": 0.9999,
        "num_blocks_per_run_spat": 20,
        "se": None,
        "ss": None,
        "thr_method": "nrg",
        "update_background_components": True,
    },
    "temporal": {
        "bas_nonneg": False,
        "block_size_temp": 5000,
        "fudge_factor": 0.96,
        "ITER": 2,
        "lags": 5,
        "method_deconvolution": "oasis",
        "nb": 0,
        "noise_method": "mean",
        "noise_range": (0.25, 0.5),
        "num_blocks_per_run_temp": 20,
        "optimize_g": False,
        "p": 1,
        "s_min": None,
        "solvers": ("ECOS", "SCS"),
        "verbosity": False,
    },
}

#: ``cnm.estimates`` fields CaImAn writes that a batch CNMF-E fit leaves unset ("NoneType").
UNSET_ESTIMATES: tuple[str, ...] = (
    "A_thr", "Ab", "Ab_dense", "AtA", "AtY_buf", "CC", "CY", "C_on", "Cf", "F_dff",
    "OASISinstances", "R", "Yr_buf", "center", "discarded_components", "ecc", "ind_new", "mn",
    "noisyC", "rho_buf", "sv", "vr",
)

#: Fields CaImAn initialises to an empty list (written as empty float arrays).
EMPTY_LIST_ESTIMATES: tuple[str, ...] = ("cnn_preds", "shifts")


# --------------------------------------------------------------------------------------------
# writing


def write_caiman_hdf5(
    path: Path,
    estimates: Estimates,
    params: Params,
    *,
    fnames: Sequence[str | os.PathLike] | None = None,
    mmap_file: str | os.PathLike | None = None,
    idx_components: Iterable[int] | None = None,
    extra_params: Mapping[str, Mapping[str, Any]] | None = None,
    shifts: np.ndarray | Sequence[np.ndarray] | None = None,
) -> Path:
    """Write ``estimates`` and ``params`` as CaImAn's ``cnm.save`` would; returns ``path``.

    ``fnames`` are the input movies (``params/data/fnames``; "NoneType" when not given),
    ``mmap_file`` the memory-mapped movie the fit read (root attribute; "" when none).
    ``idx_components`` are the accepted components (default: all of them; the others go to
    ``idx_components_bad``).  ``extra_params`` sets CaImAn parameters the table does not have,
    e.g. ``{"quality": {"min_SNR": 2.5}}``; it is applied last.  ``shifts`` is the motion
    correction's ``estimates.shifts`` in CaImAn's layout (rigid (T, 2); piecewise ``[x_shifts_els,
    y_shifts_els]``, stored as one (2, T, n_patches) array as CaImAn's save does); default empty.
    """
    path = Path(path)
    _check_estimates(estimates)
    groups = _param_groups(estimates, params, fnames=fnames, extra_params=extra_params)
    items = _estimates_items(estimates, idx_components)
    if shifts is not None:
        items["shifts"] = np.asarray(shifts, dtype=np.float32)

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["mmap_file"] = "" if mmap_file is None else str(mmap_file)
        _write_value(h5, "dims", tuple(int(d) for d in estimates.dims))
        _write_value(h5, "dview", None)
        _write_value(h5, "remove_very_bad_comps", bool(groups["patch"]["remove_very_bad_comps"]))
        _write_value(h5, "skip_refinement", bool(groups["patch"]["skip_refinement"]))
        _write_group(h5.create_group("estimates"), items)
        params_group = h5.create_group("params")
        for name, values in groups.items():
            _write_group(params_group.create_group(name), values)
    return path


def _check_estimates(est: Estimates) -> None:
    rows, cols = (int(d) for d in est.dims)
    K = est.K
    if est.A.shape[0] != rows * cols:
        raise ValueError(f"A has {est.A.shape[0]} rows but dims {est.dims} has {rows * cols} pixels")
    for name in ("C", "S", "YrA"):
        array = np.asarray(getattr(est, name))
        if array.ndim != 2 or array.shape[0] != K:
            raise ValueError(f"{name} has shape {array.shape}; expected ({K}, n_frames) for K={K} components")


def _param_groups(est: Estimates, params: Params, *, fnames, extra_params) -> dict[str, dict[str, Any]]:
    groups = {name: dict(values) for name, values in CAIMAN_PARAM_DEFAULTS.items()}
    ours = to_caiman_groups(params)
    for name, values in ours.items():
        group = groups.setdefault(name, {})
        for key, value in values.items():
            group[key] = _like_default(value, group.get(key))
    pixels = int(est.dims[0]) * int(est.dims[1])
    n_processes = int(groups["patch"]["n_processes"])
    groups["data"]["dims"] = tuple(int(d) for d in est.dims)
    groups["data"]["fnames"] = None if fnames is None else tuple(str(name) for name in fnames)
    groups["online"]["init_batch"] = est.n_frames
    groups["preprocess"]["n_pixels_per_process"] = pixels // n_processes
    groups["spatial"]["n_pixels_per_process"] = pixels // n_processes
    for name, values in (extra_params or {}).items():
        group = groups.setdefault(name, {})
        for key, value in values.items():
            group[key] = _like_default(value, group.get(key))
    return groups


def _like_default(value: Any, default: Any) -> Any:
    """Whole-number floats become ints where CaImAn's own value is an int (gSig 3.0 -> 3)."""
    if isinstance(value, (tuple, list)) and isinstance(default, (tuple, list)) and len(value) == len(default):
        return tuple(_like_default(v, d) for v, d in zip(value, default))
    if (isinstance(value, float) and value.is_integer() and isinstance(default, int)
            and not isinstance(default, bool)):
        return int(value)
    return value


def _estimates_items(est: Estimates, idx_components: Iterable[int] | None) -> dict[str, Any]:
    K = est.K
    if idx_components is None:
        good = np.arange(K, dtype=np.int64)
    else:
        good = np.asarray(sorted(set(int(k) for k in idx_components)), dtype=np.int64)
        if good.size and (good[0] < 0 or good[-1] >= K):
            raise ValueError(f"idx_components {good.tolist()} out of range for K={K} components")
    bad = np.setdiff1d(np.arange(K, dtype=np.int64), good).astype(np.int64)

    def per_component(array: np.ndarray) -> np.ndarray | None:
        array = np.asarray(array)
        return array if array.shape[:1] == (K,) else None   # not computed: unset, as in CaImAn

    def nonempty(array) -> Any:
        return array if array is not None and np.asarray(array).size else None

    items: dict[str, Any] = {name: None for name in UNSET_ESTIMATES}
    items.update({name: np.zeros(0) for name in EMPTY_LIST_ESTIMATES})
    items.update(
        A=sp.csc_matrix(est.A),
        C=np.asarray(est.C),
        S=np.asarray(est.S),
        YrA=np.asarray(est.YrA),
        W=sp.csc_matrix(est.W) if est.W is not None and est.W.shape[0] * est.W.shape[1] else None,
        b=nonempty(est.b),
        f=nonempty(est.f),
        b0=nonempty(est.b0),
        sn=nonempty(est.sn),
        bl=np.asarray(est.bl),
        c1=np.asarray(est.c1),
        g=np.asarray(est.g),
        neurons_sn=np.asarray(est.neurons_sn),
        lam=np.asarray(est.lam),
        Cn=None if est.Cn is None else np.asarray(est.Cn),
        SNR_comp=per_component(est.SNR_comp),
        r_values=per_component(est.r_values),
        idx_components=good,
        idx_components_bad=bad,
        dims=tuple(int(d) for d in est.dims),
        nr=np.int64(K),
    )
    if est.pnr is not None:      # not a CaImAn field; load_CNMF keeps it as an extra attribute
        items["pnr"] = np.asarray(est.pnr)
    return items


def _write_group(group: h5py.Group, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        _write_value(group, key, value)


def _write_value(group: h5py.Group, key: str, value: Any) -> None:
    if value is None:
        group.create_dataset(key, data=NONE_STRING, dtype=h5py.string_dtype("utf-8"))
    elif isinstance(value, str):
        group.attrs[key] = value
    elif isinstance(value, Mapping):
        _write_group(group.create_group(key), value)
    elif sp.issparse(value):
        csc = sp.csc_matrix(value)
        sub = group.create_group(key)
        sub.create_dataset("data", data=csc.data)
        sub.create_dataset("indices", data=csc.indices)
        sub.create_dataset("indptr", data=csc.indptr)
        sub.create_dataset("shape", data=np.asarray(csc.shape, dtype=np.int64))
    elif isinstance(value, (bool, np.bool_)):
        group.create_dataset(key, data=np.bool_(value))
    elif isinstance(value, (int, np.integer)):
        group.create_dataset(key, data=np.int64(value))
    elif isinstance(value, (float, np.floating)):
        group.create_dataset(key, data=np.float64(value))
    elif isinstance(value, (tuple, list)):
        if value and all(isinstance(item, str) for item in value):
            group.create_dataset(key, data=np.array([item.encode("utf-8") for item in value]))
        elif not value:
            group.create_dataset(key, data=np.zeros(0))
        else:
            group.create_dataset(key, data=np.asarray(value))
    elif isinstance(value, np.ndarray):
        group.create_dataset(key, data=value)
    else:
        raise TypeError(f"cannot store {key}={value!r} ({type(value).__name__}) in a CaImAn hdf5 file")


# --------------------------------------------------------------------------------------------
# reading


def read_caiman_hdf5(path: Path) -> Estimates:
    """Read a file in CaImAn's layout (ours or CaImAn's own) into :class:`Estimates`.

    Unset ("NoneType") or missing fields become empty arrays (``Cn``/``pnr``: ``None``); the rejected components
    (``idx_components_bad``) stay rejected, so ``Estimates.accepted`` is the file's accepted set.
    """
    with h5py.File(Path(path), "r") as h5:
        est = h5.get("estimates")
        if not isinstance(est, h5py.Group):
            raise ValueError(f"{path} has no 'estimates' group: not a CaImAn cnm.save file")
        dims_array = _array(est, "dims")
        if dims_array is None:
            dims_array = _array(h5, "dims")
        if dims_array is None:
            raise ValueError(f"{path} stores no dims (estimates/dims or dims)")
        dims = (int(dims_array[0]), int(dims_array[1]))
        pixels = dims[0] * dims[1]
        A = _sparse(est, "A")
        if A is None:
            A = sp.csc_matrix((pixels, 0), dtype=np.float32)
        K = A.shape[1]
        C = _array(est, "C", np.zeros((K, 0), np.float32))
        W = _sparse(est, "W")
        ssub_B = 1
        if "params" in h5 and "init" in h5["params"]:
            value = _array(h5["params"]["init"], "ssub_B")
            if value is not None and value.ndim == 0:
                ssub_B = int(value)
        return Estimates(
            A=A,
            C=C,
            S=_array(est, "S", np.zeros((K, 0), np.float32)),
            YrA=_array(est, "YrA", np.zeros((K, 0), np.float32)),
            bl=_array(est, "bl", np.zeros(0)),
            c1=_array(est, "c1", np.zeros(0)),
            g=_array(est, "g", np.zeros((K, 0))),
            neurons_sn=_array(est, "neurons_sn", np.zeros(0)),
            lam=_array(est, "lam", np.zeros(0)),
            dims=dims,
            sn=_array(est, "sn", np.zeros(0, np.float32)),
            b0=_array(est, "b0", np.zeros(0, np.float32)),
            W=sp.csr_matrix((0, 0), dtype=np.float32) if W is None else W.tocsr(),
            b=_array(est, "b", np.zeros((0, 0), np.float32)),
            f=_array(est, "f", np.zeros((0, 0), np.float32)),
            Cn=_array(est, "Cn"),
            pnr=_array(est, "pnr"),
            SNR_comp=_array(est, "SNR_comp", np.zeros(0)),
            r_values=_array(est, "r_values", np.zeros(0)),
            idx_components_bad=_array(est, "idx_components_bad", np.zeros(0, int)).astype(int).ravel(),
            ssub_B=ssub_B,
        )


def read_caiman_params(path: Path) -> dict[str, dict[str, Any]]:
    """The ``params`` groups of a CaImAn-layout file as plain Python values.

    "NoneType" -> ``None``, booleans -> ``bool``, scalars -> ``int``/``float``, arrays -> (nested)
    lists, bytes arrays -> lists of ``str``, group attributes -> ``str``.
    """
    with h5py.File(Path(path), "r") as h5:
        if "params" not in h5:
            return {}
        return {name: _group_to_dict(group) for name, group in h5["params"].items()
                if isinstance(group, h5py.Group)}


def _group_to_dict(group: h5py.Group) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, item in group.items():
        values[key] = _group_to_dict(item) if isinstance(item, h5py.Group) else _plain(item[()])
    for key, value in group.attrs.items():
        values[key] = _plain(value)
    return values


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        text = value.decode("utf-8")
        return None if text == NONE_STRING else text
    if isinstance(value, str):
        return None if value == NONE_STRING else value
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [_plain(item) for item in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_none(value: Any) -> bool:
    return isinstance(value, (bytes, str)) and (value.decode() if isinstance(value, bytes) else value) == NONE_STRING


def _array(group: h5py.Group, name: str, empty: np.ndarray | None = None) -> np.ndarray | None:
    """A stored array, or ``empty`` when the dataset is missing, a group, or "NoneType"."""
    item = group.get(name)
    if not isinstance(item, h5py.Dataset):
        return empty
    value = item[()]
    if _is_none(value):
        return empty
    return np.asarray(value)


def _sparse(group: h5py.Group, name: str) -> sp.csc_matrix | None:
    item = group.get(name)
    if not isinstance(item, h5py.Group):
        return None
    shape = tuple(int(n) for n in item["shape"][()])
    return sp.csc_matrix((item["data"][()], item["indices"][()], item["indptr"][()]), shape=shape)
