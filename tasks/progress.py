"""Engine progress as a Prefect progress artifact, and to whoever started the run in this process.

The engine reports ``(stage, fraction)``; a run has several stages, so the artifact shows one
overall percentage with the current stage in its description.  Updates are throttled: each one
is an API call.  The command line registers a listener here to draw its own bars.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable
from uuid import UUID

Progress = Callable[[str, float], None]

#: Share of a run's wall time per stage, in the run's order (measured on 256×256×2000; good enough for a
#: bar; normalised to the total).  track (MLflow) and report come after export: 100% means done.
STAGE_WEIGHTS: dict[str, float] = {
    "validate": 0.02, "concatenate": 0.08, "motion_correction": 0.1, "patches": 0.55, "merge": 0.02, "background": 0.12,
    "traces": 0.12, "quality": 0.03, "export": 0.06, "track": 0.03, "report": 0.01,
}
MIN_INTERVAL_S = 2.0

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
    total = sum(STAGE_WEIGHTS.values())
    done = 0.0
    for name, weight in STAGE_WEIGHTS.items():
        if name == stage:
            return min(1.0, (done + weight * min(max(fraction, 0.0), 1.0)) / total)
        done += weight
    return min(1.0, done / total)


class RunProgress:
    """One progress artifact per flow run, updated as stages report."""

    def __init__(self, key: str = "source-extraction-progress") -> None:
        self.key = key
        self.artifact_id: UUID | None = None
        self.last_sent = 0.0
        self.last_percent = -1.0
        self.last_stage = ""
        self.stage = "validate"          # the stage reported last (even when its update was throttled)

    def start(self) -> None:
        from prefect.artifacts import create_progress_artifact

        try:
            self.artifact_id = create_progress_artifact(0.0, key=self.key, description="starting")
        except Exception:  # noqa: BLE001 - progress display must not fail a run
            log.warning("could not create the progress artifact", exc_info=True)

    def __call__(self, stage: str, fraction: float) -> None:
        notify(stage, fraction)
        self.stage = stage
        percent = round(100.0 * overall_fraction(stage, fraction), 1)
        now = time.monotonic()
        due = stage != self.last_stage or now - self.last_sent >= MIN_INTERVAL_S or fraction >= 1.0
        if self.artifact_id is None or percent <= self.last_percent or not due:
            return
        from prefect.artifacts import update_progress_artifact

        try:
            update_progress_artifact(self.artifact_id, percent, description=f"{stage}: {100 * fraction:.0f}%")
        except Exception:  # noqa: BLE001
            log.debug("progress artifact update failed", exc_info=True)
            return
        self.last_sent, self.last_percent, self.last_stage = now, percent, stage

    def fail(self, message: str) -> None:
        """Show that the run failed, and in which stage (the bar stays where it stopped)."""
        if self.artifact_id is None:
            return
        from prefect.artifacts import update_progress_artifact

        line = " ".join(message.split())
        line = line if len(line) <= 200 else line[:197] + "..."
        try:
            update_progress_artifact(self.artifact_id, max(self.last_percent, 0.0),
                                     description=f"FAILED in {self.stage}: {line}")
        except Exception:  # noqa: BLE001 - progress display must not hide the run's own error
            log.debug("progress artifact update failed", exc_info=True)
