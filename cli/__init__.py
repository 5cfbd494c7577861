"""The ``cnmflow`` command line: the top layer, above the deployments, flows, tasks and library.

Light to import: the console script's ``main`` starts a ``cnmflow run``'s temporary Prefect server before
the command's own modules load (:func:`main`); the rest comes from :mod:`cnmflow.cli.app` on first use.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from cnmflow.prefect_server import StartedServer

__all__ = ["build_parser", "main", "parse_assignment"]


def main(argv: Sequence[str] | None = None) -> int:
    """The ``cnmflow`` command (:func:`cnmflow.cli.app.main`). As the console script (``argv`` None), a
    ``run`` starts its temporary server first, before the command's modules are imported (~0.15 s of CPU):
    the server's start (~3 s) is the longer of the two ways to the flow on an idle 2-core machine."""
    early = _early_server(sys.argv[1:]) if argv is None else None
    try:
        from cnmflow.cli.app import main as command

        return command(argv, early_server=early)
    finally:
        if early is not None:
            early.close()  # the command closed it already, unless it failed before it got there


def _early_server(args: list[str]) -> StartedServer | None:
    """The temporary server of a ``cnmflow run`` (not for ``--help``), as ``cnmflow.cli.app`` would start it."""
    if not args or args[0] != "run" or "-h" in args or "--help" in args:
        return None
    from cnmflow.prefect_server import start_server_early

    return start_server_early(output=sys.stderr if "--verbose" in args else None)


def __getattr__(name: str) -> Any:
    if name in ("build_parser", "parse_assignment"):
        from cnmflow.cli import app, parameters

        return app.build_parser if name == "build_parser" else parameters.parse_assignment
    raise AttributeError(f"module 'cnmflow.cli' has no attribute {name!r}")
