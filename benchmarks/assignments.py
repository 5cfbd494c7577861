"""The ``--set NAME=VALUE`` options the benchmark scripts take: parameter overrides, each value read as JSON."""

from __future__ import annotations

import json


def parse_assignments(assignments: list[str]) -> dict:
    """``["gSig=6", "min_corr=0.6", "halo_tail=true"]`` -> ``{"gSig": 6, "min_corr": 0.6, "halo_tail": True}``."""
    parsed = {}
    for assignment in assignments:
        name, _, value = assignment.partition("=")
        parsed[name] = json.loads(value)
    return parsed
