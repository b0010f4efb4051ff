"""runpod-deploy: declarative GPU jobs on RunPod (plan, apply, pull, never leak a pod).

The public Python API. Everything the CLI does is here as a function over typed values:

    import runpod_deploy as rd

    stack = rd.load_stack("stacks/hello.yaml", cli_vars={"seed": "3"})  # validate + render
    plan = rd.make_plan(stack, provider="api")                          # observe + plan
    print(rd.render_plan(plan))
    result = rd.apply_stack("stacks/hello.yaml", rd.ApplyRequest(provider="api"))
    for run_dir in rd.walk_run_dirs(Path(".")):                         # forensics
        manifest = rd.load_manifest(run_dir)

Names are imported on first use (module `__getattr__`), so `import runpod_deploy` costs no
pydantic, requests or paramiko. The names the original runpod-deploy 0.8 exported
(`load_job_spec`, `build_job_context`, `run_job`, `RunpodJobSpec`, ...) still work; they live in
`runpod_deploy.compat` and docs/migration.md maps each one to its replacement.

Every failure raises; nothing is swallowed or turned into `None`. One exception tree:

    RunpodDeployError                        root: catch this one; `.exit_code` is the CLI's
      SpecError(diagnostics)                 the stack, its variables or local paths are wrong
      PlanError(diagnostics)                 valid stack that cannot be planned safely
      StateError                             the state file cannot be used as it is
        StateLockedError(path, holder)       another apply holds the stack
        StateCorruptError(path, backup)      unreadable state; names the backup to use
        StateMismatchError                   the state file belongs to another stack
        StalePlanError                       a saved plan no longer matches the world
      NothingToAttachError                   `attach_stack`: no unfinished run to finish
      ProviderError(provider, operation)     RunPod (or the simulator) said no
        ProviderAuthError                    no or bad RUNPOD_API_KEY
        ProviderUnavailableError             network, timeouts, 429/5xx after retries
        ProviderProtocolError(excerpt)       an answer that cannot be parsed
        PodNotFoundError(pod_id)             the pod does not exist
        CapacityError(gpu, datacenter)       stock-out of one candidate
        HostFullError                        a stopped pod cannot resume on its host
        FailoverExhaustedError(attempts)     every GPU x datacenter candidate failed
        UnknownDatacenterError               a datacenter RunPod does not list
      TransportError                         SSH and rsync
        SshError
          SshHostKeyMismatchError            the pod's host key changed within one boot
        RsyncError
        RemoteCommandError(command, exit_status, output_tail)
      JobError                               the job ran and did not succeed
        JobFailedError, BudgetExceededError, RuntimeExceededError, PodKilledError
        RunFailedError(result)               `run_job` (compat): the run ended unsuccessfully
      RunDirError                            a run dir or its files are missing
        ManifestError                        a manifest that cannot be read
      DriftInputError                        `check_drift` was given paths it cannot use

`apply_stack` does not raise for a run that started and failed: it returns an `ApplyResult`
whose `outcome` and `exit_code` say how the run ended (the manifest says the same).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "1.0.0.dev0"

# name -> module it is re-exported from (the attribute has the same name unless `:attr` says).
_EXPORTS: dict[str, str] = {
    # stacks: load, validate, schema
    "Stack": "runpod_deploy.api",
    "load_stack": "runpod_deploy.api",
    "stack_schema": "runpod_deploy.api",
    "with_budget": "runpod_deploy.api",
    "local_cloud": "runpod_deploy.local",
    "LocalCloud": "runpod_deploy.local",
    "Diagnostic": "reconciler.diagnostics",
    # the stack format (frozen pydantic models)
    "JobSpec": "reconciler.spec",
    "LocalSpec": "reconciler.spec",
    "PodSpec": "reconciler.spec",
    "StorageSpec": "reconciler.spec",
    "StorageMode": "reconciler.spec",
    "SshSpec": "reconciler.spec",
    "Budget": "reconciler.spec",
    "RemoteEnv": "reconciler.spec",
    "Command": "reconciler.spec",
    "StagingPush": "reconciler.spec",
    "SecretSpec": "reconciler.spec",
    "RunSpec": "reconciler.spec",
    "ArtifactPull": "reconciler.spec",
    "Lifecycle": "reconciler.spec",
    "LifecycleAction": "reconciler.spec",
    "Telemetry": "reconciler.spec",
    "Variable": "reconciler.spec",
    # plans
    "Plan": "reconciler.plan",
    "PlanOptions": "reconciler.plan",
    "StepKind": "reconciler.plan",
    "make_plan": "runpod_deploy.api",
    "observe_stack": "runpod_deploy.api",
    "read_plan": "runpod_deploy.api",
    "render_plan": "reconciler.render:render_text",
    # apply
    "ApplyRequest": "runpod_deploy.api",
    "apply_stack": "runpod_deploy.api",
    "attach_stack": "runpod_deploy.api",
    "stack_status": "runpod_deploy.api",
    "RunStatus": "runpod_deploy.api",
    "NothingToAttachError": "runpod_deploy.api",
    "ApplyResult": "runtime.executor",
    "RunOutcome": "runtime.rundir",
    # providers and drift
    "PodProvider": "runtime.providers.protocol",
    "make_provider": "runtime.providers",
    "check_drift": "runtime.drift_report",
    "DriftReport": "reconciler.drift",
    # run dirs: manifests, events, metrics, roll-ups
    "walk_run_dirs": "runtime.forensics",
    "list_runs": "runtime.forensics",
    "collect_manifests": "runtime.forensics",
    "ManifestRollup": "runtime.forensics",
    "query_events": "runtime.forensics",
    "compare_manifests": "runtime.forensics",
    "load_manifest": "runtime.rundir",
    "load_events": "runtime.rundir",
    "load_metrics": "runtime.rundir",
    "RunManifest": "runtime.rundir",
    "EventRecord": "runtime.rundir",
    "MetricsRow": "runtime.rundir",
    # account operations
    "list_stale_pods": "runtime.ops",
    "StalePod": "runtime.ops",
    "delete_pods": "runtime.ops",
    "cleanup_recorded_pod": "runtime.ops",
    "CleanupMode": "runtime.ops",
    "estimate": "runtime.ops",
    "Estimate": "runtime.ops",
    # prices
    "GpuPrice": "reconciler.observed",
    "fetch_gpu_prices": "runpod_deploy.compat",
    "select_price_for_pod": "runpod_deploy.compat",
    # the original's names (runpod-deploy 0.8), kept working
    "JobContext": "runpod_deploy.compat",
    "load_job_spec": "runpod_deploy.compat",
    "build_job_context": "runpod_deploy.compat",
    "validate_local_paths": "runpod_deploy.compat",
    "run_job": "runpod_deploy.compat",
    "RunpodJobSpec": "runpod_deploy.compat",
    "BudgetSpec": "runpod_deploy.compat",
    "RemoteEnvSpec": "runpod_deploy.compat",
    "CommandSpec": "runpod_deploy.compat",
    "RsyncPushSpec": "runpod_deploy.compat",
    "ArtifactPullSpec": "runpod_deploy.compat",
    "LifecyclePolicySpec": "runpod_deploy.compat",
    "TelemetrySpec": "runpod_deploy.compat",
    # errors (the tree is in this module's docstring)
    "RunpodDeployError": "reconciler.diagnostics",
    "SpecError": "reconciler.diagnostics",
    "PlanError": "reconciler.diagnostics",
    "StateError": "runtime.errors",
    "StateLockedError": "runtime.errors",
    "StateCorruptError": "runtime.errors",
    "StateMismatchError": "runtime.errors",
    "StalePlanError": "runtime.errors",
    "ProviderError": "runtime.errors",
    "ProviderAuthError": "runtime.errors",
    "ProviderUnavailableError": "runtime.errors",
    "ProviderProtocolError": "runtime.errors",
    "PodNotFoundError": "runtime.errors",
    "CapacityError": "runtime.errors",
    "HostFullError": "runtime.errors",
    "FailoverExhaustedError": "runtime.errors",
    "UnknownDatacenterError": "runtime.ops",
    "TransportError": "runtime.errors",
    "SshError": "runtime.errors",
    "SshHostKeyMismatchError": "runtime.errors",
    "RsyncError": "runtime.errors",
    "RemoteCommandError": "runtime.errors",
    "JobError": "runtime.errors",
    "JobFailedError": "runtime.errors",
    "BudgetExceededError": "runtime.errors",
    "RuntimeExceededError": "runtime.errors",
    "PodKilledError": "runtime.errors",
    "RunFailedError": "runpod_deploy.compat",
    "RunDirError": "runtime.rundir",
    "ManifestError": "runtime.rundir",
    "DriftInputError": "runtime.drift_report",
}

__all__ = [
    "ApplyRequest",
    "ApplyResult",
    "ArtifactPull",
    "ArtifactPullSpec",
    "Budget",
    "BudgetExceededError",
    "BudgetSpec",
    "CapacityError",
    "CleanupMode",
    "Command",
    "CommandSpec",
    "Diagnostic",
    "DriftInputError",
    "DriftReport",
    "Estimate",
    "EventRecord",
    "FailoverExhaustedError",
    "GpuPrice",
    "HostFullError",
    "JobContext",
    "JobError",
    "JobFailedError",
    "JobSpec",
    "Lifecycle",
    "LifecycleAction",
    "LifecyclePolicySpec",
    "LocalCloud",
    "LocalSpec",
    "ManifestError",
    "ManifestRollup",
    "MetricsRow",
    "NothingToAttachError",
    "Plan",
    "PlanError",
    "PlanOptions",
    "PodKilledError",
    "PodNotFoundError",
    "PodProvider",
    "PodSpec",
    "ProviderAuthError",
    "ProviderError",
    "ProviderProtocolError",
    "ProviderUnavailableError",
    "RemoteCommandError",
    "RemoteEnv",
    "RemoteEnvSpec",
    "RsyncError",
    "RsyncPushSpec",
    "RunDirError",
    "RunFailedError",
    "RunManifest",
    "RunOutcome",
    "RunSpec",
    "RunStatus",
    "RunpodDeployError",
    "RunpodJobSpec",
    "RuntimeExceededError",
    "SecretSpec",
    "SpecError",
    "SshError",
    "SshHostKeyMismatchError",
    "SshSpec",
    "Stack",
    "StagingPush",
    "StalePlanError",
    "StalePod",
    "StateCorruptError",
    "StateError",
    "StateLockedError",
    "StateMismatchError",
    "StepKind",
    "StorageMode",
    "StorageSpec",
    "Telemetry",
    "TelemetrySpec",
    "TransportError",
    "UnknownDatacenterError",
    "Variable",
    "__version__",
    "apply_stack",
    "attach_stack",
    "build_job_context",
    "check_drift",
    "cleanup_recorded_pod",
    "collect_manifests",
    "compare_manifests",
    "delete_pods",
    "estimate",
    "fetch_gpu_prices",
    "list_runs",
    "list_stale_pods",
    "load_events",
    "load_job_spec",
    "load_manifest",
    "load_metrics",
    "load_stack",
    "local_cloud",
    "make_plan",
    "make_provider",
    "observe_stack",
    "query_events",
    "read_plan",
    "render_plan",
    "run_job",
    "select_price_for_pod",
    "stack_schema",
    "stack_status",
    "validate_local_paths",
    "walk_run_dirs",
    "with_budget",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; a test keeps it equal to _EXPORTS
    from reconciler.diagnostics import Diagnostic, PlanError, RunpodDeployError, SpecError
    from reconciler.drift import DriftReport
    from reconciler.observed import GpuPrice
    from reconciler.plan import Plan, PlanOptions, StepKind
    from reconciler.render import render_text as render_plan
    from reconciler.spec import (
        ArtifactPull,
        Budget,
        Command,
        JobSpec,
        Lifecycle,
        LifecycleAction,
        LocalSpec,
        PodSpec,
        RemoteEnv,
        RunSpec,
        SecretSpec,
        SshSpec,
        StagingPush,
        StorageMode,
        StorageSpec,
        Telemetry,
        Variable,
    )
    from runpod_deploy.api import (
        ApplyRequest,
        NothingToAttachError,
        RunStatus,
        Stack,
        apply_stack,
        attach_stack,
        load_stack,
        make_plan,
        observe_stack,
        read_plan,
        stack_schema,
        stack_status,
        with_budget,
    )
    from runpod_deploy.compat import (
        ArtifactPullSpec,
        BudgetSpec,
        CommandSpec,
        JobContext,
        LifecyclePolicySpec,
        RemoteEnvSpec,
        RsyncPushSpec,
        RunFailedError,
        RunpodJobSpec,
        TelemetrySpec,
        build_job_context,
        fetch_gpu_prices,
        load_job_spec,
        run_job,
        select_price_for_pod,
        validate_local_paths,
    )
    from runpod_deploy.local import LocalCloud, local_cloud
    from runtime.drift_report import DriftInputError, check_drift
    from runtime.errors import (
        BudgetExceededError,
        CapacityError,
        FailoverExhaustedError,
        HostFullError,
        JobError,
        JobFailedError,
        PodKilledError,
        PodNotFoundError,
        ProviderAuthError,
        ProviderError,
        ProviderProtocolError,
        ProviderUnavailableError,
        RemoteCommandError,
        RsyncError,
        RuntimeExceededError,
        SshError,
        SshHostKeyMismatchError,
        StalePlanError,
        StateCorruptError,
        StateError,
        StateLockedError,
        StateMismatchError,
        TransportError,
    )
    from runtime.executor import ApplyResult
    from runtime.forensics import (
        ManifestRollup,
        collect_manifests,
        compare_manifests,
        list_runs,
        query_events,
        walk_run_dirs,
    )
    from runtime.ops import (
        CleanupMode,
        Estimate,
        StalePod,
        UnknownDatacenterError,
        cleanup_recorded_pod,
        delete_pods,
        estimate,
        list_stale_pods,
    )
    from runtime.providers import make_provider
    from runtime.providers.protocol import PodProvider
    from runtime.rundir import (
        EventRecord,
        ManifestError,
        MetricsRow,
        RunDirError,
        RunManifest,
        RunOutcome,
        load_events,
        load_manifest,
        load_metrics,
    )


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it, so later lookups are plain attributes."""
    try:
        target = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'runpod_deploy' has no attribute {name!r}") from None
    module_name, _, attribute = target.partition(":")
    value = getattr(import_module(module_name), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
