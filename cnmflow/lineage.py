"""``manifest.json``: every output traceable to its input movies, parameters, code version and runs.

The manifest is written last, beside the outputs it describes.  For each output file it records
the file's sha256 and size, its kind, and which input movies it came from (the one movie for a
per-movie output, every movie for a whole-series output); for the run it records every input
movie (absolute path, size, sha256, frames, frame range in the concatenated movie), every
effective parameter with its source and default, the software versions, the code version (git
commit of the source tree when there is one) and the ids of the orchestration/tracking runs.

``verify_manifest`` re-hashes the outputs; ``lineage_of`` prints the chain for one output file.

Layout (schema version 1)::

    {"schema": "cnmflow.manifest", "schema_version": 1, "created": "2024-05-06T07:08:09.123+00:00",
     "outputs": {name: {"kind", "sha256", "size_bytes", "movie_index", "inputs": [input index, ...]}},
     "inputs": [{"index", "path", "size_bytes", "sha256", "kind", "n_frames", "frame_shape",
                 "frame_rate", "frame_rate_source", "frame_range": [first, stop], "position"}, ...],
     "parameters": {name: {"value", "source", "default"}},
     "parameter_notes": [...], "software": {...}, "code": {...}, "run_ids": {...}, "notes": [...]}
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping

from cnmflow.atomic_write import atomic_path
from cnmflow.errors import InputError
from cnmflow.outputs.names import MANIFEST_NAME

SCHEMA = "cnmflow.manifest"
SCHEMA_VERSION = 1

#: Kinds of output file a manifest knows.
OUTPUT_KINDS: tuple[str, ...] = (
    "caiman_hdf5", "cellset_raw", "cellset_denoised", "neural_events", "preview", "image", "metadata", "nwb",
    "motion_corrected", "motion_shifts",
)

#: Distributions whose versions are recorded (distribution names, as pip knows them).
SOFTWARE: tuple[str, ...] = ("cnmflow", "numpy", "scipy", "h5py", "tifffile", "isx", "oasis-deconv", "pynwb")

NOT_INSTALLED = "not installed"
GIT_TIMEOUT_S = 5.0

#: The directory whose git commit is the code version (module-level so tests can point it elsewhere).
PACKAGE_DIR = Path(__file__).resolve().parent


# --------------------------------------------------------------------------------------- hashing

def sha256_file(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks of ``chunk_bytes`` (never the whole file at once)."""
    chunk_bytes = int(chunk_bytes)
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk_bytes)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------- inputs

def input_records(series, hashes: Mapping[int, str] | None = None) -> list[dict]:
    """One record per input movie of a :class:`~cnmflow.movies.MovieSeries`, in the user's order.

    ``index`` is the movie's position in the list the user gave, ``position`` its position in
    the concatenation order (start-time order for isxd), ``frame_range`` its ``[first, stop)``
    frames in the concatenated movie.  Each movie file is hashed (streamed) unless ``hashes``
    (movie index → sha256, e.g. from the validation step) already holds its hash.
    """
    hashes = hashes or {}
    offsets = series.offsets()
    position = {k: pos for pos, k in enumerate(series.order)}
    records = []
    for k, movie in enumerate(series.movies):
        path = Path(movie.path)
        first, stop = offsets[k]
        records.append({
            "index": k,
            "path": str(path.absolute()),
            "size_bytes": path.stat().st_size,
            "sha256": hashes.get(k) or sha256_file(path),
            "kind": movie.kind,
            "n_frames": int(movie.n_frames),
            "frame_shape": [int(n) for n in movie.frame_shape],
            "frame_rate": None if movie.frame_rate is None else float(movie.frame_rate),
            "frame_rate_source": movie.frame_rate_source,
            "frame_range": [int(first), int(stop)],
            "position": position[k],
        })
    return records


# ------------------------------------------------------------------------------- software / code

def software_versions() -> dict[str, str]:
    """Installed versions of cnmflow and the libraries that shape its outputs, plus Python's."""
    versions = {}
    for name in SOFTWARE:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = NOT_INSTALLED
    versions["python"] = platform.python_version()
    return versions


def _git(args: list[str], cwd: Path) -> str | None:
    """stdout of a git command in ``cwd``, or None when git is missing, fails or times out."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def code_version(directory: str | os.PathLike | None = None) -> dict:
    """cnmflow's version and the git commit of its source tree.

    ``git rev-parse HEAD`` runs in ``directory`` (default: the installed package's directory,
    :data:`PACKAGE_DIR`).  ``git_commit`` and ``dirty`` are None when it is not a git checkout,
    git is missing, or the directory is not tracked by the enclosing repository (a package
    installed into a virtualenv that happens to live inside some repository).  ``dirty`` is True
    when ``git status --porcelain`` lists changed or untracked files in the repository.
    """
    from cnmflow.version import __version__

    where = Path(directory) if directory is not None else PACKAGE_DIR
    out: dict[str, Any] = {"cnmflow": __version__, "source_dir": str(where),
                           "git_commit": None, "dirty": None}
    if not where.is_dir():
        return out
    head = _git(["rev-parse", "HEAD"], where)
    commit = head.strip() if head else ""
    if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
        return out
    tracked = _git(["ls-files", "--", "."], where)
    if not tracked or not tracked.strip():
        return out
    out["git_commit"] = commit
    status = _git(["status", "--porcelain"], where)
    out["dirty"] = None if status is None else bool(status.strip())
    return out


# -------------------------------------------------------------------------------------- manifest

def _parameter_table(resolved) -> dict[str, dict]:
    from cnmflow.params import Params

    values = resolved.params.model_dump(mode="json")
    table = {}
    for name, _value, source in resolved.describe():
        try:
            default = Params.model_fields[name].get_default(call_default_factory=True)
        except TypeError:  # older pydantic signature
            default = Params.model_fields[name].get_default()
        table[name] = {"value": values[name], "source": source, "default": _jsonable(default)}
    return table


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _check_output_name(name: str) -> str:
    pure = PurePosixPath(name)
    if (not name or pure.is_absolute() or ".." in pure.parts or "\\" in name
            or str(pure) != name or name == MANIFEST_NAME):
        raise InputError(
            f"output name {name!r} is not allowed in a manifest: give the file's path relative to the "
            f"output folder (forward slashes, no '..'), other than {MANIFEST_NAME}")
    return name


def _output_record(output_dir: Path, name: str, spec: Mapping[str, Any], all_inputs: list[int]) -> dict:
    """The manifest record of one output file (hashed where it lies); InputError for a bad entry."""
    _check_output_name(name)
    kind = spec.get("kind")
    if kind not in OUTPUT_KINDS:
        raise InputError(f"output {name}: kind {kind!r} is not known; use one of {', '.join(OUTPUT_KINDS)}")
    movie_index = spec.get("movie_index")
    if movie_index is not None:
        if isinstance(movie_index, bool) or not isinstance(movie_index, int) or movie_index not in all_inputs:
            raise InputError(
                f"output {name}: movie_index={movie_index!r} is not one of the input movies "
                f"({', '.join(map(str, all_inputs)) or 'none'}); give an input index or None for the whole series")
    file = output_dir / name
    if not file.is_file():
        raise InputError(f"output {name} is listed for the manifest but {file} does not exist; "
                         "write the outputs before the manifest")
    return {
        "kind": kind,
        "sha256": sha256_file(file),
        "size_bytes": file.stat().st_size,
        "movie_index": movie_index,
        "inputs": all_inputs if movie_index is None else [movie_index],
    }


def build_manifest(
    *,
    output_dir: str | os.PathLike,
    outputs: Mapping[str, Mapping[str, Any]],
    inputs: list[dict],
    resolved,
    run_ids: Mapping[str, str | None] | None = None,
    notes: Iterable[str] = (),
    run: Mapping[str, Any] | None = None,
) -> dict:
    """The manifest of one run (not written; see :func:`write_manifest`).

    ``output_dir`` is the folder holding the outputs (and, once written, ``manifest.json``):
    each output name in ``outputs`` is a path relative to it, and the file is hashed there.
    ``outputs`` maps name -> ``{"kind": one of OUTPUT_KINDS, "movie_index": int | None}``
    where ``movie_index`` is the input movie (index in the user's order, as in ``inputs``) the
    output belongs to, None for a whole-series output.  ``inputs`` is :func:`input_records`.
    ``resolved`` is the run's :class:`~cnmflow.params.ResolvedParams`; its notes are kept under
    ``parameter_notes``.  ``run_ids`` are recorded as given (e.g. ``prefect_flow_run_id``,
    ``mlflow_run_id``).  ``run`` describes the run itself (fingerprint, timings, peak memory,
    component counts) for trackers and for deciding whether outputs are up to date.  Raises InputError for an unknown kind, a bad movie index or a missing
    output file.
    """
    output_dir = Path(output_dir)
    inputs = [dict(rec) for rec in inputs]
    all_inputs = [rec["index"] for rec in inputs]
    out_records = {name: _output_record(output_dir, name, outputs[name], all_inputs) for name in sorted(outputs)}
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),   # MLflow end times are ms
        "outputs": out_records,
        "inputs": inputs,
        "parameters": _parameter_table(resolved),
        "parameter_notes": list(resolved.notes),
        "software": software_versions(),
        "code": code_version(),
        "run_ids": {str(k): (None if v is None else str(v)) for k, v in (run_ids or {}).items()},
        "notes": [str(n) for n in notes],
        "run": _jsonable(dict(run or {})),
    }


def _manifest_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def write_manifest(path: str | os.PathLike, manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest`` as JSON to ``path`` (a folder means ``folder/manifest.json``).

    Written to a temporary name in the same folder, then renamed, so a reader never sees half a
    manifest.  Returns the path written.
    """
    path = _manifest_path(path)
    text = json.dumps(manifest, indent=2, default=str)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


def record_run_ids(path: str | os.PathLike, run_ids: Mapping[str, str | None],
                   notes: Iterable[str] = ()) -> dict:
    """Add run ids (e.g. the MLflow run logged after the export) and notes to a written manifest.

    The manifest does not hash itself, so updating it keeps every output record valid; it is
    rewritten atomically, holding the folder's lock (a run writing the folder is waited for by
    nobody: ``cnmflow track`` on a busy folder is refused; the run's own tracking nests in its
    hold).  Returns the updated manifest.
    """
    from cnmflow.outputs.folder_lock import lock_output_dir

    with lock_output_dir(_manifest_path(path).parent):
        manifest = read_manifest(path)
        manifest["run_ids"] = {**manifest.get("run_ids", {}),
                               **{str(k): (None if v is None else str(v)) for k, v in run_ids.items()}}
        manifest["notes"] = list(manifest.get("notes", [])) + [str(n) for n in notes]
        write_manifest(path, manifest)
    return manifest


def with_outputs(manifest: Mapping[str, Any], outputs: Mapping[str, Mapping[str, Any]], *,
                 folder: str | os.PathLike, notes: Iterable[str] = ()) -> dict:
    """A copy of ``manifest`` that also lists files written after the run (e.g. ``cnmflow nwb``'s).

    ``outputs`` is name -> ``{"kind", "movie_index"}`` as for :func:`build_manifest`; each file is
    hashed in ``folder`` (the output folder, or a staging folder swapped in afterwards) and
    replaces an earlier record of the same name. Nothing is written; see :func:`write_manifest`.
    """
    all_inputs = [rec["index"] for rec in manifest.get("inputs", [])]
    records = {name: _output_record(Path(folder), name, spec, all_inputs) for name, spec in outputs.items()}
    updated = dict(manifest)
    updated["outputs"] = dict(sorted({**manifest.get("outputs", {}), **records}.items()))
    updated["notes"] = list(manifest.get("notes", [])) + [str(n) for n in notes]
    return updated


def read_manifest(path: str | os.PathLike) -> dict:
    """Read a manifest (``path`` is the file or its folder); InputError when absent or not a manifest."""
    path = _manifest_path(path)
    if not path.is_file():
        raise InputError(f"no lineage manifest at {path}; outputs written by cnmflow have a "
                         f"{MANIFEST_NAME} beside them — was the run finished, or the file moved?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path} is not a readable JSON manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise InputError(f"{path} is not a cnmflow lineage manifest (no \"schema\": \"{SCHEMA}\")")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InputError(f"{path} has manifest schema version {version!r}; this cnmflow reads up to "
                         f"{SCHEMA_VERSION} — upgrade cnmflow")
    return manifest


def _check_file(folder: Path, name: str, record: Mapping[str, Any]) -> str | None:
    """The problem with one listed file, or None when its size and sha256 match."""
    file = folder / name
    if not file.is_file():
        return f"{name}: missing"
    size = file.stat().st_size
    if size != record.get("size_bytes"):
        return f"{name}: size differs (manifest {record.get('size_bytes')} bytes, file {size} bytes)"
    if sha256_file(file) != record.get("sha256"):
        return f"{name}: sha256 differs"
    return None


def verify_manifest(output_dir: str | os.PathLike, *, check_inputs: bool = False) -> list[str]:
    """Re-hash every output listed in ``output_dir/manifest.json``; the problems found, [] when intact.

    Problems read like ``"cellset_raw.000.isxd: sha256 differs"`` or ``"x.h5: missing"``.
    With ``check_inputs`` the input movies are re-hashed too (slow for long movies).  Raises
    InputError when there is no manifest.
    """
    folder = Path(output_dir)
    if folder.is_file():
        folder = folder.parent
    manifest = read_manifest(folder)
    problems = []
    for name, record in manifest.get("outputs", {}).items():
        problem = _check_file(folder, name, record)
        if problem:
            problems.append(problem)
    if check_inputs:
        for rec in manifest.get("inputs", []):
            path = Path(rec["path"])
            problem = _check_file(path.parent, path.name, rec)
            if problem:
                problems.append(f"input {path.parent / problem}")
    return problems


# --------------------------------------------------------------------------------------- lineage

def _fmt(value) -> str:
    if isinstance(value, float) and math.isfinite(value):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def _find_manifest(file: Path) -> tuple[Path, dict, str]:
    """The manifest folder, manifest and output name for ``file`` (looking beside it, then upward)."""
    tried = []
    for folder in [file.parent, *list(file.parent.parents)[:3]]:
        candidate = folder / MANIFEST_NAME
        if not candidate.is_file():
            continue
        tried.append(candidate)
        manifest = read_manifest(candidate)
        name = file.relative_to(folder).as_posix()
        if name in manifest.get("outputs", {}):
            return folder, manifest, name
        if folder == file.parent:
            raise InputError(
                f"{file.name} is NOT listed in {candidate}; it was not written by the run that manifest "
                f"describes (listed: {', '.join(sorted(manifest.get('outputs', {}))) or 'nothing'})")
    if not tried:
        raise InputError(f"no lineage manifest for {file}: there is no {MANIFEST_NAME} beside it; "
                         "the file was not written by a finished cnmflow run, or it was moved away from its manifest")
    raise InputError(f"{file} is not listed in {', '.join(map(str, tried))}")


def lineage_of(path: str | os.PathLike) -> str:
    """A human-readable account of where one output file came from.

    Finds ``manifest.json`` beside the file, checks the file's sha256 against it and lists the
    output (hash, size, kind), the input movies it came from (path, sha256, frames, frame range),
    the parameters that differ from their defaults or were set explicitly (with their sources),
    software and code versions and run ids.  Raises InputError when there is no manifest, the
    file is not listed, is missing, or its contents no longer match the manifest.
    """
    file = Path(path).absolute()
    if not file.is_file():
        raise InputError(f"{file} does not exist (or is not a file); give an output file of a cnmflow run")
    folder, manifest, name = _find_manifest(file)
    record = manifest["outputs"][name]
    problem = _check_file(folder, name, record)
    if problem:
        raise InputError(
            f"!! {file} DOES NOT MATCH its lineage manifest {folder / MANIFEST_NAME}: {problem}. "
            "The file was changed or replaced after the run wrote it; its recorded lineage does not apply to it.")

    lines = [
        f"Lineage of {file}",
        f"  output:   {name} ({record['kind']}), {record['size_bytes']} bytes",
        f"  sha256:   {record['sha256']} (matches the file)",
        f"  manifest: {folder / MANIFEST_NAME} (schema {manifest.get('schema_version')}, "
        f"created {manifest.get('created')})",
    ]
    inputs = {rec["index"]: rec for rec in manifest.get("inputs", [])}
    total = len(inputs)
    used = record.get("inputs", [])
    scope = (f"input movie [{record['movie_index']}] of {total}" if record.get("movie_index") is not None
             else f"whole series of {total} movie{'s' if total != 1 else ''}")
    lines += ["", f"Inputs ({scope}):"]
    for k in used:
        rec = inputs.get(k)
        if rec is None:
            lines.append(f"  [{k}] (not described in the manifest)")
            continue
        shape = "x".join(map(str, rec.get("frame_shape", [])))
        rate = rec.get("frame_rate")
        rate_text = f" at {_fmt(rate)} Hz ({rec.get('frame_rate_source')})" if rate is not None else ""
        first, stop = rec.get("frame_range", [None, None])
        lines += [
            f"  [{k}] {rec['path']}",
            f"      sha256 {rec['sha256']}, {rec['size_bytes']} bytes, {rec['kind']}",
            f"      {rec['n_frames']} frames of {shape}{rate_text}; frames [{first}, {stop}) of the "
            f"concatenated movie (position {rec.get('position')})",
        ]

    params = manifest.get("parameters", {})
    changed = [(n, p) for n, p in params.items()
               if p.get("value") != p.get("default") or p.get("source") in ("table", "metadata")
               or str(p.get("source", "")).startswith("file")]
    lines += ["", "Parameters that differ from their defaults or were set explicitly:"]
    for n, p in changed:
        default = "same as default" if p.get("value") == p.get("default") else f"default {_fmt(p.get('default'))}"
        lines.append(f"  {n} = {_fmt(p.get('value'))} ({p.get('source')})  [{default}]")
    if not changed:
        lines.append("  (none: every parameter at its default)")
    lines.append(f"  ({len(params) - len(changed)} other parameters at their defaults)")
    for note in manifest.get("parameter_notes", []):
        lines.append(f"  note: {note}")

    software = manifest.get("software", {})
    code = manifest.get("code", {})
    commit = code.get("git_commit")
    commit_text = (f"git {commit}{' (with uncommitted changes)' if code.get('dirty') else ''}"
                   if commit else "no git commit recorded")
    lines += ["", "Software:",
              "  " + ", ".join(f"{k} {v}" for k, v in software.items()),
              f"  code: cnmflow {code.get('cnmflow')}, {commit_text}"]
    run_ids = manifest.get("run_ids", {})
    lines += ["", "Runs:"]
    lines += [f"  {k}: {v}" for k, v in run_ids.items()] or ["  (no run ids recorded)"]
    if manifest.get("notes"):
        lines += ["", "Notes:"] + [f"  {n}" for n in manifest["notes"]]
    return "\n".join(lines) + "\n"
