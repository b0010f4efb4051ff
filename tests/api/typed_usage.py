"""How a Python program drives runpod-deploy, written to pass `mypy --strict`.

tests/api/test_public_api.py type-checks this file and calls the functions that need no
provider. Each function is one thing users do: validate, plan offline, apply, check drift,
add up costs, read a timeline, pick a price, and the original 0.8 calls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import runpod_deploy as rd


def problems_in(config: Path) -> list[str]:
    """Every problem with a stack file, located (`file:line:col: error: field: summary`)."""
    try:
        rd.load_stack(config)
    except rd.SpecError as exc:
        return [diagnostic.format() for diagnostic in exc.diagnostics]
    return []


def plan_json(config: Path, *, env: Mapping[str, str]) -> str:
    """The plan `runpod-deploy plan --out` would save, for the default provider."""
    stack = rd.with_budget(rd.load_stack(config, env=env), cost_cap_usd=2.0)
    plan: rd.Plan = rd.make_plan(stack, env=env, options=rd.PlanOptions(force_fresh=True))
    return plan.to_json()


def apply_and_exit_code(config: Path, *, env: Mapping[str, str]) -> int:
    """apply, as the CLI does: a result for a run that happened, an exception for one that
    could not start; either way an exit code."""
    try:
        result: rd.ApplyResult | None = rd.apply_stack(
            config, rd.ApplyRequest(provider="api"), env=env)
    except rd.StateLockedError as exc:
        return exc.exit_code
    except rd.RunpodDeployError as exc:
        return exc.exit_code
    if result is None:
        return 1
    if result.outcome is rd.RunOutcome.SUCCEEDED:
        assert result.run_dir is not None
    return result.exit_code


def drift_exit_code(paths: Sequence[Path]) -> int:
    """`runpod-deploy drift --detailed-exitcode`, in Python."""
    env = dict(os.environ)
    report: rd.DriftReport = rd.check_drift(
        list(paths), load=partial(rd.load_stack, env=env), provider=rd.make_provider("api", env))
    return report.exit_code(detailed=True)


def total_cost_usd(project_root: Path) -> float:
    """What every run of a project cost, from the pull manifests (runs without a figure: 0)."""
    total = 0.0
    for run_dir in rd.walk_run_dirs(project_root):
        manifest: rd.RunManifest = rd.load_manifest(run_dir)
        total += float(manifest.estimated_cost_usd or 0.0)
    return total


def timeline(run_dir: Path) -> list[tuple[datetime, str]]:
    """A run's events with their times, skipping lines without a parseable time."""
    out: list[tuple[datetime, str]] = []
    for event in rd.load_events(run_dir):
        if event.timestamp is not None and event.event is not None:
            out.append((event.timestamp.astimezone(UTC), event.event))
    return out


def cheapest_gpu(prices: Mapping[str, rd.GpuPrice], *, spot: bool = False) -> str | None:
    """The GPU type with the lowest secure-cloud price, if RunPod priced any."""
    priced = {gpu: price for gpu in prices
              if (price := rd.select_price_for_pod(prices, gpu_id=gpu, cloud_type="SECURE",
                                                   spot=spot)) is not None}
    return min(priced, key=priced.__getitem__) if priced else None


def legacy_context(config: Path, seed: int) -> rd.JobContext:
    """The original 0.8 calls, unchanged: load, resolve variables, check local paths."""
    spec: rd.RunpodJobSpec = rd.load_job_spec(config)
    ctx = rd.build_job_context(spec, config, cli_variables={"seed": str(seed)})
    rd.validate_local_paths(ctx)
    return ctx
