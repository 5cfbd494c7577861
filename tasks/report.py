"""The end of a run in the Prefect UI: a markdown summary and the footprint preview — or, when the run
failed, a short failure summary; and bad input logged as its one line, without Prefect's tracebacks."""

from __future__ import annotations

import base64
import logging

from prefect import get_run_logger, task
from prefect.client.schemas.objects import State
from prefect.artifacts import create_image_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from cnmflow.errors import InputError
from cnmflow.outputs.names import FOOTPRINTS_PREVIEW
from cnmflow.report import RunReport, failure_markdown, summary_markdown
from cnmflow.tasks.progress import Progress, RunProgress

log = logging.getLogger(__name__)

#: Largest preview embedded in the run page (base64 grows it by a third).
MAX_EMBEDDED_BYTES = 2_000_000
#: Artifact key of a failed run's summary.
FAILURE_KEY = "source-extraction-failure"
#: Prefect's loggers that log a failed task or flow run with its traceback.
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def publish_report(report: RunReport, progress: Progress | None = None) -> None:
    """Summary, preview image and the output folder (as text: browsers block file:// links from an http page)."""
    if progress is not None:
        progress("report", 0.0)
    create_markdown_artifact(summary_markdown(report), key="source-extraction-summary",
                             description=f"{report.n_components} components in {report.output_dir}")
    preview = report.output_dir / FOOTPRINTS_PREVIEW
    if preview.is_file() and preview.stat().st_size <= MAX_EMBEDDED_BYTES:
        data = base64.b64encode(preview.read_bytes()).decode("ascii")
        create_image_artifact(f"data:image/png;base64,{data}", key="footprints-preview",
                              description="Footprints of the components (first movie)")
    create_markdown_artifact(f"```\n{report.output_dir}\n```\n", key="output-folder",
                             description="Output folder: cell sets, event sets, CaImAn hdf5, previews, manifest")
    if progress is not None:
        progress("report", 1.0)


def publish_failure(error: BaseException, *, stage: str, movies: list[str], output_dir: str,
                    job: str = "Source extraction", key: str = FAILURE_KEY) -> None:
    """The failed run's summary artifact: stage, what to fix, inputs. Never raises over the run's own error."""
    try:
        create_markdown_artifact(failure_markdown(stage=stage, error=error, movies=movies, output_dir=output_dir,
                                                  job=job),
                                 key=key, description=f"failed in {stage}: {type(error).__name__}")
    except Exception:  # noqa: BLE001
        log.warning("could not create the failure artifact", exc_info=True)


def failed_run(error: Exception, progress: RunProgress, *, movies: list[str], output_dir: str,
               job: str = "Source extraction", key: str = FAILURE_KEY) -> State:
    """Show the failure (progress, failure summary); bad input ends the run Failed with its one line,
    anything else (a bug) is raised again with its traceback."""
    progress.fail(str(error) or type(error).__name__)
    return failed_step(error, stage=progress.stage, movies=movies, output_dir=output_dir, job=job, key=key)


def failed_step(error: Exception, *, stage: str, movies: list[str], output_dir: str, job: str,
                key: str) -> State:
    """A failure summary for a flow without a progress bar; bad input ends it Failed with its one line,
    a bug is raised again with its traceback."""
    publish_failure(error, stage=stage, movies=list(movies), output_dir=str(output_dir), job=job, key=key)
    if not isinstance(error, InputError):
        raise error
    get_run_logger().error("failed in %s: %s", stage, error)
    return Failed(message=f"{stage}: {error}", data=error)


class UserErrorWithoutTraceback(logging.Filter):
    """Bad input (InputError) is logged by Prefect as its one line: its traceback says nothing to the user,
    whose message already names the file or parameter and the fix.  Bugs keep their tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], InputError):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_user_error_tracebacks() -> None:
    """Install the filter on Prefect's run loggers (once per process)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, UserErrorWithoutTraceback) for existing in logger.filters):
            logger.addFilter(UserErrorWithoutTraceback())
