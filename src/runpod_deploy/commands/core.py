"""Commands that read and check a stack: validate, plan, schema (and version).

Only typer and the standard library at import time: pydantic, yaml and the core are imported
inside the commands, so `runpod-deploy --help` stays near the cost of a bare typer program.
"""


import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from runpod_deploy.commands._options import (
    BackendOpt,
    ConfigOpt,
    LocalOpt,
    ProviderOpt,
    QuietOpt,
    VarOpt,
    VarsFileOpt,
    VerboseOpt,
    environment,
    set_verbosity,
)
from runpod_deploy.commands._options import fail as _fail

if TYPE_CHECKING:
    from reconciler.observed import Catalog


def _warn(stack: object) -> None:
    for diagnostic in getattr(stack, "warnings", ()):
        print(diagnostic.format(), file=sys.stderr)


def _catalog(kind: str, env: dict[str, str]) -> "Catalog":
    """Live stock and prices through the provider (`--check-availability`)."""
    from runtime.errors import ProviderError
    from runtime.providers import make_provider

    provider = make_provider(kind, env)
    if provider is None:
        raise ProviderError(f"{kind} was not found on PATH; install it, or use --provider api "
                            "(with RUNPOD_API_KEY) or --local", provider=kind)
    return provider.catalog()


def register(app: typer.Typer) -> None:
    @app.command()
    def validate(
        config: ConfigOpt,
        var: VarOpt = None,
        vars_file: VarsFileOpt = None,
        check_local: Annotated[bool, typer.Option(
            "--check-local", help="Check that every local.required_paths entry exists.")] = False,
        check_availability: Annotated[bool, typer.Option(
            "--check-availability", help="Check live stock of gpu_order in each datacenter "
            "(asks the provider).")] = False,
        scan_consumer: Annotated[bool, typer.Option(
            "--scan-consumer", help="Scan the project for deploy foot-guns (warnings only).")
        ] = False,
        check_image_registry: Annotated[bool, typer.Option(
            "--check-image-registry", help="Check that pod.image's tag exists in its registry "
            "($RUNPOD_DEPLOY_REGISTRY_URL, default Docker Hub).")] = False,
        skip_registry_check: Annotated[bool, typer.Option(
            "--skip-registry-check", help="Never ask the image registry (overrides --all).")
        ] = False,
        all_checks: Annotated[bool, typer.Option(
            "--all", help="Run every check above.")] = False,
        provider: ProviderOpt = "runpodctl",
        local: LocalOpt = False,
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Check a stack file: schema, values and template variables, and with the flags the
        local paths, live stock, consumer foot-guns and the image tag. Exit 1 on any error."""
        from reconciler.diagnostics import RunpodDeployError
        from runpod_deploy.api import load_stack
        from runtime import preflight_checks as checks

        hush = set_verbosity(verbose, quiet)
        try:
            env, _key = environment(local) if (check_availability or all_checks) else (
                dict(os.environ), None)
            stack = load_stack(config, cli_vars=var or (), vars_file=vars_file, env=env)
        except RunpodDeployError as exc:
            raise _fail(exc) from None
        _warn(stack)
        spec = stack.job.spec
        findings: list[checks.Finding] = []
        if spec.uses_network_volume and len(spec.pod.datacenters) > 1:
            findings.append(checks.Finding(
                "config", checks.Level.WARNING, "storage.mode network_volume with several "
                "pod.datacenters: the pod can only land in the volume's datacenter"))
        project_root = stack.job.variables.project_root
        if check_local or all_checks:
            findings += checks.check_local_paths(spec.local.required_paths, project_root)
        if check_availability or all_checks:
            try:
                findings += checks.check_availability(spec, _catalog(provider, env))
            except RunpodDeployError as exc:
                raise _fail(exc) from None
        if scan_consumer or all_checks:
            sources = [(str(Path(project_root) / push.source), checks.effective_excludes(push))
                       for push in spec.staging]
            findings += checks.scan_consumer(spec, project_root=project_root,
                                             staging_sources=sources)
        if (check_image_registry or all_checks) and not skip_registry_check:
            findings += checks.check_image_registry(spec.pod.image, env=os.environ)
        for finding in findings:
            if finding.level in (checks.Level.WARNING, checks.Level.ERROR):
                print(finding.format(), file=sys.stderr)
            elif not hush:
                typer.echo(finding.format())
        errors = [f for f in findings if f.level is checks.Level.ERROR]
        if errors:
            print(f"error: {config}: {len(errors)} check(s) failed", file=sys.stderr)
            raise typer.Exit(1)
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
        verbose: VerboseOpt = False,
        quiet: QuietOpt = False,
    ) -> None:
        """Preview what `apply` would do to the stack's pod, the job phases, cost and guards."""
        set_verbosity(verbose, quiet)
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
    def schema(verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
        """Print the JSON Schema of the stack format (for yaml-language-server)."""
        set_verbosity(verbose, quiet)
        import json

        from reconciler.spec import json_schema

        typer.echo(json.dumps(json_schema(), indent=2))

    @app.command()
    def version(verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
        """Print the runpod-deploy version."""
        set_verbosity(verbose, quiet)
        from runpod_deploy import __version__

        typer.echo(f"runpod-deploy {__version__}")
