"""The claim rule: given a run's ledger row, may this watcher start it now?

Kept apart from the SQL so the rule reads in one place: a done run is never redone; a run
held by a live watcher is left alone; a failed or abandoned run is tried again until it has
had ``max_attempts`` attempts in all, after which the watcher gives up on it (raising
``max_attempts`` later lets it try again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cnmflow.watch.owner import Owner, is_alive

State = Literal["running", "done", "failed"]
Decision = Literal["claim", "done", "busy", "gave_up"]


@dataclass(frozen=True)
class Job:
    """One row of the ledger's ``jobs`` table: a run over some content."""

    id: int
    key: str
    content: str
    output_dir: str
    state: State
    attempts: int
    run_id: str | None = None
    owner: Owner | None = None
    claimed_at: float | None = None
    claim_token: str | None = None
    error: str | None = None


def decide(job: Job | None, *, max_attempts: int, now: float, max_age_s: float) -> tuple[Decision, str]:
    """What to do with ``job`` (None: never seen), and why, in words for the scan report."""
    if job is None:
        return "claim", "new"
    if job.state == "done":
        return "done", f"done earlier (run {job.run_id})"
    if job.state == "running":
        age = now - (job.claimed_at or 0.0)
        alive = is_alive(job.owner) if job.owner else False
        holder = f"{job.owner.host} pid {job.owner.pid}" if job.owner else "an unknown watcher"
        if alive is not False and age < max_age_s:
            return "busy", f"running by {holder} for {age:.0f} s"
        why = "its watcher is gone" if alive is False else f"claim older than {max_age_s:g} s"
        reason = f"picked up again: the claim by {holder} was abandoned ({why})"
    else:
        reason = f"retry after failure: {job.error}"
    if job.attempts >= max_attempts:
        return "gave_up", f"gave up after {job.attempts} attempt(s); last error: {job.error}"
    return "claim", reason
