"""The `runpod-deploy` command line: parse, call the API, render, exit.

Each group of commands lives in its own module under `runpod_deploy.commands` and registers
itself on the one Typer app. Those modules import only typer and the standard library at import
time; pydantic, paramiko, requests and rich are imported inside the commands that use them, so
`runpod-deploy --help` costs about what a bare typer program costs.
"""

from __future__ import annotations

import sys

import typer

from runpod_deploy.commands import COMMAND_MODULES

# Help with rich panels on a terminal; click's plain text into a pipe or a CI log, where the box
# drawing is noise and importing rich for it doubles the start-up time of `--help`.
_PLAIN_HELP = not sys.stdout.isatty()

app = typer.Typer(
    name="runpod-deploy",
    help="Declarative GPU jobs on RunPod: plan, apply, pull the results, never leak a pod.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None if _PLAIN_HELP else "rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root() -> None:
    """Declarative GPU jobs on RunPod: plan, apply, pull the results, never leak a pod."""


for _register in COMMAND_MODULES:
    _register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. User mistakes exit 1 with a message, never a traceback."""
    from runpod_deploy.commands._errors import run_guarded

    run_guarded(app, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":  # pragma: no cover
    main()
