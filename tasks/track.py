"""The track step: one MLflow run describing the finished output folder.

It runs after the outputs are complete, so a tracking store that is down never costs the
extraction: the failure is logged, noted in the manifest, and ``cnmflow track`` can log the
folder later.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from cnmflow.tracking.uri import tracking_uri as default_tracking_uri


@task(name="track", cache_policy=NO_CACHE, persist_result=False)
def track(output_dir: Path, *, experiment: str, tracking_uri: str | None,
          parent_run_id: str | None) -> tuple[str | None, str | None]:
    """Log the folder to MLflow; returns (run id, None) or (None, what went wrong)."""
    from cnmflow.tracking import TrackingError, log_output_folder

    uri = tracking_uri or default_tracking_uri(output_dir.parent)
    try:
        run_id = log_output_folder(output_dir, experiment=experiment, tracking_uri=uri, parent_run_id=parent_run_id)
    except TrackingError as err:
        message = f"tracking failed, the outputs are complete: {err}; log them later with `cnmflow track {output_dir}`"
        get_run_logger().error(message)
        return None, message
    get_run_logger().info("MLflow run %s in experiment %r at %s", run_id, experiment, uri)
    return run_id, None
