"""The analysis table as a form: every seed parameter as a field with a concrete default.

Prefect renders a flow's pydantic parameter as a form; an ``Optional[...] = None`` field shows as
an awkward type chooser ("float | None", "Property is type None"), so every field holds a value:
the seed's "auto" fr and K and rf's "unspecified" (one patch) are entered as 0 (:data:`ZERO_MEANS_NONE`),
the motion high-pass ``gSig_filt`` "none" as 0, 0, and ``border_nan``'s true/false as menu entries
beside "copy" and "min" (:data:`FORM_TO_TABLE`).
gSig, min_corr and min_pnr take a number or "auto" (a chooser between the two).  The fields keep
the seed's order (Prefect's UI sorts them by their ``position``).  The form's defaults are the
seed's defaults, which are the 1P preset; :func:`form_values` gives the 2P deployment its
pre-filled values.

**The rule: what the form shows is what runs.**  :func:`table_from_form` turns every field into
an analysis-table value, whatever it holds — an edit back to the other preset's value (nb 0 in
the 2P form) runs like any other edit.  The ``preset`` field fills in no field; it only says which
column of the seed's 1P/2P table the form is based on, so each value's source reads "preset 2p"
when it equals that column and "table" when it differs.  Since changing ``preset`` alone would
therefore change nothing, ``preset`` and ``method_init`` must agree (1p: corr_pnr; 2p:
greedy_roi or sparse_NMF): a form whose preset was switched without its fields (or whose
method_init was switched without its preset) fails before compute, naming both fields and the
fix (:func:`cnmflow.params.check_preset_agrees`).
"""

from __future__ import annotations

import copy
import functools
from typing import Annotated, Any, Literal, Mapping

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ModelWrapValidatorHandler, ValidationError,
                      WithJsonSchema, create_model, model_validator)
from pydantic_core import PydanticCustomError

from cnmflow.errors import ParameterError
from cnmflow.motion.params import MOTION_PARAM_NAMES, PAIR_MINIMUMS, pair_value
from cnmflow.params import (PARAM_NAMES, PRESETS, Number, Params, check_preset_agrees,
                            SEED_N_PROCESSES, default_n_processes, unknown_message, validation_message)


def _empty_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


#: An optional text parameter (a file, an address) shown as a plain text box: Prefect's UI renders
#: ``str | None`` as a "str | None" chooser; left empty it is None.
OptionalText = Annotated[str | None, BeforeValidator(_empty_is_none), WithJsonSchema({"type": "string"})]

#: pydantic error type of a form that does not validate; its message is the one-line summary.
FORM_ERROR = "invalid_parameters"

#: Table values that are None (auto / unspecified) and shown as 0 in a form: a plain number field.
ZERO_MEANS_NONE: tuple[str, ...] = ("fr", "K", "rf")


def _form_gsig_filt(value: Any) -> tuple[int, int]:
    """The form's gSig_filt read as the table reads a pair, with 0, 0 (or none) for no high-pass (FORM_TO_TABLE)."""
    pair = (0, 0) if value is None else pair_value("gSig_filt", value, minimum=0)
    return pair if pair == (0, 0) else pair_value("gSig_filt", pair, minimum=PAIR_MINIMUMS["gSig_filt"])


#: The form's own fields where the table's field would be ``X | None`` (shown as a type chooser).
_FORM_FIELDS: dict[str, tuple[Any, Any]] = {
    "fr": (Annotated[float, Number], Field(
        0.0, ge=0, title="fr", description="Imaging rate in frames per second. 0: auto, read from the movie's "
        "metadata (else 30 fps).")),
    "K": (Annotated[int, Number], Field(
        0, ge=0, title="K", description="Number of components to find per patch. 0: auto, estimated (corr_pnr: "
        "every seed above min_corr and min_pnr; greedy_roi: until nothing stands out of its surround; not "
        "sparse_NMF). With rf 0, K is the number of cells in the whole field of view.")),
    "rf": (Annotated[int, Number], Field(
        40, ge=0, title="rf", description="Half-size of a patch in pixels. 0: unspecified, the whole field of "
        "view is one patch.")),
    "n_processes": (Annotated[int, Number], Field(
        SEED_N_PROCESSES, ge=1, title="n_processes", description="Number of processes used to analyze patches "
        "in parallel (capped to the machine's cores, with a note in the summary).")),
    "gSig_filt": (Annotated[tuple[int, int], BeforeValidator(_form_gsig_filt)],
                  Field((0, 0), title="gSig_filt", description="Width (pixels, rows and cols) of the high-pass "
                        "filter applied for estimating shifts only, for 1P/miniscope data (e.g. 3, 3). 0, 0: none "
                        "(2P).")),
    "border_nan": (Annotated[Literal["copy", "min", "true", "false"],
                             BeforeValidator(lambda value: str(value).lower() if isinstance(value, bool) else value)],
                   Field("copy", title="border_nan", description="Fill of pixels exposed by a shift: copy or true "
                         "replicate the edge (true also marks the crop box for exclusion), min or false use the "
                         "frame's minimum.")),
}

#: Form values that stand for a different table value (the form shows no "X | None" chooser).
FORM_TO_TABLE: dict[str, dict[Any, Any]] = {
    **{name: {0: None} for name in ZERO_MEANS_NONE},
    "gSig_filt": {(0, 0): None},
    "border_nan": {"true": True, "false": False},
}


#: The motion section's (rows, cols) pairs read as the table reads them (one number for both, ``--set
#: max_shifts=8``; text "8,6"), with the table's least values and messages; gSig_filt has its own (0, 0: none).
PAIR_FIELDS: tuple[str, ...] = ("max_shifts", "strides", "overlaps")


def _form_fields(names: tuple[str, ...] = PARAM_NAMES) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in names:        # the seed's table in its order, then the motion section
        info = Params.model_fields[name]
        # the table's field keeps its Number / Flag checks and ranges
        annotation, info = _FORM_FIELDS.get(name) or (info.annotation, info)
        if name in PAIR_FIELDS:
            annotation = Annotated[annotation, BeforeValidator(functools.partial(pair_value, name,
                                                                                 minimum=PAIR_MINIMUMS[name]))]
        info = copy.copy(info)
        info.title = name             # CaImAn's name, as the seed's table writes it
        fields[name] = (annotation, info)
    return fields


def form_schema_extra(schema: dict[str, Any]) -> None:
    """What Prefect's UI needs to show the table well: each field's position (the seed's order), "auto"
    as a choice of its own in gSig/min_corr/min_pnr, and one-value choices as a menu, not a greyed box."""
    for position, prop in enumerate(schema.get("properties", {}).values()):
        prop["position"] = position
        for option in prop.get("anyOf", ()):
            if option.get("const") == "auto":
                option.pop("const")
                option.update(enum=["auto"], title="auto")
            elif option.get("type") in ("number", "integer"):
                option.setdefault("title", "number")
        if "const" in prop:                                   # e.g. method_deconvolution: only "oasis" so far
            prop["enum"] = [prop.pop("const")]


class _FormBase(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=form_schema_extra)

    @model_validator(mode="wrap")
    @classmethod
    def _one_line(cls, values: Any, handler: ModelWrapValidatorHandler) -> Any:
        """All of a form's problems as one error with our one-line message (Prefect shows it as is)."""
        try:
            return handler(values)
        except ValidationError as err:
            shown = values if isinstance(values, Mapping) else {}
            raise PydanticCustomError(FORM_ERROR, "{message}", {"message": validation_message(err, shown)}) from None


ExtractionParams = create_model(  # type: ignore[call-overload]
    "ExtractionParams", __base__=_FormBase, __doc__="The seed's analysis table (1P preset values by default).",
    **_form_fields())


def form_values(preset: str = "1p") -> dict[str, Any]:
    """Every field's value for ``preset``, as JSON — a deployment's pre-filled parameters."""
    _check_preset(preset)
    values = ExtractionParams().model_dump(mode="json")
    values.update({name: form_value(name, value) for name, value in PRESETS[preset].items()})
    return values


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ParameterError(f"preset={preset!r} is not known; choose one of {', '.join(PRESETS)}")


def table_value(name: str, value: Any) -> Any:
    """A form's value as the table holds it (0 in fr, K, rf: None, i.e. auto / unspecified; see FORM_TO_TABLE)."""
    key = tuple(value) if isinstance(value, list) else value
    for shown, held in FORM_TO_TABLE.get(name, {}).items():
        if _same(key, shown):
            return held
    return value


def form_value(name: str, value: Any) -> Any:
    """A table value as the form shows it (None in fr, K, rf: 0; see FORM_TO_TABLE)."""
    for shown, held in FORM_TO_TABLE.get(name, {}).items():
        if _same(value, held):
            return list(shown) if isinstance(shown, tuple) else shown
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same kind: ``True`` is not the preset's ``1``; a pair (6, 6) is its JSON [6, 6]."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def table_from_form(form: BaseModel | Mapping[str, Any] | None, preset: str = "1p") -> dict[str, Any]:
    """Analysis-table values from a filled form: every field that differs from ``preset``'s column.

    Fields equal to the preset's values are left out so that their source stays "preset …";
    everything else — including a value equal to the other preset's — is applied as shown.
    n_processes is kept when it is not this machine's default, so that a capped 7 says so.
    A mapping may hold some fields only; the others are the preset's.  ParameterError (one line)
    for an unknown field, a bad value, or a method_init of the other preset.
    """
    if form is None:
        return {}
    _check_preset(preset)
    preset_values = form_values(preset)
    values = _validated(form if isinstance(form, BaseModel) else {**preset_values, **form})
    given = set(values) if isinstance(form, BaseModel) else set(form)
    table = {name: table_value(name, value) for name, value in values.items()
             if not _same(value, preset_values[name])
             or (name == "n_processes" and name in given and value != default_n_processes())}
    check_preset_agrees(preset, table)
    return table


def _validated(form: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    values = form.model_dump() if isinstance(form, BaseModel) else dict(form)
    unknown = sorted(set(values) - set(PARAM_NAMES))
    if unknown:
        raise ParameterError(unknown_message(unknown, " (form)"))
    if isinstance(form, BaseModel):
        return values
    try:
        return ExtractionParams(**values).model_dump()
    except ValidationError as err:
        raise ParameterError(_form_message(err)) from None


def _form_message(err: ValidationError) -> str:
    """The one line a form error carries (see ``_FormBase._one_line``)."""
    return " ".join(problem["msg"] for problem in err.errors())


def form_with(preset: str = "1p", table: Mapping[str, Any] | None = None) -> BaseModel:
    """The form for ``preset`` with some fields filled from table values (``--set NAME=VALUE``)."""
    values = form_values(preset)
    table = dict(table or {})
    unknown = sorted(set(table) - set(values))
    if unknown:
        raise ParameterError(unknown_message(unknown))
    values.update({name: form_value(name, value) for name, value in table.items()})
    try:
        form = ExtractionParams(**values)
    except ValidationError as err:
        raise ParameterError(_form_message(err)) from None
    check_preset_agrees(preset, table)
    return form


# --- the motion-correction form: the motion section of the analysis table, rigid by default

#: What motion-correct does unless told otherwise (the table's default, 'none', would do nothing).
MOTION_DEFAULT_METHOD = "rigid"


#: The analysis-table fields a motion-only run uses: the frame rate of the outputs, the motion section, workers.
MOTION_FORM_NAMES: tuple[str, ...] = ("fr", *MOTION_PARAM_NAMES, "n_processes")


def _motion_form_fields() -> dict[str, Any]:
    fields = _form_fields(MOTION_FORM_NAMES)
    annotation, info = fields["motion_correction"]
    info = copy.copy(info)
    info.default = MOTION_DEFAULT_METHOD
    fields["motion_correction"] = (annotation, info)
    return fields


MotionForm = create_model(  # type: ignore[call-overload]
    "MotionForm", __config__=ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=form_schema_extra),
    __doc__="The motion section of the analysis table (rigid correction by default).", **_motion_form_fields())


def table_from_motion_form(form: BaseModel | dict[str, Any] | None) -> dict[str, Any]:
    """Table values from a filled motion form: the fields that differ from the table's defaults, and the method."""
    values = form.model_dump() if isinstance(form, BaseModel) else dict(form or {})
    values = {name: table_value(name, value) for name, value in values.items()}
    defaults = Params().model_dump()
    table = {name: value for name, value in values.items()
             if name == "motion_correction" or name not in defaults or not _same(value, defaults[name])}
    return table
