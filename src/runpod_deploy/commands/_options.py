"""Options and helpers shared by the command groups (typer and the stdlib only at import)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The stack file (YAML).")]
VarOpt = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045 (typer needs Optional)
    "--var", help="KEY=VALUE template variable (repeatable); overrides --vars-file and the file.")]
VarsFileOpt = Annotated[Optional[Path], typer.Option(  # noqa: UP045
    "--vars-file", help="JSON object of template variables.")]
ProviderOpt = Annotated[str, typer.Option(
    "--provider", help="How to reach RunPod: runpodctl (the CLI on PATH) or api (GraphQL, "
    "needs RUNPOD_API_KEY).", envvar="RUNPOD_DEPLOY_PROVIDER")]
BackendOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--backend", help="Where stack states live: file://DIR or s3://BUCKET/PREFIX?endpoint=URL"
    "&region=R&profile=P (default: RUNPOD_DEPLOY_BACKEND, then the stack's `backend:`, then "
    "the local state file).", show_default=False)]
LocalOpt = Annotated[bool, typer.Option(
    "--local", help="Run against the local RunPod simulator (started if needed).")]


def fail(exc: BaseException) -> typer.Exit:
    """A user-facing error: one message on stderr, the error's exit code, no traceback."""
    print(f"error: {exc}", file=sys.stderr)
    return typer.Exit(getattr(exc, "exit_code", 1))


def environment(local: bool) -> tuple[dict[str, str], Path | None]:
    """The environment for provider calls and, with `--local`, the simulator's own SSH key."""
    if not local:
        return dict(os.environ), None
    from runpod_deploy.local import local_cloud

    cloud = local_cloud()
    return cloud.env, cloud.ssh_key


VerboseOpt = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Show debug detail (every provider and SSH step) on stderr.")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Only warnings, errors and the result.")]


def set_verbosity(verbose: bool, quiet: bool) -> bool:
    """The original's `-v` (DEBUG) / `-q` (WARNING only), mutually exclusive, on every command:
    sets what the tool's loggers show on stderr. Returns True when informational notes should
    be left out (quiet)."""
    import logging

    if verbose and quiet:
        raise typer.BadParameter("give at most one of --verbose and --quiet",
                                 param_hint="'--verbose' / '--quiet'")
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    for name in ("runtime", "runpod_deploy"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if verbose and not any(getattr(h, "_rpd_verbose", False) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler._rpd_verbose = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
    return quiet
