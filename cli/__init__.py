"""The ``cnmflow`` command line: the top layer, above the deployments, flows, tasks and library."""

from cnmflow.cli.app import build_parser, main
from cnmflow.cli.parameters import parse_assignment

__all__ = ["build_parser", "main", "parse_assignment"]
