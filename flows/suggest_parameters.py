"""The ``suggest-parameters`` flow: ``cnmflow suggest`` from the UI — values as an artifact, a figure on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from cnmflow.params_form import OptionalText
from cnmflow.request import Preset, RunRequest
from cnmflow.tasks.report import failed_step, quiet_user_error_tracebacks
from cnmflow.tasks.suggest import suggest_values

#: Artifact key of a failed suggestion's summary.
FAILURE_KEY = "suggest-parameters-failure"

quiet_user_error_tracebacks()   # bad input: one line in the logs, not two 60-line tracebacks


@flow(name="suggest-parameters",
      description="Suggest gSig, min_corr and min_pnr from a movie (what 'auto' would choose), with reasons "
                  "and a figure of the correlation/PNR images, their cuts and the radius estimate.")
def suggest_parameters(
    movies: list[str],
    figure: str,
    preset: Preset = "1p",
    params: dict[str, Any] = {},  # noqa: B006 - never mutated; a dict renders as a JSON box, None as a chooser
    params_file: OptionalText = None,
    overwrite_params: bool = False,
) -> dict[str, Any]:
    """Suggest the three values for ``movies`` and write the figure to ``figure`` (a .png path).

    Args:
        movies: Movie files (.isxd, .tif/.tiff, .avi); several files form one series.
        figure: Where to write the figure (.png, .svg or .pdf).
        preset: The seed's 1P or 2P column the other values come from.
        params: Analysis-table values to hold (e.g. {"tsub": 1}; a gSig given here is kept).
        params_file: CaImAn-style JSON parameters file, applied when overwrite_params is true.
        overwrite_params: Apply the parameters file over the table values.
    """
    try:
        request = RunRequest(preset=preset, table=dict(params or {}), params_file=params_file,
                             overwrite_params=overwrite_params)
        result = suggest_values(movies, figure, request)
    except Exception as error:
        return failed_step(error, stage="suggest", movies=movies, output_dir=str(Path(figure).parent),
                           job="Parameter suggestion", key=FAILURE_KEY)
    rows = "\n".join(f"| {name} | {value:g} | {result['reasons'][name]} |" for name, value in result["values"].items())
    create_markdown_artifact(
        key="suggested-parameters", description="gSig / min_corr / min_pnr read from the movie",
        markdown=f"| parameter | value | why |\n|---|---|---|\n{rows}\n\nFigure: `{result['figure']}`")
    return result["values"]
