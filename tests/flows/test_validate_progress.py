"""The validate step's bar moves while its long checks run (a deployment's run has no command line to show them)."""

from __future__ import annotations

import numpy as np

from cnmflow.request import RunRequest
from cnmflow.tasks.validate import validate
from tests.movies.conftest import write_avi


def test_the_validate_steps_progress_follows_the_checks(tmp_path):
    avi = write_avi(tmp_path / "long.avi", np.random.default_rng(2).integers(0, 200, (400, 64, 64), dtype=np.uint8))
    seen: list[tuple[str, float]] = []
    validate.fn([str(avi)], str(tmp_path / "out"), RunRequest(table={"gSig": 3, "gSiz": 13}), overwrite=False,
                evaluate=False, progress=lambda stage, fraction: seen.append((stage, fraction)))
    fractions = [fraction for stage, fraction in seen]
    assert {stage for stage, _ in seen} == {"validate"} and fractions[0] == 0.0 and fractions[-1] == 1.0
    inside = fractions[1:-1]  # the movie read (its share: the first half) and the motion check's blocks (the second)
    assert inside == sorted(inside) and any(0 < f < 0.5 for f in inside) and any(0.5 < f < 0.99 for f in inside)
