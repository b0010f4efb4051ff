"""Helpers of the sweep tests: the template every test sweeps, the CLI as a user runs it, and
what the simulator itself recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from runpod_deploy.api import load_stack
from tests.e2e.conftest import BASE_STACK, Project, merge

TEMPLATE: dict[str, Any] = merge(BASE_STACK, {
    "name": "tmpl",  # the swept variable is not in the name: each point is still its own instance
    "pod": {"datacenters": ["EU-RO-1"]},
    "run": {"body": "echo seed={seed}\nsleep {sleep}\necho 'result={seed}'\n{tail}\n"},
    "variables": {"sleep": "0", "tail": "echo '[job] DONE'"},
    "artifacts": [{"label": "log", "remote_path": "/workspace/job.log",
                   "local_path": "{run_dir}/pulled"}],
})


def write_template(project: Project, changes: dict[str, Any] | None = None,
                   name: str = "tmpl.yaml") -> Path:
    data = merge(merge(TEMPLATE, changes or {}), {"ssh": {"key_path": str(project.key)}})
    path = project.root / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(project: Project, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`runpod-deploy ARGS` in a process of its own, against the project's simulator."""
    return subprocess.run([sys.executable, "-m", "runpod_deploy", *args], capture_output=True,
                          text=True, timeout=timeout, env=cli_env(project), cwd=project.root,
                          check=False)


def pod_prefix(project: Project, config: Path, **variables: str) -> str:
    return load_stack(config, cli_vars=variables, env=project.env).pod_prefix


def most_pods_at_once(project: Project) -> int:
    """The most pods that billed at the same time, from the simulator's own meters: each pod's
    billing runs from `accrued_until - running - stopped` to `accrued_until` once it is gone."""
    spans = []
    for meter in project.sim.billing()["pods"].values():
        end = float(meter["accrued_until"])
        spans.append((end - float(meter["running_seconds"]) - float(meter["stopped_seconds"]), end))
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def summary_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def cli_env(project: Project) -> dict[str, str]:
    return {**os.environ, **project.env, "RUNPOD_DEPLOY_PROVIDER": "api",
            "RUNPOD_DEPLOY_SSH_KEY": str(project.key)}
