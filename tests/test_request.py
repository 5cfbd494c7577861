"""RunRequest: what every entry point hands over, resolved once into effective parameters with their sources."""

from __future__ import annotations

import json

import pytest

import cnmflow.request as request_module
from cnmflow.errors import ParameterError
from cnmflow.params import SEED_N_PROCESSES, default_n_processes
from cnmflow.params_form import form_with
from cnmflow.plan import plan_run
from cnmflow.request import RunRequest, request_of
from cnmflow.validate import validate_inputs
from tests.runs import TABLE, small_movie


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    return small_movie(tmp_path_factory.mktemp("movie"), rng=3)


def test_resolve_records_where_each_value_came_from():
    resolved = RunRequest(preset="2p", table={"min_corr": 0.7}).resolve()
    assert resolved.params.min_corr == 0.7 and resolved.sources["min_corr"] == "table"
    assert resolved.params.nb == 2 and resolved.sources["nb"] == "preset 2p"
    assert resolved.sources["decay_time"] == "default"


def test_a_bad_value_names_the_parameter_and_where_it_came_from(tmp_path):
    with pytest.raises(ParameterError, match=r"parameter merge_thr=3 \(table\)"):
        RunRequest(table={"merge_thr": 3}).resolve()
    params_file = tmp_path / "p.json"
    params_file.write_text(json.dumps({"init": {"min_pnr": -1}}))
    with pytest.raises(ParameterError, match=r"p\.json: init\.min_pnr=-1"):
        RunRequest(params_file=params_file, overwrite_params=True).resolve()


def test_what_the_engine_cannot_do_is_refused_when_resolving():
    with pytest.raises(ParameterError, match="nb=2 with method_init='corr_pnr'"):
        RunRequest(table={"nb": 2}).resolve()


def test_a_form_makes_the_request_a_flow_run_receives():
    form = form_with("2p", {"K": 6})
    request = RunRequest.from_form(form, preset="2p")
    # the form's n_processes (the seed's 7) is kept only where this machine caps it, so the summary can say so
    capped = {} if default_n_processes() == SEED_N_PROCESSES else {"n_processes": SEED_N_PROCESSES}
    assert request.table == {"K": 6, **capped}
    assert RunRequest(preset="2p", table={"K": 6}).through_form() == request
    with pytest.raises(ParameterError, match="choose preset '2p'"):
        RunRequest.from_form(form, preset="1p")


def test_with_table_replaces_some_values_and_keeps_the_rest():
    base = RunRequest(table={"min_pnr": 8, "gSiz": 13}, overwrite_params=True)
    combination = base.with_table({"min_pnr": 6})
    assert combination.table == {"min_pnr": 6, "gSiz": 13} and combination.overwrite_params
    assert base.table == {"min_pnr": 8, "gSiz": 13}, "the base request is unchanged"


def test_the_keyword_form_makes_the_same_request():
    assert request_of(None, preset="2p", table={"K": 5}) == RunRequest(preset="2p", table={"K": 5})
    given = RunRequest(table={"K": 5})
    assert request_of(given, table={"K": 9}) is given


def test_a_bad_value_fails_before_the_movies_are_read(tmp_path):
    missing = tmp_path / "no_such_movie.tif"
    with pytest.raises(ParameterError, match="min_pnr"):
        validate_inputs([missing], RunRequest(table={"min_pnr": -1}))


def test_a_run_plan_resolves_its_request_once(movie, tmp_path, monkeypatch):
    resolved = []
    real = request_module.resolve_run_params
    monkeypatch.setattr(request_module, "resolve_run_params", lambda **kw: resolved.append(kw) or real(**kw))
    plan = plan_run([movie], tmp_path / "out", RunRequest(table=TABLE))
    plan.release()
    assert len(resolved) == 1
    assert plan.inputs.resolved.sources["min_pnr"] == "table" and plan.inputs.resolved.params.min_pnr == 8
