"""The end of a run in the Prefect UI: a markdown summary and the footprint preview."""

from __future__ import annotations

import base64
import logging

from prefect import task
from prefect.artifacts import create_image_artifact, create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from cnmflow.outputs.names import FOOTPRINTS_PREVIEW
from cnmflow.report import RunReport, summary_markdown

log = logging.getLogger(__name__)

#: Largest preview embedded in the run page (base64 grows it by a third).
MAX_EMBEDDED_BYTES = 2_000_000


@task(name="report", cache_policy=NO_CACHE, persist_result=False)
def publish_report(report: RunReport) -> None:
    """Summary, preview image and a link to the output folder as artifacts of the flow run."""
    create_markdown_artifact(summary_markdown(report), key="source-extraction-summary",
                             description=f"{report.n_components} components in {report.output_dir}")
    preview = report.output_dir / FOOTPRINTS_PREVIEW
    if preview.is_file() and preview.stat().st_size <= MAX_EMBEDDED_BYTES:
        data = base64.b64encode(preview.read_bytes()).decode("ascii")
        create_image_artifact(f"data:image/png;base64,{data}", key="footprints-preview",
                              description="Footprints of the components (first movie)")
    create_link_artifact(report.output_dir.as_uri(), link_text=str(report.output_dir), key="output-folder",
                         description="Output folder: cell sets, event sets, CaImAn hdf5, previews, manifest")
