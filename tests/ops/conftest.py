"""Fixtures of the ops tests; the account they build is in `ops_account`."""

from tests.ops.ops_account import account, golden

__all__ = ["account", "golden"]
