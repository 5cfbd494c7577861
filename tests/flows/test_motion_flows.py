"""Motion correction through Prefect (issue #17): the task between concatenation and extraction, and
the ``motion-correction`` flow on its own."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from cnmflow.lineage import read_manifest, verify_manifest
from cnmflow.params_form import MotionForm
from cnmflow.params_form import form_with
from cnmflow.synthetic import simulate_realistic_1p, write_tiff
from cnmflow.flows.motion_correction import motion_correction
from cnmflow.flows.source_extraction import source_extraction

pytestmark = pytest.mark.usefixtures("prefect_harness", "private_cache")

TABLE = {"gSig": 3, "gSiz": 13, "min_corr": 0.7, "min_pnr": 5, "rf": 0, "n_processes": 1}


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> Path:
    sim = simulate_realistic_1p("cortex_l23", shape=(64, 64), n_frames=200, rng=4, motion_px=1.0)
    return write_tiff(tmp_path_factory.mktemp("movie") / "moving.tif", sim.movie, fr=20.0)


def _task_names(flow_run_id) -> list[str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(run.name.rsplit("-", 1)[0] for run in runs)


def test_the_flow_corrects_between_concatenation_and_extraction(movie, tmp_path):
    out = tmp_path / "out"
    table = {**TABLE, "motion_correction": "rigid", "gSig_filt": [3, 3], "max_shifts": [6, 6]}
    report = source_extraction(movies=[str(movie)], output_dir=str(out), params=form_with("1p", table),
                               track_run=False)
    manifest = read_manifest(out)
    assert verify_manifest(out) == [] and report.n_components > 0
    assert "motion_correction" in _task_names(manifest["run_ids"]["prefect_flow_run_id"])
    with h5py.File(out / "caiman_output.hdf5", "r") as h5:
        assert h5["estimates/shifts"].shape == (200, 2)
    assert manifest["run"]["motion_correction"]["method"] == "rigid"
    assert manifest["parameters"]["gSig_filt"]["value"] == [3, 3]
    assert not (out / ".cnmflow-work").exists(), "both work copies are removed"
    again = source_extraction(movies=[str(movie)], output_dir=str(out), params=form_with("1p", table),
                              track_run=False)
    assert again.up_to_date
    other = source_extraction(movies=[str(movie)], output_dir=str(tmp_path / "off"), params=form_with("1p", TABLE),
                              track_run=False)
    off = read_manifest(tmp_path / "off")
    assert "motion_correction" not in _task_names(off["run_ids"]["prefect_flow_run_id"])
    assert other.n_components > 0 and off["run"]["fingerprint"] != manifest["run"]["fingerprint"]


def test_the_motion_correction_flow_alone(movie, tmp_path):
    out = tmp_path / "mc"
    form = MotionForm(gSig_filt=[3, 3], max_shifts=[6, 6], n_processes=1)
    done = motion_correction(movies=[str(movie)], output_dir=str(out), params=form)
    assert "motion_corrected.000.tif" in done["files"] and verify_manifest(out) == []
    corrected = tifffile.imread(out / "motion_corrected.000.tif")
    assert corrected.shape == (200, 64, 64) and corrected.dtype == np.float32
    with h5py.File(out / "motion_shifts.hdf5", "r") as h5:
        assert np.abs(h5["estimates/shifts"][()]).max() == pytest.approx(done["max_shift_px"], abs=1e-4)


def test_save_motion_corrected_writes_the_corrected_movie_with_the_extraction(movie, tmp_path):
    from cnmflow.errors import ParameterError
    from cnmflow.motion import correct_motion, motion_params

    out = tmp_path / "out"
    table = {**TABLE, "motion_correction": "rigid", "gSig_filt": [3, 3], "max_shifts": [6, 6]}
    source_extraction(movies=[str(movie)], output_dir=str(out), params=form_with("1p", table), track_run=False,
                      save_motion_corrected=True)
    frames = tifffile.imread(movie).astype(np.float32)
    expected = np.empty_like(frames)
    correct_motion(frames, expected, params=motion_params(motion_correction="rigid", gSig_filt=3, max_shifts=6))
    np.testing.assert_array_equal(tifffile.imread(out / "motion_corrected.000.tif"), expected)
    assert read_manifest(out)["outputs"]["motion_corrected.000.tif"]["kind"] == "motion_corrected"
    assert verify_manifest(out) == []
    with pytest.raises(ParameterError, match="save_motion_corrected"):
        source_extraction(movies=[str(movie)], output_dir=str(tmp_path / "off"), params=form_with("1p", TABLE),
                          track_run=False, save_motion_corrected=True)
    assert not (tmp_path / "off" / "caiman_output.hdf5").exists()


def test_a_motion_correction_run_on_a_missing_movie_fails_with_a_failure_summary(tmp_path):
    from cnmflow.errors import InputError
    from tests.runs import flow_run_artifacts

    missing = tmp_path / "no_such_movie.tif"
    state = motion_correction(movies=[str(missing)], output_dir=str(tmp_path / "out"), return_state=True)
    assert state.is_failed() and state.message.startswith("validate:") and "no_such_movie.tif" in state.message
    with pytest.raises(InputError):
        state.result()
    by_key = flow_run_artifacts(state.state_details.flow_run_id)
    failure = by_key["motion-correction-failure"].data
    assert failure.startswith("# Motion correction failed in validate") and str(missing) in failure
    assert by_key["motion-correction-progress"].description.startswith("FAILED in validate:")
