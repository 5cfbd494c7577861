"""Prefect's temporary server for one command, as a child process that dies with it, started early.

Without ``PREFECT_API_URL`` Prefect starts a temporary server (uvicorn, ~220 MB) on the first
API call and stops it at interpreter exit; a ``cnmflow`` killed with SIGKILL left it running and
listening. Here the command starts that same server app itself, in its main thread, through
``python -m cnmflow.processes`` so the server gets SIGTERM (and is ended 3 s later for good) when
the command's process ends however it ends.

A command starts it first, before it imports Prefect or checks anything (:func:`start_server_early`,
then :func:`settled_server`), and waits for it only when the flow begins (:func:`temporary_server`),
loading meanwhile what the flow will need: the server's own start (~4 s of imports and database
set-up) overlaps the command's checks and imports instead of following them. The command's process never imports
Prefect's server package (FastAPI, SQLAlchemy: ~3 s of CPU); it points Prefect's client at the
server through Prefect's settings, for this thread and for the threads Prefect starts itself (its
log and event workers), as Prefect's own test harness does.

Small runs and sweeps can skip even that: ``cnmflow server start`` keeps a Prefect server (with its UI)
running in the background and names it in a file in Prefect's home folder; ``cnmflow run`` and
``cnmflow sweep`` use it while it answers (:func:`kept_server`), until ``cnmflow server stop``.
A server named in ``PREFECT_API_URL`` wins over both.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from cnmflow.atomic_write import atomic_path
from cnmflow.processes import pid_alive

log = logging.getLogger(__name__)

#: Set for the server unless the user set it: a machine without internet access otherwise gets a
#: "Failed to send telemetry" error line on every run.
SERVER_ENVIRONMENT = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
#: Set for the temporary server unless the user set them: it serves one command's runs, so it skips the
#: background work a lasting server does for everyone (a kept server, ``prefect server start``, still does
#: it on the same database): vacuuming old events (~1 s of CPU beside the run on a database with history),
#: automations (triggers and their actions: evaluated every few seconds), and registering Prefect's block
#: types (importing every installed Prefect collection, e.g. prefect-dask with dask.distributed, to hash them).
TEMPORARY_SERVER_ENVIRONMENT = {
    "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "[]",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
    "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}
#: Seconds the server may take to answer (Prefect's 20 s default is too short for a fresh database
#: on a busy 2-core machine); a larger PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS wins.
STARTUP_TIMEOUT_S = 90
#: Seconds to wait for queued log lines and events before the server stops.
DRAIN_TIMEOUT_S = 5.0
#: Seconds the server gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT_S = 5.0
#: uvicorn's exit status when the port was taken meanwhile (another port is tried).
PORT_TAKEN = 3
#: Seconds between two health checks while the server starts.
POLL_S = 0.1
#: The file (in Prefect's home) naming the server ``cnmflow server start`` keeps running, and its log.
KEPT_SERVER_FILE = "cnmflow-server.json"
KEPT_SERVER_LOG = "cnmflow-server.log"
#: Its port unless ``--port`` says otherwise (Prefect's own default, 4200, is left to `prefect server start`).
KEPT_PORT = 4210


@dataclass
class StartedServer:
    """A temporary server process that was started and may not answer yet."""

    port: int
    process: subprocess.Popen
    output: IO = field(repr=False)
    owns_output: bool = False  # the output is this object's temporary file (read back by output_text)
    relaunch: bool = True  # started by _launch: started again on another port when its port was taken

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def wait_ready(self, timeout_s: float, *, meanwhile: Iterable[Callable[[], object]] = ()) -> None:
        """Return once the server answers its health check; a server that exits or never answers raises.

        ``meanwhile``: steps to take while the server is not ready yet, one between two health checks
        instead of sleeping (what the caller will need next: its wait then costs no wall time)."""
        import httpx

        steps = iter(meanwhile)
        deadline = time.monotonic() + timeout_s
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                if self.relaunch and self.process.poll() == PORT_TAKEN:
                    self.port, self.process = _launch(_free_port(), self.output)
                elif self.process.poll() is not None:
                    break
                try:
                    if client.get(f"{self.api_url}/health", timeout=5.0).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                step = next(steps, None)
                step() if step is not None else time.sleep(POLL_S)
        status = self.process.poll()
        self.stop()
        raise RuntimeError(f"the temporary Prefect server did not start within {timeout_s:.0f} s"
                           + (f" (it exited with status {status})" if status is not None else "")
                           + _tail(self.output_text()))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT_S``; waits for the process to be gone."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output_text(self) -> str:
        """What the server printed, when it printed to this object's temporary file."""
        if not self.owns_output:
            return ""
        self.output.flush()
        self.output.seek(0)
        return self.output.read().decode("utf-8", errors="replace")

    def close(self) -> None:
        self.stop()
        if self.owns_output:
            self.output.close()


def start_server(*, output: IO | None = None) -> StartedServer | None:
    """Start the temporary server now, without waiting for it; None when a server is configured
    (``PREFECT_API_URL``), the temporary server is turned off, or this Prefect lacks the settings hook.

    ``output``: an open file for the server's messages (default: a temporary file, see ``output_text``).
    Call it from the main thread: a Linux child is told about the death of the *thread* that started it.
    """
    if not _can_start():
        return None
    return _started(output)


def start_server_early(*, output: IO | None = None) -> StartedServer | None:
    """:func:`start_server` for a command's first moment, before Prefect is imported: the server's own start
    (~4 s of CPU) no longer waits for that import (~1 s) and the command's parameter imports.

    Prefect's settings are not read here (their import is that second): no server when ``PREFECT_API_URL``
    is set in the environment or a kept server's file (:func:`start_kept_server`) in ``$PREFECT_HOME``
    names a live process; the server reads the rest of Prefect's settings itself (environment, profile,
    ``.env``), as the command's process does. :func:`settled_server` decides once Prefect is loaded.
    Call it from the main thread (see :func:`start_server`).
    """
    configured = os.environ.get("PREFECT_API_URL", "").strip()
    recorded = _recorded_server(Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser())
    if configured or (recorded is not None and pid_alive(recorded.pid)):
        return None
    return _started(output, settings={})


def _started(output: IO | None, *, settings: dict[str, str] | None = None) -> StartedServer:
    """A server launched on a free port, printing to ``output`` or to a temporary file of its own."""
    owns = output is None
    stream = tempfile.TemporaryFile() if output is None else output  # noqa: SIM115 - closed by close()
    port, process = _launch(_free_port(), stream, settings=settings)
    return StartedServer(port=port, process=process, output=stream, owns_output=owns)


def settled_server(early: StartedServer | None, *, output: IO | None = None) -> StartedServer | KeptServer | None:
    """The server a command uses, now that Prefect may be imported: a kept server that answers, else the
    temporary one started early (or now, when none was), else None (``PREFECT_API_URL`` names a server,
    or Prefect starts its own); an early server not used is stopped."""
    kept = kept_server(server_folder())
    if kept is None and _can_start():
        return early if early is not None else start_server(output=output)
    if early is not None:
        early.close()
    return kept


@dataclass(frozen=True)
class KeptServer:
    """A Prefect server ``cnmflow server start`` left running (with its UI), found through its file."""

    pid: int
    port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def server_folder() -> Path:
    """Where the kept server's file and log live: Prefect's home (``PREFECT_HOME``, ~/.prefect), beside the
    database that server uses."""
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value()).expanduser()


def kept_server(folder: Path) -> KeptServer | None:
    """The server named by ``folder``'s server file when its process lives and it answers, unless
    ``PREFECT_API_URL`` names a server (that one wins)."""
    server = _recorded_server(folder)
    if server is None or _api_url_configured() or not pid_alive(server.pid) or not _answers(server.api_url):
        return None
    return server


def _recorded_server(folder: Path) -> KeptServer | None:
    """The server ``folder``'s server file names (alive or not); None without a readable file."""
    try:
        record = json.loads((Path(folder) / KEPT_SERVER_FILE).read_text())
        return KeptServer(pid=int(record["pid"]), port=int(record["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_kept_server(folder: Path, *, port: int = KEPT_PORT) -> KeptServer:
    """Start ``prefect server start`` in the background for later commands, or return the one running.

    It outlives this process (its own session); its messages go to ``prefect-server.log`` in ``folder``;
    ``cnmflow server stop`` ends it."""
    folder = Path(folder)
    running = kept_server(folder)
    if running is not None:
        return running
    if not _port_free(port):  # another server there would answer the health checks for ours
        from cnmflow.errors import InputError

        raise InputError(f"port {port} is in use (another server?): give a free one with --port")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / KEPT_SERVER_LOG, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env={**SERVER_ENVIRONMENT, **os.environ}, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
            start_new_session=True)
        StartedServer(port=port, process=process, output=output, relaunch=False).wait_ready(_startup_timeout_s())
    server = KeptServer(pid=process.pid, port=port)
    with atomic_path(folder / KEPT_SERVER_FILE, suffix=".json") as tmp:
        tmp.write_text(json.dumps({"pid": server.pid, "port": server.port}))
    return server


def stop_kept_server(folder: Path) -> KeptServer | None:
    """End the server ``start_kept_server`` started (its whole process group) and forget it; which one."""
    server = _recorded_server(folder)
    if server is None:
        return None
    alive = pid_alive(server.pid)
    if alive:
        _end_group(server.pid)
    (Path(folder) / KEPT_SERVER_FILE).unlink(missing_ok=True)
    return server if alive else None


@contextmanager
def temporary_server(*, output: IO | None = None, started: StartedServer | KeptServer | None = None,
                     meanwhile: Iterable[Callable[[], object]] = ()) -> Iterator[str | None]:
    """Use a temporary server (``started``, else one started now) for every Prefect call in the block.

    The server is stopped when the block ends; ``started`` stays the caller's to close. ``meanwhile``:
    steps taken while it is not ready yet (see :meth:`StartedServer.wait_ready`).

    Yields the server's API URL, or None when ``PREFECT_API_URL`` names a server (nothing is
    started; a ``started`` server is then stopped) or this Prefect version lacks the hook (Prefect
    then starts its own, as before).
    """
    if isinstance(started, KeptServer):  # kept running by `cnmflow server start`: used, never stopped here
        with _prefect_uses(started.api_url, ui_url=started.ui_url):
            try:
                yield started.api_url
            finally:
                _drain_workers()
        return
    server = started if started is not None else start_server(output=output)
    if server is None or _api_url_configured():
        if server is not None:
            server.close()
        yield None
        return
    try:
        server.wait_ready(_startup_timeout_s(), meanwhile=meanwhile)
        with _prefect_uses(server.api_url):
            try:
                yield server.api_url
            finally:
                _drain_workers()
    finally:
        server.stop() if started is not None else server.close()  # the caller may still read a started one's output


def _can_start() -> bool:
    import prefect.context
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_ENABLED

    if _api_url_configured() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return False
    if not hasattr(prefect.context, "_temporary_global_settings_context"):
        log.debug("this Prefect has no global settings hook; Prefect starts its own server")
        return False
    return True


def _api_url_configured() -> bool:
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def _launch(port: int, output: IO, *, settings: dict[str, str] | None = None) -> tuple[int, subprocess.Popen]:
    """Prefect's server app under uvicorn on ``port``, as a child that dies with this process.

    ``settings``: Prefect settings for the server as variables (default: this process's, which may hold
    temporary ones no file says)."""
    if settings is None:
        from prefect.settings import get_current_settings

        settings = get_current_settings().to_environment_variables(exclude_unset=True)
    environment = {**SERVER_ENVIRONMENT, **TEMPORARY_SERVER_ENVIRONMENT, **os.environ, "PREFECT_UI_ENABLED": "0",
                   "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1", **settings}
    package = importlib.util.find_spec("prefect")  # found, not imported
    app_dir = Path(package.origin).parent.parent if package is not None and package.origin else Path.cwd()
    process = subprocess.Popen(
        [sys.executable, "-m", "cnmflow.processes", str(os.getpid()), "uvicorn",
         "--app-dir", str(app_dir), "--factory", f"{__name__}:server_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"],
        env=environment, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
        # Out of the terminal's process group: Ctrl-C stops the run, which then stops the
        # server after its last API calls (a server gone first left the run retrying them).
        start_new_session=True)
    return port, process


def server_app():
    """Prefect's server app (``create_app``), for uvicorn in the temporary server's process, with its routes
    prepared before it answers (:func:`_prepare_routes`).

    Made with the garbage collector paused and its objects then frozen (``gc.freeze``): Prefect's server
    package (FastAPI, SQLAlchemy, pydantic schemas) makes ~300 000 objects kept for the process's life, and
    the collections triggered while they are made, and every full one later while the server answers the
    run's calls, walked them all (~0.6 s of the server's ~2.7 s of imports)."""
    import gc

    gc.disable()
    try:
        from prefect.server.api.server import create_app

        app = create_app()
        _prepare_routes(app)
        return app
    finally:
        gc.freeze()
        gc.enable()


#: A path no route of Prefect's API has: a request for it is matched against every route.
UNROUTED_PATH = "/api/cnmflow-prepare-routes"


def _prepare_routes(app) -> None:
    """Have FastAPI prepare every route of ``app`` now, while the command still checks its inputs.

    FastAPI prepares a route (its parameters' models) the first time a request is matched against it; the
    run's first call (Prefect's version check) went through most of Prefect's ~190 routes and waited
    ~0.6 s for it. One request for a path no route has, answered in-process (404, no lifespan, no
    database), prepares them all. It runs on an event loop of its own, in a thread: uvicorn calls this
    factory from inside its loop. A failure only leaves the work to the first request."""
    import asyncio
    import threading

    request = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
               "scheme": "http", "path": UNROUTED_PATH, "raw_path": UNROUTED_PATH.encode(), "root_path": "",
               "query_string": b"", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 0),
               "server": ("127.0.0.1", 0)}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    def answer() -> None:
        try:
            asyncio.run(app(request, receive, send))
        except Exception:  # noqa: BLE001 - an optimisation: the first real request prepares the routes then
            log.debug("could not prepare the server's routes", exc_info=True)

    worker = threading.Thread(target=answer, name="cnmflow-prepare-routes")
    worker.start()
    worker.join()


@contextmanager
def _prefect_uses(api_url: str, *, ui_url: str = "") -> Iterator[None]:
    """Prefect's client talks to ``api_url`` in this thread and in the threads Prefect starts (they read the
    process-global settings). ``ui_url`` empty: no UI is served, flow runs get no UI link."""
    import prefect.context
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url, PREFECT_UI_URL: ui_url}), \
            prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()):
        yield


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


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    """A port nobody listens on now (another one is tried should it be taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(api_url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{api_url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _end_group(pid: int) -> None:
    """SIGTERM to the process group ``pid`` leads, SIGKILL if it is still there after ``STOP_TIMEOUT_S``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(POLL_S)


def _tail(text: str, lines: int = 20) -> str:
    kept = text.strip().splitlines()[-lines:]
    return (":\n" + "\n".join(kept)) if kept else ""
