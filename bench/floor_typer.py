"""The floor for CLI start-up: the smallest typer program with two commands."""

import typer

app = typer.Typer(add_completion=False)


@app.command()
def plan(config: str = "") -> None:
    """Preview."""


@app.command()
def apply(config: str = "") -> None:
    """Apply."""


if __name__ == "__main__":
    app()
