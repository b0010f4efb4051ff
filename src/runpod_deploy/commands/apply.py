"""`apply` (and `run`, the original's name for it): plan, confirm, provision, run, pull, lifecycle."""


import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from runpod_deploy.commands._options import (
    BackendOpt,
    LocalOpt,
    ProviderOpt,
    VarOpt,
    VarsFileOpt,
    VerboseOpt,
    environment,
    fail,
    set_verbosity,
)

if TYPE_CHECKING:
    from runpod_deploy.live import RichReporter

class CloudTypeChoice(str, Enum):
    SECURE = "SECURE"
    COMMUNITY = "COMMUNITY"


PlanFileArg = Annotated[Optional[Path], typer.Argument(  # noqa: UP045
    help="A plan saved with `plan --out`; refused if the world changed since.", show_default=False)]


def register(app: typer.Typer) -> None:
    for name, doc in (
        ("apply", ("Carry out the stack's plan: get a pod, run the job, pull the results, apply the "
                   "lifecycle. Asks first (the answer is read from standard input) unless --yes.")),
        ("run", "The same as `apply` without asking (the original runpod-deploy's name and behaviour)."),
    ):
        app.command(name=name, help=doc)(_apply_command)


def _asks(ctx: typer.Context) -> bool:
    """`apply` asks for confirmation; `run` never does (the original tool's `run` did not)."""
    return ctx.info_name != "run"


class _NoAnswer(Exception):
    """Standard input ended before an answer: no, with a message naming --yes."""


def _ask(question: str) -> bool:
    """Ask on stderr and read one line from standard input, whatever it is (a terminal, a pipe,
    a file), as Terraform does: only "y" or "yes" is yes; end of input is no answer at all."""
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stderr.write("\n")
        raise _NoAnswer()
    return line.strip().lower() in ("y", "yes")


def _live_view_wanted() -> bool:
    """The live view needs a terminal on stderr; pipes, CI and TERM=dumb get plain lines."""
    import os

    from runpod_deploy.live import use_live_view

    return use_live_view(sys.stderr, os.environ)


def _apply_command(
    ctx: typer.Context,
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
    rerun: Annotated[bool, typer.Option(
        "--rerun", help="Run the job again even when an earlier run of it is unfinished on the pod "
        "(by default apply attaches to that run and finishes it).")] = False,
    detach: Annotated[bool, typer.Option(
        "--detach", help="Return once the job runs (the pod's watchdog enforces the deadline and "
        "cost cap; the pod stops itself after the job); `attach` finishes the run.")] = False,
    delete_orphans: Annotated[bool, typer.Option(
        "--delete-orphans", help="Also delete pods with this stack's prefix that no state records.")] = False,
    print_run_dir: Annotated[bool, typer.Option(
        "--print-run-dir", help="Print RUN_DIR=<path> on stdout as soon as the run dir exists.")] = False,
    ssh_ready_timeout_sec: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--ssh-ready-timeout-sec", help="Override budget.ssh_ready_timeout_sec.")] = None,
    ssh_key: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--ssh-key", help="Private key for the pod (overrides ssh.key_path).", envvar="RUNPOD_DEPLOY_SSH_KEY")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the plan (= `plan`).")] = False,
    offline_dry_run: Annotated[bool, typer.Option(
        "--offline-dry-run", help="Walk every phase and say what it would do, asking nothing: "
        "no provider, no SSH, no state.")] = False,
    fallback_cloud_type: Annotated[Optional[CloudTypeChoice], typer.Option(  # noqa: UP045
        "--fallback-cloud-type", help="After a stock-out on pod.cloud_type everywhere, try the "
        "same GPUs and datacenters on this cloud type.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    plain: Annotated[bool, typer.Option(
        "--plain", help="Timestamped progress lines instead of the live view (what a pipe, "
        "a CI job or TERM=dumb gets anyway).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    provider: ProviderOpt = "runpodctl",
    local: LocalOpt = False,
    verbose: VerboseOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and the result.")] = False,
) -> None:
    from reconciler.diagnostics import RunpodDeployError
    from reconciler.plan import PlanOptions
    from reconciler.render import render_text
    from runpod_deploy.api import ApplyRequest, apply_stack, read_plan
    from runtime.reporter import PlainReporter, QuietReporter, Reporter

    set_verbosity(verbose, quiet)
    if offline_dry_run:
        _offline_dry_run(config, var, vars_file, cost_cap_usd, max_runtime_minutes,
                         gpu_id, datacenter_id, print_run_dir, fallback_cloud_type)
        return
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
            plan_options=PlanOptions(force_fresh=force_fresh, delete_orphans=delete_orphans, rerun=rerun),
            detach=detach,
            provider=provider,
            cost_cap_usd=cost_cap_usd,
            max_runtime_minutes=max_runtime_minutes,
            gpu_id=gpu_id,
            datacenter_id=datacenter_id,
            max_gpu_price=max_gpu_price,
            ssh_ready_timeout_sec=ssh_ready_timeout_sec,
            saved_plan=saved_plan,
            ssh_key=str(key) if key is not None else None,
            fallback_cloud_type=fallback_cloud_type.value if fallback_cloud_type else None,
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
                if fallback_cloud_type is not None:
                    print(f"Fallback: after a stock-out everywhere on pod.cloud_type, the same "
                          f"GPUs and datacenters on {fallback_cloud_type.value}.", file=sys.stderr)
            if live is not None:
                live.show_plan(plan)  # type: ignore[arg-type]

        asks = _asks(ctx)

        def confirm(plan: object) -> bool:
            if dry_run:
                if print_run_dir:  # where a real run would write, as the original printed it
                    sys.stdout.write(f"RUN_DIR={_would_be_run_dir(config, var, vars_file)}\n")
                    sys.stdout.flush()
                return False
            if yes or not asks:
                return True
            return _ask("Apply this plan?")

        def on_run_dir(path: Path) -> None:
            if print_run_dir:
                sys.stdout.write(f"RUN_DIR={path}\n")
                sys.stdout.flush()
            if live is not None:  # confirmed: the run begins, the live view takes over stderr
                live.start()

        result = None
        try:
            result = apply_stack(
                config, request, env=env, reporter=reporter, confirm=confirm, on_plan=show, on_run_dir=on_run_dir
            )
        finally:
            if live is not None:  # its final state stays on the screen, above the summary
                live.stop(manifest=result.manifest_path if result is not None else None)
    except _NoAnswer:
        print("No answer on standard input: nothing was changed. Pass --yes to apply without asking "
              "(or answer y on standard input, e.g. `echo y | runpod-deploy apply ...`).", file=sys.stderr)
        raise typer.Exit(1) from None
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
            "run_dir": str(result.run_dir),
            "manifest": str(result.manifest_path) if result.manifest_path else None,
            "pod_id": result.pod_id,
            "lifecycle_action": result.lifecycle_action.value if result.lifecycle_action else None,
            "detached": result.detached,
        }, indent=2))
    elif result.detached:
        print(f"Detached: {result.detail}", file=sys.stderr)
        print(f"Run dir: {result.run_dir}", file=sys.stderr)
    else:
        verdict = "succeeded" if result.ok else f"FAILED ({result.outcome.value})"
        print(f"Run {verdict}: {result.detail}", file=sys.stderr)
        print(f"Run dir: {result.run_dir}", file=sys.stderr)
        if result.lifecycle_action is not None and result.pod_id:
            print(f"Pod {result.pod_id}: {result.lifecycle_action.value}", file=sys.stderr)
    raise typer.Exit(result.exit_code)


def _would_be_run_dir(config: Optional[Path], var: Optional[list[str]],  # noqa: UP045
                      vars_file: Optional[Path]) -> Path:  # noqa: UP045
    """The run dir a run started now would use (not created: a dry run writes nothing)."""
    from runpod_deploy.api import load_stack, run_stamp
    from runtime.clock import SystemClock
    from runtime.rundir import RUNS_DIRNAME

    assert config is not None
    stack = load_stack(config, cli_vars=var or (), vars_file=vars_file)
    return Path(stack.job.variables.project_root) / RUNS_DIRNAME / run_stamp(SystemClock())


def _offline_dry_run(config: Optional[Path],  # noqa: UP045
                     var: Optional[list[str]], vars_file: Optional[Path],  # noqa: UP045
                     cost_cap_usd: Optional[float], max_runtime_minutes: Optional[int],  # noqa: UP045
                     gpu_id: Optional[str], datacenter_id: Optional[str],  # noqa: UP045
                     print_run_dir: bool,
                     fallback: Optional[CloudTypeChoice]) -> None:  # noqa: UP045
    """`run --offline-dry-run`: the phases of a run from the stack alone (stdout), exit 0."""
    from reconciler.diagnostics import RunpodDeployError, SpecError, error
    from reconciler.naming import pod_name
    from runpod_deploy.api import load_stack, run_stamp, with_budget
    from runtime.clock import SystemClock
    from runtime.offline_dry_run import offline_walk
    from runtime.rundir import RUNS_DIRNAME

    try:
        if config is None:
            raise typer.BadParameter("give --config FILE")
        if (gpu_id is None) != (datacenter_id is None):
            raise SpecError([error("--gpu-id and --datacenter-id must be given together",
                                   field_path="--gpu-id")])
        stamp = run_stamp(SystemClock())
        first = load_stack(config, cli_vars=var or (), vars_file=vars_file, stamp=stamp)
        run_dir = Path(first.job.variables.project_root) / RUNS_DIRNAME / stamp
        stack = with_budget(load_stack(config, cli_vars=var or (), vars_file=vars_file,
                                       stamp=stamp, run_dir=str(run_dir)),
                            cost_cap_usd=cost_cap_usd, max_runtime_minutes=max_runtime_minutes)
    except (RunpodDeployError, ValueError, OSError) as exc:
        raise fail(exc) from None
    for diagnostic in stack.warnings:
        print(diagnostic.format(), file=sys.stderr)
    if print_run_dir:
        sys.stdout.write(f"RUN_DIR={run_dir}\n")
    typer.echo(f"offline dry run of {config}: nothing is asked or created")
    steps = offline_walk(stack.job.spec, pod_name=pod_name(stack.pod_prefix, "<nonce>"),
                         run_dir=str(run_dir), gpu_id=gpu_id, datacenter_id=datacenter_id,
                         fallback_cloud_type=fallback.value if fallback else None)
    for step in steps:
        typer.echo(step.format())
