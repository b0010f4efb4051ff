"""Commands that read and check a stack: validate, plan, schema."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print the runpod-deploy version."""
        from runpod_deploy import __version__

        typer.echo(f"runpod-deploy {__version__}")
