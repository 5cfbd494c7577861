"""SIGKILL at every stage of a run, concurrent runs into one folder, an overwrite killed mid-swap.

Each faulty run is a real process (tests/faults/driver.py) that kills itself with SIGKILL where
told — no cleanup code runs, exactly as with the OOM killer or ``kill -9``.  After each: nothing
looks finished, nothing is lost, nothing blocks, and the next run succeeds and leaves a folder
holding exactly its manifest's files.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cnmflow
from cnmflow.lineage import read_manifest, verify_manifest
from cnmflow.outputs import export as export_module
from cnmflow.outputs.folder_lock import LOCK_NAME, lock_output_dir
from cnmflow.outputs.result_swap import JOURNAL_NAME
from cnmflow.plan import outputs_match, plan_run
from tests.faults.quick_previews import quick_preview
from tests.runs import small_movie

DRIVER = Path(__file__).with_name("driver.py")
REPO = Path(__file__).resolve().parents[2]
TABLE = {"gSig": 3, "gSiz": 13, "min_corr": 0.8, "rf": None, "n_processes": 1, "min_pnr": 8.0}
KILLED = -signal.SIGKILL
TIMEOUT_S = 180


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> Path:
    return small_movie(tmp_path_factory.mktemp("movie"), rng=11, n_neurons=5, peak_snr=(6, 14))


@pytest.fixture(autouse=True)
def quick_runs(private_cache, monkeypatch):
    """A private extraction cache, and placeholder previews here as in the driver."""
    monkeypatch.setattr(export_module, "safe_preview", quick_preview)


def start(mode: str, movie: Path, out: Path, *options: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), mode, str(movie), str(out), *options], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=TIMEOUT_S)
    return process.returncode, out, err


def assert_not_finished(out: Path) -> None:
    assert not (out / "manifest.json").exists() or not outputs_match(out, "any", evaluate=False)


def assert_not_blocking(out: Path) -> None:
    with lock_output_dir(out):   # a dead run's lock is taken over at once
        pass


def assert_exactly_one_complete_set(out: Path) -> dict:
    """The folder holds its manifest's files, intact, and nothing else (no work copy, staging, lock).

    The command line's run logs (``.cnmflow-logs``) are kept on purpose.
    """
    manifest = read_manifest(out)
    assert verify_manifest(out) == []
    assert sorted(set(os.listdir(out)) - {".cnmflow-logs"}) == sorted([*manifest["outputs"], "manifest.json"])
    return manifest


def min_pnr(out: Path) -> float:
    return read_manifest(out)["parameters"]["min_pnr"]["value"]


def test_kill_at_validate_concatenate_fit_and_export_then_rerun(tmp_path):
    # compressed: a run makes a work copy of it (an uncompressed TIFF is read in place)
    movie = small_movie(tmp_path, rng=11, n_neurons=5, peak_snr=(6, 14), compression="zlib")
    stages = ("validate", "concatenate", "merge", "export")   # merge: inside the fit, the work copy complete
    runs = {stage: start("library", movie, tmp_path / stage, "--kill-at", stage) for stage in stages}
    for stage, process in runs.items():
        assert finish(process)[0] == KILLED, stage

    assert (tmp_path / "validate" / LOCK_NAME).exists(), "the dead run's lock file is left behind"
    assert list((tmp_path / "concatenate" / ".cnmflow-work").glob(".writing-*")), "half a work copy is left"
    assert list((tmp_path / "merge" / ".cnmflow-work").glob("series-*/*.float32")), "the work copy is left"
    assert list((tmp_path / "export").glob(".cnmflow-export-*/caiman_output.hdf5")), "half the staged set is left"
    for stage in stages:
        out = tmp_path / stage
        assert_not_finished(out)
        assert_not_blocking(out)
        cnmflow.extract([movie], out, params=TABLE)
        assert_exactly_one_complete_set(out)


def test_kill_while_moving_the_files_into_place_then_rerun(movie, tmp_path):
    out = tmp_path / "out"
    assert finish(start("library", movie, out, "--kill-after-moves", "6"))[0] == KILLED
    assert (out / JOURNAL_NAME).exists() and not (out / "manifest.json").exists(), "must not look finished"
    assert_not_blocking(out)

    outputs_match(out, "any", evaluate=False)   # whoever opens the folder next finishes the committed swap
    assert_exactly_one_complete_set(out)        # the killed run's staged set was complete: rolled forward
    cnmflow.extract([movie], out, params=TABLE, overwrite=True)
    assert_exactly_one_complete_set(out)


def test_overwrite_killed_mid_swap_ends_as_the_new_set_never_a_mix(movie, tmp_path):
    """The brief's case: an old run with cells (event sets) replaced by a run with none."""
    old_dir = tmp_path / "old"
    old = set(cnmflow.extract([movie], old_dir, params={**TABLE, "min_pnr": 5.0}).outputs.files)
    assert "neural_events.000.isxd" in old
    kills = {"moving-old-out": 3, "moving-new-in": len(old) + 3}
    runs = {}
    for name, moves in kills.items():
        shutil.copytree(old_dir, tmp_path / name)
        runs[name] = start("library", movie, tmp_path / name, "--overwrite", "--min-pnr", "12",
                           "--kill-after-moves", str(moves))
    for name, process in runs.items():
        out = tmp_path / name
        assert finish(process)[0] == KILLED, name
        assert not (out / "manifest.json").exists(), "a half-swapped folder must not look finished"
        assert not outputs_match(out, "any", evaluate=False)   # opening the folder rolls the swap forward
        manifest = assert_exactly_one_complete_set(out)
        assert min_pnr(out) == 12.0 and manifest["run"]["n_components"] == 0
        assert not (out / "neural_events.000.isxd").exists(), "no event set of the old run beside 0-cell sets"


def test_two_runs_into_one_folder_one_wins_the_other_is_refused(movie, tmp_path):
    out, held, release = tmp_path / "out", tmp_path / "held", tmp_path / "release"
    winner = start("library", movie, out, "--hold-at", "merge", "--hold-file", str(held),
                   "--release-file", str(release))
    deadline = time.monotonic() + TIMEOUT_S
    while not held.exists():
        assert winner.poll() is None and time.monotonic() < deadline, finish(winner)
        time.sleep(0.1)
    code, _, stderr = finish(start("cli", movie, out, "--min-pnr", "12"))   # `cnmflow run`, other parameters
    assert code == 2, stderr
    (message,) = stderr.strip().splitlines()
    assert str(out) in message and "in use by another cnmflow run" in message
    assert f"pid {winner.pid} on " in message and "since " in message
    release.write_text("go")
    assert finish(winner)[0] == 0
    assert_exactly_one_complete_set(out)
    assert min_pnr(out) == 8.0


@pytest.mark.usefixtures("prefect_harness")
def test_cli_run_killed_while_tracking_keeps_the_outputs_and_the_rerun_is_up_to_date(movie, tmp_path):
    from prefect.settings import PREFECT_API_URL

    out = tmp_path / "out"
    process = start("cli", movie, out, "--kill-in-tracking", env={"PREFECT_API_URL": PREFECT_API_URL.value()})
    assert finish(process)[0] == KILLED
    assert verify_manifest(out) == [], "the outputs were complete before tracking started"
    assert not read_manifest(out)["run_ids"].get("mlflow_run_id")
    assert_not_blocking(out)

    plan = plan_run([movie], out, table=TABLE)
    plan.release()
    assert plan.up_to_date
    assert_exactly_one_complete_set(out)
