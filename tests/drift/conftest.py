"""Fixtures of the drift tests; the world they build is in `drift_world`."""

from tests.drift.drift_world import golden, world

__all__ = ["golden", "world"]
