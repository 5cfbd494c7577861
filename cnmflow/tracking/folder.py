"""What a finished output folder says about its run, in the shape MLflow wants (no MLflow here).

Everything comes from the folder itself -- the manifest (parameters with sources, inputs,
code, run summary, run ids) and the estimates in ``caiman_output.hdf5`` -- so a folder can be
tracked long after its run, on another machine, by ``cnmflow track``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from cnmflow.lineage import read_manifest
from cnmflow.outputs.names import HDF5_NAME
from cnmflow.params import PRESETS, Params
from cnmflow.tracking.params import effective_params, flatten_params, param_text

#: Metric names of every tracked run (per-stage runtimes come on top: ``runtime_<stage>_s``).
COUNT_METRICS = ("n_components", "n_accepted", "n_rejected", "n_undecided")
DISTRIBUTION_METRICS = ("snr_median", "snr_q25", "snr_q75", "r_median", "event_rate_mean")
#: Counts that exist only when components were evaluated (without evaluation they are unknown, not 0).
EVALUATION_COUNTS = ("n_accepted",)
#: How the manifest names a parameter that came from a preset ("preset 1p").
PRESET_SOURCE = "preset "


@dataclass(frozen=True)
class FolderRecord:
    """One output folder as an MLflow run: string params, finite metrics, tags, inputs, files."""

    output_dir: Path
    manifest: dict[str, Any]
    params: Params
    logged_params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    inputs: list[dict[str, Any]]
    previews: list[Path] = field(default_factory=list)
    nwb_files: list[Path] = field(default_factory=list)   # ophys.{k}.nwb the manifest lists


def read_folder(output_dir: str | Path) -> FolderRecord:
    """Read ``output_dir`` (InputError when it holds no manifest) into a :class:`FolderRecord`."""
    folder = Path(output_dir).absolute()
    manifest = read_manifest(folder)
    params = effective_params(manifest)
    previews = sorted(folder / name for name, record in manifest.get("outputs", {}).items()
                      if record.get("kind") == "preview" and name.endswith(".png"))
    nwb_files = sorted(folder / name for name, record in manifest.get("outputs", {}).items()
                       if record.get("kind") == "nwb")
    return FolderRecord(
        output_dir=folder, manifest=manifest, params=params,
        logged_params=logged_params(manifest, params), metrics=folder_metrics(folder, manifest, params),
        tags=folder_tags(manifest, folder), inputs=list(manifest.get("inputs", [])), previews=previews,
        nwb_files=nwb_files)


# ------------------------------------------------------------------------------------ parameters

def logged_params(manifest: Mapping[str, Any], params: Params) -> dict[str, str]:
    """Effective values as ``group.name``, each source as ``source.<name>``, the inputs and the series size."""
    values: dict[str, Any] = dict(flatten_params(params))
    values.update({f"source.{name}": entry.get("source") for name, entry in manifest["parameters"].items()})
    inputs = manifest.get("inputs", [])
    for record in inputs:
        prefix = f"input.{record['index']:03d}"
        values[f"{prefix}.name"] = Path(record["path"]).name
        values[f"{prefix}.frames"] = record.get("n_frames")
        values[f"{prefix}.fr"] = record.get("frame_rate")
    values["series.n_movies"] = len(inputs)
    values["series.n_frames"] = _n_frames(manifest)
    values["series.frame_shape"] = _frame_shape(manifest)
    return {key: param_text(value) for key, value in values.items()}


def preset_of(manifest: Mapping[str, Any]) -> str:
    """The preset the parameters started from ("1p"), else the preset whose values all hold,
    else "custom"."""
    for entry in manifest["parameters"].values():
        source = str(entry.get("source", ""))
        if source.startswith(PRESET_SOURCE):
            return source[len(PRESET_SOURCE):]
    values = {name: entry.get("value") for name, entry in manifest["parameters"].items()}
    for name, preset in PRESETS.items():
        if all(values.get(key) == value for key, value in preset.items()):
            return name
    return "custom"


# --------------------------------------------------------------------------------------- tags

def folder_tags(manifest: Mapping[str, Any], folder: Path) -> dict[str, str]:
    """Orchestration run, code version, preset and the folder, as MLflow tags."""
    run_ids = manifest.get("run_ids", {})
    code = manifest.get("code", {})
    tags = {
        "prefect.flow_run_id": run_ids.get("prefect_flow_run_id"),
        "prefect.flow_run_url": run_ids.get("prefect_flow_run_url"),
        "cnmflow.version": code.get("cnmflow") or manifest.get("software", {}).get("cnmflow"),
        "git.commit": code.get("git_commit"),
        "git.dirty": None if code.get("dirty") is None else str(bool(code["dirty"])).lower(),
        "preset": preset_of(manifest),
        "cnmflow.output_dir": str(folder),
        "cnmflow.fingerprint": manifest.get("run", {}).get("fingerprint"),
    }
    return {key: str(value) for key, value in tags.items() if value}


# ------------------------------------------------------------------------------------- metrics

def folder_metrics(folder: Path, manifest: Mapping[str, Any], params: Params) -> dict[str, float]:
    """Counts, quality distributions, event rate, runtimes and memory; never NaN or infinite.

    With no components the counts are 0 and the distribution metrics are left out.
    """
    run = manifest.get("run", {})
    statuses = run.get("statuses", {})
    estimates = read_estimate_summary(folder / HDF5_NAME)
    n_components = int(run.get("n_components", estimates["K"]))
    metrics: dict[str, float | None] = {
        "n_components": n_components,
        "n_accepted": statuses.get("accepted", 0),
        "n_rejected": statuses.get("rejected", 0),
        "n_undecided": statuses.get("undecided", n_components),
    }
    if not was_evaluated(run):
        for name in EVALUATION_COUNTS:
            del metrics[name]
    if n_components > 0:
        metrics.update(_distribution_metrics(estimates, _frame_rate(manifest, params)))
    timings = {str(stage): float(seconds) for stage, seconds in run.get("timings_s", {}).items()}
    total = round(sum(seconds for stage, seconds in timings.items() if "." not in stage), 4)  # as timings_s
    if timings:
        metrics["runtime_s"] = total
        metrics.update({f"runtime_{_metric_part(stage)}_s": seconds for stage, seconds in timings.items()})
    metrics["peak_rss_mb"] = run.get("peak_rss_mb")
    n_frames = _n_frames(manifest)
    if total > 0 and n_frames:
        metrics["frames_per_s"] = n_frames / total
    return finite_metrics(metrics)


def was_evaluated(run: Mapping[str, Any]) -> bool:
    """Whether the run evaluated its components (older manifests: whether any was accepted or rejected)."""
    if "evaluated" in run:
        return bool(run["evaluated"])
    statuses = run.get("statuses", {})
    return bool(statuses.get("accepted") or statuses.get("rejected"))


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Only the values that are finite numbers, as floats (MLflow would store NaN and plot nothing)."""
    kept = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            continue
        if math.isfinite(float(value)):
            kept[str(key)] = float(value)
    return kept


def _distribution_metrics(estimates: Mapping[str, Any], fr: float | None) -> dict[str, float | None]:
    snr, r_values, events = estimates["SNR_comp"], estimates["r_values"], estimates["events"]
    out: dict[str, float | None] = {}
    if snr.size:
        out.update(snr_median=float(np.median(snr)), snr_q25=float(np.percentile(snr, 25)),
                   snr_q75=float(np.percentile(snr, 75)))
    if r_values.size:
        out["r_median"] = float(np.median(r_values))
    if events.size and estimates["n_frames"] and fr:
        out["event_rate_mean"] = float(np.mean(events) / (estimates["n_frames"] / fr))
    return out


def read_estimate_summary(path: Path) -> dict[str, Any]:
    """K, frames, SNR_comp, r_values and events per component (frames with S > 0), read without
    loading footprints or traces at once (S is read a block of components at a time)."""
    with h5py.File(path, "r") as h5:
        group = h5["estimates"]
        S = group.get("S")
        if isinstance(S, h5py.Dataset) and S.ndim == 2:
            events = np.concatenate([np.count_nonzero(S[k:k + 256] > 0, axis=1) for k in range(0, S.shape[0], 256)]
                                    or [np.zeros(0, np.int64)])
            n_frames = int(S.shape[1])
        else:
            events, n_frames = np.zeros(0, np.int64), 0
        return {"K": int(events.size), "n_frames": n_frames, "events": events,
                "SNR_comp": _vector(group, "SNR_comp"), "r_values": _vector(group, "r_values")}


def _vector(group: h5py.Group, name: str) -> np.ndarray:
    item = group.get(name)
    if not isinstance(item, h5py.Dataset) or item.dtype.kind in "SOU":  # absent or "NoneType"
        return np.zeros(0)
    values = np.asarray(item[()], dtype=float).ravel()
    return values[np.isfinite(values)]


def _metric_part(stage: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", stage)


def _frame_rate(manifest: Mapping[str, Any], params: Params) -> float | None:
    if params.fr:
        return float(params.fr)
    rates = [record.get("frame_rate") for record in manifest.get("inputs", []) if record.get("frame_rate")]
    return float(rates[0]) if rates else None


def _n_frames(manifest: Mapping[str, Any]) -> int:
    frames = manifest.get("run", {}).get("n_frames")
    if frames is None:
        frames = sum(int(record.get("n_frames") or 0) for record in manifest.get("inputs", []))
    return int(frames)


def _frame_shape(manifest: Mapping[str, Any]) -> list[int] | None:
    shape = manifest.get("run", {}).get("frame_shape")
    if shape is None and manifest.get("inputs"):
        shape = manifest["inputs"][0].get("frame_shape")
    return shape


# ---------------------------------------------------------------------------------------- times

def work_span(manifest: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    """When the run's work started and ended (UTC), for MLflow's start and end times.

    The run summary's ``started_at`` / ``finished_at`` when it records them; else the work ended
    when the manifest was written (``created``) and started the recorded stage seconds earlier
    (a lower bound: validation and the writing of files are not among the recorded stages).
    None when the manifest says neither.
    """
    run = manifest.get("run", {})
    finished = parse_time(run.get("finished_at")) or parse_time(manifest.get("created"))
    if finished is None:
        return None
    started = parse_time(run.get("started_at"))
    if started is None or started > finished:
        started = finished - timedelta(seconds=recorded_seconds(run.get("timings_s", {})))
    return started, finished


def recorded_seconds(timings: Mapping[str, float]) -> float:
    """Seconds of the recorded stages: top-level stages, plus sub-stages ("export.nwb") whose stage is
    not itself recorded (a recorded stage already holds its sub-stages)."""
    total = 0.0
    for stage, seconds in timings.items():
        top = str(stage).split(".", 1)[0]
        if top == stage or top not in timings:
            total += float(seconds)
    return total


def parse_time(text: Any) -> datetime | None:
    """An ISO time as an aware UTC datetime (a naive one is taken as UTC); None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
