"""One log file per ``cnmflow run``: the whole story on disk, one line on the terminal.

Prefect logs a failing task twice with its full traceback (~60 lines each). The command line
promises one message naming the stage, so unless ``--verbose`` Prefect's console output is held
back, while everything Prefect (and cnmflow) logs, the temporary server's messages and the
failure's traceback go to ``<output dir>/.cnmflow-logs/run-<time>-<pid>.log``, which the error
line names.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

#: Hidden folder of the run logs inside the output folder.
LOG_FOLDER = ".cnmflow-logs"
#: Run logs kept per output folder (the oldest are deleted).
KEEP_LOGS = 20
#: Loggers whose records the terminal shows only with --verbose.
QUIET_LOGGERS = ("prefect", "uvicorn", "fastapi", "httpx", "httpcore")


def new_log_path(output_dir: Path) -> Path:
    """A fresh log file path in ``output_dir``'s log folder (created), older logs pruned."""
    folder = Path(output_dir) / LOG_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.glob("run-*.log"))[:-(KEEP_LOGS - 1) or None]:
        old.unlink(missing_ok=True)
    return folder / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


class RunLog:
    """The open log of one run: a handler on the root logger and a file for child processes."""

    def __init__(self, path: Path):
        self.path = path
        self.stream: IO[bytes] = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(_formatter())

    def exception(self, message: str, error: BaseException) -> None:
        """Write ``message`` and ``error``'s full traceback (with its causes) to the log."""
        self.handler.acquire()
        try:
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            self.handler.stream.write(f"{message}\n{text}\n")
            self.handler.flush()
        finally:
            self.handler.release()

    def note(self, message: str, *, at: float | None = None) -> None:
        """Write ``message`` to the log whatever the loggers' levels (``at``: its time, default now).

        The command's milestones (inputs checked, server ready, flow done) go here, so the log
        says where a run's time went (``benchmarks/overhead.py`` reads them)."""
        record = logging.LogRecord("cnmflow.run", logging.INFO, __file__, 0, message, None, None)
        if at is not None:
            record.created, record.msecs = at, int((at - int(at)) * 1000) + 0.0
        self.handler.handle(record)

    def close(self) -> None:
        self.handler.close()
        self.stream.close()


@contextmanager
def run_log(output_dir: Path, *, verbose: bool) -> Iterator[RunLog]:
    """Log everything of this run to a new file in ``output_dir``; unless ``verbose``, keep
    Prefect's own lines off the terminal while in the block."""
    import prefect  # noqa: F401 - Prefect configures its console handlers on import; adjust them after

    log = RunLog(new_log_path(output_dir))
    root = logging.getLogger()
    root.addHandler(log.handler)
    quiet = _PrefectFilter()
    consoles = [] if verbose else _console_handlers()
    for handler in consoles:
        handler.addFilter(quiet)
    try:
        yield log
    finally:
        for handler in consoles:
            handler.removeFilter(quiet)
        root.removeHandler(log.handler)
        log.close()


def _formatter() -> logging.Formatter:
    return _RunFormatter("%(asctime)s | %(levelname)-7s | %(run_label)s - %(message)s")


class _RunFormatter(logging.Formatter):
    """Prefect's console layout (the flow or task run's name, else the logger's), for a file."""

    def format(self, record: logging.LogRecord) -> str:
        task, flow = getattr(record, "task_run_name", None), getattr(record, "flow_run_name", None)
        record.run_label = f"Task run {task!r}" if task else f"Flow run {flow!r}" if flow else record.name
        return super().format(record)


class _PrefectFilter(logging.Filter):
    """Drops records from Prefect, its server stack, and Prefect's own services."""

    def __init__(self) -> None:
        super().__init__()
        import prefect

        self.package = str(Path(prefect.__file__).parent)

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.split(".")[0] in QUIET_LOGGERS or record.pathname.startswith(self.package))


def _console_handlers() -> list[logging.Handler]:
    """Every handler that writes to a terminal stream (not a file), on any logger."""
    loggers = [logging.getLogger()] + [logger for logger in logging.root.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger)]
    found: list[logging.Handler] = []
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler) \
                    and handler not in found:
                found.append(handler)
    return found
