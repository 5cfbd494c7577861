"""Deployment definitions: UI-triggered runs, folder watching, parameter sweeps."""
