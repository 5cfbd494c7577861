"""Prefect tasks: thin, retryable wrappers over one cnmflow call each."""
