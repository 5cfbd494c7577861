"""``ophys.{k}.nwb``: what pynwb, nwbinspector and roiextractors read back from a real run's folder."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import isx
import numpy as np
import pytest
from pynwb import NWBHDF5IO

import cnmflow
from cnmflow import isx_timing
from cnmflow.cli import main
from cnmflow.errors import InputError
from cnmflow.lineage import lineage_of, read_manifest, verify_manifest
from cnmflow.outputs.caiman_hdf5 import read_caiman_hdf5
from cnmflow.outputs.nwb import write_nwb
from cnmflow.outputs.nwb_folder import write_nwb_for_folder
from cnmflow.outputs.nwb_metadata import nwb_metadata_from_dict, read_nwb_metadata
from cnmflow.outputs.nwb_source import nwb_run_from_folder, nwb_run_from_result
from cnmflow.synthetic import write_isxd, write_tiff
from tests.outputs.extraction import PARAMS

LATER_START_S, EARLIER_START_S = 1_700_000_000.0, 1_699_990_000.0
DROPPED = (5, 6)   # in the later movie, which the user lists first
METADATA = {
    "subject": {"subject_id": "m12", "species": "Mus musculus", "sex": "F", "age": "P90D"},
    "session": {"session_id": "day1", "experimenter": ["Doe, Jane"], "lab": "Doe lab"},
    "device": {"name": "nVista3", "manufacturer": "Inscopix"},
    "imaging_plane": {"indicator": "GCaMP6f", "location": "CA1", "excitation_lambda": 455,
                      "emission_lambda": 510},
}


@pytest.fixture(scope="module")
def series(simulated, tmp_path_factory):
    """Two isxd movies listed in reverse chronological order (the later one, with dropped frames, first)."""
    folder = tmp_path_factory.mktemp("series")
    later = write_isxd(folder / "later.isxd", simulated.movie[140:], fr=10.0, start_s=LATER_START_S,
                       pixel_size_um=2.5, dropped=DROPPED)
    earlier = write_isxd(folder / "earlier.isxd", simulated.movie[:140], fr=10.0, start_s=EARLIER_START_S,
                         pixel_size_um=2.5)
    return [later, earlier]


@pytest.fixture(scope="module")
def run_folder(series, tmp_path_factory):
    """A finished run's folder, with its NWB files written afterwards by ``cnmflow nwb``."""
    out = tmp_path_factory.mktemp("out")
    result = cnmflow.extract(series, out, params=PARAMS, nwb=False)   # NWB by `cnmflow nwb` below
    paths, placeholders = write_nwb_for_folder(out)
    return out, result, paths, placeholders


def _read(path: Path):
    io = NWBHDF5IO(str(path), "r")
    return io, io.read()


def _cellset_traces(path: Path) -> tuple[np.ndarray, object]:
    cells = isx.CellSet.read(str(path))
    traces = np.stack([cells.get_cell_trace_data(i) for i in range(cells.num_cells)], axis=1)
    return traces, cells


def _footprints(folder: Path) -> np.ndarray:
    """(K, rows, cols), each column of A reshaped in Fortran order."""
    estimates = read_caiman_hdf5(folder / "caiman_output.hdf5")
    rows, cols = estimates.dims
    return np.stack([estimates.A[:, k].toarray().ravel().reshape((rows, cols), order="F")
                     for k in range(estimates.K)])


def test_one_file_per_movie_in_the_users_order_with_each_movies_own_frames(run_folder, series):
    out, result, paths, _ = run_folder
    assert [p.name for p in paths] == ["ophys.000.nwb", "ophys.001.nwb"]
    starts = (LATER_START_S, EARLIER_START_S)
    for k, movie_path in enumerate(series):
        movie = isx.Movie.read(str(movie_path))
        raw, cells = _cellset_traces(out / f"cellset_raw.{k:03d}.isxd")
        io, nwb = _read(out / f"ophys.{k:03d}.nwb")
        with io:
            assert nwb.session_start_time == datetime.fromtimestamp(starts[k], tz=timezone.utc)
            assert nwb.session_start_time == isx_timing.time_to_datetime(movie.timing.start)
            series_ = nwb.processing["ophys"]["Fluorescence"]["RoiResponseSeries"]
            assert series_.data.shape == (movie.timing.num_samples, cells.num_cells)
            expected_times = np.arange(cells.timing.num_samples) * cells.timing.period.secs_float
            np.testing.assert_allclose(series_.get_timestamps(), expected_times, rtol=0, atol=1e-9)
            # the same values as the cell set, NaN where isx marks samples dropped
            np.testing.assert_allclose(series_.data[:], raw, rtol=1e-6, equal_nan=True)
            assert nwb.imaging_planes["ImagingPlane"].imaging_rate == pytest.approx(10.0)
            assert list(nwb.imaging_planes["ImagingPlane"].grid_spacing[:]) == [2.5, 2.5]
    io, nwb = _read(out / "ophys.000.nwb")
    with io:
        data = nwb.processing["ophys"]["Fluorescence"]["Denoised"].data[:]
        assert np.flatnonzero(np.isnan(data).any(axis=1)).tolist() == list(DROPPED)
        assert len(data) == 160   # the later movie's frames, although it is second in time


def test_masks_equal_the_footprints_and_traces_equal_the_model(run_folder, simulated):
    out, result, _, _ = run_folder
    estimates = result.extraction.estimates
    footprints = _footprints(out)
    offsets = result.extraction.offsets
    for k in (0, 1):
        first, stop = offsets[k]
        io, nwb = _read(out / f"ophys.{k:03d}.nwb")
        with io:
            ophys = nwb.processing["ophys"]
            masks = ophys["ImageSegmentation"]["PlaneSegmentation"]["image_mask"].data[:]
            assert masks.shape == (estimates.K, 56, 48)   # (x, y) = (width, height), as neuroconv writes
            np.testing.assert_allclose(masks.transpose(0, 2, 1), footprints, rtol=1e-6)
            valid = ~np.isnan(ophys["Fluorescence"]["Denoised"].data[:, 0])
            for name, values in (("Denoised", estimates.C), ("Deconvolved", estimates.S)):
                np.testing.assert_allclose(ophys["Fluorescence"][name].data[:][valid],
                                           values[:, first:stop].T[valid], rtol=1e-5, atol=1e-4)
            images = ophys["SegmentationImages"]
            np.testing.assert_allclose(images["correlation"].data[:].T, estimates.Cn, rtol=1e-6)
            assert images["mean"].data.shape == (56, 48)
            # the model's mean image is the movie's own to a few percent (1P: A·mean C + b0)
            movie_mean = simulated.movie[140:].mean(axis=0) if k == 0 else simulated.movie[:140].mean(axis=0)
            error = np.median(np.abs(images["mean"].data[:].T - movie_mean)) / np.median(np.abs(movie_mean))
            assert error < 0.05
            names = ophys["ImageSegmentation"]["PlaneSegmentation"]["cell_name"].data[:]
            assert list(names) == [f"C{i:03d}" for i in range(estimates.K)]


def test_processing_description_names_the_parameters_and_the_fingerprint(run_folder, tmp_path):
    out, result, _, _ = run_folder
    fingerprint = "f" * 64
    run = nwb_run_from_result(result.extraction, fingerprint=fingerprint)
    paths = write_nwb(tmp_path, run)
    io, nwb = _read(paths[1])
    with io:
        description = nwb.processing["ophys"].description
    assert f"Run fingerprint: {fingerprint}" in description
    parameters = json.loads(description.split("Effective parameters (CaImAn's names): ", 1)[1])
    assert parameters["min_pnr"] == 5 and parameters["gSiz"] == 13
    assert "earlier.isxd" in description and "frames [0, 140)" in description


def test_evaluated_statuses_become_roiextractors_accepted_and_rejected(run_folder, tmp_path):
    out, result, _, _ = run_folder
    run = nwb_run_from_result(result.extraction, evaluate=True)
    assert set(run.statuses) <= {"accepted", "rejected"}
    (path, _) = write_nwb(tmp_path, run)
    io, nwb = _read(path)
    with io:
        table = nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]
        assert list(table["status"].data[:]) == list(run.statuses)
        assert list(table["Accepted"].data[:]) == [s == "accepted" for s in run.statuses]
        assert list(table["Rejected"].data[:]) == [s == "rejected" for s in run.statuses]
    io, nwb = _read(out / "ophys.000.nwb")   # not evaluated: no accepted/rejected claims
    with io:
        assert "Accepted" not in nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"].colnames


def test_the_export_path_and_the_folder_path_write_the_same_data(run_folder, tmp_path):
    out, result, _, _ = run_folder
    from_result = write_nwb(tmp_path, nwb_run_from_result(result.extraction))
    for k, path in enumerate(from_result):
        io_a, a = _read(path)
        io_b, b = _read(out / path.name)
        with io_a, io_b:
            assert a.session_start_time == b.session_start_time
            for name in ("RoiResponseSeries", "Denoised", "Deconvolved"):
                series_a, series_b = (f.processing["ophys"]["Fluorescence"][name] for f in (a, b))
                np.testing.assert_array_equal(series_a.data[:], series_b.data[:])
                np.testing.assert_array_equal(series_a.get_timestamps(), series_b.get_timestamps())


def test_nwbinspector_finds_nothing_critical(run_folder, tmp_path):
    from nwbinspector import Importance, inspect_nwbfile

    out, *_ = run_folder
    for path in sorted(out.glob("ophys.*.nwb")):
        critical = [m for m in inspect_nwbfile(nwbfile_path=path) if m.importance == Importance.CRITICAL]
        assert critical == [], [m.message for m in critical]


def test_with_a_complete_metadata_file_dandis_checks_pass_too(run_folder, tmp_path):
    import yaml
    from nwbinspector import Importance, inspect_nwbfile, load_config

    out, *_ = run_folder
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    metadata = tmp_path / "nwb_metadata.yaml"
    metadata.write_text(yaml.safe_dump(METADATA))
    paths, placeholders = write_nwb_for_folder(folder, metadata=metadata, overwrite=True)
    assert placeholders == []
    serious = [m for m in inspect_nwbfile(nwbfile_path=paths[0], config=load_config("dandi"))
               if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)]
    assert serious == [], [m.message for m in serious]
    io, nwb = _read(paths[0])
    with io:
        assert nwb.subject.subject_id == "m12" and nwb.subject.species == "Mus musculus"
        plane = nwb.imaging_planes["ImagingPlane"]
        assert (plane.indicator, plane.location, plane.excitation_lambda) == ("GCaMP6f", "CA1", 455.0)
        assert plane.device.name == "nVista3" and nwb.session_id == "day1"
        assert not nwb.notes or "placeholder" not in nwb.notes


def test_roiextractors_reads_the_segmentation(run_folder):
    roiextractors = pytest.importorskip(
        "roiextractors", reason="roiextractors (the test extra) is not installed beside this numpy/Python")

    out, result, _, _ = run_folder
    footprints = _footprints(out)
    for k, n_frames in ((0, 160), (1, 140)):
        extractor = roiextractors.NwbSegmentationExtractor(out / f"ophys.{k:03d}.nwb")
        assert extractor.get_frame_shape() == (48, 56)
        assert extractor.get_num_samples() == n_frames
        assert extractor.get_sampling_frequency() == pytest.approx(10.0)
        np.testing.assert_allclose(extractor.get_roi_image_masks(), footprints.transpose(1, 2, 0), rtol=1e-6)
        np.testing.assert_allclose(extractor.get_images_dict()["correlation"], result.extraction.estimates.Cn,
                                   rtol=1e-6)
        del extractor


def test_the_files_are_in_the_manifest_and_have_a_lineage(run_folder):
    out, *_ = run_folder
    manifest = read_manifest(out)
    assert {name: (r["kind"], r["movie_index"]) for name, r in manifest["outputs"].items() if r["kind"] == "nwb"} \
        == {"ophys.000.nwb": ("nwb", 0), "ophys.001.nwb": ("nwb", 1)}
    assert verify_manifest(out) == []
    assert "later.isxd" in lineage_of(out / "ophys.000.nwb")
    assert not list(out.glob(".cnmflow-*"))


def test_placeholders_are_reported_and_written_into_the_files(run_folder):
    out, _, paths, placeholders = run_folder
    assert {"subject.subject_id", "subject.species", "imaging_plane.indicator", "device.name"} <= set(placeholders)
    io, nwb = _read(paths[0])
    with io:
        assert nwb.subject.subject_id == "unknown" and nwb.subject.sex == "U"
        assert "imaging_plane.indicator" in nwb.notes


def test_existing_files_are_replaced_only_when_asked(run_folder, tmp_path):
    out, *_ = run_folder
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    with pytest.raises(InputError, match=r"ophys\.000\.nwb already exists; pass --overwrite"):
        write_nwb_for_folder(folder)
    before = read_manifest(folder)["outputs"]["ophys.000.nwb"]["sha256"]
    write_nwb_for_folder(folder, overwrite=True)   # a new identifier: a new file
    assert read_manifest(folder)["outputs"]["ophys.000.nwb"]["sha256"] != before
    assert verify_manifest(folder) == []


def test_a_folder_without_a_finished_run_is_refused(run_folder, tmp_path):
    with pytest.raises(InputError, match="manifest"):
        write_nwb_for_folder(tmp_path)
    out, *_ = run_folder
    folder = tmp_path / "broken"
    shutil.copytree(out, folder)
    (folder / "caiman_output.hdf5").unlink()
    with pytest.raises(InputError, match=r"caiman_output\.hdf5 is missing"):
        nwb_run_from_folder(folder)


@pytest.mark.parametrize("text, suffix, message", [
    ("subject: [unclosed", ".yaml", "cannot be read"),
    ('{"subjekt": {}}', ".json", "unknown section"),
    ("subject: {name: Bob}", ".yaml", r"subject\.name is not a known key"),
    ("subject: {sex: female}", ".yaml", "subject.sex"),
    ("imaging_plane: {excitation_lambda: blue}", ".yaml", "wrong type"),
    ("session: {session_start_time: yesterday}", ".yml", "not an ISO 8601 time"),
    ("subject: {date_of_birth: 'last spring'}", ".yaml", r"subject\.date_of_birth 'last spring' is not an ISO"),
    ("subject: {}", ".txt", r"must end in \.yaml"),
])
def test_a_bad_metadata_file_is_refused_naming_the_file(tmp_path, text, suffix, message):
    path = tmp_path / f"meta{suffix}"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_nwb_metadata(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_json_metadata_file_with_a_utf8_byte_order_mark_is_read(tmp_path):
    """A JSON file saved by Notepad (byte-order mark first) was refused as 'cannot be read (Unexpected UTF-8 BOM)'."""
    path = tmp_path / "meta.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"subject": {"subject_id": "m12"}}).encode())
    assert read_nwb_metadata(path).subject["subject_id"] == "m12"


def test_tif_session_start_comes_from_the_metadata_else_the_run_time(simulated, tmp_path):
    movie = write_tiff(tmp_path / "movie.tif", simulated.movie[:200], fr=10.0)
    out = tmp_path / "out"
    cnmflow.extract([movie], out, params=PARAMS, nwb=False)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"session": {"session_start_time": "2024-05-02T10:31:00+02:00"}}))
    (path,), _ = write_nwb_for_folder(out, metadata=meta)
    io, nwb = _read(path)
    with io:
        assert nwb.session_start_time == datetime.fromisoformat("2024-05-02T10:31:00+02:00")
        series_ = nwb.processing["ophys"]["Fluorescence"]["RoiResponseSeries"]
        np.testing.assert_allclose(series_.get_timestamps(), np.arange(200) / 10.0, atol=1e-9)
    (path,), _ = write_nwb_for_folder(out, overwrite=True)
    io, nwb = _read(path)
    with io:
        assert nwb.session_start_time == datetime.fromisoformat(read_manifest(out)["created"])
        assert "time of the analysis run" in nwb.notes


def test_metadata_may_give_one_start_per_movie_but_not_a_wrong_count():
    metadata = nwb_metadata_from_dict({"session": {"session_start_time": ["2024-05-02T10:00:00", "2024-05-03"]}})
    assert metadata.start_time(1, 2) == datetime(2024, 5, 3, tzinfo=timezone.utc)
    with pytest.raises(InputError, match="lists 2 times for 3 movies"):
        metadata.check_movie_count(3)


def test_a_wrong_start_time_count_is_refused_before_any_file_is_written(run_folder, tmp_path):
    out, result, _, _ = run_folder
    metadata = nwb_metadata_from_dict({"session": {"session_start_time": ["2024-05-02T10:00:00"] * 3}})
    with pytest.raises(InputError, match="lists 3 times for 2 movies"):
        write_nwb(tmp_path, nwb_run_from_result(result.extraction), metadata=metadata)
    assert list(tmp_path.iterdir()) == []


def test_a_run_without_cells_still_gets_a_file(tmp_path):
    noise = np.random.default_rng(0).normal(100.0, 5.0, size=(200, 40, 40)).astype(np.float32)
    movie = write_tiff(tmp_path / "noise.tif", noise, fr=10.0)
    result = cnmflow.extract([movie], tmp_path / "out", params=PARAMS, nwb=False)
    assert result.extraction.estimates.K == 0
    (path,), _ = write_nwb_for_folder(tmp_path / "out")
    io, nwb = _read(path)
    with io:
        assert len(nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"]) == 0
        assert "Fluorescence" not in nwb.processing["ophys"].data_interfaces


def test_cnmflow_nwb_on_the_command_line(run_folder, tmp_path, capsys):
    out, *_ = run_folder
    folder = tmp_path / "copy"
    shutil.copytree(out, folder)
    assert main(["nwb", str(folder)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["nwb", str(folder), "--overwrite"]) == 0
    printed = capsys.readouterr()
    assert str(folder / "ophys.001.nwb") in printed.out and "placeholders" in printed.err
    assert main(["nwb", str(tmp_path / "nowhere")]) == 2


def test_a_real_inscopix_movie_keeps_its_start_and_pixel_size(real_isxd_run, tmp_path):
    from nwbinspector import Importance, inspect_nwbfile

    movie, extracted = real_isxd_run  # extracted without NWB files (shared with test_export): a copy gets them
    (path,), _ = write_nwb_for_folder(shutil.copytree(extracted, tmp_path / "out"))
    source = isx.Movie.read(str(movie))
    height, width = (float(isx_timing.as_fraction(v))
                     for v in (source.spacing._impl.pixel_height, source.spacing._impl.pixel_width))
    io, nwb = _read(path)
    with io:
        assert nwb.session_start_time == isx_timing.time_to_datetime(source.timing.start)
        assert list(nwb.imaging_planes["ImagingPlane"].grid_spacing[:]) == [width, height]
        assert nwb.imaging_planes["ImagingPlane"].imaging_rate == pytest.approx(1 / source.timing.period.secs_float)
    assert not [m for m in inspect_nwbfile(nwbfile_path=path) if m.importance == Importance.CRITICAL]


def test_the_2p_mean_image_adds_the_low_rank_background(tmp_path):
    from cnmflow.outputs.nwb import model_mean_image
    from cnmflow.synthetic import simulate_2p

    simulated = simulate_2p(shape=(48, 48), n_frames=300, n_neurons=6, nb=2, gsig=3.0, fr=30.0, rng=2)
    movie = write_tiff(tmp_path / "twophoton.tif", simulated.movie, fr=30.0)
    result = cnmflow.extract([movie], tmp_path / "out", preset="2p", nwb=False,
                             params={"gSig": 3, "gSiz": 7, "rf": None, "K": 8, "n_processes": 1})
    estimates = result.extraction.estimates
    mean = model_mean_image(estimates, (0, 300))
    movie_mean = simulated.movie.mean(axis=0)
    assert np.corrcoef(mean.ravel(), movie_mean.ravel())[0, 1] > 0.95
    assert np.median(np.abs(mean - movie_mean)) < 0.1 * np.median(np.abs(movie_mean))
    (path,), _ = write_nwb_for_folder(tmp_path / "out")
    io, nwb = _read(path)
    with io:
        np.testing.assert_allclose(nwb.processing["ophys"]["SegmentationImages"]["mean"].data[:].T, mean)


def test_cnmflow_nwb_records_the_nwb_settings_a_later_run_compares(run_folder):
    from cnmflow.outputs.nwb_metadata import NwbMetadata, nwb_settings
    from cnmflow.plan import outputs_match

    out, *_ = run_folder
    run = read_manifest(out)["run"]
    assert run["nwb"] == nwb_settings(True, NwbMetadata())
    assert outputs_match(out, run["fingerprint"], evaluate=False, nwb=nwb_settings(True, None))
    assert not outputs_match(out, run["fingerprint"], evaluate=False, nwb=nwb_settings(False))
