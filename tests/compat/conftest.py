"""Fixtures of the conformance suite (see compat_machine.py)."""

from tests.compat.compat_machine import machine, shared_key, shared_sim  # noqa: F401
