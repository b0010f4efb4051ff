"""`apply` (and `run`, the original's name for it): plan, confirm, provision, run, pull, lifecycle."""


import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from runpod_deploy.commands._options import (
    BackendOpt,
    ConfigOpt,
    LocalOpt,
    ProviderOpt,
    VarOpt,
    VarsFileOpt,
    environment,
    fail,
)

if TYPE_CHECKING:
    from runpod_deploy.live import RichReporter

PlanFileArg = Annotated[Optional[Path], typer.Argument(  # noqa: UP045
    help="A plan saved with `plan --out`; refused if the world changed since.", show_default=False)]


def register(app: typer.Typer) -> None:
    for name, doc in (
        ("apply", "Carry out the stack's plan: get a pod, run the job, pull the results, apply the lifecycle."),
        ("run", "The same as `apply` (the original runpod-deploy's name for it)."),
    ):
        app.command(name=name, help=doc)(_apply_command)


def _live_view_wanted() -> bool:
    """The live view needs a terminal on stderr; pipes, CI and TERM=dumb get plain lines."""
    import os

    from runpod_deploy.live import use_live_view

    return use_live_view(sys.stderr, os.environ)


def _apply_command(
    plan_file: PlanFileArg = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="The stack file (YAML).")] = None,  # noqa: UP045
    backend: BackendOpt = None,
    var: VarOpt = None,
    vars_file: VarsFileOpt = None,
    cost_cap_usd: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--cost-cap-usd", help="Override budget.cost_cap_usd.")] = None,
    max_runtime_minutes: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--max-runtime-minutes", help="Override budget.max_runtime_minutes.")] = None,
    gpu_id: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--gpu-id", help="Pin the GPU type (with --datacenter-id).")] = None,
    datacenter_id: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--datacenter-id", help="Pin the datacenter (with --gpu-id).")] = None,
    max_gpu_price: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--max-gpu-price", help="Skip GPUs above this $/GPU/hr; delete a pod priced above it.")] = None,
    force_fresh: Annotated[bool, typer.Option("--force-fresh", help="Never reuse a pod: replace it.")] = False,
    delete_orphans: Annotated[bool, typer.Option(
        "--delete-orphans", help="Also delete pods with this stack's prefix that no state records.")] = False,
    print_run_dir: Annotated[bool, typer.Option(
        "--print-run-dir", help="Print RUN_DIR=<path> on stdout as soon as the run dir exists.")] = False,
    ssh_ready_timeout_sec: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--ssh-ready-timeout-sec", help="Override budget.ssh_ready_timeout_sec.")] = None,
    ssh_key: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--ssh-key", help="Private key for the pod (overrides ssh.key_path).", envvar="RUNPOD_DEPLOY_SSH_KEY")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the plan (= `plan`).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and the result.")] = False,
    plain: Annotated[bool, typer.Option(
        "--plain", help="Timestamped progress lines instead of the live view (what a pipe, "
        "a CI job or TERM=dumb gets anyway).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    provider: ProviderOpt = "runpodctl",
    local: LocalOpt = False,
) -> None:
    from reconciler.diagnostics import RunpodDeployError
    from reconciler.plan import PlanOptions
    from reconciler.render import render_text
    from runpod_deploy.api import ApplyRequest, apply_stack, read_plan
    from runtime.reporter import PlainReporter, QuietReporter, Reporter

    saved_plan = None
    try:
        if plan_file is not None:
            saved_plan = read_plan(plan_file.read_text(encoding="utf-8"))
            if config is None and saved_plan.stack.config_path:
                config = Path(saved_plan.stack.config_path)
        if config is None:
            raise typer.BadParameter("give --config FILE (or a saved PLAN.json)")
        env, sim_key = environment(local)
        key = ssh_key or sim_key
        request = ApplyRequest(
            cli_vars=tuple(var or ()),
            vars_file=str(vars_file) if vars_file else None,
            plan_options=PlanOptions(force_fresh=force_fresh, delete_orphans=delete_orphans),
            provider=provider,
            cost_cap_usd=cost_cap_usd,
            max_runtime_minutes=max_runtime_minutes,
            gpu_id=gpu_id,
            datacenter_id=datacenter_id,
            max_gpu_price=max_gpu_price,
            ssh_ready_timeout_sec=ssh_ready_timeout_sec,
            saved_plan=saved_plan,
            ssh_key=str(key) if key is not None else None,
            backend=backend,
        )
        reporter: Reporter
        live: RichReporter | None = None
        if quiet or as_json:
            reporter = QuietReporter()
        elif not plain and _live_view_wanted():
            import runpod_deploy.live as live_view

            reporter = live = live_view.RichReporter()
        else:
            reporter = PlainReporter()

        def show(plan: object) -> None:
            if not quiet and not as_json:
                print(render_text(plan), file=sys.stderr, end="")  # type: ignore[arg-type]
            if live is not None:
                live.show_plan(plan)  # type: ignore[arg-type]

        def confirm(plan: object) -> bool:
            if dry_run:
                return False
            if yes or not sys.stdin.isatty():
                return True
            return typer.confirm("Apply this plan?", default=False, err=True)

        def on_run_dir(path: Path) -> None:
            if print_run_dir:
                sys.stdout.write(f"RUN_DIR={path}\n")
                sys.stdout.flush()
            if live is not None:  # confirmed: the run begins, the live view takes over stderr
                live.follow_events(path / "events.jsonl")
                live.start()

        result = None
        try:
            result = apply_stack(
                config, request, env=env, reporter=reporter, confirm=confirm, on_plan=show, on_run_dir=on_run_dir
            )
        finally:
            if live is not None:  # its final state stays on the screen, above the summary
                live.stop(manifest=result.manifest_path if result is not None else None)
    except (RunpodDeployError, ValueError, OSError) as exc:
        raise fail(exc) from None
    if result is None:
        if not dry_run:
            print("Cancelled: nothing was changed.", file=sys.stderr)
            raise typer.Exit(1)
        return
    if as_json:
        import json

        print(json.dumps({
            "outcome": result.outcome.value,
            "exit_code": result.exit_code,
            "detail": result.detail,
            "run_dir": str(result.run_dir) if result.run_dir else None,
            "manifest": str(result.manifest_path) if result.manifest_path else None,
            "pod_id": result.pod_id,
            "lifecycle_action": result.lifecycle_action.value if result.lifecycle_action else None,
        }, indent=2))
    else:
        verdict = "succeeded" if result.ok else f"FAILED ({result.outcome.value})"
        print(f"Run {verdict}: {result.detail}", file=sys.stderr)
        print(f"Run dir: {result.run_dir}", file=sys.stderr)
        if result.lifecycle_action is not None and result.pod_id:
            print(f"Pod {result.pod_id}: {result.lifecycle_action.value}", file=sys.stderr)
    raise typer.Exit(result.exit_code)
