"""Turns the tool's own exceptions into a message and an exit code, never a traceback."""

from __future__ import annotations

import sys

import typer


def run_guarded(app: typer.Typer, argv: list[str]) -> None:
    """Run the Typer app; a `RunpodDeployError` prints its message and exits with its code."""
    from reconciler.diagnostics import RunpodDeployError

    try:
        app(args=argv, prog_name="runpod-deploy", standalone_mode=True)
    except RunpodDeployError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(getattr(error, "exit_code", 1)) from None
