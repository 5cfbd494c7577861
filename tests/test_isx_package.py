"""isx first needed on a worker thread: the process must still exit cleanly (a sweep exited 139 after its work)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import os, sys, threading, time
    import numpy as np
    from cnmflow.isx_package import isx_package

    path = sys.argv[1]

    def write_cellset():
        isx = isx_package(needed_for="writing a cell set")
        timing = isx.Timing(num_samples=5, period=isx.Duration.from_msecs(50))
        cellset = isx.CellSet.write(path, timing, isx.Spacing(num_pixels=(8, 8)))
        for k in range(2):
            cellset.set_cell_data(k, np.ones((8, 8), np.float32), np.ones(5, np.float32), f"C{k}")
        cellset.flush()

    worker = threading.Thread(target=write_cellset)   # ends long before the process does
    worker.start()
    worker.join()
    assert "isx" not in sys.modules or isx_package() is sys.modules["isx"]
    print("cells", isx_package().CellSet.read(path).num_cells, flush=True)

    # A forked child running the parent's exit handlers has no owner thread to hand isx's shutdown to.
    start = time.monotonic()
    child = os.fork()
    if child == 0:
        import atexit
        atexit._run_exitfuncs()
        os._exit(0)
    _, status = os.waitpid(child, 0)
    print("child", os.waitstatus_to_exitcode(status), round(time.monotonic() - start, 1), flush=True)
""")


def test_isx_first_imported_on_an_ended_thread_leaves_a_clean_exit(tmp_path):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "cells.isxd")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]  # was -11: SIGSEGV in isx's shutdown at exit
    lines = done.stdout.split("\n")
    assert "cells 2" in lines
    child = next(line.split() for line in lines if line.startswith("child"))
    assert child[1] == "0" and float(child[2]) < 10, child  # the child did not wait for a thread it lacks
    assert time.monotonic() - started < 60
