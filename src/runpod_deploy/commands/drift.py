"""`drift`: is every stack what its state says, and does the account hold pods nobody owns?

Meant for CI: `--format markdown` is ready for a job summary and `--detailed-exitcode` turns the
verdict into the exit code (0 in sync, 2 drift, 1 error). The work is in
`runtime.drift_report.check_drift` (one listing of the account for all stacks) and the views in
`reconciler.drift`; this module parses, prints and picks the exit code.
"""


from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from runpod_deploy.commands._options import (
    BackendOpt,
    LocalOpt,
    ProviderOpt,
    QuietOpt,
    VerboseOpt,
    environment,
    fail,
    set_verbosity,
)


class DriftFormat(str, Enum):
    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"


def _default_state_dir(env: dict[str, str]) -> Path:
    """Where stacks without a `state_file:` keep their state (their instances' files too)."""
    import os

    from reconciler.naming import default_state_path

    home = env.get("HOME") or os.path.expanduser("~")
    sample = default_state_path("x", "/x", home=home, state_dir=env.get("RUNPOD_DEPLOY_STATE_DIR"))
    return Path(sample).parent


def register(app: typer.Typer) -> None:
    @app.command()
    def drift(
        paths: Annotated[list[Path] | None, typer.Argument(
            help="Stack files or directories searched for *.yaml/*.yml stacks (default: .).",
            show_default=False)] = None,
        backend: BackendOpt = None,
        output: Annotated[DriftFormat, typer.Option(
            "--format", help="table (for people), json (for scripts), markdown (for a CI job "
            "summary).")] = DriftFormat.TABLE,
        detailed_exitcode: Annotated[bool, typer.Option(
            "--detailed-exitcode", help="Exit 0 in sync, 2 on any drift or orphan, 1 on error."
        )] = False,
        provider: ProviderOpt = "runpodctl",
        local: LocalOpt = False,
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Check many stacks for drift, and the account for orphaned pods (for CI).

        Per stack: in sync, drifted (with the field diff), pod missing, or an operation left
        pending by an interrupted apply; across the account, pods no state records, with their
        $/day. One provider listing serves every stack. Each `--var` instance of a stack that
        has run (its own state file) is checked as a stack of its own.
        """
        set_verbosity(verbose, quiet)
        from functools import partial

        from reconciler.diagnostics import RunpodDeployError
        from reconciler.drift import (
            render_drift_json,
            render_drift_markdown,
            render_drift_text,
        )
        from runpod_deploy.api import load_stack
        from runtime.drift_report import check_drift
        from runtime.providers import make_provider

        try:
            env, _key = environment(local)
            report = check_drift(paths or [Path(".")],
                                 load=partial(load_stack, env=env, backend=backend),
                                 provider=make_provider(provider, env),
                                 state_dir=_default_state_dir(env))
        except RunpodDeployError as exc:
            raise fail(exc) from None
        render = {DriftFormat.TABLE: render_drift_text, DriftFormat.JSON: render_drift_json,
                  DriftFormat.MARKDOWN: render_drift_markdown}[output]
        typer.echo(render(report), nl=False)
        code = report.exit_code(detailed=detailed_exitcode)
        if code:
            raise typer.Exit(code)
