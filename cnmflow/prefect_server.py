"""Prefect's temporary server for one command, as a child process that dies with it.

Without ``PREFECT_API_URL`` Prefect starts a temporary server (uvicorn, ~220 MB) on the first
API call and stops it at interpreter exit; a ``cnmflow`` killed with SIGKILL left it running and
listening. Here the command starts that same server itself, in its main thread, through
``python -m cnmflow.processes`` so the server gets SIGTERM (and is ended 3 s later for good) when
the command's process ends however it ends; it is registered as Prefect's default temporary
server, so every Prefect call in the process uses it, and it is stopped when the block ends.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from typing import IO, Iterator

log = logging.getLogger(__name__)

#: Set for the server unless the user set it: a machine without internet access otherwise gets a
#: "Failed to send telemetry" error line on every run.
SERVER_ENVIRONMENT = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
#: Seconds the server may take to answer (Prefect's 20 s default is too short for a fresh database
#: on a busy 2-core machine); a larger PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS wins.
STARTUP_TIMEOUT_S = 90
#: Seconds to wait for queued log lines and events before the server stops.
DRAIN_TIMEOUT_S = 5.0


@contextmanager
def temporary_server(*, output: IO | None = None) -> Iterator[str | None]:
    """Start Prefect's temporary server as a child of this process, unless a server is configured.

    Yields the server's API URL, or None when ``PREFECT_API_URL`` names a server (nothing is
    started) or this Prefect version lacks the hook (Prefect then starts its own, as before).
    ``output``: an open file for the server's own messages (default: this process's stderr).
    Call it from the main thread: a Linux child is told about the death of the *thread* that
    started it.
    """
    server_class = _server_class()
    if server_class is None:
        yield None
        return
    instances = server_class._instances
    previous = instances.get(None)
    if previous is not None and previous.running:  # this process already has one: keep using it
        yield previous.api_url
        return
    server = server_class(port=_free_port())
    server.output = output
    instances[None] = server  # what Prefect's own `SubprocessASGIServer()` calls now return
    try:
        server.start(timeout=_startup_timeout_s())
        yield server.api_url
    finally:
        _drain_workers()
        server.stop()
        if previous is None:
            instances.pop(None, None)
        else:
            instances[None] = previous


def _server_class():
    """A subclass of Prefect's temporary server that starts uvicorn through our launcher, or None."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:
        return None
    if not isinstance(getattr(SubprocessASGIServer, "_instances", None), dict) or \
            not hasattr(SubprocessASGIServer, "_run_uvicorn_command"):
        log.debug("this Prefect has no temporary-server hook; Prefect starts its own server")
        return None

    class ChildServer(SubprocessASGIServer):
        output: IO | None = None

        def _run_uvicorn_command(self) -> subprocess.Popen:
            import prefect
            from prefect.settings import get_current_settings

            environment = {**SERVER_ENVIRONMENT, **os.environ, "PREFECT_UI_ENABLED": "0",
                           "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
                           **get_current_settings().to_environment_variables(exclude_unset=True)}
            return subprocess.Popen(
                [sys.executable, "-m", "cnmflow.processes", str(os.getpid()), "uvicorn",
                 "--app-dir", str(prefect.__module_path__.parent), "--factory", "prefect.server.api.server:create_app",
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error", "--lifespan", "on"],
                env=environment, stdin=subprocess.DEVNULL, stdout=self.output, stderr=self.output,
                # Out of the terminal's process group: Ctrl-C stops the run, which then stops the
                # server after its last API calls (a server gone first left the run retrying them).
                start_new_session=True)

    return ChildServer


def _startup_timeout_s() -> int:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    return max(STARTUP_TIMEOUT_S, int(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))


def _drain_workers(timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Send the logs and events still queued to the server before it goes (else: "Error logging to API")."""
    try:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        for worker in (APILogWorker, EventsWorker):
            worker.drain_all(timeout=timeout_s, at_exit=False)
    except Exception:  # noqa: BLE001 - losing a few log lines must not fail the command
        log.debug("could not drain Prefect's log/event workers", exc_info=True)


def _free_port() -> int:
    """A port nobody listens on now (Prefect moves to another one should it be taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
