"""The track step: one MLflow run describing the finished output folder.

It runs after the outputs are complete, so a tracking store that is down never costs the
extraction: the failure is logged, noted in the manifest, and ``cnmflow track`` can log the
folder later.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from cnmflow.tracking.uri import tracking_uri as default_tracking_uri


@task(name="track", cache_policy=NO_CACHE, persist_result=False)
def track(output_dir: Path, *, experiment: str, tracking_uri: str | None,
          parent_run_id: str | None) -> tuple[str | None, str | None]:
    """Log the folder to MLflow; returns (run id, None) or (None, what went wrong)."""
    from cnmflow.tracking import TrackingError, log_output_folder

    uri = tracking_uri or default_tracking_uri(output_dir.parent)
    try:
        run_id = log_output_folder(output_dir, experiment=experiment, tracking_uri=uri, parent_run_id=parent_run_id,
                                   started_at=flow_run_started())
    except TrackingError as err:
        message = f"tracking failed, the outputs are complete: {err}; log them later with `cnmflow track {output_dir}`"
        get_run_logger().error(message)
        return None, message
    get_run_logger().info("MLflow run %s in experiment %r at %s", run_id, experiment, uri)
    return run_id, None


def flow_run_started() -> datetime | None:
    """When the flow run this task belongs to began running (its Running state's time), None outside a flow.

    MLflow then shows the whole run's duration: validation and the writing of files are not in the
    stage timings the output folder records."""
    context = FlowRunContext.get()
    state = context.flow_run.state if context is not None and context.flow_run is not None else None
    if state is None or not state.is_running():
        return None
    return state.timestamp
