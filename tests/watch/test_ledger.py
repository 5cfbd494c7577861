"""Claims, attempts and content identity in the ledger, including concurrent watchers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context

import pytest

from cnmflow.watch.ledger import Ledger, Member
from cnmflow.watch.owner import Owner, is_alive

ME = Owner.current()
MEMBERS = (Member("a.tif", "ab" * 32, 10),)


def _claim(ledger: Ledger, content: str = "c1", owner: Owner = ME, max_attempts: int = 3,
           max_age_s: float = 3600.0, now: float | None = None, key: str = "a.tif", base: str = "a"):
    return ledger.claim(key, content, MEMBERS, base, owner=owner, max_attempts=max_attempts,
                        max_age_s=max_age_s, now=now)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as opened:
        yield opened


def test_the_ledger_keeps_a_rollback_journal_as_network_shares_need_and_converts_a_wal_one(tmp_path):
    """WAL's shared-memory index does not work on NFS between machines nor on SMB mounts without shared mmap, where
    watched results often live; a ledger an earlier version left in WAL mode is converted when opened."""
    import sqlite3

    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)
    assert db.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    db.execute("CREATE TABLE t (x)")
    db.close()
    for path in (tmp_path / "new.sqlite", old):
        with Ledger(path) as opened:
            assert opened._db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            assert _claim(opened).decision == "claim"
            assert not path.with_name(path.name + "-wal").exists()


def test_claim_then_done_is_never_claimed_again(ledger):
    first = _claim(ledger)
    assert first.decision == "claim" and first.job.attempts == 1 and first.job.output_dir == "a"
    assert first.job.state == "running" and first.job.owner == ME
    assert [m.path for m in ledger.members(first.job.id)] == ["a.tif"]
    assert _claim(ledger).decision == "busy"  # held by a live watcher (this process)
    ledger.set_run_id(first.job, "run-1")
    assert ledger.finish(first.job, ok=True)
    again = _claim(ledger)
    assert again.decision == "done" and again.job.run_id == "run-1" and again.job.attempts == 1


def test_failures_count_up_to_max_attempts_then_give_up(ledger):
    for attempt in (1, 2, 3):
        claimed = _claim(ledger)
        assert claimed.decision == "claim" and claimed.job.attempts == attempt
        assert ledger.finish(claimed.job, ok=False, error="MovieError: corrupt")
    gave_up = _claim(ledger)
    assert gave_up.decision == "gave_up" and "3 attempt" in gave_up.reason and "corrupt" in gave_up.reason
    assert _claim(ledger, max_attempts=4).decision == "claim"  # a raised limit lets it try again


def test_a_stale_claim_token_cannot_finish(ledger):
    claimed = _claim(ledger, owner=Owner(ME.host, _dead_pid(), None))
    taken_over = _claim(ledger)
    assert taken_over.decision == "claim"
    assert not ledger.finish(claimed.job, ok=False, error="late")
    assert ledger.job("a.tif", "c1").state == "running"


def test_claim_of_a_dead_watcher_is_picked_up_and_counts_as_an_attempt(ledger):
    dead = Owner(ME.host, _dead_pid(), None)
    assert is_alive(dead) is False
    assert _claim(ledger, owner=dead).decision == "claim"
    picked = _claim(ledger)
    assert picked.decision == "claim" and "abandoned" in picked.reason and picked.job.attempts == 2
    assert picked.job.owner == ME


def test_a_reused_pid_is_not_the_old_watcher(ledger):
    reused = Owner(ME.host, os.getpid(), "another-boot:1")
    assert is_alive(reused) is False
    assert _claim(ledger, owner=reused).decision == "claim"
    assert _claim(ledger).decision == "claim"


def test_a_claim_from_another_host_is_respected_until_its_age_limit(ledger):
    remote = Owner("elsewhere-" + socket.gethostname(), 1, None)
    assert is_alive(remote) is None
    assert _claim(ledger, owner=remote, now=1000.0).decision == "claim"
    assert _claim(ledger, now=1000.0 + 3599).decision == "busy"
    later = _claim(ledger, now=1000.0 + 3601)
    assert later.decision == "claim" and "older than" in later.reason


def test_an_abandoned_claim_on_the_last_attempt_gives_up(ledger):
    assert _claim(ledger, owner=Owner(ME.host, _dead_pid(), None), max_attempts=1).decision == "claim"
    assert _claim(ledger, max_attempts=1).decision == "gave_up"
    assert ledger.job("a.tif", "c1").state == "failed"


def test_changed_content_is_a_new_job_in_a_new_folder(ledger):
    old = _claim(ledger, content="c1")
    ledger.finish(old.job, ok=True)
    new = _claim(ledger, content="c2")
    assert new.decision == "claim" and new.job.id != old.job.id and new.job.output_dir == "a.rev2"
    assert new.job.attempts == 1


def test_a_failed_recording_replaced_by_new_content_reuses_its_folder(ledger):
    old = _claim(ledger, content="c1")
    ledger.finish(old.job, ok=False, error="corrupt")
    assert _claim(ledger, content="c2").job.output_dir == "a"


def test_another_item_with_the_same_output_folder_gets_a_revision(ledger):
    ledger.finish(_claim(ledger, key="a.tif").job, ok=True)
    assert _claim(ledger, key="a/", base="a").job.output_dir == "a.rev2"


def _claim_in_own_connection(path: str, owner: Owner, barrier=None) -> str:
    with Ledger(path) as mine:
        if barrier is not None:
            barrier.wait()
        return _claim(mine, owner=owner).decision


def test_concurrent_claims_in_threads_have_one_winner(tmp_path):
    path = str(tmp_path / "ledger.sqlite")
    Ledger(path).close()
    barrier = threading.Barrier(8)
    with ThreadPoolExecutor(8) as pool:
        decisions = list(pool.map(lambda _: _claim_in_own_connection(path, ME, barrier), range(8)))
    assert sorted(decisions) == ["busy"] * 7 + ["claim"]


def test_concurrent_claims_in_processes_have_one_winner(tmp_path):
    path = str(tmp_path / "ledger.sqlite")
    Ledger(path).close()
    # every process claims as this (live) test process, so the winner's claim stays held
    with ProcessPoolExecutor(4, mp_context=get_context("fork")) as pool:
        decisions = list(pool.map(_claim_in_own_connection, [path] * 4, [ME] * 4))
    assert sorted(decisions) == ["busy"] * 3 + ["claim"]
