"""Reading parameters files: CaImAn's grouped JSON (``{"init": {...}, "patch": {...}}``) or flat keys.

Users hand us the same files they feed CaImAn, so CaImAn keys this tool has no use for are
reported, not fatal; a key nobody knows (usually a typo) is an error naming it.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cnmflow.errors import ParameterError
from cnmflow.motion.params import MOTION_PARAM_NAMES, motion_params
from cnmflow.params import PARAM_NAMES, ResolvedParams, value_problem, value_text

#: Our parameters in each CaImAn group (a parameter may live in several groups, e.g. nb, p).
USED_KEYS: dict[str, frozenset[str]] = {
    "data": frozenset({"fr", "decay_time", "dxy"}),
    "init": frozenset({"K", "gSig", "gSiz", "ssub", "tsub", "nb", "method_init", "min_corr", "min_pnr",
                       "ssub_B", "ring_size_factor", "normalize_init", "center_psf", "rolling_sum"}),
    "preprocess": frozenset({"p"}),
    "temporal": frozenset({"p", "method_deconvolution", "bas_nonneg", "nb"}),
    "spatial": frozenset({"update_background_components", "nb"}),
    "patch": frozenset({"rf", "stride", "only_init", "nb_patch", "low_rank_background", "del_duplicates",
                        "border_pix", "n_processes"}),
    "merging": frozenset({"merge_thr"}),
    "motion": frozenset({"max_shifts", "strides", "overlaps", "max_deviation_rigid", "pw_rigid", "gSig_filt",
                         "border_nan", "niter_rig"}),
}

#: CaImAn keys of the used groups that this tool does not expose: reported and ignored.
CAIMAN_ONLY_KEYS: dict[str, frozenset[str]] = {
    "data": frozenset({"fnames", "dims", "var_name_hdf5", "caiman_version", "last_commit", "mmap_F",
                       "mmap_C"}),
    "init": frozenset({"alpha_snmf", "init_iter", "kernel", "lambda_gnmf", "maxIter", "max_iter_snmf",
                       "nIter", "options_local_NMF", "perc_baseline_snmf", "rolling_length", "seed_method",
                       "sigma_smooth_snmf", "SC_kernel", "SC_sigma", "SC_thr", "SC_normalize",
                       "SC_use_NN", "SC_nnn", "use_cuda"}),
    "preprocess": frozenset({"check_nan", "compute_g", "include_noise", "lags", "max_num_samples_fft",
                             "n_pixels_per_process", "noise_method", "noise_range", "pixels", "sn"}),
    "temporal": frozenset({"ITER", "block_size_temp", "fudge_factor", "lags", "memory_efficient",
                           "noise_method", "noise_range", "num_blocks_per_run_temp", "optimize_g", "s_min",
                           "solvers", "verbosity"}),
    "spatial": frozenset({"block_size_spat", "dist", "expandCore", "extract_cc", "maxthr", "medw",
                          "method_exp", "method_ls", "n_pixels_per_process", "nrgthr",
                          "num_blocks_per_run_spat", "se", "ss", "thr_method"}),
    "patch": frozenset({"in_memory", "memory_fact", "p_patch", "p_ssub", "p_tsub", "remove_very_bad_comps",
                        "skip_refinement"}),
    "merging": frozenset({"do_merge", "merge_parallel", "max_merge_area"}),
    "motion": frozenset({"indices", "is3D", "min_mov", "niter_els", "nonneg_movie", "num_frames_split",
                         "num_splits_to_process_els", "num_splits_to_process_rig", "precision", "shifts_interpolate",
                         "shifts_opencv", "splits_els", "splits_rig", "upsample_factor_grid", "use_cuda"}),
}

#: CaImAn groups this tool does not use at all (evaluation, online, ring-CNN).
IGNORED_GROUPS = frozenset({"quality", "online", "ring_CNN"})

#: Parameters whose file value is a per-axis pair in CaImAn but a single number here.
_PAIRS = frozenset({"gSig", "gSiz", "dxy"})
#: Parameters where CaImAn's null means "auto" / "unset" here too.
_NULLABLE = frozenset({"fr", "K", "rf", "gSig_filt", "pw_rigid"})
#: Parameters where CaImAn treats null as False (the sample files write low_rank_background: null).
_NULL_IS_FALSE = frozenset({"low_rank_background"})


@dataclass(frozen=True)
class ParamsFile:
    """What a parameters file sets, and what of it this tool ignores (for the log)."""

    path: Path
    values: dict[str, Any]
    ignored_groups: tuple[str, ...]
    ignored_keys: tuple[str, ...]

    def notes(self) -> list[str]:
        notes = []
        if self.ignored_groups:
            notes.append(f"{self.path.name}: groups not used by source extraction were ignored: "
                         f"{', '.join(self.ignored_groups)}")
        if self.ignored_keys:
            notes.append(f"{self.path.name}: CaImAn parameters this tool does not expose were ignored: "
                         f"{', '.join(self.ignored_keys)}")
        return notes


def read_params_file(path: str | os.PathLike) -> ParamsFile:
    """Parse a JSON parameters file into flat parameter values (not yet validated against ranges)."""
    path = Path(path)
    try:
        # utf-8-sig: Windows editors (Notepad, PowerShell's Out-File) start the file with a byte-order mark
        document = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_object_without_repeats)
    except _RepeatedKey as err:
        raise ParameterError(f"parameters file {path}: key {err.args[0]!r} appears twice in one object (JSON keeps "
                             "only the last); keep one") from None
    except FileNotFoundError:
        raise ParameterError(f"parameters file {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ParameterError(f"parameters file {path} cannot be read: {err}") from None
    except json.JSONDecodeError as err:
        yaml = (" (a parameters file is JSON, as CaImAn writes it: write the same keys as a JSON object, e.g. "
                '{"gSig": 3, "min_corr": 0.8})') if path.suffix.lower() in (".yaml", ".yml") else ""
        raise ParameterError(f"parameters file {path} is not valid JSON{yaml}: {err}") from None
    except RecursionError:
        raise ParameterError(f"parameters file {path} is nested too deeply to be a parameters file; give a JSON "
                             "object of groups (e.g. {\"init\": {\"gSig\": [3, 3]}}) or of parameters") from None
    if not isinstance(document, dict):
        raise ParameterError(f"parameters file {path} must hold a JSON object of groups or parameters, "
                             f"not {type(document).__name__}")

    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    ignored_groups: list[str] = []
    ignored_keys: list[str] = []
    for key, content in document.items():
        if key in USED_KEYS:
            _check_group(path, key, content)
            for name, value in content.items():
                if name in USED_KEYS[key]:
                    _set(path, values, origin, name, value, where=f"{key}.{name}")
                elif name in CAIMAN_ONLY_KEYS[key]:
                    ignored_keys.append(f"{key}.{name}")
                else:
                    raise ParameterError(_unknown_key_message(path, key, name))
        elif key in IGNORED_GROUPS:
            ignored_groups.append(key)
        elif key in PARAM_NAMES:
            _set(path, values, origin, key, content, where=key)
        else:
            raise ParameterError(_unknown_key_message(path, None, key))
    return ParamsFile(path=path, values=values, ignored_groups=tuple(ignored_groups),
                      ignored_keys=tuple(ignored_keys))


class _RepeatedKey(ValueError):
    """A JSON object names the same key twice."""


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        raise _RepeatedKey(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return document


def _check_group(path: Path, group: str, content: Any) -> None:
    if not isinstance(content, dict):
        raise ParameterError(f"parameters file {path}: group {group!r} must be a JSON object, "
                             f"not {type(content).__name__}")


def _set(path: Path, values: dict[str, Any], origin: dict[str, str], name: str, raw: Any, *, where: str) -> None:
    value = _convert(path, name, raw, where=where)
    problem = _motion_problem(name, value) if name in MOTION_PARAM_NAMES else value_problem(name, value)
    if problem:
        raise ParameterError(f"parameters file {path}: {where}={_json_text(raw)}: {problem}")
    if name in values and values[name] != value:
        raise ParameterError(
            f"parameters file {path}: {origin[name]}={values[name]!r} and {where}={value!r} disagree; "
            f"make them equal or keep one")
    values[name] = value
    origin.setdefault(name, where)


def _motion_problem(name: str, value: Any) -> str | None:
    """What is wrong with one motion value on its own (pairs may be one number, as in CaImAn), or None."""
    try:
        motion_params({name: value})
    except ParameterError as err:
        return str(err).split(": ", 2)[-1]
    return None


def _json_text(raw: Any) -> str:
    """The value as the file spells it (true, null, 1e400), cut short if long."""
    try:
        text = " ".join(json.dumps(raw).split())
    except (RecursionError, ValueError, TypeError):
        return value_text(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(path: Path, name: str, raw: Any, *, where: str) -> Any:
    if raw is None:
        if name in _NULLABLE:
            return None
        if name in _NULL_IS_FALSE:
            return False
        raise ParameterError(f"parameters file {path}: {where} is null; give a value or remove the key")
    if name in _PAIRS and isinstance(raw, (list, tuple)):
        if len(raw) != 2 or raw[0] != raw[1] or isinstance(raw[0], bool) != isinstance(raw[1], bool):
            example = raw[0] if raw and value_problem(name, raw[0]) is None else 3
            raise ParameterError(
                f"parameters file {path}: {where}={_json_text(raw)}; only equal values on both axes are supported "
                f"(e.g. [{example}, {example}])")
        return raw[0]
    return raw


def _unknown_key_message(path: Path, group: str | None, name: str) -> str:
    if group is None:
        candidates = list(PARAM_NAMES) + list(USED_KEYS) + list(IGNORED_GROUPS)
        where = f"top-level key {name!r}"
    else:
        candidates = list(USED_KEYS[group] | CAIMAN_ONLY_KEYS[group])
        where = f"key {name!r} in group {group!r}"
    close = difflib.get_close_matches(name, candidates, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"parameters file {path}: unknown {where}{hint}"


def resolve_run_params(
    *,
    preset: str = "1p",
    table: dict[str, Any] | None = None,
    params_file: str | os.PathLike | None = None,
    overwrite_params: bool = False,
) -> ResolvedParams:
    """Effective parameters of a run from everything the user gave, with the file's notes attached."""
    from cnmflow.params import resolve_params

    parsed = read_params_file(params_file) if params_file is not None else None
    resolved = resolve_params(
        preset=preset, table=table,
        file_values=parsed.values if parsed else None,
        file_name=str(parsed.path) if parsed else None,
        overwrite_params=overwrite_params,
    )
    idle = _idle_table_motion(resolved, preset)
    if parsed is None or not overwrite_params:
        return replace(resolved, notes=resolved.notes + idle)
    motion = sorted(set(parsed.values) & set(MOTION_PARAM_NAMES))
    idle += ((f"{parsed.path.name}: motion parameters applied ({', '.join(motion)}) but motion_correction is "
              "'none', so frames are not corrected; set motion_correction to rigid or piecewise_rigid",)
             if motion and resolved.params.motion_correction == "none" else ())
    return ResolvedParams(params=resolved.params, sources=resolved.sources,
                          notes=tuple(parsed.notes()) + idle + resolved.notes)


def _idle_table_motion(resolved: ResolvedParams, preset: str) -> tuple[str, ...]:
    """The note for motion values set in the table (``--set max_shifts=10``, a form field changed) that do nothing
    while motion_correction is 'none' (a parameters file's get theirs above); a form's unchanged fields say nothing."""
    from cnmflow.params import resolve_params

    if resolved.params.motion_correction != "none":
        return ()
    defaults = resolve_params(preset=preset).params
    changed = [name for name in MOTION_PARAM_NAMES if resolved.sources.get(name) == "table"
               and getattr(resolved.params, name) != getattr(defaults, name)]
    if not changed:
        return ()
    return (f"motion parameters set ({', '.join(changed)}) but motion_correction is 'none', so frames are not "
            "corrected and they do nothing; set motion_correction to rigid or piecewise_rigid",)
