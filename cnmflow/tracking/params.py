"""Parameters as MLflow keys: CaImAn ``group.name``, so runs compare with CaImAn's own files.

A parameter in several CaImAn groups (``p``, ``nb``) is logged under each, as CaImAn stores
it; one in no group (``refit``) under ``cnmflow.<name>``.  MLflow stores strings: values are
written with ``str`` and read back with :func:`parse_param_value`.
"""

from __future__ import annotations

import ast
from typing import Any, Mapping

from cnmflow.params import PARAM_NAMES, Params, build_params, to_caiman_groups

#: Prefix of parameters that are in no CaImAn group.
OWN_GROUP = "cnmflow"

#: MLflow's limit on a parameter value (longer values are cut, with a marker).
PARAM_VALUE_LIMIT = 6000


def effective_params(manifest: Mapping[str, Any]) -> Params:
    """The run's effective :class:`Params`, from the manifest's parameter table."""
    return build_params({name: entry["value"] for name, entry in manifest["parameters"].items()})


def flatten_params(params: Params) -> dict[str, Any]:
    """``group.name`` → value for every parameter, in CaImAn's types (pairs stay tuples)."""
    flat = {f"{group}.{name}": value
            for group, values in to_caiman_groups(params).items() for name, value in values.items()}
    grouped = {key.split(".", 1)[1] for key in flat}
    flat.update({f"{OWN_GROUP}.{name}": getattr(params, name) for name in PARAM_NAMES if name not in grouped})
    return flat


def caiman_params_document(params: Params) -> dict[str, Any]:
    """A parameters file in CaImAn's grouped layout that ``--params-file`` reads back to ``params``.

    Parameters in no CaImAn group go at the top level, where the reader takes flat names.
    """
    document: dict[str, Any] = {group: dict(values) for group, values in to_caiman_groups(params).items()}
    for key, value in flatten_params(params).items():
        group, name = key.split(".", 1)
        if group == OWN_GROUP:
            document[name] = value
    return document


def param_key(name: str) -> str:
    """The MLflow key a parameter is compared by: its first CaImAn group, else ``cnmflow.<name>``."""
    return _KEYS[name]


def param_text(value: Any) -> str:
    """A value as MLflow stores it, cut to MLflow's limit."""
    text = str(value)
    if len(text) > PARAM_VALUE_LIMIT:
        text = text[:PARAM_VALUE_LIMIT - 3] + "..."
    return text


def parse_param_value(text: str | None) -> Any:
    """A logged value back as Python (``"6.0"`` → 6.0, ``"None"`` → None); a per-axis pair of equal
    values becomes the single number this tool uses; text that is no literal stays text."""
    if text is None:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
        return value[0]
    return value


def _keys() -> dict[str, str]:
    keys: dict[str, str] = {}
    for key in flatten_params(Params(fr=30.0)):
        keys.setdefault(key.split(".", 1)[1], key)
    return keys


_KEYS = _keys()


def short_value(value: Any) -> str:
    """A value as a name shows it: ``0.6``, ``5`` (not ``5.0``), a per-axis pair of equal values as one
    number, None as ``auto``."""
    if value is None:
        return "auto"
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def values_label(values: Mapping[str, Any]) -> str:
    """Varied values in a short form for names and titles, e.g. ``min_corr 0.6 · min_pnr 5``."""
    return " · ".join(f"{name} {short_value(value)}" for name, value in values.items())
