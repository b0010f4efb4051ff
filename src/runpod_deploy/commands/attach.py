"""`attach` and `status`: the unfinished run of a stack (a detached apply, or a killed one)."""


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
    VerboseOpt,
    environment,
    fail,
    set_verbosity,
)

SshKeyOpt = Annotated[Optional[Path], typer.Option(  # noqa: UP045
    "--ssh-key", help="Private key for the pod (overrides ssh.key_path).", envvar="RUNPOD_DEPLOY_SSH_KEY")]


def register(app: typer.Typer) -> None:
    app.command("attach", help=(
        "Finish the stack's unfinished run (left by `apply --detach` or a killed apply): resume its "
        "pod if it stopped itself, stream the rest of the log, wait for the job, pull into the "
        "run's own run dir, apply the lifecycle. Never runs the job again."))(_attach_command)
    app.command("status", help=(
        "The stack's unfinished run: job running or not, elapsed, spend so far at the pod's "
        "$/hr, the log's last lines. Changes nothing."))(_status_command)


def _attach_command(
    config: ConfigOpt,
    backend: BackendOpt = None,
    var: VarOpt = None,
    vars_file: VarsFileOpt = None,
    print_run_dir: Annotated[bool, typer.Option(
        "--print-run-dir", help="Print RUN_DIR=<path> on stdout once attached.")] = False,
    ssh_key: SshKeyOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    provider: ProviderOpt = "runpodctl",
    local: LocalOpt = False,
    verbose: VerboseOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and the result.")] = False,
) -> None:
    from reconciler.diagnostics import RunpodDeployError
    from runpod_deploy.api import ApplyRequest, attach_stack
    from runtime.reporter import PlainReporter, QuietReporter, Reporter

    set_verbosity(verbose, quiet)

    def on_run_dir(path: Path) -> None:
        if print_run_dir:
            sys.stdout.write(f"RUN_DIR={path}\n")
            sys.stdout.flush()

    try:
        env, sim_key = environment(local)
        key = ssh_key or sim_key
        reporter: Reporter = QuietReporter() if quiet or as_json else PlainReporter()
        request = ApplyRequest(cli_vars=tuple(var or ()), vars_file=str(vars_file) if vars_file else None,
                               provider=provider, ssh_key=str(key) if key is not None else None,
                               backend=backend)
        result = attach_stack(config, request, env=env, reporter=reporter, on_run_dir=on_run_dir)
    except (RunpodDeployError, ValueError, OSError) as exc:
        raise fail(exc) from None
    if as_json:
        import json

        print(json.dumps({
            "outcome": result.outcome.value, "exit_code": result.exit_code, "detail": result.detail,
            "run_dir": str(result.run_dir), "manifest": str(result.manifest_path) if result.manifest_path else None,
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


def _status_command(
    config: ConfigOpt,
    backend: BackendOpt = None,
    var: VarOpt = None,
    vars_file: VarsFileOpt = None,
    ssh_key: SshKeyOpt = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many of the log's last lines.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON on stdout.")] = False,
    provider: ProviderOpt = "runpodctl",
    local: LocalOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    from reconciler.diagnostics import RunpodDeployError
    from runpod_deploy.api import stack_status

    set_verbosity(verbose, False)
    try:
        env, sim_key = environment(local)
        key = ssh_key or sim_key
        status = stack_status(config, cli_vars=tuple(var or ()), vars_file=str(vars_file) if vars_file else None,
                              provider=provider, env=env, ssh_key=str(key) if key is not None else None,
                              lines=lines, backend=backend)
    except (RunpodDeployError, ValueError, OSError) as exc:
        raise fail(exc) from None
    if as_json:
        import json

        print(json.dumps(status.to_dict(), indent=2))
        return
    if status.run_id is None:
        last = f"; last run {status.last_run}" if status.last_run else ""
        print(f"{status.stack}: no unfinished run{last}")
        return
    minutes, seconds = divmod(status.elapsed_sec or 0, 60)
    job = f"exited {status.exit_code}" if status.job == "exited" else status.job
    spend = f"${status.spend_usd:.4f} at ${status.hourly_usd:.2f}/hr" if status.spend_usd is not None else "$?"
    print(f"{status.stack}: run {status.run_id} on pod {status.pod_id} ({status.pod_status})")
    print(f"  job      {job}{' (detached)' if status.detached else ''}")
    print(f"  elapsed  {minutes}m{seconds:02d}s")
    print(f"  spend    {spend}")
    print(f"  run dir  {status.run_dir}")
    if status.pod_status == "EXITED":
        print("  the pod is stopped (a pod stops itself once the job has ended and no client finished "
              "the run): `runpod-deploy attach` resumes it, pulls and finishes the run")
    if status.last_lines:
        print("  last lines:")
        for line in status.last_lines:
            print(f"    {line}")
