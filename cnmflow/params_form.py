"""The analysis table as a form: every seed parameter as a field with a concrete default.

Prefect renders a flow's pydantic parameter as a form; an ``Optional[...] = None`` field shows as
an awkward type chooser, so only the two parameters the seed itself marks "auto" (fr, K) keep
None.  rf's "unspecified" (one patch) is entered as 0.  The form's defaults are the seed's
defaults, which are the 1P preset; :func:`form_values` gives the 2P deployment its pre-filled
values, and :func:`table_from_form` turns a filled form back into the analysis-table values that
differ from the chosen preset, so each effective value keeps its source.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, create_model

from cnmflow.errors import ParameterError
from cnmflow.params import PARAM_NAMES, PRESETS, Params

#: The seed's default worker count (the run caps it to the machine's cores, with a note).
SEED_N_PROCESSES = 7

_RF = Field(40, ge=0, title="rf",
            description="Half-size of a patch in pixels. 0: unspecified, the whole field of view is one patch.")
_N_PROCESSES = Field(SEED_N_PROCESSES, ge=1, title="n_processes",
                     description="Number of processes used to analyze patches in parallel (capped to the "
                     "machine's cores).")


def _form_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, info in Params.model_fields.items():
        if name == "rf":
            fields[name] = (int, _RF)
        elif name == "n_processes":
            fields[name] = (int, _N_PROCESSES)
        else:
            fields[name] = (info.annotation, copy.copy(info))
    return fields


class _FormBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


ExtractionParams = create_model(  # type: ignore[call-overload]
    "ExtractionParams", __base__=_FormBase, __doc__="The seed's analysis table (1P preset values by default).",
    **_form_fields())


def form_values(preset: str = "1p") -> dict[str, Any]:
    """Every field's value for ``preset``, as JSON — a deployment's pre-filled parameters."""
    if preset not in PRESETS:
        raise ParameterError(f"preset={preset!r} is not known; choose one of {', '.join(PRESETS)}")
    values = ExtractionParams().model_dump(mode="json")
    values.update({name: (0 if name == "rf" and value is None else value) for name, value in PRESETS[preset].items()})
    return values


def _table_value(name: str, value: Any) -> Any:
    return None if name == "rf" and value == 0 else value


def table_from_form(form: BaseModel | Mapping[str, Any] | None, preset: str = "1p") -> dict[str, Any]:
    """Analysis-table values from a filled form: the fields that differ from ``preset``'s values.

    A form left at its defaults therefore runs the chosen preset, and a changed field is
    recorded as set in the table.  (A 1P default cannot override a 2P preset value through the
    form; choose the 1P preset and change the fields instead.)
    """
    if form is None:
        return {}
    values = form.model_dump() if isinstance(form, BaseModel) else dict(form)
    unknown = sorted(set(values) - set(PARAM_NAMES))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAM_NAMES)}")
    preset_values = form_values(preset)
    seed_defaults = form_values("1p")
    table = {}
    for name, value in values.items():
        if value == preset_values[name] or (value == seed_defaults[name] and name in PRESETS[preset]):
            continue
        table[name] = _table_value(name, value)
    return table


def form_with(preset: str = "1p", table: Mapping[str, Any] | None = None) -> BaseModel:
    """The form for ``preset`` with some fields filled from table values (``--set NAME=VALUE``)."""
    values = form_values(preset)
    for name, value in (table or {}).items():
        if name not in values:
            raise ParameterError(f"unknown parameter {name!r}; known: {', '.join(PARAM_NAMES)}")
        values[name] = 0 if name == "rf" and value is None else value
    try:
        return ExtractionParams(**values)
    except ValueError as err:
        raise ParameterError(f"invalid parameters: {err}") from None
