"""Where the wall time of a small ``cnmflow run`` goes: start-up, Prefect server, flow and tasks, export, tracking.

Runs ``cnmflow run`` as a user would (a subprocess, a fresh output folder each time) on the real 63-frame
isxd (``/work/shared/data/ideas``, read in place, never copied) and on a simulated one-photon CA1-like
256²×1000 uint16 TIFF (``cnmflow.synthetic.simulate_realistic_1p``, gSig 3), with and without MLflow
tracking, and breaks each run's wall time down from the milestones the command writes to its run log
(inputs checked, run log opened, Prefect server ready, flow returned with the flow's stage seconds, server
stopped) and the seconds per stage and per output file the manifest records (fit, hdf5, isxd sets, each
preview, NWB, lineage graph). One more run per movie under ``python -X importtime`` gives the import time
of the command's own process by top-level package. CPU time (user + sys of the command and all the
processes it waited for: the Prefect server, the patch workers) is measured with the wall time: on a
shared machine it moves much less than the wall time.

    .venv/bin/python benchmarks/overhead.py                         # both movies, 3 runs each way
    .venv/bin/python benchmarks/overhead.py --movies isxd --repeats 5 --tracking off
    .venv/bin/python benchmarks/overhead.py --movies isxd --tracking off --kept-server   # `cnmflow server start`

Writes ``results/overhead.json`` and prints medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REAL_ISXD = Path("/work/shared/data/ideas/movie_part2_108x123x63.isxd")
REAL_PARAMS = REAL_ISXD.parent / "params_source_extraction.json"
#: The simulated movie and the parameters a user gives it (issue #22: CA1-like 256²×1000 at gSig 3).
SIM_SHAPE, SIM_FRAMES, SIM_SEED = (256, 256), 1000, 1
SIM_SETTINGS = ["--set", "gSig=3", "--set", "gSiz=13", "--set", "min_corr=0.8", "--set", "min_pnr=8"]
#: Milestones ``cnmflow run`` notes in its run log (cli/app.py), in order.
MILESTONES = ("inputs checked", "run log opened", "Prefect server ready", "flow returned", "Prefect server stopped")
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \| \w+\s* \| [^-]*- (.*)$")
ENVIRONMENT = {"DO_NOT_TRACK": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MPLBACKEND": "Agg"}
#: PYTHONPATH of the measured runs when --checkout names another checkout.
EXTRA_ENVIRONMENT: dict[str, str] = {}


def simulated_movie(folder: Path) -> Path:
    """The CA1-like movie as a uint16 TIFF (made once, cached in the results folder)."""
    path = folder / f"overhead_ca1_{SIM_SHAPE[0]}x{SIM_SHAPE[1]}x{SIM_FRAMES}_seed{SIM_SEED}.tif"
    if not path.exists():
        from cnmflow.synthetic import simulate_realistic_1p, write_tiff

        simulated = simulate_realistic_1p("ca1", shape=SIM_SHAPE, n_frames=SIM_FRAMES, rng=SIM_SEED)
        write_tiff(path, simulated.movie, fr=simulated.truth.fr, dtype="uint16", scale="auto")
    return path


def movie_arguments(name: str) -> tuple[Path, list[str]]:
    """The movie and the options of ``cnmflow run`` for ``name`` (isxd: its own params file)."""
    if name == "isxd":
        return REAL_ISXD, ["--params-file", str(REAL_PARAMS), "--overwrite-params"]
    return simulated_movie(RESULTS), SIM_SETTINGS


#: Folders a checkout installs inside the ``cnmflow`` package (setup.py).
INSTALLED_INSIDE = ("cli", "deployments", "flows", "tasks")


def checkout_path(checkout: Path, folder: Path) -> str:
    """A ``PYTHONPATH`` entry under ``folder`` that makes ``import cnmflow`` (and cnmflow.cli, .flows, ...)
    load ``checkout``'s code instead of the installed one: a ``cnmflow`` folder of links into it."""
    package = folder / "cnmflow"
    package.mkdir(parents=True)
    for entry in (checkout / "cnmflow").iterdir():
        (package / entry.name).symlink_to(entry)
    for name in INSTALLED_INSIDE:
        (package / name).symlink_to(checkout / name)
    return str(folder)


def command(movie: Path, options: list[str], output_dir: Path, *, tracking_uri: str | None,
            python_flags: tuple[str, ...] = ()) -> list[str]:
    tracking = ["--tracking-uri", tracking_uri] if tracking_uri else ["--no-track"]
    return [sys.executable, *python_flags, "-m", "cnmflow.cli", "run", str(movie), "--output-dir", str(output_dir),
            "--no-progress", *options, *tracking]


#: Seconds between two reads of the CPU seconds of the command's processes (:class:`CpuSampler`).
SAMPLE_S = 0.05


class CpuSampler:
    """The CPU seconds of a running command's own process, of its Prefect server and of its other
    descendants (previews child, patch workers), read from ``/proc`` every ``SAMPLE_S``: on an idle
    2-core machine each process would take about its CPU seconds as wall time, so a shared machine's
    samples still tell which process the run waited for (Linux only; empty elsewhere)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.servers: set[int] = set()  # kept: a server ending has no command line left

    def sample(self) -> None:
        totals = {"command": 0.0, "server": 0.0, "other": 0.0}
        for pid in [self.pid, *_descendants(self.pid)]:
            cpu, line = _cpu_and_command(pid)
            if "uvicorn" in line:  # (a child not yet started shows its parent's command line)
                self.servers.add(pid)
            role = "command" if pid == self.pid else "server" if pid in self.servers else "other"
            totals[role] += cpu
        self.samples.append((time.time(), totals))

    def at(self, when: float) -> dict[str, float]:
        """The last sample taken before ``when`` (epoch seconds)."""
        taken = [totals for stamp, totals in self.samples if stamp <= when]
        return {key: round(value, 2) for key, value in (taken[-1] if taken else {}).items()}

    def peak(self) -> dict[str, float]:
        """The largest sample of each role (a process that ended is no longer read)."""
        return {key: round(max(totals[key] for _, totals in self.samples), 2)
                for key in ("command", "server", "other")} if self.samples else {}


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(children)
            todo.extend(children)
    return found


def _cpu_and_command(pid: int) -> tuple[float, str]:
    """(user + sys seconds, command line) of ``pid``; (0, "") once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return 0.0, ""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), line


def timed(args: list[str], *, cwd: Path, environment: dict[str, str] | None = None,
          sampler: list[CpuSampler] | None = None) -> tuple[subprocess.CompletedProcess, float, float, float]:
    """Run ``args``; (result, start as epoch seconds, wall s, CPU s of it and its waited-for children).
    ``sampler``: a list that gets the run's :class:`CpuSampler`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, clock = time.time(), time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(args, stdout=out, stderr=err, text=True, cwd=cwd,
                                   env={**os.environ, **ENVIRONMENT, **EXTRA_ENVIRONMENT, **(environment or {})})
        cpu_sampler = CpuSampler(process.pid)
        while process.poll() is None:
            cpu_sampler.sample()
            time.sleep(SAMPLE_S)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(args, process.returncode, out.read(), err.read())
    if sampler is not None:
        sampler.append(cpu_sampler)
    wall = time.perf_counter() - clock
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done, started, wall, cpu


def read_milestones(output_dir: Path) -> tuple[dict[str, float], dict[str, float]]:
    """(milestone → epoch seconds, the flow's stage seconds) from the run's log."""
    logs = sorted((output_dir / ".cnmflow-logs").glob("run-*.log"))
    found: dict[str, float] = {}
    stages: dict[str, float] = {}
    for line in logs[-1].read_text(errors="replace").splitlines() if logs else []:
        match = LOG_LINE.match(line)
        if not match:
            continue
        stamp, message = match.groups()
        when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for name in MILESTONES:
            if message.startswith(name):
                found.setdefault(name, when)
        if message.startswith("flow returned; stage seconds: "):
            stages = json.loads(message.split(": ", 1)[1])
    return found, stages


def breakdown(started: float, wall: float, milestones: dict[str, float], stages: dict[str, float],
              recorded: dict[str, float]) -> dict[str, float]:
    """The run's wall time in consecutive parts (they add up to ``wall``), plus the parts of the export."""
    points = [("start_to_inputs_checked", "inputs checked"), ("log_and_flow_import", "run log opened"),
              ("prefect_server_start", "Prefect server ready"), ("flow", "flow returned"),
              ("prefect_server_stop", "Prefect server stopped")]
    parts: dict[str, float] = {}
    previous = started
    for label, name in points:
        if name in milestones:
            parts[label] = milestones[name] - previous
            previous = milestones[name]
    parts["exit"] = started + wall - previous
    flow = parts.get("flow", 0.0)
    for stage in ("validate", "concatenate", "motion_correction", "extract", "export", "track"):
        if stage in stages:
            parts[f"flow.{stage}"] = stages[stage]
    parts["flow.machinery_and_report"] = flow - sum(stages.get(s, 0.0) for s in
                                                   ("validate", "concatenate", "motion_correction", "extract",
                                                    "export", "track"))
    if "extract" in stages and "fit" in recorded:
        parts["flow.extract.fit"] = recorded["fit"]
        parts["flow.extract.task_and_cache"] = stages["extract"] - recorded["fit"]
    exported = {key: value for key, value in recorded.items() if key.startswith("export.")}
    for key, value in exported.items():
        parts[f"flow.{key}"] = value
    previews = sum(value for key, value in exported.items() if key.startswith("export.preview."))
    if exported:  # drawn by a forked child and the run's process, beside the data files: the sums overlap
        parts["flow.export.previews_total"] = previews
        parts["flow.export.data_files_total"] = sum(value for key, value in exported.items() if key.count(".") == 1)
    return {key: round(value, 3) for key, value in parts.items()}


def one_run(name: str, root: Path, index: int, *, tracking: bool) -> dict[str, Any]:
    """One ``cnmflow run`` in a fresh output folder: wall, CPU, and the breakdown."""
    movie, options = movie_arguments(name)
    output_dir = root / f"{name}-{'mlflow' if tracking else 'plain'}-{index}"
    uri = f"sqlite:///{root / 'mlflow.db'}" if tracking else None
    cache = {"CNMFLOW_CACHE_DIR": str(output_dir) + "-cache"}  # a fresh results cache: every run fits
    samplers: list[CpuSampler] = []
    _, started, wall, cpu = timed(command(movie, options, output_dir, tracking_uri=uri), cwd=root, environment=cache,
                                  sampler=samplers)
    milestones, stages = read_milestones(output_dir)
    manifest = json.loads((output_dir / "manifest.json").read_text())
    recorded = manifest["run"]["timings_s"]
    return {"movie": name, "tracking": tracking, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "n_components": manifest["run"]["n_components"],
            "parts_s": breakdown(started, wall, milestones, stages, recorded),
            "cpu_by_process_s": {"at " + name: samplers[0].at(when) for name, when in milestones.items()}
            | {"peak": samplers[0].peak()}}


def import_times(name: str, root: Path) -> dict[str, Any]:
    """``python -X importtime`` over one whole run: total import seconds of the command's process, by package."""
    movie, options = movie_arguments(name)
    output_dir = root / f"{name}-importtime"
    done, _, wall, cpu = timed(command(movie, options, output_dir, tracking_uri=None, python_flags=("-X", "importtime")),
                               cwd=root, environment={"CNMFLOW_CACHE_DIR": str(output_dir) + "-cache"})
    by_package: dict[str, float] = {}
    total = 0.0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own_us, _, module = line[len("import time:"):].split("|")
        own = int(own_us) / 1e6
        package = module.strip().split(".")[0]
        by_package[package] = by_package.get(package, 0.0) + own
        total += own
    top = dict(sorted(by_package.items(), key=lambda item: -item[1])[:15])
    return {"movie": name, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "imports_s": round(total, 3),
            "by_package_s": {key: round(value, 3) for key, value in top.items()}}


def server_command(root: Path, action: str) -> None:
    """``cnmflow server start|stop`` with a Prefect home of the benchmark's own (the runs then use that server)."""
    EXTRA_ENVIRONMENT["PREFECT_HOME"] = str(root / "prefect-home")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    timed([sys.executable, "-m", "cnmflow.cli", "server", action, *(["--port", port] if action == "start" else [])],
          cwd=root)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median wall, CPU and parts over repeated runs of one configuration."""
    keys = sorted({key for run in runs for key in run["parts_s"]}, key=_part_order)
    by_process = {(point, role) for r in runs for point, roles in r.get("cpu_by_process_s", {}).items() for role in roles}
    return {"n": len(runs), "wall_s": statistics.median(r["wall_s"] for r in runs),
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "parts_s": {key: round(statistics.median(r["parts_s"].get(key, 0.0) for r in runs), 3) for key in keys},
            "cpu_by_process_s": {f"{point}: {role}": round(statistics.median(
                r["cpu_by_process_s"][point][role] for r in runs if role in r["cpu_by_process_s"].get(point, {})), 2)
                for point, role in sorted(by_process)}}


def _part_order(key: str) -> tuple[int, str]:
    order = ["start_to_inputs_checked", "log_and_flow_import", "prefect_server_start", "flow",
             "prefect_server_stop", "exit"]
    head = key if key in order else "flow"
    return order.index(head), "" if key == head else key


def print_table(summary: dict[str, dict[str, Any]], imports: list[dict[str, Any]]) -> None:
    configurations = list(summary)
    keys = sorted({key for entry in summary.values() for key in entry["parts_s"]}, key=_part_order)
    print(f"{'median seconds':42}" + "".join(f"{name:>18}" for name in configurations))
    print(f"{'wall':42}" + "".join(f"{summary[name]['wall_s']:>18.2f}" for name in configurations))
    print(f"{'CPU (with server and workers)':42}" + "".join(f"{summary[name]['cpu_s']:>18.2f}"
                                                            for name in configurations))
    for key in keys:
        label = key.replace("flow.", "  ", 1).replace("export.preview.", "  preview ").replace("export.", "  ")
        print(f"{label[:42]:42}" + "".join(f"{summary[name]['parts_s'].get(key, float('nan')):>18.2f}"
                                          for name in configurations))
    points = sorted({key for entry in summary.values() for key in entry.get("cpu_by_process_s", {})},
                    key=lambda key: ([f"at {name}" for name in MILESTONES] + ["peak"]).index(key.split(":")[0]))
    for key in points:  # CPU seconds of each process when the run reached each milestone
        print(f"{'CPU ' + key:42.42}" + "".join(f"{summary[name]['cpu_by_process_s'].get(key, float('nan')):>18.2f}"
                                              for name in configurations))
    for entry in imports:
        packages = ", ".join(f"{name} {seconds:.2f}" for name, seconds in list(entry["by_package_s"].items())[:8])
        print(f"imports of the command's process ({entry['movie']}): {entry['imports_s']:.2f} s — {packages}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", nargs="+", choices=("isxd", "sim"), default=["isxd", "sim"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tracking", choices=("both", "on", "off"), default="both")
    parser.add_argument("--no-importtime", action="store_true", help="skip the -X importtime run")
    parser.add_argument("--checkout", type=Path, help="measure this checkout's code (e.g. a git worktree of an "
                                                        "earlier commit) with this virtual environment")
    parser.add_argument("--kept-server", action="store_true",
                        help="run against a kept Prefect server (`cnmflow server start`, a private PREFECT_HOME) "
                             "instead of each run's temporary one")
    parser.add_argument("--out", type=Path, default=RESULTS / "overhead.json")
    args = parser.parse_args(argv)
    if "isxd" in args.movies and not REAL_ISXD.exists():
        print(f"{REAL_ISXD} is absent: measuring the simulated movie only")
        args.movies = [name for name in args.movies if name != "isxd"]
    RESULTS.mkdir(exist_ok=True)
    trackings = {"both": (False, True), "on": (True,), "off": (False,)}[args.tracking]
    root = Path(tempfile.mkdtemp(prefix="cnmflow-overhead-"))
    if args.checkout is not None:
        EXTRA_ENVIRONMENT["PYTHONPATH"] = checkout_path(args.checkout.resolve(), root / "checkout")
    runs: list[dict[str, Any]] = []
    try:
        if args.kept_server:
            server_command(root, "start")
        for name in args.movies:
            movie_arguments(name)  # simulate before timing anything
            for index in range(args.repeats):
                for tracking in trackings:
                    runs.append(one_run(name, root, index, tracking=tracking))
                    print(json.dumps(runs[-1]), flush=True)
        imports = [] if args.no_importtime else [import_times(name, root) for name in args.movies]
    finally:
        if args.kept_server:
            server_command(root, "stop")
        shutil.rmtree(root, ignore_errors=True)
    kept = " kept server" if args.kept_server else ""
    summary = {f"{name}{' +mlflow' if tracking else ''}{kept}":
               medians([r for r in runs if r["movie"] == name and r["tracking"] == tracking])
               for name in args.movies for tracking in trackings}
    print_table(summary, imports)
    args.out.write_text(json.dumps({"checkout": str(args.checkout or Path(__file__).resolve().parents[1]),
                                    "kept_server": args.kept_server, "runs": runs, "summary": summary,
                                    "imports": imports, "load_average": os.getloadavg(), "cpus": os.cpu_count()},
                                   indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
