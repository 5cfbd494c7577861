"""The watch-folder flow against a throwaway Prefect server: each new movie or series runs once.

Extractions of the same small movie with the same parameters hit the extraction cache after
the first one, which keeps this module quick.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from cnmflow.params_form import form_with
from cnmflow.synthetic import simulate_1p, write_tiff
from cnmflow.watch import LEDGER_NAME, Ledger
from cnmflow.watch.hashing import content_id, sha256_file
from cnmflow.watch.ledger import Member
from cnmflow.watch.owner import Owner
from cnmflow.watch.summary import ALREADY_DONE, BUSY, EXTRACTED, FAILED, GAVE_UP, GROWING
from cnmflow.flows.watch_folder import watch_folder

pytestmark = pytest.mark.usefixtures("prefect_harness")

PARAMS = form_with("1p", {"rf": None, "gSiz": 13, "min_corr": 0.8, "min_pnr": 8})


def _movie_bytes(tmp_path_factory, rng: int, n_frames: int = 200) -> bytes:
    simulated = simulate_1p(shape=(40, 48), n_frames=n_frames, n_neurons=4, gsig=3.0, fr=10.0, peak_snr=(8, 12),
                            rng=rng)
    return write_tiff(tmp_path_factory.mktemp("movie") / "m.tif", simulated.movie, fr=10.0).read_bytes()


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> bytes:
    return _movie_bytes(tmp_path_factory, 5)


@pytest.fixture(scope="module")
def halves(tmp_path_factory) -> tuple[bytes, bytes]:
    """Two short movies of one session (a series)."""
    return _movie_bytes(tmp_path_factory, 6, 100), _movie_bytes(tmp_path_factory, 7, 100)


def _put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _scan(folder: Path, out: Path, **options):
    return watch_folder(folder=str(folder), output_root=str(out), params=PARAMS, **options)


def _statuses(summary) -> dict[str, str]:
    return {o.item: o.status for o in summary.outcomes}


def _artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        only_this_run = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        return client.read_artifacts(artifact_filter=only_this_run)


def _child_run(run_id: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(uuid.UUID(run_id))


def test_a_new_movie_is_processed_once(tmp_path, movie):
    folder, out = tmp_path / "in", tmp_path / "out"
    _put(folder / "day1.tif", movie)
    first = _scan(folder, out)
    assert first.started == 0 and _statuses(first) == {"day1.tif": GROWING}
    state = watch_folder(folder=str(folder), output_root=str(out), params=PARAMS, return_state=True)
    second = state.result()
    assert second.started == 1 and _statuses(second) == {"day1.tif": EXTRACTED}
    (artifact,) = _artifacts(state.state_details.flow_run_id)
    assert "day1.tif" in artifact.data and "extracted" in artifact.data
    (outcome,) = second.outcomes
    assert outcome.output_dir == str(out / "day1") and (out / "day1" / "manifest.json").is_file()
    with Ledger(out / LEDGER_NAME) as ledger:
        (job,) = ledger.jobs()
    assert (job.state, job.attempts, job.run_id) == ("done", 1, outcome.run_id)
    child = _child_run(job.run_id)
    assert child.parent_task_run_id is not None  # shown as a child run of the scan
    third = _scan(folder, out)
    assert third.started == 0 and _statuses(third) == {"day1.tif": ALREADY_DONE}


def test_a_growing_file_waits_until_it_is_stable(tmp_path, movie):
    folder, out = tmp_path / "in", tmp_path / "out"
    target = folder / "growing.tif"
    _put(target, movie[: len(movie) // 3])
    assert _statuses(_scan(folder, out)) == {"growing.tif": GROWING}
    _put(target, movie)
    changed = _scan(folder, out)
    assert _statuses(changed) == {"growing.tif": GROWING} and "changed" in changed.outcomes[0].detail
    assert _statuses(_scan(folder, out)) == {"growing.tif": EXTRACTED}


def test_two_concurrent_scans_start_one_run(tmp_path, movie):
    folder, out = tmp_path / "in", tmp_path / "out"
    _put(folder / "both.tif", movie)
    _scan(folder, out)  # first sight: the next scans find it stable
    summaries, barrier = [], threading.Barrier(2)

    def scan() -> None:
        barrier.wait()
        summaries.append(_scan(folder, out))

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(summaries) == 2
    assert sum(s.started for s in summaries) == 1
    assert sorted(s.outcomes[0].status for s in summaries) in ([ALREADY_DONE, EXTRACTED], [BUSY, EXTRACTED])
    with Ledger(out / LEDGER_NAME) as ledger:
        assert [(j.state, j.attempts) for j in ledger.jobs()] == [("done", 1)]


def test_a_live_watchers_claim_is_respected_and_a_dead_ones_is_picked_up(tmp_path, movie):
    folder, out = tmp_path / "in", tmp_path / "out"
    _put(folder / "held.tif", movie)
    _scan(folder, out)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    sha = sha256_file(folder / "held.tif")
    try:  # another watcher process, alive, holds the claim
        with Ledger(out / LEDGER_NAME) as ledger:
            ledger.claim("held.tif", content_id(["held.tif"], {"held.tif": sha}),
                         [Member("held.tif", sha, len(movie))], "held",
                         owner=Owner(Owner.current().host, other.pid, None), max_attempts=3, max_age_s=3600)
        busy = _scan(folder, out)
        assert busy.started == 0 and _statuses(busy) == {"held.tif": BUSY}
    finally:
        other.kill()
        other.wait()
    picked = _scan(folder, out)
    assert _statuses(picked) == {"held.tif": EXTRACTED} and picked.outcomes[0].attempts == 2


def test_a_series_folder_is_one_run_over_its_movies(tmp_path, halves):
    folder, out = tmp_path / "in", tmp_path / "out"
    _put(folder / "session" / "part2.tif", halves[1])
    _put(folder / "session" / "part1.tif", halves[0])
    assert _scan(folder, out).started == 0
    summary = _scan(folder, out)
    assert _statuses(summary) == {"session/": EXTRACTED}
    manifest = json.loads((out / "session" / "manifest.json").read_text())
    assert [Path(rec["path"]).name for rec in manifest["inputs"]] == ["part1.tif", "part2.tif"]


def test_a_failing_movie_is_tried_max_attempts_times_then_given_up(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _put(folder / "corrupt.tif", b"this is not a TIFF file" * 50)
    _put(folder / "ignored.avi", b"not matched by the pattern")

    def scan():
        return _scan(folder, out, max_attempts=2, pattern="*.tif, *.tiff")  # a string works too

    assert scan().started == 0
    first = scan()
    assert _statuses(first) == {"corrupt.tif": FAILED}
    assert "bad input" in first.outcomes[0].detail and "1 attempt(s) left" in first.outcomes[0].detail
    second = scan()
    assert _statuses(second) == {"corrupt.tif": FAILED} and "giving up" in second.outcomes[0].detail
    later = scan()
    assert later.started == 0 and _statuses(later) == {"corrupt.tif": GAVE_UP}
    with Ledger(out / LEDGER_NAME) as ledger:
        (job,) = ledger.jobs()
    assert (job.state, job.attempts) == ("failed", 2) and "MovieError" in job.error


def test_a_file_must_stay_unchanged_min_unchanged_minutes(tmp_path, movie):
    folder, out = tmp_path / "in", tmp_path / "out"
    _put(folder / "stalled.tif", movie[: len(movie) // 2])  # a copy that stalls longer than the scan interval
    _scan(folder, out, min_unchanged_minutes=30)
    waiting = _scan(folder, out, min_unchanged_minutes=30)
    assert _statuses(waiting) == {"stalled.tif": GROWING} and "needs 1800 s" in waiting.outcomes[0].detail
