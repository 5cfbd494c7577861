"""prefect.yaml and ``cnmflow serve`` offer the same deployments, pre-filled with the seed's presets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from cnmflow.params_form import form_values
from cnmflow.deployments.definitions import (WATCH_AUTO, WATCH_MOTION, build_deployments, extraction_parameters, motion_parameters,
                                     watch_parameters)

REPO = Path(__file__).resolve().parents[2]
PROJECT = yaml.safe_load((REPO / "prefect.yaml").read_text())
BY_NAME = {deployment["name"]: deployment for deployment in PROJECT["deployments"]}


def _load_entrypoint(entrypoint: str):
    path, name = entrypoint.split(":")
    spec = importlib.util.spec_from_file_location(f"entry_{name}", REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def test_prefect_yaml_prefills_the_presets_like_serve():
    for name, preset in (("source-extraction", "1p"), ("source-extraction-2p", "2p"), ("parameter-sweep", "1p"),
                           ("batch-extraction", "1p")):
        assert BY_NAME[name]["parameters"] == extraction_parameters(preset)
    assert BY_NAME["source-extraction-2p"]["parameters"]["params"] == form_values("2p")
    assert BY_NAME["source-extraction-2p"]["parameters"]["params"]["method_init"] == "greedy_roi"
    assert BY_NAME["motion-correction"]["parameters"] == motion_parameters()
    assert BY_NAME["source-extraction"]["parameters"]["params"]["motion_correction"] == "none"   # the seed's default
    watch = BY_NAME["watch-folder"]["parameters"]["params"]
    assert {name: watch_parameters("1p")["params"][name] for name in watch} == watch == {**WATCH_MOTION["1p"],
                                                                                         **WATCH_AUTO["1p"]}


def test_prefect_yaml_entrypoints_are_the_flows_and_paths_are_relative():
    names = {"source-extraction": "source-extraction", "source-extraction-2p": "source-extraction",
             "watch-folder": "watch-folder", "parameter-sweep": "parameter-sweep",
             "batch-extraction": "batch-extraction", "motion-correction": "motion-correction"}
    for deployment, flow_name in names.items():
        assert _load_entrypoint(BY_NAME[deployment]["entrypoint"]).name == flow_name
    text = (REPO / "prefect.yaml").read_text()
    assert "/work" not in text and "/home" not in text and "/Users" not in text
    assert BY_NAME["watch-folder"]["schedules"][0]["interval"] > 0


def test_serve_offers_both_presets_and_the_watcher_when_asked(tmp_path):
    from cnmflow.deployments.definitions import WatchSettings

    plain = build_deployments()
    assert [d.name for d in plain] == ["source-extraction", "source-extraction-2p", "parameter-sweep",
                                       "batch-extraction", "motion-correction", "suggest-parameters"]
    assert "dask_address" not in plain[0].parameters
    on_dask = build_deployments(dask_address="tcp://10.0.0.5:8786")
    assert all(d.parameters["dask_address"] == "tcp://10.0.0.5:8786" for d in on_dask
               if d.name != "suggest-parameters")   # one in-process pass over a sample: no cluster
    from cnmflow.flows.batch_extraction import batch_extraction, with_dask

    assert type(with_dask(batch_extraction, "tcp://10.0.0.5:8786").task_runner).__name__ == "DaskTaskRunner"
    assert plain[1].parameters["params"] == form_values("2p")
    watched = build_deployments(WatchSettings(folder=str(tmp_path), output_root=str(tmp_path / "out"), interval_s=30))
    watcher = watched[-1]
    assert watcher.name == "watch-folder" and watcher.parameters["folder"] == str(tmp_path)
    assert watcher.parameters["params"]["motion_correction"] == "rigid"   # raw recordings come in moving
    assert watcher.parameters["params"]["gSig_filt"] == [3, 3]
    assert watcher.schedules[0].schedule.interval.total_seconds() == 30



def test_no_deployment_form_shows_a_type_chooser():
    """Prefect's UI renders ``X | None`` as a "str | None" chooser ("Property is type None"): every text
    setting of every deployed flow is a plain text box, left empty for none."""
    from prefect.utilities.callables import parameter_schema

    from cnmflow.deployments.definitions import WatchSettings

    deployments = build_deployments(WatchSettings(folder="in", output_root="out"))
    assert len(deployments) == len(BY_NAME) == 7
    for deployment in deployments:
        schema = parameter_schema(_load_entrypoint(BY_NAME[deployment.name]["entrypoint"]).fn).model_dump()
        choosers = [name for name, prop in schema["properties"].items()
                    if any(option.get("type") == "null" for option in prop.get("anyOf", ()))]
        assert choosers == [], deployment.name
