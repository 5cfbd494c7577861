"""A real Prefect server on 127.0.0.1: deployments served by ``cnmflow serve`` and created by ``prefect deploy``.

This is how a lab runs cnmflow: ``prefect server start`` in one terminal, ``cnmflow serve`` in
another, runs triggered from the UI.  Marked ``server`` (skip locally with ``-m "not server"``);
CI runs it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from cnmflow.lineage import read_manifest, verify_manifest
from cnmflow.synthetic import simulate_1p, write_tiff

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(api_url: str, process: subprocess.Popen, timeout_s: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with status {process.returncode}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"prefect server at {api_url} not healthy after {timeout_s:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[dict[str, str]]:
    """``prefect server start`` on a free local port with its own database; yields the environment to use it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true",
           "CNMFLOW_CACHE_DIR": str(tmp_path_factory.mktemp("cache")), "PREFECT_LOGGING_LEVEL": "WARNING"}
    log = open(home / "server.log", "wb")
    process = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(env["PREFECT_API_URL"], process)
        yield env
    finally:
        _stop(process)
        log.close()


def _client(env: dict[str, str]):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(api=env["PREFECT_API_URL"])


def _wait_for_deployments(env: dict[str, str], names: set[str], timeout_s: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        with _client(env) as client:
            found = {deployment.name: deployment for deployment in client.read_deployments()}
        if names <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_served_deployment_runs_when_triggered_through_the_api(server, tmp_path):
    simulated = simulate_1p(shape=(40, 48), n_frames=200, n_neurons=4, gsig=3.0, fr=10.0, peak_snr=(8, 12), rng=5)
    movie = write_tiff(tmp_path / "movie.tif", simulated.movie, fr=10.0)
    out = tmp_path / "out"
    log = open(tmp_path / "serve.log", "wb")
    # the runner looks for triggered runs every second instead of its default 10: only the idle wait is shorter
    serving = subprocess.Popen([str(BIN / "cnmflow"), "serve"], env={**server, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
                               cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deployments = _wait_for_deployments(server, {"source-extraction", "source-extraction-2p"})
        assert {"source-extraction", "source-extraction-2p"} <= set(deployments), (tmp_path / "serve.log").read_text()
        assert deployments["source-extraction-2p"].parameters["params"]["method_init"] == "greedy_roi"
        assert deployments["source-extraction"].parameters["params"]["min_pnr"] == 12

        params = {**deployments["source-extraction"].parameters["params"],
                  "rf": 0, "gSiz": 13, "min_corr": 0.8, "min_pnr": 8}
        with _client(server) as client:
            flow_run = client.create_flow_run_from_deployment(
                deployments["source-extraction"].id,
                parameters={"movies": [str(movie)], "output_dir": str(out), "params": params})
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                state = client.read_flow_run(flow_run.id).state
                if state is not None and state.is_final():
                    break
                time.sleep(0.25)
        assert state is not None and state.is_completed(), f"{state}\n{(tmp_path / 'serve.log').read_text()[-3000:]}"
        manifest = read_manifest(out)
        assert manifest["run_ids"]["prefect_flow_run_id"] == str(flow_run.id)
        assert manifest["parameters"]["min_pnr"] == {"value": 8.0, "source": "table", "default": 12.0}
        assert manifest["run"]["n_components"] > 0 and verify_manifest(out) == []
    finally:
        _stop(serving)
        log.close()


def test_prefect_deploy_all_creates_the_deployments_from_prefect_yaml(server):
    env = {**server}
    created = subprocess.run([str(BIN / "prefect"), "work-pool", "create", "cnmflow", "--type", "process"],
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    with _client(server) as client:
        pooled = {d.name: d for d in client.read_deployments() if d.work_pool_name == "cnmflow"}
    assert {"source-extraction", "source-extraction-2p", "parameter-sweep", "watch-folder"} <= set(pooled)
    directory = pooled["source-extraction"].pull_steps[0]["prefect.deployments.steps.set_working_directory"]
    assert Path(directory["directory"]) == REPO
