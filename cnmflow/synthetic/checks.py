"""Argument checks shared by the simulators and the movie writers: the name, the value, what is allowed."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from cnmflow.errors import ParameterError

__all__ = ["check_fraction", "check_positive", "check_shape", "preset_with_overrides"]


def check_positive(name: str, value, *, integer: bool = False, allow_zero: bool = False) -> None:
    """ParameterError unless ``value`` is a finite number (an integer with ``integer``) > 0 (>= 0 with ``allow_zero``)."""
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool):
        ok = False
    if ok:
        ok = value >= 0 if allow_zero else value > 0
        ok = ok and math.isfinite(float(value))
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = ">= 0" if allow_zero else "> 0"
        raise ParameterError(f"{name}={value!r} is not allowed: give {kind} {bound}.")


def check_fraction(name: str, value) -> None:
    """ParameterError unless ``value`` lies in [0, 1) (a share of the light or of the signal; NaN is refused)."""
    if not 0.0 <= float(value) < 1.0:
        raise ParameterError(f"{name}={value!r} is not allowed: give a fraction in [0, 1).")


def check_shape(shape) -> tuple[int, int]:
    """``(rows, cols)`` of a simulated movie, at least 8 x 8 pixels (else ParameterError)."""
    try:
        rows, cols = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ParameterError(f"shape={shape!r} is not allowed: give (rows, cols), e.g. (64, 64).") from None
    if rows < 8 or cols < 8:
        raise ParameterError(f"shape={shape!r} is too small: give at least (8, 8) pixels.")
    return rows, cols


def preset_with_overrides(presets: Mapping[str, Any], name: str, overrides: Mapping[str, Any], *, simulator: str):
    """The settings (a dataclass) of preset ``name`` with ``overrides`` replacing its fields; ParameterError naming an
    unknown preset or field and what is allowed."""
    if name not in presets:
        raise ParameterError(f"configuration={name!r} is not allowed: use one of {sorted(presets)}.")
    fields = {f.name for f in dataclasses.fields(presets[name])}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ParameterError(
            f"{unknown[0]}= is not a setting of the {simulator} simulator: use one of {sorted(fields)}.")
    return dataclasses.replace(presets[name], **overrides)
