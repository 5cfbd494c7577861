"""The run form: what it shows is what runs, or the run is refused naming the conflict (issue #14, case 1)."""

from __future__ import annotations

import itertools

import pytest

from cnmflow.errors import ParameterError
from cnmflow.params import PRESETS, resolve_params
from cnmflow.params_form import ExtractionParams, form_values, form_with, table_from_form


def _run(prefilled: str, preset: str, **edits):
    """The effective parameters of a deployment pre-filled with ``prefilled``, preset field ``preset``, edits."""
    form = ExtractionParams(**{**form_values(prefilled), **edits})
    return resolve_params(preset=preset, table=table_from_form(form, preset))


def _shown(form_fields: dict, params) -> None:
    for name, value in form_fields.items():
        ran = getattr(params, name)
        ran = list(ran) if isinstance(ran, tuple) else ran   # a pair runs as the form's JSON list
        assert ran == (None if name == "rf" and value == 0 else value), name
        assert isinstance(ran, bool) == isinstance(value, bool), name


def test_editing_the_2p_form_back_to_1p_values_runs_the_edits():
    resolved = _run("2p", "2p", nb=0, center_psf=True)
    assert resolved.params.nb == 0 and resolved.params.center_psf is True
    assert resolved.sources["nb"] == "table" and resolved.sources["method_init"] == "preset 2p"


def test_editing_the_1p_form_to_2p_values_runs_the_edits():
    resolved = _run("1p", "1p", nb=2, center_psf=False, bas_nonneg=True)
    assert (resolved.params.nb, resolved.params.center_psf, resolved.params.bas_nonneg) == (2, False, True)


@pytest.mark.parametrize("prefilled, preset", [("1p", "2p"), ("2p", "1p")])
def test_switching_only_the_preset_field_is_refused_naming_the_fix(prefilled, preset):
    with pytest.raises(ParameterError, match=f"preset='{preset}' does not match method_init") as err:
        _run(prefilled, preset)
    assert f"choose preset '{prefilled}'" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("prefilled, preset", list(itertools.product(("1p", "2p"), repeat=2)))
@pytest.mark.parametrize("edits", [
    {}, {"nb": 0, "center_psf": True}, {"nb": 2, "center_psf": False}, {"method_init": "greedy_roi", "K": 4},
    {"method_init": "corr_pnr"}, {"method_init": "sparse_NMF", "K": 3}, {"min_pnr": 6.0, "rf": 0},
])
def test_every_combination_runs_what_the_form_shows_or_is_refused(prefilled, preset, edits):
    """(pre-filled deployment, preset field, edits): the form's every field runs as shown, or ParameterError."""
    form_fields = {**form_values(prefilled), **edits}
    form_fields.pop("n_processes")  # capped to the machine's cores, with a note
    try:
        resolved = _run(prefilled, preset, **edits)
    except ParameterError as err:
        method = form_fields["method_init"]
        assert (method == "corr_pnr") != (preset == "1p"), f"refused although consistent: {err}"
        assert "method_init" in str(err) and "preset" in str(err)
        return
    _shown(form_fields, resolved.params)
    for name, value in PRESETS[preset].items():
        expected = f"preset {preset}" if value == resolved.params.model_dump()[name] else "table"
        assert resolved.sources[name] == expected, name


def test_a_partial_mapping_keeps_the_presets_other_values():
    assert table_from_form({"nb": 0}, "2p") == {"nb": 0}
    assert table_from_form({"p": 2}, "1p") == {"p": 2}


def test_true_is_not_the_number_one_in_a_form():
    with pytest.raises(ParameterError, match="parameter p=True.*true/false is not a number"):
        table_from_form({"p": True}, "1p")
    with pytest.raises(ParameterError, match="parameter rf=True"):
        form_with("1p", {"rf": True})


@pytest.mark.parametrize("name, value", [("min_pnr", float("inf")), ("gSig", float("nan")), ("fr", float("inf"))])
def test_non_finite_values_are_refused_by_the_form(name, value):
    with pytest.raises(ParameterError, match=f"parameter {name}=.*finite"):
        form_with("1p", {name: value})
    with pytest.raises(ParameterError, match=f"parameter {name}=.*finite"):
        table_from_form({name: value}, "1p")


def test_form_errors_are_one_line_naming_the_field():
    with pytest.raises(ParameterError) as err:
        form_with("1p", {"min_pnr": -1, "merge_thr": 3})
    message = str(err.value)
    assert "\n" not in message and "http" not in message
    assert "min_pnr=-1" in message and "merge_thr=3" in message


def test_the_form_schema_still_offers_numbers_and_flags():
    schema = ExtractionParams.model_json_schema()["properties"]
    assert schema["merge_thr"]["type"] == "number" and schema["center_psf"]["type"] == "boolean"
    for name in ("gSig", "min_corr", "min_pnr"):   # a number, or "auto" (read from the movie)
        assert [option.get("type") for option in schema[name]["anyOf"]] == ["number", "string"]
        assert schema[name]["anyOf"][1]["const"] == "auto"
    assert schema["rf"]["type"] == "integer" and schema["rf"]["minimum"] == 0


def test_a_bad_form_from_the_ui_fails_prefects_validation_with_our_one_line():
    """A deployment run's form is validated by Prefect before the flow starts; the message is ours."""
    from prefect.exceptions import ParameterTypeError

    from cnmflow.flows.source_extraction import source_extraction

    with pytest.raises(ParameterTypeError) as err:
        source_extraction.validate_parameters({"movies": ["m.tif"], "output_dir": "out",
                                               "params": {**form_values("1p"), "gSig": True, "min_pnr": -1}})
    detail = str(err.value).splitlines()[-1]
    assert "parameter gSig=True: true/false is not a number" in detail and "min_pnr=-1: must be greater" in detail
    assert "http" not in str(err.value) and "Value error" not in str(err.value)
