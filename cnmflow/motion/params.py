"""Motion-correction parameters under CaImAn's names (its ``motion`` group), as one frozen model.

Meanings follow CaImAn / NoRMCorre (Pnevmatikakis & Giovannucci 2017):

- ``max_shifts`` bounds the rigid shift per axis (pixels); ``strides`` / ``overlaps`` lay out the
  patches of piecewise-rigid registration: a patch is ``strides + overlaps`` pixels, the next one
  starts ``strides`` further; ``max_deviation_rigid`` bounds how far a patch's shift may stray
  from the frame's rigid shift.
- ``gSig_filt`` (1P data): frames are high-pass filtered with a zero-mean Gaussian kernel of this
  width *for estimating shifts only*; the corrected movie keeps its raw intensities.
- ``border_nan``: how pixels that a shift exposes are filled. The engine refuses NaN, so CaImAn's
  options map as ``'copy'`` (the default of CaImAn's ``CNMFParams``) → replicate the nearest edge
  pixel; ``True`` (NoRMCorre's default, NaN there) → replicate too, and the result says the crop box should be excluded downstream;
  ``'min'`` and ``False`` → the frame's minimum (a constant a zero-filled edge would turn into an
  artificial dark band that the seeding would mistake for structure; the minimum stays in range).
"""

from __future__ import annotations

import re
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cnmflow.errors import ParameterError

Method = Literal["none", "rigid", "piecewise_rigid"]


#: Each (rows, cols) pair's least value per axis: the table's validators and the Prefect form read them here.
PAIR_MINIMUMS: dict[str, int] = {"max_shifts": 0, "strides": 1, "overlaps": 0, "gSig_filt": 1}

#: A pair typed as text (``--set max_shifts=8,6``, a form field): two whole numbers, in brackets or not.
_PAIR_TEXT = re.compile(r"\s*[\[(]?\s*(\d+)\s*,\s*(\d+)\s*[\])]?\s*")


def pair_value(name: str, value: Any, *, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (rows, cols), each >= minimum; text "8,6" (or "[8, 6]", "(8, 6)") is the pair."""
    if isinstance(value, str):
        typed = _PAIR_TEXT.fullmatch(value)
        if typed is None:
            raise ValueError(f"give one whole number for both axes or two (rows, cols), e.g. {name}=8 or {name}=8,6")
        value = (int(typed.group(1)), int(typed.group(2)))
    _check_plain_number(value)
    items = [value, value] if isinstance(value, (int, float)) else list(value)
    if len(items) != 2:
        raise ValueError(f"{name} needs 2 values (rows, cols), got {len(items)}")
    out = []
    for item in items:
        _check_plain_number(item)
        if float(item) != int(item):
            raise ValueError(f"{name} must hold whole numbers, got {item!r}")
        if int(item) < minimum:
            raise ValueError(f"{name} values must be >= {minimum}, got {int(item)}")
        out.append(int(item))
    return out[0], out[1]


def _check_plain_number(value: Any) -> Any:
    """Refuse true/false and text where a number belongs, as the analysis table does (1 is not True)."""
    if isinstance(value, bool):
        raise ValueError("true/false is not a number; give a number")
    if isinstance(value, (str, bytes)):
        raise ValueError("text is not a number; give a number")
    return value


class MotionSection(BaseModel):
    """CaImAn's motion parameters plus the sub-pixel ``upsample_factor``; checked on creation.

    The one home of these fields and their rules: :class:`MotionParams` is this section alone,
    and the analysis table (:class:`cnmflow.params.Params`) inherits it, so ``--set``, the form
    and a parameters file's ``motion`` group reach the same fields.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    motion_correction: Method = Field(
        "none", description="none: frames are used as they are; rigid: one shift per frame; "
        "piecewise_rigid: a smooth shift field per frame from patch shifts.")
    max_shifts: tuple[int, int] = Field(
        (6, 6), description="Largest rigid shift searched, in pixels per axis (rows, cols).")
    strides: tuple[int, int] = Field(
        (96, 96), description="Distance between patch starts for piecewise_rigid, pixels (rows, cols).")
    overlaps: tuple[int, int] = Field(
        (32, 32), description="Overlap of neighbouring patches, pixels; a patch is strides + overlaps.")
    max_deviation_rigid: int = Field(
        3, ge=0, description="Largest difference of a patch's shift from the frame's rigid shift, pixels.")
    pw_rigid: bool = Field(
        False, description="CaImAn's switch for piecewise-rigid; unset (None) follows motion_correction, a "
        "value must agree with it.")
    gSig_filt: tuple[int, int] | None = Field(
        None, description="Width (pixels) of the high-pass filter applied for estimating shifts only "
        "(1P/miniscope data); None for 2P.")
    border_nan: bool | Literal["copy", "min"] = Field(
        "copy", description="Fill of pixels exposed by a shift: 'copy' or True replicate the edge "
        "(True also marks the crop box for exclusion), 'min' or False use the frame's minimum.")
    niter_rig: int = Field(
        1, ge=1, description="Passes of rigid registration; each pass after the first re-estimates "
        "against the mean of the previous pass's registered frames.")
    upsample_factor: int = Field(
        10, ge=1, le=100, description="Sub-pixel precision of shift estimates: 1/upsample_factor pixel.")

    @model_validator(mode="before")
    @classmethod
    def _fill_pw_rigid(cls, values: Any) -> Any:
        """pw_rigid left unset follows motion_correction, so it always reads as CaImAn's bool."""
        if isinstance(values, dict) and values.get("pw_rigid") is None:
            return {**values, "pw_rigid": values.get("motion_correction", "none") == "piecewise_rigid"}
        return values

    @field_validator("pw_rigid", mode="before")
    @classmethod
    def _check_flag(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError("give true or false")
        return value

    @field_validator("max_deviation_rigid", "niter_rig", "upsample_factor", mode="before")
    @classmethod
    def _check_whole_numbers(cls, value: Any) -> Any:
        return _check_plain_number(value)

    @field_validator("max_shifts", mode="before")
    @classmethod
    def _check_max_shifts(cls, value: Any) -> tuple[int, int]:
        return pair_value("max_shifts", value, minimum=PAIR_MINIMUMS["max_shifts"])

    @field_validator("strides", mode="before")
    @classmethod
    def _check_strides(cls, value: Any) -> tuple[int, int]:
        return pair_value("strides", value, minimum=PAIR_MINIMUMS["strides"])

    @field_validator("overlaps", mode="before")
    @classmethod
    def _check_overlaps(cls, value: Any) -> tuple[int, int]:
        return pair_value("overlaps", value, minimum=PAIR_MINIMUMS["overlaps"])

    @field_validator("gSig_filt", mode="before")
    @classmethod
    def _check_gsig_filt(cls, value: Any) -> tuple[int, int] | None:
        return None if value is None else pair_value("gSig_filt", value, minimum=PAIR_MINIMUMS["gSig_filt"])

    @model_validator(mode="after")
    def _check_motion_combinations(self) -> "MotionSection":
        if self.motion_correction == "rigid" and self.pw_rigid:
            raise ValueError("pw_rigid=True contradicts motion_correction='rigid'; set "
                             "motion_correction='piecewise_rigid' or pw_rigid=False")
        if self.motion_correction == "piecewise_rigid" and self.pw_rigid is False:
            raise ValueError("pw_rigid=False contradicts motion_correction='piecewise_rigid'; set "
                             "motion_correction='rigid' or drop pw_rigid")
        return self

    @property
    def motion(self) -> "MotionParams":
        """This section's values alone, as :func:`cnmflow.motion.correct_motion` takes them."""
        return MotionParams(**{name: getattr(self, name) for name in MOTION_PARAM_NAMES})

    @property
    def piecewise(self) -> bool:
        """Whether patch shifts are estimated and applied (after the rigid shift)."""
        return self.motion_correction == "piecewise_rigid"

    @property
    def patch_size(self) -> tuple[int, int]:
        """Side of a piecewise patch in pixels (rows, cols): strides + overlaps, as in CaImAn."""
        return self.strides[0] + self.overlaps[0], self.strides[1] + self.overlaps[1]


class MotionParams(MotionSection):
    """The motion section on its own, as :func:`correct_motion` takes it."""


MOTION_PARAM_NAMES: tuple[str, ...] = tuple(MotionSection.model_fields)


def motion_params(values: Mapping[str, Any] | None = None, /, **more: Any) -> MotionParams:
    """Validate values into :class:`MotionParams`; errors name the parameter, the value and the fix.

    Raises
    ------
    ParameterError
        On an unknown name or a value out of range.
    """
    values = {**(values or {}), **more}
    unknown = sorted(set(values) - set(MOTION_PARAM_NAMES))
    if unknown:
        raise ParameterError(f"unknown motion parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(MOTION_PARAM_NAMES)}")
    try:
        return MotionParams(**values)
    except ValidationError as err:
        problems = []
        for problem in err.errors():
            name = ".".join(str(part) for part in problem["loc"][:1]) or "motion parameters"
            message = problem["msg"].removeprefix("Value error, ")
            shown = f"{name}={values[name]!r}" if name in values else name
            problems.append(f"parameter {shown}: {message}")
        raise ParameterError("invalid motion parameters: " + "; ".join(problems)) from None


def check_against_frame(params: MotionParams, frame_shape: tuple[int, int]) -> None:
    """Refuse settings that cannot work on frames of this size (rows, cols), naming the parameter."""
    for axis, (shift, side) in enumerate(zip(params.max_shifts, frame_shape)):
        if 2 * shift >= side:
            raise ParameterError(f"parameter max_shifts={params.max_shifts}: a shift of {shift} px along axis "
                                 f"{axis} does not fit frames of {side} px; use max_shifts < {side // 2}")
    if params.piecewise:
        for axis, (size, side) in enumerate(zip(params.patch_size, frame_shape)):
            reach = min(size, side)
            if 2 * (params.max_shifts[axis] + params.max_deviation_rigid) >= reach:
                raise ParameterError(
                    f"parameter max_deviation_rigid={params.max_deviation_rigid}: with max_shifts="
                    f"{params.max_shifts} a patch of {reach} px (strides + overlaps) along axis {axis} cannot "
                    "hold the shift; raise strides/overlaps or lower max_shifts/max_deviation_rigid")
