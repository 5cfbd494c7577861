"""Engine progress as a Prefect progress artifact, and to whoever started the run in this process.

The engine reports ``(stage, fraction)``; a run has several stages, so the artifact shows one
overall percentage with the current stage in its description.  Updates are throttled: each one
is an API call, sent by a thread of the artifact's own (the run never waits for the server; updates
that queue up meanwhile are sent as the latest one).  The command line registers a listener here to
draw its own bars.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from typing import Any, Callable
from uuid import UUID

from cnmflow.progress import weighted_fraction
from cnmflow.sweep_grid import SWEEP_STAGE_WEIGHTS, sweep_fraction

Progress = Callable[[str, float], None]

#: Share of a run's wall time per stage, in the run's order (measured on 256×256×2000; good enough for a
#: bar; normalised to the total).  track (MLflow) and report come after export: 100% means done.
STAGE_WEIGHTS: dict[str, float] = {
    "validate": 0.02, "concatenate": 0.08, "motion_correction": 0.1, "patches": 0.55, "merge": 0.02, "background": 0.12,
    "traces": 0.12, "quality": 0.03, "export": 0.06, "track": 0.03, "report": 0.01,
}
MIN_INTERVAL_S = 2.0
#: Seconds ``close`` waits for the last update to be sent.
CLOSE_TIMEOUT_S = 10.0
#: The progress artifacts' keys (one artifact per flow run).
RUN_PROGRESS_KEY = "source-extraction-progress"
SWEEP_PROGRESS_KEY = "parameter-sweep-progress"

_listeners: list[Progress] = []
_lock = threading.Lock()
log = logging.getLogger(__name__)


def add_listener(listener: Progress) -> None:
    """Also send every progress report of runs in this process to ``listener`` (the CLI's bars)."""
    with _lock:
        _listeners.append(listener)


def remove_listener(listener: Progress) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def notify(stage: str, fraction: float) -> None:
    """Tell the local listeners; a broken listener never breaks the run."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(stage, fraction)
        except Exception:  # noqa: BLE001
            log.debug("progress listener failed", exc_info=True)


def overall_fraction(stage: str, fraction: float) -> float:
    """Share of the whole run done when ``stage`` is ``fraction`` done (stages in STAGE_WEIGHTS order)."""
    return weighted_fraction(STAGE_WEIGHTS, stage, fraction)


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


class ProgressArtifact:
    """One Prefect progress artifact for a flow run: a percentage and what is happening now.

    Updates are throttled (each is an API call), never go backwards except to say how the run
    ended, and are sent by a thread of this artifact (:class:`_Sender`) through one client, the run
    going on meanwhile; :meth:`close` sends the last one. A failed update is logged, never raised:
    progress display must not fail a run.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.artifact_id: UUID | None = None
        self.last_sent = 0.0
        self.last_percent = -1.0
        self.last_stage = ""
        self.stage = "validate"          # the stage reported last (even when its update was throttled)
        self._sender: _Sender | None = None

    def start(self, description: str = "starting") -> None:
        from prefect.artifacts import create_progress_artifact
        from prefect.context import FlowRunContext

        if FlowRunContext.get() is None:
            return  # called as a plain function (flow.fn): no flow run to show a bar in
        try:
            self.artifact_id = create_progress_artifact(0.0, key=self.key, description=description)
        except Exception:  # noqa: BLE001 - progress display must not fail a run
            log.warning("could not create the progress artifact %s", self.key, exc_info=True)

    def due(self, stage: str, fraction: float) -> bool:
        """Whether an update is worth an API call: a new stage, a finished one, or enough time passed."""
        return stage != self.last_stage or fraction >= 1.0 or time.monotonic() - self.last_sent >= MIN_INTERVAL_S

    def show(self, percent: float, description: str, *, force: bool = False) -> None:
        """Send ``percent`` (0-100) and ``description``; without ``force`` only when it moves forward."""
        percent = round(percent, 1)
        if self.artifact_id is None or (percent <= self.last_percent and not force):
            return
        if self._sender is None:
            self._sender = _Sender(self.artifact_id)
        self._sender.post(percent, description)
        self.last_sent, self.last_percent, self.last_stage = time.monotonic(), percent, self.stage

    def fail(self, message: str) -> None:
        """Show that the run failed, and in which stage (the bar stays where it stopped); the last update."""
        self.show(max(self.last_percent, 0.0), f"FAILED in {self.stage}: {_one_line(message)}", force=True)
        self.close()

    def close(self) -> None:
        """Send the last update (wait for it, up to ``CLOSE_TIMEOUT_S``); call it when the flow ends."""
        if self._sender is not None:
            self._sender.close(CLOSE_TIMEOUT_S)
            self._sender = None


class _Sender:
    """A thread that sends a progress artifact's updates, the latest one when several are waiting, through
    one Prefect client (Prefect's ``update_progress_artifact`` makes a client per call). It runs in a copy
    of the flow's context (its settings: which server)."""

    def __init__(self, artifact_id: UUID) -> None:
        self.artifact_id = artifact_id
        self._waiting: tuple[float, str] | None = None
        self._closing = False
        self._changed = threading.Condition()
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._send_all,), name="cnmflow-progress",
                                        daemon=True)
        self._thread.start()

    def post(self, percent: float, description: str) -> None:
        with self._changed:
            self._waiting = (percent, description)
            self._changed.notify()

    def close(self, timeout_s: float) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._thread.join(timeout_s)

    def _next(self) -> tuple[float, str] | None:
        """The latest update not sent yet, once there is one; None when closed with nothing left."""
        with self._changed:
            self._changed.wait_for(lambda: self._waiting is not None or self._closing)
            update, self._waiting = self._waiting, None
            return update

    def _send_all(self) -> None:
        from prefect.client.orchestration import get_client

        try:
            with get_client(sync_client=True) as client:
                while (update := self._next()) is not None:
                    self._send(client, *update)
        except Exception:  # noqa: BLE001 - progress display must not fail a run
            log.debug("progress artifact updates stopped", exc_info=True)

    def _send(self, client: Any, percent: float, description: str) -> None:
        from prefect.client.schemas.actions import ArtifactUpdate

        try:
            client.update_artifact(artifact_id=self.artifact_id,
                                   artifact=ArtifactUpdate(data=percent, description=description))
        except Exception:  # noqa: BLE001
            log.debug("progress artifact update failed", exc_info=True)


class RunProgress(ProgressArtifact):
    """The progress of one extraction (or motion-correction) run, stage by stage."""

    def __init__(self, key: str = RUN_PROGRESS_KEY) -> None:
        super().__init__(key)

    def __call__(self, stage: str, fraction: float) -> None:
        notify(stage, fraction)
        due = self.due(stage, fraction)
        self.stage = stage
        if due:
            self.show(100.0 * overall_fraction(stage, fraction), f"{stage}: {100 * fraction:.0f}%")


class SweepProgress(ProgressArtifact):
    """A sweep's progress: its shared work copy (validate, concatenate), then one step per finished
    combination (as they finish, in any order), then the comparison."""

    def __init__(self, key: str = SWEEP_PROGRESS_KEY) -> None:
        super().__init__(key)
        self.total = 0
        self.finished = 0
        self.failed = 0

    def __call__(self, stage: str, fraction: float) -> None:
        if stage not in SWEEP_STAGE_WEIGHTS:
            return
        due = self.due(stage, fraction)
        self.stage = stage
        if due:
            self.show(100.0 * sweep_fraction(stage, fraction), f"{stage}: {100 * fraction:.0f}%")

    def combination_finished(self, *, failed: bool) -> None:
        """One more combination done (or failed): the bar moves one step."""
        self.finished += 1
        self.failed += int(failed)
        self.stage = "combinations"
        note = f" ({self.failed} failed)" if self.failed else ""
        self.show(100.0 * sweep_fraction("combinations", self.finished / max(self.total, 1)),
                  f"combinations: {self.finished} of {self.total} finished{note}")

    def finish(self, *, failed: int) -> None:
        """Everything ran and the comparison is written (failed combinations are named by the sweep's error)."""
        note = f"; {failed} of {self.total} failed (see the sweep's error)" if failed else ""
        self.show(100.0, f"done: {self.total} combinations compared{note}", force=True)
        self.close()
