"""The suggest step: gSig / min_corr / min_pnr read from the movie, with the figure that shows why."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from cnmflow.request import RunRequest
from cnmflow.suggestion import suggest
from cnmflow.tasks.retries import RETRY_OPTIONS


@task(name="suggest", cache_policy=NO_CACHE, persist_result=False, **RETRY_OPTIONS)
def suggest_values(movies: list[str], figure: str, request: RunRequest) -> dict[str, Any]:
    """The suggested values, their one-line reasons and the figure written (``cnmflow suggest``)."""
    return suggest(movies, figure, request)
