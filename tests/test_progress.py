"""Progress reported from deep inside the checks reaches the bar its caller opened, and nothing else."""

from __future__ import annotations

import threading

from cnmflow.progress import part_of, report, reporting_to


def test_reports_reach_the_listener_of_their_block_only():
    seen: list[tuple[str, float]] = []
    report("nobody listens", 0.5)  # no listener: nothing happens
    with reporting_to(lambda stage, fraction: seen.append((stage, fraction))):
        for k in range(4):  # four movies of a series: one bar, each movie a quarter of it
            with part_of("reading movies", k, 4):
                report("counting m.avi's frames", 0.5)
                report("anything", 1.0)
        other = threading.Thread(target=report, args=("another thread's work", 1.0))
        other.start()
        other.join()
    report("after the block", 1.0)
    assert seen == [("reading movies", f) for f in (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)]
