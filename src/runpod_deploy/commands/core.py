"""Commands that read and check a stack: validate, plan, schema (and version).

Only typer and the standard library at import time: pydantic, yaml and the core are imported
inside the commands, so `runpod-deploy --help` stays near the cost of a bare typer program.
"""


import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from runpod_deploy.commands._options import (
    BackendOpt,
    ConfigOpt,
    LocalOpt,
    ProviderOpt,
    VarOpt,
    VarsFileOpt,
    environment,
)
from runpod_deploy.commands._options import fail as _fail


def _warn(stack: object) -> None:
    for diagnostic in getattr(stack, "warnings", ()):
        print(diagnostic.format(), file=sys.stderr)


def register(app: typer.Typer) -> None:
    @app.command()
    def validate(config: ConfigOpt, var: VarOpt = None, vars_file: VarsFileOpt = None) -> None:
        """Check a stack file: schema, values and template variables. Exit 1 on any error."""
        from reconciler.diagnostics import RunpodDeployError
        from runpod_deploy.api import load_stack

        try:
            stack = load_stack(config, cli_vars=var or (), vars_file=vars_file)
        except RunpodDeployError as exc:
            raise _fail(exc) from None
        _warn(stack)
        typer.echo(f"ok: {config} schema_version={stack.spec.schema_version} job={stack.name}")

    @app.command()
    def plan(
        config: ConfigOpt,
        backend: BackendOpt = None,
        var: VarOpt = None,
        vars_file: VarsFileOpt = None,
        force_fresh: Annotated[bool, typer.Option(
            "--force-fresh", help="Never reuse a pod: replace it.")] = False,
        delete_orphans: Annotated[bool, typer.Option(
            "--delete-orphans", help="Plan deletes for pods with this stack's prefix that no "
            "state records.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
        markdown: Annotated[bool, typer.Option(
            "--markdown", help="Print the plan as markdown.")] = False,
        out: Annotated[Optional[Path], typer.Option(  # noqa: UP045
            "--out", help="Save the plan (JSON) for a later `apply PLAN.json`.")] = None,
        detailed_exitcode: Annotated[bool, typer.Option(
            "--detailed-exitcode", help="Exit 0 with no changes, 2 with changes, 1 on error."
        )] = False,
        provider: ProviderOpt = "runpodctl",
        local: LocalOpt = False,
    ) -> None:
        """Preview what `apply` would do to the stack's pod, the job phases, cost and guards."""
        from reconciler.diagnostics import RunpodDeployError
        from reconciler.plan import PlanOptions
        from reconciler.render import render_json, render_markdown, render_text
        from runpod_deploy.api import load_stack, make_plan

        try:
            env, _key = environment(local)
            stack = load_stack(config, cli_vars=var or (), vars_file=vars_file, env=env,
                               backend=backend)
            _warn(stack)
            the_plan = make_plan(stack, options=PlanOptions(
                force_fresh=force_fresh, delete_orphans=delete_orphans), provider=provider,
                env=env)
        except (RunpodDeployError, ValueError) as exc:
            raise _fail(exc) from None
        if out is not None:
            out.write_text(render_json(the_plan), encoding="utf-8")
        if as_json:
            typer.echo(render_json(the_plan), nl=False)
        elif markdown:
            typer.echo(render_markdown(the_plan), nl=False)
        else:
            typer.echo(render_text(the_plan), nl=False)
            if out is not None:
                typer.echo(f"Saved the plan to {out}.")
        if detailed_exitcode and the_plan.has_changes:
            raise typer.Exit(2)

    @app.command()
    def schema() -> None:
        """Print the JSON Schema of the stack format (for yaml-language-server)."""
        import json

        from reconciler.spec import json_schema

        typer.echo(json.dumps(json_schema(), indent=2))

    @app.command()
    def version() -> None:
        """Print the runpod-deploy version."""
        from runpod_deploy import __version__

        typer.echo(f"runpod-deploy {__version__}")
