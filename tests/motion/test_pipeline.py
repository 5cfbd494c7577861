"""Motion correction inside a run (issue #17): library end to end, resuming a killed correction,
motion off leaving the run as it was, and ``cnmflow motion-correct`` alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

import cnmflow
from cnmflow.cli import main as cli_main
from cnmflow.engine import fit
from cnmflow.motion import correct_motion, motion_params
from cnmflow.scoring import score
from cnmflow.synthetic import simulate_realistic_1p, write_tiff
from tests.motion.kill_driver import TABLE as KILL_TABLE

REPO = Path(__file__).resolve().parents[2]
TABLE = {"gSig": 3, "gSiz": 13, "min_corr": 0.7, "min_pnr": 5, "rf": None, "n_processes": 1}
RIGID = {"motion_correction": "rigid", "gSig_filt": 3, "max_shifts": 8}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """The same 128x128x500 realistic 1P recording still and with brain motion (sd 1.1 px, known shifts)."""
    folder = tmp_path_factory.mktemp("recordings")
    still = simulate_realistic_1p("cortex_l23", shape=(128, 128), n_frames=500, rng=2)
    moving = simulate_realistic_1p("cortex_l23", shape=(128, 128), n_frames=500, rng=2, motion_px=1.1)
    write_tiff(folder / "still.tif", still.movie, fr=20.0)
    write_tiff(folder / "moving.tif", moving.movie, fr=20.0)
    return folder, still.truth, moving.truth.shifts


@pytest.fixture(scope="module")
def small_moving(tmp_path_factory) -> Path:
    """64x64x200 with motion: for the runs that test plumbing, not accuracy."""
    sim = simulate_realistic_1p("cortex_l23", shape=(64, 64), n_frames=200, rng=4, motion_px=1.0)
    return write_tiff(tmp_path_factory.mktemp("small") / "small.tif", sim.movie, fr=20.0)


def test_corrected_run_finds_the_cells_of_the_still_recording(recordings, tmp_path):
    folder, truth, true_shifts = recordings
    still = cnmflow.extract([folder / "still.tif"], tmp_path / "still", params=TABLE)
    corrected = cnmflow.extract([folder / "moving.tif"], tmp_path / "corrected", params={**TABLE, **RIGID})
    f1_still = score(truth.footprints, still.extraction.estimates.footprints()).f1
    f1_corrected = score(truth.footprints, corrected.extraction.estimates.footprints()).f1
    assert f1_corrected >= f1_still - 0.05, (f1_still, f1_corrected)

    with h5py.File(tmp_path / "corrected" / "caiman_output.hdf5", "r") as h5:
        shifts = h5["estimates/shifts"][()]
        assert h5["params/motion/max_shifts"][()].tolist() == [8, 8]
    assert shifts.shape == (500, 2)
    error = shifts + true_shifts            # applied shift = -true motion, up to the template's offset
    error -= error.mean(axis=0)
    assert np.sqrt((error ** 2).mean()) < 0.3
    summary = json.loads((tmp_path / "corrected" / "output_metadata.json").read_text())["motion_correction"]
    manifest = json.loads((tmp_path / "corrected" / "manifest.json").read_text())
    assert summary["method"] == "rigid" and summary["max_shift_px"] == pytest.approx(np.abs(shifts).max(), abs=1e-3)
    assert manifest["run"]["motion_correction"] == summary
    assert manifest["parameters"]["motion_correction"] == {"value": "rigid", "source": "table", "default": "none"}
    assert {"motion_shifts.png", "motion_shifts.svg", "motion_images.png", "motion_images.svg"} <= set(
        manifest["outputs"])
    assert "motion_correction" in manifest["run"]["timings_s"]
    # footprints stay in the input's pixel frame: same size as the movie
    assert corrected.extraction.estimates.A.shape[0] == 128 * 128
    # ... and no cell peaks on the edge the shifts left without data: its filled pixels flicker as the frame moves
    crop, estimates = summary["crop_px"], corrected.extraction.estimates
    assert max(crop.values()) > 0
    footprints = estimates.footprints()[estimates.accepted]
    rows, cols = np.unravel_index(footprints.reshape(len(footprints), -1).argmax(axis=1), (128, 128))
    assert np.all((rows >= crop["top"]) & (rows < 128 - crop["bottom"]) & (cols >= crop["left"])
                  & (cols < 128 - crop["right"]))


def test_motion_off_runs_as_before(small_moving, tmp_path):
    """No correction step, no motion files, empty estimates.shifts; the components are the plain fit's."""
    run = cnmflow.extract([small_moving], tmp_path / "out", params=TABLE)
    assert run.extraction.motion is None
    assert not [name for name in os.listdir(tmp_path / "out") if name.startswith("motion")]
    with h5py.File(tmp_path / "out" / "caiman_output.hdf5", "r") as h5:
        assert h5["estimates/shifts"].shape == (0,)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "motion_correction" not in manifest["run"] and "motion_correction" not in manifest["run"]["timings_s"]
    direct = fit(tifffile.imread(small_moving).astype(np.float32), run.extraction.inputs.resolved.params)
    np.testing.assert_array_equal(run.extraction.estimates.C, direct.C)
    np.testing.assert_array_equal(run.extraction.estimates.A.toarray(), direct.A.toarray())


def test_a_params_file_motion_group_applies(small_moving, tmp_path):
    params_file = tmp_path / "normcorre.json"
    params_file.write_text(json.dumps({"motion": {"pw_rigid": False, "max_shifts": [5, 5], "gSig_filt": [3, 3],
                                                  "border_nan": "copy", "upsample_factor_grid": 4}}))
    run = cnmflow.extract([small_moving], tmp_path / "out", params={**TABLE, "motion_correction": "rigid"},
                          params_file=params_file, overwrite_params=True)
    resolved = run.extraction.inputs.resolved
    assert resolved.params.max_shifts == (5, 5) and resolved.params.gSig_filt == (3, 3)
    assert resolved.sources["max_shifts"] == f"file {params_file}"
    assert not any("groups not used" in note for note in resolved.notes)      # motion is no longer ignored
    assert any("motion.upsample_factor_grid" in note for note in resolved.notes)   # a CaImAn-only key: reported
    assert run.extraction.motion.result.max_shift() <= 5 + 1e-6


def test_a_correction_killed_mid_write_is_not_reused(small_moving, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "CNMFLOW_CHUNK_MB": "0.1", "PYTHONPATH": str(REPO)}   # ~6 frames per chunk
    killed = subprocess.run([sys.executable, str(Path(__file__).with_name("kill_driver.py")), str(small_moving),
                             str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    work = out / ".cnmflow-work"
    staged = [entry for entry in work.iterdir() if entry.name.startswith(".writing-")]
    assert any((entry / "corrected.f32").is_file() and not (entry / "motion.pkl").exists() for entry in staged)
    assert not [entry for entry in work.iterdir() if entry.name.startswith("series-mc")], "nothing finished"

    resumed = cnmflow.extract([small_moving], out, params=KILL_TABLE)
    clean = cnmflow.extract([small_moving], tmp_path / "clean", params=KILL_TABLE)
    np.testing.assert_array_equal(resumed.extraction.motion.result.shifts_rig, clean.extraction.motion.result.shifts_rig)
    np.testing.assert_array_equal(resumed.extraction.estimates.C, clean.extraction.estimates.C)
    assert not work.exists(), "the killed run's staging and the copies are gone"


def test_motion_correct_command_writes_the_engine_frames(small_moving, tmp_path):
    out = tmp_path / "mc"
    status = cli_main(["motion-correct", str(small_moving), "--output-dir", str(out), "--set", "gSig_filt=3",
                       "--set", "max_shifts=6", "--set", "n_processes=1", "--no-progress"])
    assert status == 0
    movie = tifffile.imread(small_moving).astype(np.float32)
    expected = np.empty_like(movie)
    result = correct_motion(movie, expected, params=motion_params(motion_correction="rigid", gSig_filt=3,
                                                                  max_shifts=6))
    written = tifffile.imread(out / "motion_corrected.000.tif")
    assert written.dtype == np.float32
    np.testing.assert_array_equal(written, expected)
    with tifffile.TiffFile(out / "motion_corrected.000.tif") as tif:
        assert tif.imagej_metadata["finterval"] == pytest.approx(1 / 20.0)
    with h5py.File(out / "motion_shifts.hdf5", "r") as h5:
        np.testing.assert_array_equal(h5["estimates/shifts"][()], result.shifts_rig)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"]["motion_corrected.000.tif"]["kind"] == "motion_corrected"
    assert not (out / ".cnmflow-work").exists()
    again = cli_main(["motion-correct", str(small_moving), "--output-dir", str(out), "--no-progress"])
    assert again == 2                                                   # refused: the folder holds a run


def test_motion_correct_refuses_a_shift_that_does_not_fit_before_compute(small_moving, tmp_path, capsys):
    status = cli_main(["motion-correct", str(small_moving), "--output-dir", str(tmp_path / "mc"),
                       "--set", "max_shifts=40", "--no-progress"])
    assert status == 2 and "max_shifts" in capsys.readouterr().err
    assert not (tmp_path / "mc" / "motion_corrected.000.tif").exists()


def test_motion_correct_keeps_an_isxd_inputs_timing(tmp_path):
    from tests.paths import IDEAS

    source = IDEAS / "movie_part2_108x123x63.isxd"
    if not source.is_file():
        pytest.skip("sample isxd not available")
    isx = pytest.importorskip("isx")
    status = cli_main(["motion-correct", str(source), "--output-dir", str(tmp_path), "--set", "max_shifts=5",
                       "--set", "n_processes=1", "--no-progress"])
    assert status == 0
    original, corrected = isx.Movie.read(str(source)), isx.Movie.read(str(tmp_path / "motion_corrected.000.isxd"))
    assert corrected.timing == original.timing and corrected.spacing == original.spacing
    assert corrected.data_type == np.float32


def test_motion_parameters_reach_mlflow_and_the_parameters_artifact(tmp_path):
    from cnmflow.params import resolve_params
    from cnmflow.params_file import resolve_run_params
    from cnmflow.tracking.params import caiman_params_document, flatten_params

    params = resolve_params(table={"motion_correction": "piecewise_rigid", "max_shifts": 5, "strides": 48,
                                   "overlaps": 24, "gSig_filt": 3}).params
    flat = flatten_params(params)
    assert flat["motion.max_shifts"] == (5, 5) and flat["motion.pw_rigid"] is True
    assert flat["cnmflow.motion_correction"] == "piecewise_rigid"
    document = tmp_path / "params.json"
    document.write_text(json.dumps(caiman_params_document(params)))
    reread = resolve_run_params(params_file=document, overwrite_params=True).params
    assert reread.motion == params.motion
