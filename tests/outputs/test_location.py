"""An output folder results cannot be written to is refused in the pre-check: exit 2, one line, no compute."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnmflow.cli import app as cli
from cnmflow.errors import InputError
from cnmflow.outputs import location
from cnmflow.plan import plan_run
from cnmflow.synthetic import simulate_1p, write_tiff


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> Path:
    simulated = simulate_1p(shape=(32, 32), n_frames=60, n_neurons=2, gsig=3.0, fr=10.0, rng=1)
    return write_tiff(tmp_path_factory.mktemp("movie") / "movie.tif", simulated.movie, fr=10.0)


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "results.txt"
    path.write_text("not a folder")
    return path


def _under_a_file(tmp_path: Path) -> Path:
    return _a_file(tmp_path) / "out"


def _dangling_link(tmp_path: Path) -> Path:
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "unmounted" / "results")
    return link


def _read_only(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway; a read-only mount answers access() like this
        real_access = os.access
        monkeypatch.setattr(location.os, "access",
                            lambda path, mode: False if Path(path) == folder else real_access(path, mode))
    return folder / "out"


CASES = {
    "is a file": (_a_file, "is a file, not a folder"),
    "parent is a file": (_under_a_file, "results.txt is a file, not a folder"),
    "dangling symlink": (_dangling_link, "which does not exist"),
    "read-only": (_read_only, "is not writable"),
}


@pytest.mark.parametrize("case", CASES)
def test_cli_run_refuses_before_any_compute(movie, tmp_path, monkeypatch, capsys, case):
    make, expected = CASES[case]
    output_dir = make(tmp_path, monkeypatch) if make is _read_only else make(tmp_path)
    monkeypatch.setattr(cli, "_run_flow", lambda *a, **k: pytest.fail("the flow must not start"))
    code = cli.main(["run", str(movie), "--output-dir", str(output_dir), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_BAD_INPUT
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(output_dir.absolute()) in err and expected in err
    assert "work_dir" not in err


@pytest.mark.parametrize("case", ["is a file", "dangling symlink"])
def test_the_flows_validate_step_refuses_too(movie, tmp_path, monkeypatch, case):
    make, expected = CASES[case]
    with pytest.raises(InputError, match=expected):
        plan_run([movie], make(tmp_path))


def test_an_unusable_work_dir_is_refused_in_the_pre_check_too(movie, tmp_path, monkeypatch, capsys):
    work_dir = _a_file(tmp_path)
    monkeypatch.setattr(cli, "_run_flow", lambda *a, **k: pytest.fail("the flow must not start"))
    code = cli.main(["run", str(movie), "--output-dir", str(tmp_path / "out"), "--work-dir", str(work_dir)])
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_BAD_INPUT and f"--work-dir {work_dir} is a file, not a folder" in err
