"""The one error tracking raises, so callers can keep the outputs and report the tracking gap."""

from __future__ import annotations


class TrackingError(RuntimeError):
    """MLflow could not be reached or refused what was logged; the message names the URI and the fix.

    Raised after the outputs are complete: they stay valid, only the record in MLflow is missing.
    """
