"""What a finished run tells its user: a short record and a markdown summary.

The orchestrator shows the markdown as the run's summary; the command line prints the record.
Both come from the output folder's manifest, so an up-to-date run (nothing recomputed)
reports the same facts as the run that wrote the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnmflow.errors import InputError
from cnmflow.lineage import read_manifest
from cnmflow.outputs.names import MANIFEST_NAME


@dataclass(frozen=True)
class RunReport:
    """The outcome of one run, as returned by the ``source-extraction`` flow."""

    output_dir: Path
    n_components: int
    files: tuple[str, ...]
    reused_extraction: bool          # components came from the cache (same inputs, parameters, code)
    up_to_date: bool                 # the outputs were already there; nothing was written
    timings_s: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    notes: tuple[str, ...] = ()
    run_ids: dict[str, str | None] = field(default_factory=dict)
    tracking_error: str | None = None   # MLflow could not be reached; the outputs are complete
    statuses: dict[str, int] = field(default_factory=dict)   # components per status (accepted, rejected, ...)

    @property
    def mlflow_run_id(self) -> str | None:
        return self.run_ids.get("mlflow_run_id")


def report_from_manifest(output_dir: Path, *, reused_extraction: bool, up_to_date: bool,
                         timings_s: dict[str, float] | None = None, tracking_error: str | None = None) -> RunReport:
    """The report of the run whose manifest is in ``output_dir``."""
    manifest = read_manifest(output_dir)
    run = manifest.get("run") or {}
    return RunReport(
        output_dir=Path(output_dir), n_components=int(run.get("n_components", 0)),
        files=tuple(sorted(manifest.get("outputs", {})) + [MANIFEST_NAME]),
        reused_extraction=reused_extraction, up_to_date=up_to_date,
        timings_s=dict(timings_s or {}), peak_rss_mb=run.get("peak_rss_mb"),
        notes=tuple(manifest.get("parameter_notes", [])) + tuple(manifest.get("notes", [])),
        run_ids=dict(manifest.get("run_ids", {})), tracking_error=tracking_error,
        statuses={str(name): int(n) for name, n in (run.get("statuses") or {}).items()})


def components_line(report: RunReport) -> str:
    """"66 components: 43 undecided, 23 rejected" — a count alone hides that the engine rejected some of them."""
    counts = ", ".join(f"{n} {status}" for status, n in report.statuses.items() if n)
    return f"{report.n_components} components" + (f": {counts}" if counts else "")


def _cell(value: Any) -> str:
    text = "auto" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|")


def _source_cell(name: str, source: str, notes: tuple[str, ...]) -> str:
    """A value's source; one the machine changed (n_processes capped to the cores) with the note saying so."""
    note = next((note for note in notes if note.startswith(f"{name}=")), None) if source == "machine" else None
    return f"{source}: {note}" if note else source


def summary_markdown(report: RunReport) -> str:
    """The run summary: inputs, effective parameters with sources, counts, timings, memory, outputs."""
    manifest = read_manifest(report.output_dir)
    run = manifest.get("run") or {}
    state = ("already up to date: nothing was recomputed" if report.up_to_date
             else "components reused from an earlier identical run" if report.reused_extraction
             else "computed")
    lines = [f"# Source extraction: {report.n_components} components", "",
             f"Output folder ({state}):", "", "```", str(report.output_dir), "```", "",
             "## Inputs", "", "| # | file | frames | frame rate | sha256 |", "|---|---|---|---|---|"]
    for rec in manifest.get("inputs", []):
        lines.append(f"| {rec['index']} | `{rec['path']}` | {rec['n_frames']} | {_cell(rec.get('frame_rate'))} Hz "
                     f"| `{rec['sha256'][:16]}` |")
    lines += ["", "## Components", "",
              components_line(report) + f" (over {run.get('n_frames', '?')} frames)", "",
              "## Time and memory", "", "| stage | seconds |", "|---|---|"]
    for stage, seconds in {**(run.get("timings_s") or {}), **report.timings_s}.items():
        lines.append(f"| {stage} | {seconds:.1f} |")
    if report.peak_rss_mb is not None:
        lines += ["", f"Peak memory (resident): {report.peak_rss_mb:.0f} MiB"]
    lines += ["", "## Effective parameters", "", "| parameter | value | source |", "|---|---|---|"]
    for name, spec in manifest.get("parameters", {}).items():
        lines.append(f"| {name} | {_cell(spec['value'])} | {_source_cell(name, spec['source'], report.notes)} |")
    lines += ["", "## Outputs", ""] + [f"- `{name}`" for name in report.files]
    lines += ["", "## Tracking", ""]
    if report.mlflow_run_id:
        lines.append(f"MLflow run `{report.mlflow_run_id}` (experiment `{report.run_ids.get('mlflow_experiment')}`, "
                     f"store `{report.run_ids.get('mlflow_tracking_uri')}`)")
        if report.run_ids.get("mlflow_runs_url"):
            lines.append(f"\nRuns page (with `mlflow ui` running): {report.run_ids['mlflow_runs_url']}")
    else:
        lines.append(f"**Not tracked**: {report.tracking_error or 'tracking was off'}")
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def failure_markdown(*, stage: str, error: BaseException, movies: list[str], output_dir: str,
                     job: str = "Source extraction") -> str:
    """A failed run's summary: the stage, the error's one line (it names the file or parameter and the fix),
    the inputs; a bug (not bad input) says where its traceback is."""
    user_error = isinstance(error, InputError)
    message = " ".join(str(error).split()) or type(error).__name__
    lines = [f"# {job} failed in {stage}", "",
             f"**{'What to fix' if user_error else 'Error'}:** {message}", "",
             f"- stage: `{stage}`", f"- output folder: `{output_dir}`"]
    lines += [f"- movie: `{movie}`" for movie in movies]
    if user_error:
        lines += ["", "Bad input: the run stopped before writing results. Fix what the message names and run "
                      "again (the same form, with the field or file corrected)."]
    else:
        lines += ["", f"An unexpected error ({type(error).__name__}): its traceback is in the run's logs. "
                      "Please report it with the logs."]
    return "\n".join(lines) + "\n"
