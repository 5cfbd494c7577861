"""A killed ``cnmflow run`` takes its children with it: no server, worker or scratch folder outlives it.

These tests start the real command in a subprocess (its own temporary Prefect server, two patch
workers), kill it while the workers are busy, and look in /proc for survivors.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cnmflow.engine.executors import run_patch_jobs
from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.patch_frames import PatchFrames, PatchStorage, remove_orphaned_scratch
from cnmflow.params import build_params
from cnmflow.processes import pid_alive
from cnmflow.synthetic import simulate_1p, write_tiff

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
#: Seconds for a machine as loaded as CI's to start the command, the server and the workers.
STARTUP_TIMEOUT_S = 150
#: Seconds the children get to go once the command has ended (the server's clean shutdown is ≤ 3 s).
DEATH_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> Path:
    simulated = simulate_1p(shape=(64, 64), n_frames=300, n_neurons=8, gsig=3.0, fr=10.0, peak_snr=(8, 12), rng=1)
    return write_tiff(tmp_path_factory.mktemp("movie") / "movie.tif", simulated.movie, fr=10.0)


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory) -> Path:
    """One Prefect home (database) for the module's commands: migrations are paid once."""
    return tmp_path_factory.mktemp("prefect-home")


def _environment(tmp_path: Path, prefect_home: Path) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "MLFLOW_"))}
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    environment.update(PREFECT_HOME=str(prefect_home), CNMFLOW_CACHE_DIR=str(tmp_path / "cache"),
                       CNMFLOW_PATCH_MB="0", CNMFLOW_SCRATCH_DIR=str(scratch), DO_NOT_TRACK="true",
                       CNMFLOW_PATCHES_IN_PROCESS_BELOW="0")  # real patch workers, to be killed
    return environment


def _start_run(movie: Path, tmp_path: Path, prefect_home: Path, *, own_group: bool = False) -> subprocess.Popen:
    command = [sys.executable, "-m", "cnmflow.cli", "run", str(movie), "--output-dir", str(tmp_path / "out"),
               "--set", "n_processes=2", "--set", "rf=12", "--set", "stride=6", "--set", "gSiz=13",
               "--no-track", "--no-progress"]
    # A terminal's foreground command starts with SIGINT at its default. A suite launched in the background
    # (`make test &`: SIGINT ignored, and an ignored signal stays ignored across exec) would hand the run a
    # Ctrl-C it cannot hear; a handler, unlike SIG_IGN, is reset to the default by exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(command, env=_environment(tmp_path, prefect_home), stdin=subprocess.DEVNULL,
                                stdout=open(tmp_path / "stdout", "w"), stderr=open(tmp_path / "stderr", "w"),
                                start_new_session=own_group)
    finally:
        signal.signal(signal.SIGINT, previous)


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid``: its command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child in [child for child, ppid in parents.items() if ppid == parent]:
            try:
                found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            todo.append(child)
    return found


def _wait_for_workers(run: subprocess.Popen, tmp_path: Path) -> dict[int, str]:
    """The descendants once the server and two patch workers are up and a patch job is running."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert run.poll() is None, f"the run ended early: {(tmp_path / 'stderr').read_text()[-2000:]}"
        children = _descendants(run.pid)
        workers = [pid for pid, line in children.items() if "multiprocessing.spawn" in line]
        busy = any((tmp_path / "scratch").iterdir())  # CNMFLOW_PATCH_MB=0: a running job has a scratch folder
        if len(workers) >= 2 and busy and any("uvicorn" in line for line in children.values()):
            return _descendants(run.pid)
        time.sleep(0.2)
    pytest.fail("the patch workers did not start in time")


def _what_happened(tmp_path: Path) -> str:
    """The run's stderr, stdout and run logs (tails) and whether it wrote its outputs: for a failed check."""
    parts = [f"outputs: {sorted(p.name for p in (tmp_path / 'out').iterdir()) if (tmp_path / 'out').exists() else None}"]
    for path in [tmp_path / "stderr", tmp_path / "stdout", *sorted(tmp_path.rglob("*.log"))]:
        if path.is_file():
            parts.append(f"--- {path.relative_to(tmp_path)}\n{path.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)


def _server_port(children: dict[int, str]) -> int:
    line = next(line for line in children.values() if "uvicorn" in line).split()
    return int(line[line.index("--port") + 1])


def _survivors(pids, timeout_s: float = DEATH_TIMEOUT_S) -> dict[int, str]:
    deadline = time.monotonic() + timeout_s
    alive = dict(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid: line for pid, line in alive.items() if pid_alive(pid)}
        time.sleep(0.2)
    return alive


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _kill_and_check(signum: int, movie: Path, tmp_path: Path, prefect_home: Path, *,
                    whole_group: bool = False) -> subprocess.Popen:
    """Signal the command (``whole_group``: its process group, as a terminal's Ctrl-C does)."""
    run = _start_run(movie, tmp_path, prefect_home, own_group=whole_group)
    children = {}
    try:
        children = _wait_for_workers(run, tmp_path)
        port = _server_port(children)
        if whole_group:
            os.killpg(run.pid, signum)
        else:
            run.send_signal(signum)
        run.wait(timeout=60)
        survivors = _survivors(children)
        assert not survivors, f"outlived `cnmflow run` after {signal.Signals(signum).name}: {survivors}"
        assert not _listening(port), f"the temporary Prefect server still listens on {port}"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for pid in children:  # never leave our own strays behind, whatever the assertions said
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    return run


@linux_only
def test_sigkill_of_the_command_takes_server_and_workers_along(movie, tmp_path, prefect_home):
    run = _kill_and_check(signal.SIGKILL, movie, tmp_path, prefect_home)
    assert run.returncode == -signal.SIGKILL
    # Workers killed mid-job leave their scratch folders; the next run's patch step removes them.
    scratch = tmp_path / "scratch"
    left = sorted(scratch.iterdir())
    assert left, "the workers were killed mid-job"
    removed = remove_orphaned_scratch(str(scratch))
    assert sorted(removed) == left and not list(scratch.iterdir())


@linux_only
def test_sigterm_cleans_up_like_ctrl_c_and_says_so_in_one_line(movie, tmp_path, prefect_home):
    run = _kill_and_check(signal.SIGTERM, movie, tmp_path, prefect_home)
    assert run.returncode == 143
    err = (tmp_path / "stderr").read_text()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cnmflow: interrupted (SIGTERM)"), err
    out = tmp_path / "out"
    temporary = [path.relative_to(out) for path in out.rglob("*")
                 if path.is_file() and not path.relative_to(out).parts[0] in (".cnmflow-logs", ".cnmflow-lock")]
    assert temporary == [], f"left in the output folder: {temporary}"
    log = Path(lines[0].split("log: ")[1])
    assert log.is_file() and "interrupted" in log.read_text()
    assert not list((tmp_path / "scratch").iterdir()), "the killed workers' scratch folders are removed"


@linux_only
def test_ctrl_c_in_a_terminal_stops_the_run_cleanly(movie, tmp_path, prefect_home):
    """SIGINT reaches the whole foreground group; the server must outlive the run's last API calls."""
    run = _kill_and_check(signal.SIGINT, movie, tmp_path, prefect_home, whole_group=True)
    assert run.returncode == 130, _what_happened(tmp_path)
    lines = [line for line in (tmp_path / "stderr").read_text().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cnmflow: interrupted (Ctrl-C)"), lines
    assert not [path for path in (tmp_path / "out").rglob("*") if ".cnmflow-work" in path.parts]
    assert not list((tmp_path / "scratch").iterdir())


def test_scratch_of_dead_owners_is_removed_and_live_ones_are_kept(tmp_path):
    live = PatchFrames.scratch((2, 3, 3), str(tmp_path))  # owned by this (live) process
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead_pid = int(finished.stdout)
    host = live._path.parent.name.split("-")[3]
    dead = tmp_path / f"cnmflow-patch-{dead_pid}-{host}-abc_123"
    other_host = tmp_path / f"cnmflow-patch-{dead_pid}-elsewhere.example-abc_124"
    unknown = tmp_path / "cnmflow-patch-xyz"
    for folder in (dead, other_host, unknown):
        folder.mkdir()
        (folder / "frames.f32").write_bytes(b"\0" * 16)
    assert not pid_alive(dead_pid)
    source = MovieSource.of(np.zeros((4, 8, 8), dtype=np.float32))
    # the patch step of the next run (no patches here) clears what dead workers left
    run_patch_jobs(source, [], build_params({}), (8, 8), lambda stage, fraction: None,
                   storage=PatchStorage(directory=str(tmp_path)))
    assert not dead.exists()
    assert live._path.exists() and other_host.exists() and unknown.exists()
    live.close()


@linux_only
def test_a_child_started_through_the_launcher_ends_with_its_parent(tmp_path):
    """``python -m cnmflow.processes PID MODULE`` (how the server starts): SIGKILL the parent, the child goes."""
    script = ("import subprocess, sys, os; "
              "child = subprocess.Popen([sys.executable, '-m', 'cnmflow.processes', str(os.getpid()), 'http.server', "
              "'0', '--bind', '127.0.0.1']); print(child.pid, flush=True); import time; time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        time.sleep(1.0)
        assert pid_alive(child)
        parent.kill()
        parent.wait()
        assert not _survivors({child: "http.server"})
    finally:
        if pid_alive(child):
            os.kill(child, signal.SIGKILL)


def test_no_server_is_started_when_one_is_configured():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from cnmflow.prefect_server import temporary_server

    before = set(_descendants(os.getpid()))  # a session's test harness may hold a server of its own
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}), temporary_server() as url:
        assert url is None and set(_descendants(os.getpid())) == before


def test_no_server_is_started_early_when_one_is_configured():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from cnmflow.prefect_server import start_server

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert start_server() is None


def test_a_server_that_exits_while_starting_is_reported_with_its_status_and_output():
    import tempfile

    from cnmflow.prefect_server import StartedServer

    script = "import sys; print('address already in use: no', file=sys.stderr); sys.exit(1)"
    output = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, "-c", script], stdout=output, stderr=output)
    server = StartedServer(port=9, process=process, output=output, owns_output=True)
    with pytest.raises(RuntimeError, match="exited with status 1") as failure:
        server.wait_ready(timeout_s=60)
    assert "address already in use: no" in str(failure.value)
    server.close()
    assert output.closed and process.poll() == 1


def test_die_with_parent_uses_prctl_on_linux():
    code = ("import os, signal; from cnmflow.processes import die_with_parent; "
            "print(die_with_parent(os.getppid(), signal.SIGTERM))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ("prctl" if sys.platform.startswith("linux") else "poll")


def test_without_prctl_a_thread_watches_the_parent(monkeypatch):
    """macOS has no prctl: the fallback thread is started instead of failing."""
    import threading

    from cnmflow import processes

    monkeypatch.setattr(processes, "_set_pdeathsig", lambda sig: False)
    assert processes.die_with_parent(os.getppid(), signal.SIGTERM) == "poll"
    assert any(thread.name == "cnmflow-parent-watch" for thread in threading.enumerate())


def test_sigterm_unwinds_like_ctrl_c_once_and_the_handler_is_restored():
    from cnmflow.processes import Interrupted, sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(Interrupted) as raised:
        with sigterm_as_interrupt():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # interrupted here
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM does not cut the cleanup short
                cleaned.append(True)
    assert isinstance(raised.value, KeyboardInterrupt) and raised.value.exit_status == 143
    assert cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize("signum, status, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_an_interrupted_command_prints_one_line_and_the_shell_status(signum, status, name, capsys):
    from cnmflow.cli.app import _interrupted
    from cnmflow.processes import Interrupted

    error = Interrupted(signum)
    error.log_path = Path("/data/out/.cnmflow-logs/run-1.log")
    assert _interrupted(error) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"cnmflow: interrupted ({name})") and "run-1.log" in err


def test_a_kept_server_serves_later_runs_until_it_is_stopped(movie, tmp_path, prefect_home):
    """`cnmflow server start` leaves a server running; a run uses it (no temporary server, a UI link in the
    manifest) and leaves it running; `cnmflow server stop` ends it and the next status says none."""
    import json

    environment = _environment(tmp_path, prefect_home)
    port = str(_free_local_port())

    def command(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cnmflow.cli", *args], env=environment, capture_output=True,
                              text=True, timeout=240, stdin=subprocess.DEVNULL)

    started = command("server", "start", "--port", port)
    assert started.returncode == 0, started.stderr
    record = json.loads((prefect_home / "cnmflow-server.json").read_text())
    try:
        run = command("run", str(movie), "--output-dir", str(tmp_path / "out"), "--set", "rf=none",
                      "--set", "gSiz=13", "--no-track", "--no-progress", "--no-nwb")
        assert run.returncode == 0, run.stderr
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert manifest["run_ids"]["prefect_flow_run_url"].startswith(f"http://127.0.0.1:{port}/")
        assert pid_alive(record["pid"])
        assert "running" in command("server", "status").stdout
    finally:
        stopped = command("server", "stop")
    assert stopped.returncode == 0 and f"pid {record['pid']}" in stopped.stdout
    assert not pid_alive(record["pid"]) and not (prefect_home / "cnmflow-server.json").exists()
    assert "no kept Prefect server" in command("server", "status").stdout


def _free_local_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value * 2


def _fails() -> None:
    raise ValueError("no such preview")


def _dies() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@linux_only
def test_a_forked_call_computes_in_another_process_and_reports_failures():
    from cnmflow.processes import ForkedCall

    child, doubled = ForkedCall(_pid_and, 21).result()
    assert doubled == 42 and child != os.getpid() and not pid_alive(child)
    with pytest.raises(RuntimeError, match="ValueError: no such preview"):
        ForkedCall(_fails).result()
    with pytest.raises(ChildProcessError, match="without a result"):
        ForkedCall(_dies).result()


@linux_only
def test_a_cancelled_forked_call_is_killed_and_reaped():
    from cnmflow.processes import ForkedCall

    call = ForkedCall(time.sleep, 60)
    started = time.monotonic()
    call.cancel()
    assert time.monotonic() - started < 10
    with pytest.raises(RuntimeError, match="cancelled"):
        call.result()


@linux_only
def test_a_forked_call_interrupted_while_waiting_is_cancelled_without_a_second_error():
    """Ctrl-C during result() (export's wait for the previews): the caller cancels, and the interrupt stays
    the error — not an OSError from closing the pipe twice."""
    from cnmflow.processes import ForkedCall

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    call = ForkedCall(time.sleep, 60)
    child = call._pid
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            call.result()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    call.cancel()
    assert not pid_alive(child)


@linux_only
def test_a_forked_call_that_hangs_is_killed_at_its_timeout():
    from cnmflow.processes import ForkedCall

    call = ForkedCall(time.sleep, 60)
    child = call._pid
    with pytest.raises(ChildProcessError, match="did not finish within 0.5 s"):
        call.result(timeout_s=0.5)
    assert not pid_alive(child)
    with pytest.raises(RuntimeError, match="did not finish"):
        call.result()
