import hashlib
import json
import re

import numpy as np
import pytest

from cnmflow import lineage
from cnmflow.errors import InputError
from cnmflow.lineage import (
    build_manifest,
    code_version,
    input_records,
    lineage_of,
    read_manifest,
    record_run_ids,
    sha256_file,
    software_versions,
    verify_manifest,
    write_manifest,
)
from cnmflow.movies import validate_series
from cnmflow.params import resolve_params
from cnmflow.synthetic import write_tiff


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("movies")
    rng = np.random.default_rng(0)
    paths = []
    for name, n in (("b_second.tif", 7), ("a_first.tif", 5)):
        path = folder / name
        write_tiff(path, rng.random((n, 6, 8), dtype=np.float32), fr=10.0)
        paths.append(path)
    return validate_series(paths)


@pytest.fixture()
def run_dir(tmp_path, series):
    out = tmp_path / "out"
    out.mkdir()
    files = {
        "cellset_raw.000.isxd": b"raw cells of movie 0",
        "cellset_raw.001.isxd": b"raw cells of movie 1" * 100,
        "caiman.hdf5": bytes(range(256)) * 10,
        "previews/footprints.png": b"\x89PNG fake",
    }
    for name, data in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    outputs = {
        "cellset_raw.000.isxd": {"kind": "cellset_raw", "movie_index": 0},
        "cellset_raw.001.isxd": {"kind": "cellset_raw", "movie_index": 1},
        "caiman.hdf5": {"kind": "caiman_hdf5", "movie_index": None},
        "previews/footprints.png": {"kind": "preview", "movie_index": None},
    }
    resolved = resolve_params(table={"min_pnr": 8})
    manifest = build_manifest(
        output_dir=out, outputs=outputs, inputs=input_records(series), resolved=resolved,
        run_ids={"prefect_flow_run_id": "flow-123", "mlflow_run_id": None}, notes=["test run"])
    write_manifest(out / "manifest.json", manifest)
    return out, manifest


def test_sha256_file_streams(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc" * 1000 + b"z")
    assert sha256_file(path, chunk_bytes=7) == _sha(path) == sha256_file(path)
    with pytest.raises(ValueError):
        sha256_file(path, chunk_bytes=0)


def test_input_records_user_order_and_ranges(series):
    records = input_records(series)
    assert [r["index"] for r in records] == [0, 1]
    assert [r["path"].rsplit("/", 1)[-1] for r in records] == ["b_second.tif", "a_first.tif"]
    assert records[0]["frame_range"] == [0, 7] and records[1]["frame_range"] == [7, 12]
    assert [r["position"] for r in records] == [0, 1]
    for rec, movie in zip(records, series.movies):
        assert rec["path"] == str(movie.path.absolute())
        assert rec["sha256"] == _sha(movie.path)
        assert rec["size_bytes"] == movie.path.stat().st_size
        assert rec["kind"] == "tiff" and rec["frame_shape"] == [6, 8]
        assert rec["frame_rate"] == pytest.approx(10.0)
    json.dumps(records)


def test_manifest_contents(run_dir, series):
    out, manifest = run_dir
    assert read_manifest(out) == read_manifest(out / "manifest.json") == json.loads(json.dumps(manifest))
    assert manifest["schema_version"] == lineage.SCHEMA_VERSION
    assert manifest["created"].endswith("+00:00")
    for name, rec in manifest["outputs"].items():
        assert rec["sha256"] == _sha(out / name)
        assert rec["size_bytes"] == (out / name).stat().st_size
    outs = manifest["outputs"]
    assert outs["cellset_raw.000.isxd"]["inputs"] == [0]
    assert outs["cellset_raw.001.isxd"]["inputs"] == [1]
    assert outs["caiman.hdf5"]["inputs"] == [0, 1]
    assert outs["previews/footprints.png"]["kind"] == "preview"
    params = manifest["parameters"]
    assert params["min_pnr"] == {"value": 8.0, "source": "table", "default": 12.0}
    assert params["gSig"]["source"] == "default"
    assert params["K"]["source"] == "preset 1p"
    assert manifest["run_ids"] == {"prefect_flow_run_id": "flow-123", "mlflow_run_id": None}
    assert manifest["notes"] == ["test run"]
    assert set(manifest["software"]) >= {"cnmflow", "numpy", "scipy", "h5py", "tifffile", "isx",
                                         "oasis-deconv", "python"}
    assert not list(out.glob(".*.tmp"))


def test_build_manifest_rejects_bad_outputs(tmp_path, series):
    (tmp_path / "a.isxd").write_bytes(b"x")
    kw = dict(output_dir=tmp_path, inputs=input_records(series), resolved=resolve_params())
    with pytest.raises(InputError, match="kind"):
        build_manifest(outputs={"a.isxd": {"kind": "cellset", "movie_index": 0}}, **kw)
    with pytest.raises(InputError, match="movie_index=5"):
        build_manifest(outputs={"a.isxd": {"kind": "cellset_raw", "movie_index": 5}}, **kw)
    with pytest.raises(InputError, match="does not exist"):
        build_manifest(outputs={"gone.isxd": {"kind": "cellset_raw", "movie_index": 0}}, **kw)
    with pytest.raises(InputError, match="not allowed"):
        build_manifest(outputs={"../a.isxd": {"kind": "cellset_raw", "movie_index": 0}}, **kw)


def test_verify_manifest(run_dir):
    out, _ = run_dir
    assert verify_manifest(out) == []
    assert verify_manifest(out, check_inputs=True) == []
    # same size, different bytes -> hash check
    data = bytearray((out / "cellset_raw.000.isxd").read_bytes())
    data[0] ^= 1
    (out / "cellset_raw.000.isxd").write_bytes(bytes(data))
    (out / "caiman.hdf5").unlink()
    (out / "cellset_raw.001.isxd").write_bytes(b"short")
    problems = verify_manifest(out)
    assert "cellset_raw.000.isxd: sha256 differs" in problems
    assert "caiman.hdf5: missing" in problems
    assert any(p.startswith("cellset_raw.001.isxd: size differs") for p in problems)
    assert len(problems) == 3


def test_verify_manifest_without_manifest(tmp_path):
    with pytest.raises(InputError, match="no lineage manifest"):
        verify_manifest(tmp_path)


def test_lineage_of(run_dir, series):
    out, manifest = run_dir
    text = lineage_of(out / "cellset_raw.001.isxd")
    assert str(series.movies[1].path.absolute()) in text
    assert str(series.movies[0].path.absolute()) not in text
    assert manifest["outputs"]["cellset_raw.001.isxd"]["sha256"] in text
    assert re.search(r"min_pnr = 8(\.0)? \(table\)", text)
    assert "gSig" not in text  # at its default
    assert "frames [7, 12)" in text
    assert "flow-123" in text and "numpy" in text
    whole = lineage_of(out / "caiman.hdf5")
    assert all(str(m.path.absolute()) in whole for m in series.movies)
    assert "previews/footprints.png" in lineage_of(out / "previews" / "footprints.png")


def test_lineage_of_problems(run_dir, tmp_path):
    out, _ = run_dir
    (out / "stray.txt").write_text("not an output")
    with pytest.raises(InputError, match="NOT listed"):
        lineage_of(out / "stray.txt")
    (out / "cellset_raw.000.isxd").write_bytes(b"tampered")
    with pytest.raises(InputError, match="DOES NOT MATCH"):
        lineage_of(out / "cellset_raw.000.isxd")
    lonely = tmp_path / "lonely" / "x.isxd"
    lonely.parent.mkdir()
    lonely.write_bytes(b"x")
    with pytest.raises(InputError, match="no lineage manifest"):
        lineage_of(lonely)
    with pytest.raises(InputError, match="does not exist"):
        lineage_of(out / "nothing.isxd")


def test_software_versions_missing(monkeypatch):
    monkeypatch.setattr(lineage, "SOFTWARE", ("numpy", "surely-not-a-distribution-xyz"))
    versions = software_versions()
    assert versions["surely-not-a-distribution-xyz"] == "not installed"
    assert versions["numpy"] == np.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", versions["python"])


def test_code_version_outside_git(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setattr(lineage, "PACKAGE_DIR", tmp_path)
    info = code_version()
    assert info["git_commit"] is None and info["dirty"] is None
    assert info["cnmflow"]
    monkeypatch.setenv("PATH", "")  # git missing altogether
    monkeypatch.setattr(lineage, "PACKAGE_DIR", lineage.Path(lineage.__file__).parent)
    assert code_version()["git_commit"] is None


def test_code_version_in_repo():
    info = code_version()
    if info["git_commit"] is None:
        pytest.skip("cnmflow is not running from a git checkout")
    assert re.fullmatch(r"[0-9a-f]{40}", info["git_commit"])
    assert isinstance(info["dirty"], bool)


def test_record_run_ids_keeps_outputs_valid(tmp_path, series):
    (tmp_path / "a.isxd").write_bytes(b"abc")
    manifest = build_manifest(output_dir=tmp_path, outputs={"a.isxd": {"kind": "cellset_raw", "movie_index": 0}},
                              inputs=input_records(series), resolved=resolve_params(),
                              run_ids={"prefect_flow_run_id": "f1"}, run={"n_components": 3})
    write_manifest(tmp_path, manifest)
    updated = record_run_ids(tmp_path, {"mlflow_run_id": "m1"}, notes=["tracked"])
    assert updated["run_ids"] == {"prefect_flow_run_id": "f1", "mlflow_run_id": "m1"}
    assert read_manifest(tmp_path)["run"] == {"n_components": 3}
    assert read_manifest(tmp_path)["notes"][-1] == "tracked"
    assert verify_manifest(tmp_path) == []


def test_record_run_ids_waits_for_nobody_while_another_run_writes_the_folder(tmp_path, series):
    from cnmflow.outputs.folder_lock import FolderBusyError
    from tests.outputs.holders import holding_folder

    (tmp_path / "a.isxd").write_bytes(b"abc")
    write_manifest(tmp_path, build_manifest(output_dir=tmp_path, outputs={"a.isxd": {"kind": "cellset_raw",
                                                                                      "movie_index": 0}},
                                            inputs=input_records(series), resolved=resolve_params()))
    with holding_folder(tmp_path):      # e.g. an overwrite in progress: `cnmflow track` must not write now
        with pytest.raises(FolderBusyError, match="in use by another cnmflow run"):
            record_run_ids(tmp_path, {"mlflow_run_id": "m1"})
    assert "mlflow_run_id" not in read_manifest(tmp_path)["run_ids"]


def test_input_records_reuse_given_hashes(series):
    records = input_records(series, hashes={0: "f" * 64})
    assert records[0]["sha256"] == "f" * 64
    assert records[1]["sha256"] == sha256_file(records[1]["path"])
