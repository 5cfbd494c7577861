"""The run log: everything on disk, Prefect's lines off the terminal unless --verbose."""

from __future__ import annotations

import logging

from cnmflow.run_log import KEEP_LOGS, LOG_FOLDER, new_log_path, run_log


def test_old_run_logs_are_pruned_to_the_newest(tmp_path):
    folder = tmp_path / LOG_FOLDER
    folder.mkdir()
    for index in range(KEEP_LOGS + 5):
        (folder / f"run-20260101-0000{index:02d}-1.log").write_text("old")
    path = new_log_path(tmp_path)
    kept = sorted(folder.glob("run-*.log"))
    assert len(kept) == KEEP_LOGS - 1 and kept[0].name == f"run-20260101-0000{6:02d}-1.log"
    assert path.parent == folder and not path.exists()


def _console(stream) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    return handler


def test_prefect_lines_go_to_the_file_not_the_terminal(tmp_path, capsys):
    import io

    terminal = io.StringIO()
    handler = _console(terminal)
    try:
        with run_log(tmp_path, verbose=False) as log:
            logging.getLogger("prefect.engine").error("Task run failed: Traceback ...")
            logging.getLogger("cnmflow.someone").warning("a cnmflow warning")
            try:
                raise RuntimeError("boom")
            except RuntimeError as err:
                log.exception("the run failed during 'patches'", err)
        with run_log(tmp_path, verbose=True):
            logging.getLogger("prefect.engine").error("shown with --verbose")
    finally:
        logging.getLogger().removeHandler(handler)
    shown = terminal.getvalue()
    assert "Task run failed" not in shown and "a cnmflow warning" in shown and "shown with --verbose" in shown
    text = log.path.read_text()
    assert "Task run failed" in text and "a cnmflow warning" in text
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom" in text
