"""CaImAn hdf5 layout: our file has every path of a real CaImAn file, round trips, reads CaImAn's."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from cnmflow.engine.estimates import Estimates
from cnmflow.outputs import caiman_hdf5
from cnmflow.outputs.caiman_hdf5 import read_caiman_hdf5, read_caiman_params, write_caiman_hdf5
from cnmflow.params import Params
from tests.paths import IDEAS

REAL = IDEAS / "sample_cellset_msr_1.hdf5"
needs_real = pytest.mark.skipif(not REAL.exists(), reason=f"{REAL} not available")

DIMS = (20, 30)
T = 50


def _blob(dims, center, sigma):
    rr, cc = np.mgrid[: dims[0], : dims[1]]
    image = np.exp(-((rr - center[0]) ** 2 + (cc - center[1]) ** 2) / (2 * sigma ** 2))
    image[image < 0.05] = 0
    return image


def make_estimates(K: int = 3) -> Estimates:
    rng = np.random.default_rng(7)
    rows, cols = DIMS
    pixels = rows * cols
    centers = [(5, 6), (12, 20), (15, 8)][:K]
    columns = [_blob(DIMS, c, 2.0).ravel(order="F") for c in centers]
    dense = np.column_stack(columns) if K else np.zeros((pixels, 0))
    dense = dense / np.maximum(np.linalg.norm(dense, axis=0), 1e-12)
    A = sp.csc_matrix(dense.astype(np.float32))
    C = rng.random((K, T)).astype(np.float32)
    return Estimates(
        A=A, C=C, S=rng.random((K, T)).astype(np.float32), YrA=rng.normal(size=(K, T)).astype(np.float32),
        bl=rng.random(K), c1=rng.random(K), g=rng.random((K, 1)), neurons_sn=rng.random(K),
        lam=rng.random(K), dims=DIMS, sn=rng.random(pixels).astype(np.float32),
        b0=rng.random(pixels).astype(np.float32),
        W=sp.random(150, 150, density=0.05, format="csr", dtype=np.float32, random_state=3),
        Cn=rng.random(DIMS).astype(np.float32), pnr=rng.random(DIMS).astype(np.float32),
        SNR_comp=rng.random(K) * 10, r_values=rng.random(K), ssub_B=2,
    )


PARAMS = Params(fr=20.0, n_processes=2)


def tree(path: Path) -> dict[str, np.dtype | None]:
    """Every group (None) and dataset (its dtype) in a file, by path."""
    out: dict[str, np.dtype | None] = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(lambda name, obj: out.__setitem__(
            name, obj.dtype if isinstance(obj, h5py.Dataset) else None))
    return out


def attrs(path: Path) -> set[str]:
    found = set()
    with h5py.File(path, "r") as h5:
        found |= {f"/@{key}" for key in h5.attrs}
        h5.visititems(lambda name, obj: found.update(f"{name}@{key}" for key in obj.attrs))
    return found


def _is_none_string(path: Path, name: str) -> bool:
    with h5py.File(path, "r") as h5:
        return h5[name].dtype.kind == "O" and h5[name][()] == b"NoneType"


@pytest.fixture
def written(tmp_path) -> Path:
    return write_caiman_hdf5(tmp_path / "caiman_output.hdf5", make_estimates(), PARAMS,
                             fnames=["/data/movie.isxd"], mmap_file="/tmp/x.mmap")


@needs_real
def test_our_tree_has_every_path_of_the_real_file(written):
    real, ours = tree(REAL), tree(written)
    missing = sorted(set(real) - set(ours))
    assert missing == [], f"paths of the real CaImAn file we do not write: {missing}"
    assert attrs(REAL) <= attrs(written), sorted(attrs(REAL) - attrs(written))
    incompatible = []
    for name, dtype in real.items():
        if dtype is None or ours[name] is None:
            if (dtype is None) != (ours[name] is None):   # a sparse group set on one side only
                unset = name if dtype is not None else None
                assert unset and _is_none_string(REAL, unset), f"{name}: group in one file, dataset in the other"
            continue
        if dtype.kind == ours[name].kind:
            continue
        if _is_none_string(REAL, name) or _is_none_string(written, name):
            continue    # unset on one side ("NoneType"), set on the other
        incompatible.append((name, dtype, ours[name]))
    assert incompatible == []


def test_round_trip(written):
    est = make_estimates()
    back = read_caiman_hdf5(written)
    assert back.dims == DIMS and back.K == 3 and isinstance(back.A, sp.csc_matrix)
    assert back.A.shape == est.A.shape and (back.A != est.A).nnz == 0
    for name in ("C", "S", "YrA", "bl", "c1", "g", "neurons_sn", "lam", "sn", "b0", "Cn", "pnr",
                 "SNR_comp", "r_values"):
        np.testing.assert_array_equal(getattr(back, name), getattr(est, name), err_msg=name)
        assert getattr(back, name).dtype == getattr(est, name).dtype, name
    assert isinstance(back.W, sp.csr_matrix) and back.W.shape == est.W.shape and (back.W != est.W).nnz == 0
    assert back.ssub_B == 2
    assert back.b.size == 0 and back.f.size == 0
    for k in range(est.K):
        np.testing.assert_array_equal(back.A[:, k].toarray().reshape(DIMS, order="F"), est.footprints()[k])
    with h5py.File(written, "r") as h5:
        assert h5["estimates/A/indices"].dtype.kind == "i" and tuple(h5["estimates/A/shape"][()]) == (600, 3)
        assert h5["estimates/idx_components"][()].tolist() == [0, 1, 2]
        assert h5["estimates/idx_components_bad"].shape == (0,)
        assert h5["estimates/nr"][()] == 3
        assert h5["estimates/b"][()] == b"NoneType" and h5["dview"][()] == b"NoneType"
        assert h5.attrs["mmap_file"] == "/tmp/x.mmap"
        assert not h5["skip_refinement"][()] and h5["skip_refinement"].dtype == bool


def test_rejected_components_stay_rejected_when_read_back(tmp_path):
    """A reader that dropped idx_components_bad handed every rejected component back as a cell."""
    path = write_caiman_hdf5(tmp_path / "caiman_output.hdf5", make_estimates(), PARAMS, idx_components=[0, 2])
    back = read_caiman_hdf5(path)
    assert back.idx_components_bad.tolist() == [1] and back.accepted.tolist() == [0, 2]
    assert read_caiman_hdf5(write_caiman_hdf5(tmp_path / "all.hdf5", make_estimates(), PARAMS)).accepted.tolist() \
        == [0, 1, 2]


@needs_real
def test_reads_the_real_caiman_file():
    est = read_caiman_hdf5(REAL)
    assert est.A.shape == (256000, 5) and isinstance(est.A, sp.csc_matrix)
    assert est.C.shape == (5, 100) and est.S.shape == (5, 100) and est.YrA.shape == (5, 100)
    assert est.dims == (400, 640)
    assert est.g.shape == (5, 1) and est.bl.shape == (5,)
    assert est.Cn is None and est.sn.size == 0 and est.W.shape == (0, 0)
    assert est.SNR_comp.shape == (5,) and est.ssub_B == 2
    dense = est.footprints()
    for k in range(est.K):
        image = est.A[:, k].toarray().reshape(est.dims, order="F")
        np.testing.assert_array_equal(image, dense[k])
        assert image.max() > 0
    params = read_caiman_params(REAL)
    assert params["init"]["gSig"] == [3, 3] and params["init"]["K"] is None
    assert params["init"]["method_init"] == "corr_pnr" and params["temporal"]["solvers"] == ["ECOS", "SCS"]
    assert params["init"]["center_psf"] is True


def test_params_round_trip(written):
    params = read_caiman_params(written)
    assert sorted(params) == sorted(caiman_hdf5.CAIMAN_PARAM_DEFAULTS)
    assert params["init"]["gSig"] == [3, 3] and params["init"]["gSiz"] == [7, 7]
    assert params["init"]["K"] is None
    assert params["init"]["method_init"] == "corr_pnr" and params["init"]["min_pnr"] == 12
    assert params["init"]["min_corr"] == 0.85 and params["init"]["normalize_init"] is False
    assert params["data"]["fr"] == 20.0 and params["data"]["dims"] == [20, 30]
    assert params["data"]["fnames"] == ["/data/movie.isxd"] and params["data"]["dxy"] == [1, 1]
    assert params["patch"]["rf"] == 40 and params["patch"]["n_processes"] == 2
    assert params["patch"]["low_rank_background"] is False
    assert params["preprocess"]["n_pixels_per_process"] == 300
    assert params["online"]["init_batch"] == T
    assert params["temporal"]["method_deconvolution"] == "oasis"
    assert params["spatial"]["expandCore"][2] == [1, 1, 1, 1, 1]
    assert params["quality"]["min_SNR"] == 3 and params["motion"]["border_nan"] == "copy"
    with h5py.File(written, "r") as h5:
        assert h5["params/init/gSig"].dtype == np.int64
        assert "method_init" in h5["params/init"].attrs and "method_init" not in h5["params/init"]


def test_unset_values_and_non_integral_floats(tmp_path):
    params = Params(fr=None, gSig=2.5, gSiz=7, rf=None, K=4, n_processes=1)
    path = write_caiman_hdf5(tmp_path / "out.hdf5", make_estimates(), params,
                             extra_params={"quality": {"min_SNR": 2.5}}, idx_components=[0, 2])
    groups = read_caiman_params(path)
    assert groups["data"]["fr"] is None and groups["patch"]["rf"] is None and groups["init"]["K"] == 4
    assert groups["init"]["gSig"] == [2.5, 2.5] and groups["data"]["fnames"] is None
    assert groups["quality"]["min_SNR"] == 2.5
    with h5py.File(path, "r") as h5:
        assert h5["estimates/idx_components"][()].tolist() == [0, 2]
        assert h5["estimates/idx_components_bad"][()].tolist() == [1]
        assert h5.attrs["mmap_file"] == ""


def test_zero_components_round_trip(tmp_path):
    est = make_estimates(K=0)
    est.SNR_comp, est.r_values = np.zeros(0), np.zeros(0)
    path = write_caiman_hdf5(tmp_path / "empty.hdf5", est, PARAMS)
    back = read_caiman_hdf5(path)
    assert back.A.shape == (600, 0) and back.K == 0
    assert back.C.shape == (0, T) and back.S.shape == (0, T) and back.YrA.shape == (0, T)
    assert back.g.shape == (0, 1) and back.bl.shape == (0,)
    assert back.footprints().shape == (0, *DIMS)
    with h5py.File(path, "r") as h5:
        assert h5["estimates/idx_components"].shape == (0,) and h5["estimates/nr"][()] == 0


def test_unset_quality_is_nonetype(tmp_path):
    est = make_estimates()
    est.SNR_comp, est.r_values, est.Cn, est.pnr = np.zeros(0), np.zeros(0), None, None
    est.W = sp.csr_matrix((0, 0), dtype=np.float32)
    path = write_caiman_hdf5(tmp_path / "q.hdf5", est, PARAMS)
    for name in ("SNR_comp", "r_values", "Cn", "W"):
        assert _is_none_string(path, f"estimates/{name}"), name
    back = read_caiman_hdf5(path)
    assert back.SNR_comp.size == 0 and back.Cn is None and back.pnr is None and back.W.shape == (0, 0)


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(caiman_hdf5, "_write_group", boom)
    target = tmp_path / "caiman_output.hdf5"
    with pytest.raises(RuntimeError, match="disk full"):
        write_caiman_hdf5(target, make_estimates(), PARAMS)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_overwrites_existing_file_atomically(tmp_path):
    target = tmp_path / "caiman_output.hdf5"
    target.write_bytes(b"old")
    write_caiman_hdf5(target, make_estimates(), PARAMS)
    assert read_caiman_hdf5(target).K == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["caiman_output.hdf5"]


def test_inconsistent_estimates_are_refused(tmp_path):
    est = make_estimates()
    est.dims = (10, 10)
    with pytest.raises(ValueError, match="dims"):
        write_caiman_hdf5(tmp_path / "bad.hdf5", est, PARAMS)
    assert list(tmp_path.iterdir()) == []
