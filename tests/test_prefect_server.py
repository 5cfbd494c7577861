"""The temporary Prefect server: started before Prefect is imported, used unless another server is there,
and the wait for it spent on the caller's next steps."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from cnmflow.prefect_server import KEPT_SERVER_FILE, StartedServer, settled_server, start_server_early


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _sleeper() -> StartedServer:
    """A stand-in for a started server: a process that would live for a minute."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    return StartedServer(port=9, process=process, output=tempfile.TemporaryFile(), owns_output=True)


def test_no_early_server_when_the_environment_names_one(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert start_server_early() is None


def test_no_early_server_while_a_kept_server_lives(monkeypatch, tmp_path):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    (tmp_path / KEPT_SERVER_FILE).write_text(json.dumps({"pid": os.getpid(), "port": 9}))
    assert start_server_early() is None


def test_an_early_server_is_stopped_when_prefect_is_configured_for_another():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    early = _sleeper()
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert settled_server(early) is None
    assert early.process.poll() is not None and early.output.closed


def test_the_wait_takes_the_callers_steps_until_the_server_answers(tmp_path):
    (tmp_path / "api").mkdir()
    health = tmp_path / "api" / "health"    # absent (404) until the first step: that step is always taken
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = StartedServer(port=port, process=process, output=tempfile.TemporaryFile(), owns_output=True,
                           relaunch=False)
    taken: list[int] = []
    steps = [lambda number=number: (taken.append(number), number == 0 and health.write_text("ok"), time.sleep(0.05))
             for number in range(400)]
    try:
        server.wait_ready(60, meanwhile=steps)
        assert 1 <= len(taken) < 400 and taken == list(range(len(taken)))  # in order, and not after it answered
    finally:
        server.close()


@pytest.mark.parametrize("value", ["", "  "])
def test_a_blank_api_url_is_no_server(monkeypatch, tmp_path, value):
    """An empty PREFECT_API_URL (a shell's `export PREFECT_API_URL=`) is unset: the early server starts."""
    monkeypatch.setenv("PREFECT_API_URL", value)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    server = start_server_early()
    try:
        assert server is not None and server.process.poll() is None
    finally:
        if server is not None:
            server.close()


def test_the_temporary_server_skips_lasting_servers_work_unless_the_user_asks(monkeypatch):
    """A one-run server vacuums no events, runs no automations and registers no block types, but a user's own
    Prefect setting for them wins."""
    import cnmflow.prefect_server as prefect_server

    seen: list[dict] = []

    class Recorded:
        def __init__(self, args, env, **kwargs):
            seen.append(env)

    monkeypatch.setattr(prefect_server.subprocess, "Popen", Recorded)
    monkeypatch.delenv("PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED", "true")
    prefect_server._launch(9, tempfile.TemporaryFile(), settings={})
    assert seen[0]["PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED"] == "[]"
    assert seen[0]["PREFECT_SERVER_REGISTER_BLOCKS_ON_START"] == "false"
    assert seen[0]["PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED"] == "true"


def test_the_temporary_servers_app_answers_with_its_routes_prepared():
    """The app the temporary server runs is Prefect's API (answered here in-process, no database needed)."""
    import asyncio
    import gc

    import httpx

    from cnmflow.prefect_server import server_app

    async def ask() -> tuple[int, int]:
        transport = httpx.ASGITransport(app=server_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            version = await client.get("/api/admin/version")
            missing = await client.get("/api/no-such-route")
        return version.status_code, missing.status_code

    try:
        assert asyncio.run(ask()) == (200, 404)
    finally:
        gc.unfreeze()  # server_app froze this test process's objects, as it does the server's


def test_the_console_command_starts_one_server_and_stops_it_when_the_run_refuses(monkeypatch, tmp_path):
    """`cnmflow run` (the console script) starts one temporary server and stops it when the run ends, here on
    a missing movie (exit 2); `cnmflow run --help` starts none."""
    import gc

    import cnmflow.cli
    import cnmflow.prefect_server as prefect_server

    started: list[StartedServer] = []
    monkeypatch.setattr(prefect_server, "start_server_early", lambda **_: started.append(_sleeper()) or started[-1])
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    try:
        monkeypatch.setattr(sys, "argv", ["cnmflow", "run", "--help"])
        with pytest.raises(SystemExit):
            cnmflow.cli.main()
        assert started == []
        monkeypatch.setattr(sys, "argv", ["cnmflow", "run", str(tmp_path / "missing.tif"), "--output-dir",
                                          str(tmp_path / "out")])
        assert cnmflow.cli.main() == 2
    finally:
        gc.unfreeze()  # the console command froze this test process's objects, as it does its own
    assert len(started) == 1 and started[0].process.poll() is not None
