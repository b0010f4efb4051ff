"""The original runpod-deploy 0.8's Python names, kept working on top of the new core.

Scripts written against the original import `load_job_spec`, `build_job_context`,
`validate_local_paths`, `run_job`, `fetch_gpu_prices` and the `*Spec` types from
`runpod_deploy`; they still can. docs/migration.md maps every name to its replacement.

Deprecation policy: names with a better replacement are marked with
`typing_extensions.deprecated(..., category=None)`. Type checkers and IDEs flag their use, but
nothing is emitted at run time, because a `DeprecationWarning` would fail every user test suite
that runs with `-W error` (ours does) for code that still works. They will stay until 2.0.

What changed for their callers, on purpose:
- failures raise a `RunpodDeployError` (a `SpecError` with every problem located instead of
  `FileNotFoundError`/`TypeError`/`ValueError`; `ProviderError` instead of an empty price dict);
- the spec types are frozen pydantic models (attribute access and equality as before;
  `dataclasses.replace(spec, ...)` becomes `spec.model_copy(update={...})`);
- `JobSpec.variables` maps names to `Variable(value, secret)` instead of plain strings;
- `GpuPrice.id` is `GpuPrice.gpu_type_id`, and `lowest_price` is gone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from typing_extensions import deprecated

from reconciler.diagnostics import RunpodDeployError, SpecError, error
from reconciler.load import load_spec
from reconciler.observed import CloudType, GpuPrice, Observation
from reconciler.plan import Plan, PlanOptions
from reconciler.spec import (
    ArtifactPull,
    Budget,
    Command,
    JobSpec,
    Lifecycle,
    RemoteEnv,
    StagingPush,
    Telemetry,
)
from reconciler.template import render_text, resolve_variables

if TYPE_CHECKING:
    from runtime.executor import ApplyResult

# No `__all__` here: the public names are listed once, in `runpod_deploy/__init__.py`.

# The original's type names. Same fields as before (see the module docstring for the changes).
RunpodJobSpec = JobSpec
"""Deprecated name of `JobSpec`."""
BudgetSpec = Budget
"""Deprecated name of `Budget`."""
RemoteEnvSpec = RemoteEnv
"""Deprecated name of `RemoteEnv`."""
CommandSpec = Command
"""Deprecated name of `Command`."""
RsyncPushSpec = StagingPush
"""Deprecated name of `StagingPush` (a `staging:` entry)."""
ArtifactPullSpec = ArtifactPull
"""Deprecated name of `ArtifactPull` (an `artifacts:` entry)."""
LifecyclePolicySpec = Lifecycle
"""Deprecated name of `Lifecycle`."""
TelemetrySpec = Telemetry
"""Deprecated name of `Telemetry`."""


class RunFailedError(RunpodDeployError):
    """`run_job` ran the job and it did not succeed; `result` holds the outcome and run dir.

    The original's `run_job` raised on every failure; `apply_stack` returns the result instead.
    """

    def __init__(self, result: ApplyResult) -> None:
        self.result = result
        self.exit_code = result.exit_code
        super().__init__(f"run {result.outcome.value}: {result.detail} (run dir {result.run_dir})")


@deprecated("use runpod_deploy.load_stack (it validates and renders in one call)", category=None)
def load_job_spec(path: Path | str) -> JobSpec:
    """Read and validate a stack file, without rendering its templates."""
    config_path = Path(path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([error(f"cannot read the stack file: {exc.strerror or exc}",
                               detail="expected a readable YAML file",
                               field_path=str(path))]) from None
    return load_spec(text, source=str(path))


@deprecated("use runpod_deploy.load_stack; its .job holds the rendered spec and variables",
            category=None)
@dataclass(frozen=True, slots=True)
class JobContext:
    """One invocation's resolved variables, as the original's `build_job_context` returned it."""

    config_path: Path
    spec: JobSpec
    """The spec as passed in (templates unrendered), as in the original."""
    run_id: str
    run_dir: Path
    variables: dict[str, str]

    def render(self, value: str) -> str:
        """Render a `{name}` template with this run's variables (no shell quoting)."""
        return render_text(value, self.variables)

    def render_path(self, value: str, *, base: Path | None = None) -> Path:
        """Render a local path; a relative one is taken under `base` (default: project_root)."""
        rendered = Path(self.render(value)).expanduser()
        if rendered.is_absolute():
            return rendered
        return (base or Path(self.variables["project_root"])) / rendered


@deprecated("use runpod_deploy.load_stack(config, cli_vars=...)", category=None)
def build_job_context(spec: JobSpec, config_path: Path | str, *,
                      cli_variables: Mapping[str, str] | None = None,
                      timestamp: datetime | None = None) -> JobContext:
    """Resolve the template variables of one run (raises SpecError, e.g. for a project_root
    that is the home directory, an undefined or cyclic variable)."""
    config = Path(config_path).resolve()
    stamp = (timestamp or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    variables = resolve_variables(spec, config_dir=str(config.parent), home=str(Path.home()),
                                  run_stamp=stamp, cli_vars=dict(cli_variables or {}))
    return JobContext(config_path=config, spec=spec, run_id=variables.run_id,
                      run_dir=Path(variables.run_dir), variables=dict(variables.values))


def validate_local_paths(ctx: JobContext) -> None:
    """Fail before anything is provisioned when a `local.required_paths` entry is missing.

    Raises one SpecError naming every missing path (the original raised FileNotFoundError).
    """
    missing = [
        error(f"required local path is missing: {path}",
              field_path=f"local.required_paths[{index}]")
        for index, entry in enumerate(ctx.spec.local.required_paths)
        if not (path := ctx.render_path(entry)).exists()
    ]
    if missing:
        raise SpecError(missing)


_BUDGET_OVERRIDES = ("cost_cap_usd", "max_runtime_minutes", "ssh_ready_timeout_sec")


def _overrides_from(spec: JobSpec, on_file: JobSpec) -> dict[str, float | int | None]:
    """The budget fields in which a caller's spec differs from the file; anything else that
    differs cannot be applied (apply reads the file) and is refused rather than ignored."""
    same_budget = spec.budget.model_copy(
        update={name: getattr(on_file.budget, name) for name in _BUDGET_OVERRIDES})
    if spec.model_copy(update={"budget": same_budget}) != on_file:
        raise SpecError([error(
            "run_job() was given a spec that differs from the file at config_path",
            detail="apply reads the stack from its file: write the changed stack to a file, or "
                   "pass the change as cli_variables; only the budget's cost_cap_usd, "
                   "max_runtime_minutes and ssh_ready_timeout_sec may differ (they become the "
                   "--cost-cap-usd, --max-runtime-minutes and --ssh-ready-timeout-sec overrides)",
            field_path="spec")])
    return {name: getattr(spec.budget, name) for name in _BUDGET_OVERRIDES
            if getattr(spec.budget, name) != getattr(on_file.budget, name)}


@deprecated("use runpod_deploy.make_plan / runpod_deploy.apply_stack", category=None)
def run_job(spec: JobSpec, *, config_path: Path | str, dry_run: bool = False,
            offline_dry_run: bool = False, gpu_id_override: str | None = None,
            datacenter_id_override: str | None = None, max_gpu_price_usd: float | None = None,
            cli_variables: Mapping[str, str] | None = None, print_run_dir: bool = False,
            ssh_ready_timeout_sec_override: int | None = None, force_fresh: bool = False,
            fallback_cloud_type: str | None = None, provider: str = "runpodctl",
            ssh_key: str | None = None,
            env: Mapping[str, str] | None = None) -> ApplyResult | None:
    """The original's one-call run, now plan + apply: returns the `ApplyResult` of a run that
    succeeded, raises `RunFailedError` for one that did not, and returns None for a dry run
    (the plan is printed on stdout). `provider`, `ssh_key` and `env` are new and optional.
    """
    from reconciler.render import render_text as render_plan
    from runpod_deploy.api import ApplyRequest, apply_stack, load_stack, make_plan, with_budget

    if fallback_cloud_type is not None:
        raise SpecError([error(
            "fallback_cloud_type is not supported",
            detail="runpod-deploy 1.0 fails over across gpu_order x datacenters of the stack's "
                   "pod.cloud_type; use a second stack for the other cloud type",
            field_path="fallback_cloud_type")])
    overrides = _overrides_from(spec, load_job_spec(config_path))
    cost_cap = overrides.get("cost_cap_usd")
    max_minutes = overrides.get("max_runtime_minutes")
    ssh_timeout = ssh_ready_timeout_sec_override or overrides.get("ssh_ready_timeout_sec")
    validate_local_paths(build_job_context(spec, config_path, cli_variables=cli_variables))
    variables = dict(cli_variables or {})

    def show_plan(plan: Plan) -> None:
        sys.stdout.write(render_plan(plan))

    if offline_dry_run:
        stack = with_budget(load_stack(config_path, cli_vars=variables, env=env),
                            cost_cap_usd=None if cost_cap is None else float(cost_cap),
                            max_runtime_minutes=None if max_minutes is None else int(max_minutes))
        if print_run_dir:
            sys.stdout.write(f"RUN_DIR={stack.job.run_dir}\n")
        blind = Observation(observed_at=datetime.now(UTC), complete=False, provider="none",
                            notes=("offline dry run: the provider was not asked",))
        show_plan(make_plan(stack, options=PlanOptions(force_fresh=force_fresh),
                            observation=blind, env=env))
        return None

    def announce_run_dir(path: Path) -> None:
        if print_run_dir:
            sys.stdout.write(f"RUN_DIR={path}\n")
            sys.stdout.flush()

    request = ApplyRequest(
        cli_vars=tuple(f"{key}={value}" for key, value in variables.items()),
        plan_options=PlanOptions(force_fresh=force_fresh),
        provider=provider,
        cost_cap_usd=None if cost_cap is None else float(cost_cap),
        max_runtime_minutes=None if max_minutes is None else int(max_minutes),
        gpu_id=gpu_id_override,
        datacenter_id=datacenter_id_override,
        max_gpu_price=max_gpu_price_usd,
        ssh_ready_timeout_sec=None if ssh_timeout is None else int(ssh_timeout),
        ssh_key=ssh_key,
    )
    result: ApplyResult | None = apply_stack(
        config_path, request, env=env, on_plan=show_plan if dry_run else None,
        confirm=(lambda _plan: False) if dry_run else None, on_run_dir=announce_run_dir)
    if result is not None and not result.ok:
        raise RunFailedError(result)
    return result


def fetch_gpu_prices(*, api_key: str | None = None, force_refresh: bool = False,
                     cache_ttl_sec: int = 3600,
                     env: Mapping[str, str] | None = None) -> dict[str, GpuPrice]:
    """Every GPU type's on-demand and spot prices, keyed by GPU type id, from RunPod's API.

    Reads RUNPOD_API_KEY (or `api_key`). Raises ProviderAuthError without a key and
    ProviderError when RunPod gives no prices (the original returned `{}` and logged).
    `force_refresh` and `cache_ttl_sec` are accepted for compatibility: there is no price
    cache, every call asks RunPod.
    """
    from runtime.errors import ProviderError
    from runtime.providers import make_provider

    settings = dict(os.environ if env is None else env)
    if api_key is not None:
        settings["RUNPOD_API_KEY"] = api_key
    provider = make_provider("api", settings)
    if provider is None:  # only runpodctl can be missing; kept for the type checker
        raise ProviderError("the api provider is not available", provider="api")
    prices = {price.gpu_type_id: price for price in provider.catalog().prices}
    if not prices:
        raise ProviderError("RunPod returned no GPU prices", provider="api", operation="catalog")
    return prices


def select_price_for_pod(prices: Mapping[str, GpuPrice], *, gpu_id: str, cloud_type: str,
                         spot: bool) -> float | None:
    """The $/GPU/hr a pod of that GPU type would pay in that cloud; None when RunPod gives none.

    Raises SpecError for a cloud type other than SECURE or COMMUNITY.
    """
    try:
        cloud = CloudType(cloud_type.upper())
    except ValueError:
        raise SpecError([error(f"unknown cloud type {cloud_type!r}",
                               detail="expected SECURE or COMMUNITY",
                               field_path="pod.cloud_type")]) from None
    price = prices.get(gpu_id)
    return None if price is None else price.price_for(cloud, spot=spot)
