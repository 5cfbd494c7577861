"""The plan decides before any compute: refused, up to date, or which work copies the fit needs."""

from __future__ import annotations

import shutil

import pytest

from cnmflow.errors import InputError, MovieError, ParameterError
from cnmflow.outputs.export import export
from cnmflow.outputs.isxd_sets import OutputExistsError
from cnmflow.pipeline import extract
from cnmflow.plan import check_nwb_options, check_run_options, needs_tracking, plan_run, work_steps
from cnmflow.request import RunRequest
from tests.runs import TABLE, small_movie


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    return small_movie(tmp_path_factory.mktemp("movie"), rng=13)


@pytest.fixture(scope="module")
def finished(movie, tmp_path_factory):
    """An output folder holding a finished run of TABLE as the flow writes it (fingerprinted; no NWB, quick)."""
    out = tmp_path_factory.mktemp("finished") / "out"
    plan = plan_run([movie], out, RunRequest(table=TABLE), nwb=False)
    try:
        extraction = extract(plan.inputs, out, series_key=plan.series_key)
        export(extraction, out, hashes=plan.hashes, fingerprint=plan.fingerprint, nwb=False)
    finally:
        plan.release()
    return out


def test_a_folder_holding_this_run_is_up_to_date(movie, finished):
    plan = plan_run([movie], finished, RunRequest(table=TABLE), nwb=False)
    plan.release()
    assert plan.up_to_date and plan.output_dir == finished
    assert not needs_tracking(finished, track_run=False) and needs_tracking(finished, track_run=True)


def test_other_parameters_are_refused_unless_overwriting(movie, finished):
    other = RunRequest(table={**TABLE, "min_pnr": 9})
    with pytest.raises(OutputExistsError, match="already holds outputs"):
        plan_run([movie], finished, other, nwb=False)
    plan = plan_run([movie], finished, other, nwb=False, overwrite=True)
    plan.release()
    assert not plan.up_to_date and plan.overwrite


def test_nwb_settings_decide_up_to_date(movie, finished):
    with pytest.raises(OutputExistsError):
        plan_run([movie], finished, RunRequest(table=TABLE), nwb=True)


def test_the_plan_holds_the_folder_until_released(movie, tmp_path):
    from cnmflow.outputs.folder_lock import FolderBusyError
    from tests.outputs.holders import holding_folder

    out = tmp_path / "out"
    with holding_folder(out):
        with pytest.raises(FolderBusyError):
            plan_run([movie], out, RunRequest(table=TABLE))


def test_work_steps_skip_the_copies_when_the_components_are_cached(movie, tmp_path):
    plan = plan_run([movie], tmp_path / "still", RunRequest(table=TABLE))
    plan.release()
    assert work_steps(plan, cached=True).concatenate is False
    fresh = work_steps(plan, cached=False)
    assert fresh.concatenate and not fresh.correct_motion and not fresh.reused

    moving = plan_run([movie], tmp_path / "moving", RunRequest(table={**TABLE, "motion_correction": "rigid"}))
    moving.release()
    assert moving.corrects_motion
    assert not work_steps(moving, cached=True).concatenate
    kept = work_steps(moving, cached=True, save_motion_corrected=True)
    assert kept.concatenate and kept.correct_motion and kept.reused


def test_options_outside_the_parameters_are_refused_before_compute(movie, tmp_path):
    plan = plan_run([movie], tmp_path / "out", RunRequest(table=TABLE))
    plan.release()
    with pytest.raises(ParameterError, match="save_motion_corrected needs motion correction"):
        check_run_options(plan, save_motion_corrected=True)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(InputError, match="work_dir .* is a file"):
        check_run_options(plan, work_dir=tmp_path / "a_file")


def test_nwb_metadata_without_nwb_is_refused(tmp_path):
    metadata = tmp_path / "nwb.yaml"
    metadata.write_text("subject: {subject_id: m1}\n")
    assert check_nwb_options(True, None, n_movies=1) is None
    with pytest.raises(InputError, match="NWB output is off"):
        check_nwb_options(False, metadata, n_movies=1)


def test_a_copy_listed_with_its_original_is_refused_when_the_inputs_are_hashed(movie, tmp_path):
    """``day1.tif`` and ``day1 - Copy.tif``: names and inodes differ, the bytes do not. The series once ran as the
    recording followed by itself (every cell's activity twice); the hashes the plan makes before any compute tell."""
    copy = tmp_path / "movie - Copy.tif"
    shutil.copyfile(movie, copy)
    with pytest.raises(MovieError) as err:
        plan_run([movie, copy], tmp_path / "out", RunRequest(table=TABLE), nwb=False)
    message = str(err.value)
    said = (f"{movie} and {copy} hold the same bytes", f"{movie} and {copy} hold the same frames")  # frames: validation
    assert message.startswith(said) and "list each movie once" in message
    assert not (tmp_path / "out" / "manifest.json").exists()
