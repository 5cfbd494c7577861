"""The analysis table, its presets and merge semantics, as users of the seed tool rely on them."""

import json
import os
from pathlib import Path

import pytest

from cnmflow.errors import ParameterError
from cnmflow.motion.params import MOTION_PARAM_NAMES
from cnmflow.params import PARAM_NAMES, PRESETS, Params, build_params, resolve_params, to_caiman_groups
from cnmflow.params_file import read_params_file, resolve_run_params
from tests.paths import IDEAS


SEED_DEFAULTS = dict(
    fr=None, decay_time=0.4, dxy=1.0, p=1, K=None, gSig=3, gSiz=7, merge_thr=0.7, rf=40, stride=20, tsub=2,
    ssub=1, method_init="corr_pnr", min_corr=0.85, min_pnr=12, ssub_B=2, ring_size_factor=1.4,
    method_deconvolution="oasis", update_background_components=True, del_duplicates=True, nb=0,
    low_rank_background=False, nb_patch=0, rolling_sum=True, only_init=True, normalize_init=False,
    center_psf=True, bas_nonneg=False, border_pix=0, refit=False,
)


def test_defaults_are_the_seed_table():
    params = Params()
    for name, value in SEED_DEFAULTS.items():
        assert getattr(params, name) == value, name
    assert params.n_processes == min(7, os.cpu_count())
    # beyond the seed's table: the 1P focus test (engine/in_focus, issue #16), on by default
    assert params.focus_thr == 0.63
    assert params.halo_thr == 0.0   # the halo test, opt-in (benchmarks/findings/footprint_fidelity.md, h16oof)
    assert params.halo_tail is False   # halos carried along their decay, opt-in (footprint_fidelity.md, h16cxiou)
    assert params.min_skew == 0.0   # flat traces rejected with the focus test, opt-in (engine/trace_shape, h21vessel)
    assert params.compact_thr == 0.7   # 2P greedy_roi: neuropil components rejected (engine/soma_compactness)
    assert set(PARAM_NAMES) == (set(SEED_DEFAULTS) | {"n_processes", "focus_thr", "halo_thr", "min_skew", "halo_tail",
                                                      "compact_thr"} | set(MOTION_PARAM_NAMES))
    assert params.motion_correction == "none"   # the seed tool does not correct motion


def test_presets_are_the_seed_1p_2p_table():
    assert PRESETS["2p"] == dict(K=4, method_init="greedy_roi", del_duplicates=False, nb=2,
                                 low_rank_background=True, nb_patch=1, normalize_init=True, center_psf=False,
                                 bas_nonneg=True)
    one_p = resolve_params(preset="1p").params
    two_p = resolve_params(preset="2p").params
    for name, value in PRESETS["2p"].items():
        assert getattr(two_p, name) == value
    for name in PRESETS["1p"]:
        assert getattr(one_p, name) == SEED_DEFAULTS[name]
    assert resolve_params(preset="2p").sources["nb"] == "preset 2p"


def test_unknown_preset_is_named():
    with pytest.raises(ParameterError, match="preset='3p'"):
        resolve_params(preset="3p")


@pytest.mark.parametrize("name, value, allowed", [
    ("gSig", 0, "greater than 0"),
    ("merge_thr", 0, "greater than 0"),
    ("merge_thr", 1.5, "less than or equal to 1"),
    ("method_init", "pca", "corr_pnr"),
    ("method_deconvolution", "cvxpy", "oasis"),
    ("p", 3, "less than or equal to 2"),
    ("min_corr", 1.2, "less than or equal to 1"),
    ("tsub", 0, "greater than or equal to 1"),
    ("K", 0, "greater than or equal to 1"),
])
def test_out_of_range_values_name_parameter_value_and_range(name, value, allowed):
    with pytest.raises(ParameterError) as err:
        build_params({name: value})
    message = str(err.value)
    assert f"{name}={value!r}" in message and allowed in message


def test_stride_must_be_below_twice_rf():
    with pytest.raises(ParameterError, match="stride=80 must be smaller than 2\\*rf=80"):
        build_params({"rf": 40, "stride": 80})
    assert build_params({"rf": None, "stride": 80}).rf is None  # one patch: stride unused


def test_patches_narrower_than_a_neurons_box_are_refused():
    # rf 3 with gSiz 7 (patches 6 px wide) found 1 of 20 simulated cells, rf 6 found 11 (all true)
    with pytest.raises(ParameterError, match="rf=3 makes patches 6 px wide.*gSiz=7.*at least 4"):
        build_params({"rf": 3, "stride": 1, "gSiz": 7})
    assert build_params({"rf": 4, "stride": 2, "gSiz": 7}).rf == 4
    assert build_params({"rf": None, "gSiz": 99}).rf is None


def test_k_auto_is_for_the_seed_searches_not_a_factorisation():
    assert build_params({"method_init": "greedy_roi"}).K is None   # greedy_roi stops where nothing stands out
    with pytest.raises(ParameterError, match="sparse_NMF.*number of components per patch"):
        build_params({"method_init": "sparse_NMF"})


def test_unknown_table_parameter_is_an_error():
    with pytest.raises(ParameterError, match="gsig"):
        resolve_params(table={"gsig": 4})


def test_table_values_override_preset_and_keep_source():
    resolved = resolve_params(preset="2p", table={"K": 6, "min_corr": 0.7})
    assert resolved.params.K == 6 and resolved.params.min_corr == 0.7
    assert resolved.sources["K"] == "table"
    assert resolved.sources["gSig"] == "default"
    assert resolved.sources["method_init"] == "preset 2p"


def _write(tmp_path, document) -> Path:
    path = tmp_path / "params.json"
    path.write_text(json.dumps(document))
    return path


def test_file_overwrites_only_the_keys_it_has(tmp_path):
    path = _write(tmp_path, {"init": {"gSig": [4, 4], "min_pnr": 8}})
    resolved = resolve_run_params(table={"min_pnr": 5, "min_corr": 0.7}, params_file=path,
                                  overwrite_params=True)
    assert resolved.params.gSig == 4 and resolved.params.min_pnr == 8
    assert resolved.params.min_corr == 0.7  # absent from the file: the table value stays
    assert resolved.sources["min_pnr"].startswith("file ")
    assert resolved.sources["min_corr"] == "table"


def test_file_without_overwrite_is_not_applied_and_says_so(tmp_path):
    path = _write(tmp_path, {"init": {"min_pnr": 8}})
    resolved = resolve_run_params(table={"min_pnr": 5}, params_file=path, overwrite_params=False)
    assert resolved.params.min_pnr == 5
    assert any("NOT applied" in note and "min_pnr" in note for note in resolved.notes)


def test_flat_keys_and_null_auto(tmp_path):
    path = _write(tmp_path, {"K": None, "fr": None, "gSiz": 11, "rf": None})
    values = read_params_file(path).values
    assert values == {"K": None, "fr": None, "gSiz": 11, "rf": None}


def test_unknown_key_in_used_group_is_an_error_with_a_hint(tmp_path):
    path = _write(tmp_path, {"init": {"min_pnrr": 8}})
    with pytest.raises(ParameterError, match="'min_pnrr' in group 'init'.*did you mean 'min_pnr'"):
        read_params_file(path)


def test_unknown_top_level_key_is_an_error(tmp_path):
    with pytest.raises(ParameterError, match="top-level key 'mootion'.*'motion'"):
        read_params_file(_write(tmp_path, {"mootion": {}}))


def test_unused_groups_and_caiman_only_keys_are_reported(tmp_path):
    path = _write(tmp_path, {"motion": {"pw_rigid": True}, "quality": {"min_SNR": 2},
                             "temporal": {"p": 2, "s_min": 0.1}})
    parsed = read_params_file(path)
    assert parsed.values == {"p": 2, "pw_rigid": True}   # the motion group applies (issue #17)
    notes = " ".join(parsed.notes())
    assert "ignored: quality" in notes and "motion" not in notes and "temporal.s_min" in notes


def test_conflicting_values_across_groups(tmp_path):
    path = _write(tmp_path, {"preprocess": {"p": 1}, "temporal": {"p": 2}})
    with pytest.raises(ParameterError, match="preprocess.p=1 and temporal.p=2 disagree"):
        read_params_file(path)


def test_anisotropic_gsig_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="init.gSig=\\[3, 4\\]"):
        read_params_file(_write(tmp_path, {"init": {"gSig": [3, 4]}}))


def test_bad_json_and_missing_file_name_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ParameterError, match="broken.json is not valid JSON"):
        read_params_file(broken)
    with pytest.raises(ParameterError, match="missing.json does not exist"):
        read_params_file(tmp_path / "missing.json")


def test_a_params_file_with_a_utf8_byte_order_mark_is_read(tmp_path):
    """Notepad and PowerShell start a UTF-8 file with a byte-order mark; the file was refused as 'not valid JSON:
    Unexpected UTF-8 BOM (decode using utf-8-sig)'."""
    path = tmp_path / "p.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"init": {"gSig": [4, 4]}}).encode())
    assert read_params_file(path).values == {"gSig": 4}


def test_a_yaml_params_file_is_told_that_parameters_files_are_json(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("gSig: 3\n")
    with pytest.raises(ParameterError, match="p.yaml is not valid JSON .a parameters file is JSON"):
        read_params_file(path)


def test_out_of_range_value_in_file_names_parameter(tmp_path):
    path = _write(tmp_path, {"merging": {"merge_thr": 2}})
    with pytest.raises(ParameterError, match="merge_thr=2"):
        resolve_run_params(params_file=path, overwrite_params=True)


def test_caiman_groups_round_trip_through_the_file_reader(tmp_path):
    params = resolve_params(preset="2p", table={"fr": 15.0, "gSig": 4, "gSiz": 9}).params
    groups = to_caiman_groups(params)
    assert groups["init"]["gSig"] == (4, 4) and groups["data"]["dxy"] == (1.0, 1.0)
    assert to_caiman_groups(Params())["init"]["K"] is None
    path = _write(tmp_path, groups)
    reread = resolve_run_params(params_file=path, overwrite_params=True).params
    assert reread.model_dump(exclude={"refit"}) == params.model_dump(exclude={"refit"})


def test_with_values_records_metadata_source():
    resolved = resolve_params().with_values({"fr": 20.0}, source="metadata", note="fr from isxd timing")
    assert resolved.params.fr == 20.0 and resolved.sources["fr"] == "metadata"
    assert "fr from isxd timing" in resolved.notes


def test_minimum_frames_scales_with_tsub():
    assert build_params({"tsub": 3}).minimum_frames() == 3 * build_params({"tsub": 1}).minimum_frames()


@pytest.mark.parametrize("name", ["params_source_extraction.json", "params_demo_pipeline_cnmfE.json",
                                  "params_demo_pipeline.json", "params_normcorre.json"])
def test_sample_files_load(name):
    path = IDEAS / name
    if not path.exists():
        pytest.skip("sample parameter files absent")
    resolved = resolve_run_params(params_file=path, overwrite_params=True)
    assert resolved.params.fr in (10.0, 30.0)
    if name == "params_source_extraction.json":
        assert (resolved.params.min_corr, resolved.params.min_pnr, resolved.params.gSiz) == (0.6, 7, 13)
        assert resolved.params.low_rank_background is False  # null in the file
    if name == "params_demo_pipeline.json":
        assert (resolved.params.method_init, resolved.params.K, resolved.params.nb) == ("greedy_roi", 4, 2)
        assert any("ignored: quality" in note for note in resolved.notes)
        assert resolved.params.max_shifts == (6, 6) and resolved.params.gSig_filt is None   # motion group applies
    if name == "params_demo_pipeline_cnmfE.json":
        assert any("motion" in note for note in resolved.notes)


# --- Nothing silently wrong (issue #14): flags, text and non-finite values are not numbers -------------

NUMERIC = [name for name, info in Params.model_fields.items()
           if "float" in str(info.annotation) or "int" in str(info.annotation)]
FLOATS = [name for name, info in Params.model_fields.items() if "float" in str(info.annotation)]
FLAGS = [name for name, info in Params.model_fields.items() if info.annotation is bool]


def test_the_field_lists_cover_the_table():
    assert {"gSig", "gSiz", "min_pnr", "fr", "K", "rf", "p", "n_processes"} <= set(NUMERIC)
    assert {"gSig", "min_pnr", "min_corr", "fr", "decay_time", "dxy", "merge_thr", "ring_size_factor",
            "focus_thr", "halo_thr", "min_skew", "compact_thr"} == set(FLOATS)
    assert {"center_psf", "refit", "del_duplicates"} <= set(FLAGS)


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("flag", [True, False])
def test_true_false_is_refused_for_every_number(name, flag):
    with pytest.raises(ParameterError, match=f"parameter {name}={flag}.*true/false is not a number"):
        build_params({name: flag})


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), "inf", "nan", "Infinity"])
def test_non_finite_numbers_are_refused_for_every_float(name, value):
    with pytest.raises(ParameterError, match=f"parameter {name}=.*must be a finite number"):
        resolve_params(table={name: value})


@pytest.mark.parametrize("name", FLAGS)
def test_numbers_and_text_are_refused_for_true_false_fields(name):
    for value in (1, 0, "true", "yes"):
        with pytest.raises(ParameterError, match=f"parameter {name}=.*give true or false"):
            build_params({name: value})


def test_numbers_as_text_are_refused_with_the_fix():
    with pytest.raises(ParameterError, match="parameter gSig='3'.*without quotes"):
        build_params({"gSig": "3"})
    with pytest.raises(ParameterError, match="parameter K='auto'.*null"):
        build_params({"K": "auto"})


def test_huge_integers_are_refused():
    with pytest.raises(ParameterError, match="K=.*too large"):
        build_params({"K": 10**30})


def test_messages_are_one_line_without_pydantic_links():
    for values in ({"min_pnr": -1, "merge_thr": 3}, {"gSig": True}, {"fr": float("nan")}, {"gSiz": 2}):
        with pytest.raises(ParameterError) as err:
            resolve_params(table=values)
        assert "\n" not in str(err.value) and "pydantic" not in str(err.value) and "http" not in str(err.value)


def test_a_message_names_where_a_value_came_from(tmp_path):
    path = _write(tmp_path, {"init": {"gSiz": 2}})
    with pytest.raises(ParameterError, match=r"gSiz >= 2\*gSig\+1 \(.*gSiz from file .*params.json"):
        resolve_run_params(params_file=path, overwrite_params=True)
    with pytest.raises(ParameterError, match=r"parameter min_pnr=-1 \(table\)"):
        resolve_params(table={"min_pnr": -1})


def test_unknown_parameter_suggests_the_close_name():
    with pytest.raises(ParameterError, match="did you mean 'min_pnr'"):
        resolve_params(table={"min_prn": 5})


def test_preset_and_method_init_of_the_table_must_agree():
    with pytest.raises(ParameterError, match="preset='2p' does not match method_init='corr_pnr'.*choose preset '1p'"):
        resolve_params(preset="2p", table={"method_init": "corr_pnr"})
    with pytest.raises(ParameterError, match="preset='1p' does not match method_init='greedy_roi'"):
        resolve_params(preset="1p", table={"method_init": "greedy_roi", "K": 4})
    assert resolve_params(preset="2p", table={"method_init": "sparse_NMF"}).params.method_init == "sparse_NMF"


def test_a_params_file_may_still_change_method_init(tmp_path):
    path = _write(tmp_path, {"init": {"method_init": "greedy_roi", "K": 4}})
    assert resolve_run_params(params_file=path, overwrite_params=True).params.method_init == "greedy_roi"


@pytest.mark.parametrize("document, named", [
    ({"init": {"gSig": True}}, "init.gSig=true: true/false is not a number"),
    ({"init": {"gSig": [True, True]}}, "init.gSig=\\[true, true\\]"),
    ({"gSiz": False}, "gSiz=false: true/false is not a number"),
    ({"init": {"center_psf": 1}}, "init.center_psf=1: give true or false"),
    ({"init": {"min_pnr": "8"}}, "init.min_pnr=\"8\": give the number without quotes"),
    ({"K": "auto"}, "K=\"auto\": 'auto' is written null"),
])
def test_params_file_values_must_be_json_numbers_and_booleans(tmp_path, document, named):
    with pytest.raises(ParameterError, match=f"parameters file .*params.json: {named}"):
        read_params_file(_write(tmp_path, document))


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_params_file_non_finite_numbers_are_refused(tmp_path, literal):
    path = tmp_path / "params.json"
    path.write_text('{"init": {"min_pnr": %s}}' % literal)
    with pytest.raises(ParameterError, match="params.json: init.min_pnr=.*must be a finite number"):
        read_params_file(path)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"init": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001])
def test_deeply_nested_params_file_is_one_clean_error(tmp_path, text):
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(ParameterError, match="parameters file .*deep.json is nested too deeply") as err:
        read_params_file(path)
    assert "\n" not in str(err.value)


def test_a_key_repeated_in_a_params_file_is_refused(tmp_path):
    path = tmp_path / "params.json"
    path.write_text('{"init": {"min_pnr": 5, "min_pnr": 8}}')
    with pytest.raises(ParameterError, match="params.json: key 'min_pnr' appears twice"):
        read_params_file(path)


def test_motion_values_set_in_the_table_while_motion_correction_is_none_get_a_note():
    """--set max_shifts=10 without motion_correction ran uncorrected without a word (a parameters file's motion values
    got this note; the table's did not)."""
    notes = resolve_run_params(table={"max_shifts": 10}).notes
    assert any("motion parameters set (max_shifts)" in note and "motion_correction is 'none'" in note for note in notes)
    assert not any("motion parameters" in note for note in resolve_run_params(table={"max_shifts": 6}).notes)
    assert not any("motion parameters" in note
                   for note in resolve_run_params(table={"max_shifts": 10, "motion_correction": "rigid"}).notes)
