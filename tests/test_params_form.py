"""The run form: what it shows is what runs, or the run is refused naming the conflict (issue #14, case 1)."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from cnmflow.errors import ParameterError
from cnmflow.params import PRESETS, resolve_params
from cnmflow.params_form import (ExtractionParams, MotionForm, form_values, form_with, table_from_form,
                                 table_from_motion_form, table_value)


def _run(prefilled: str, preset: str, **edits):
    """The effective parameters of a deployment pre-filled with ``prefilled``, preset field ``preset``, edits."""
    form = ExtractionParams(**{**form_values(prefilled), **edits})
    return resolve_params(preset=preset, table=table_from_form(form, preset))


def _shown(form_fields: dict, params) -> None:
    for name, value in form_fields.items():
        ran = getattr(params, name)
        ran = list(ran) if isinstance(ran, tuple) else ran   # a pair runs as the form's JSON list
        assert ran == table_value(name, value), name   # fr, K, rf: 0 runs as auto / one patch
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
    for name in ("gSig", "min_corr", "min_pnr"):   # a number, or "auto" (read from the movie) as a choice of its own
        assert [option.get("type") for option in schema[name]["anyOf"]] == ["number", "string"]
        assert schema[name]["anyOf"][1]["enum"] == ["auto"] and schema[name]["anyOf"][1]["title"] == "auto"
    assert schema["rf"]["type"] == "integer" and schema["rf"]["minimum"] == 0


def test_fr_and_k_are_plain_numbers_whose_zero_is_the_seeds_auto():
    """No "float | None" chooser ("Property is type None"): a number with a default, 0 meaning auto."""
    schema = ExtractionParams.model_json_schema()["properties"]
    assert (schema["fr"]["type"], schema["fr"]["default"], schema["fr"]["minimum"]) == ("number", 0, 0)
    assert (schema["K"]["type"], schema["K"]["default"], schema["K"]["minimum"]) == ("integer", 0, 0)
    assert "anyOf" not in schema["fr"] and "anyOf" not in schema["K"]
    assert "auto" in schema["fr"]["description"] and "auto" in schema["K"]["description"]
    resolved = resolve_params(table=table_from_form(ExtractionParams(fr=0, K=0)))
    assert resolved.params.fr is None and resolved.params.K is None    # auto
    assert resolve_params(table=table_from_form(ExtractionParams(fr=20, K=5))).params.K == 5
    assert form_values("2p")["K"] == 4 and form_with("1p", {"K": None, "fr": None}).K == 0
    assert MotionForm.model_json_schema()["properties"]["fr"]["type"] == "number"
    assert "fr" not in table_from_motion_form(MotionForm()) and table_from_motion_form(MotionForm(fr=15))["fr"] == 15


@pytest.mark.parametrize("form", [ExtractionParams, MotionForm], ids=["extraction", "motion"])
def test_no_form_field_is_a_type_chooser_except_auto(form):
    """Prefect's UI renders ``anyOf`` as a type chooser ("tuple | None", "bool | str"); only a number-or-"auto"
    field may be one, and every field is titled with CaImAn's name."""
    schema = form.model_json_schema()["properties"]
    choosers = {name for name, prop in schema.items() if "anyOf" in prop}
    assert choosers <= {"gSig", "min_corr", "min_pnr"}
    assert all(prop["title"] == name for name, prop in schema.items())
    assert schema["gSig_filt"]["default"] == [0, 0] and schema["border_nan"]["enum"] == ["copy", "min", "true", "false"]


def test_motion_fields_none_and_true_are_shown_as_plain_values_and_run_as_the_table_holds_them():
    table = table_from_motion_form(MotionForm(gSig_filt=[3, 3], border_nan="true"))
    assert (table["motion_correction"], table["gSig_filt"], table["border_nan"]) == ("rigid", (3, 3), True)
    assert "gSig_filt" not in table_from_motion_form(MotionForm(gSig_filt=[0, 0]))     # 0, 0: no high-pass
    assert resolve_params(table=table_from_form(ExtractionParams(border_nan="false"))).params.border_nan is False
    assert resolve_params(table=table_from_form(ExtractionParams(gSig_filt=[0, 0]))).params.gSig_filt is None
    shown = form_with("1p", {"gSig_filt": (5, 5), "border_nan": True})
    assert (shown.gSig_filt, shown.border_nan) == ((5, 5), "true")
    assert ExtractionParams(gSig_filt=None, border_nan=False).border_nan == "false"   # older saved deployments
    with pytest.raises(ValidationError, match="gSig_filt values must be >= 1"):   # refused by the form itself now
        resolve_params(table=table_from_form(ExtractionParams(gSig_filt=[0, 3])))


def test_the_form_lists_the_table_in_the_seeds_order_and_method_deconvolution_is_a_choice():
    from pathlib import Path

    seed = (Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_acce40688fcacf62.txt")
    schema = ExtractionParams.model_json_schema()["properties"]
    by_position = sorted(schema, key=lambda name: schema[name]["position"])   # how Prefect's UI orders fields
    assert by_position[:3] == ["fr", "decay_time", "dxy"] and by_position[30] == "n_processes"
    if seed.is_file():
        rows = [line.split(" | ")[0] for line in seed.read_text().splitlines() if " | False | " in line]
        seed_names = [name for name in rows if name in schema]
        assert len(seed_names) == 31 and by_position[:31] == seed_names
    assert schema["method_deconvolution"]["enum"] == ["oasis"] and "const" not in schema["method_deconvolution"]


def test_the_watch_forms_auto_values_show_as_auto():
    form = ExtractionParams(**{**form_values("1p"), "gSig": "auto", "min_corr": "auto", "min_pnr": "auto"})
    shown = form.model_dump(mode="json")
    assert (shown["gSig"], shown["min_corr"], shown["min_pnr"]) == ("auto", "auto", "auto")
    assert table_from_form(form)["gSig"] == "auto"


def test_a_capped_n_processes_is_not_reported_as_the_default(monkeypatch):
    """The form's 7 workers on a 2-core machine: the run says 7 was asked and capped, not "2 (default)"."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    resolved = resolve_params(table=table_from_form(ExtractionParams()))
    assert resolved.params.n_processes == 2 and resolved.sources["n_processes"] == "machine"
    assert "n_processes=7 capped to this machine's 2 cores" in resolved.notes
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert "n_processes" not in table_from_form({"nb": 0}, "1p"), "a mapping that leaves it out keeps the default"


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


def test_motion_pairs_read_in_the_form_as_in_the_table():
    """``cnmflow validate --set max_shifts=8`` passed and ``cnmflow run`` (which checks the form) refused it: "must be
    a valid tuple". One number stands for both axes, "8,6" is the pair, and a bad value names the fix."""
    from cnmflow.params import build_params
    from cnmflow.params_form import form_with

    for typed, pair in ((8, (8, 8)), ("8,6", (8, 6)), ("[8, 6]", (8, 6)), ([8, 6], (8, 6))):
        in_form, in_table = form_with("1p", {"max_shifts": typed}), build_params({"max_shifts": typed})
        assert in_form.max_shifts == pair == in_table.max_shifts
    assert form_with("1p", {"gSig_filt": 3}).gSig_filt == (3, 3)
    assert form_with("1p", {"strides": 48, "overlaps": 24}).strides == (48, 48)
    with pytest.raises(ParameterError, match=r"max_shifts='8;8'.*e\.g\. max_shifts=8 or max_shifts=8,6"):
        form_with("1p", {"max_shifts": "8;8"})
    with pytest.raises(ParameterError, match="strides values must be >= 1"):
        form_with("1p", {"strides": 0})
