"""Prefect flows composing the tasks (validate, concatenate, extract, export, track)."""
