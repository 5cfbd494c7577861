"""Sweep steps: open the parent MLflow run, close it with the comparison (the flow runs the combinations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_image_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE


@task(name="open-sweep-run", cache_policy=NO_CACHE, persist_result=False)
def open_sweep_run(*, experiment: str, tracking_uri: str, grid: dict[str, list[Any]], base: dict[str, Any],
                   tags: dict[str, str]) -> str | None:
    """The parent MLflow run, or None (logged) when the store cannot be reached."""
    from cnmflow.tracking import TrackingError, start_sweep_run

    try:
        return start_sweep_run(experiment=experiment, tracking_uri=tracking_uri, grid=grid, base_params=base, tags=tags)
    except TrackingError as err:
        get_run_logger().error("the sweep is not tracked: %s", err)
        return None


@task(name="compare", cache_policy=NO_CACHE, persist_result=False)
def close_sweep(parent_run_id: str | None, *, tracking_uri: str, children: list[tuple[dict[str, Any], Path]],
                folder: Path, failed: int) -> list[dict[str, Any]]:
    """Comparison rows in the sweep folder, as a Prefect table (values rounded, "—" where not measured), and in
    the parent MLflow run (files, images, description); returns the rows at full precision."""
    import base64

    from cnmflow.tracking import TrackingError
    from cnmflow.tracking.compare import display_rows
    from cnmflow.tracking.sweep import compare_children, log_comparison, write_comparison

    comparison, sheet = compare_children(children, parent_run_id=parent_run_id or "")
    written = write_comparison(comparison, sheet, folder)
    rows = display_rows({key: value for key, value in row.items() if key != "output_dir"} for row in comparison.rows)
    create_table_artifact(rows, key="sweep-comparison",
                          description=f"{len(rows)} combinations ({failed} failed); folders under {folder}")
    sheet_png = written[2].read_bytes()
    create_image_artifact("data:image/png;base64," + base64.b64encode(sheet_png).decode("ascii"),
                          key="sweep-footprints", description="Footprints of every combination side by side")
    if parent_run_id:
        try:
            log_comparison(parent_run_id, written, tracking_uri=tracking_uri, n_children=len(children),
                           status="FAILED" if failed else "FINISHED", comparison=comparison, n_failed=failed)
        except TrackingError as err:
            get_run_logger().error("could not log the comparison to MLflow: %s", err)
    return comparison.rows
