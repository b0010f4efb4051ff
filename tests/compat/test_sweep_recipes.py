"""The multi-config sweep recipe, as written: the sequential loop (validate --all, run with
budget flags, capture-env before, aggregation after), the Makefile target, and the parallel
driver with its `wait -n` semaphore, 6 seeds of a template whose name does not carry the seed,
2 at a time. The user's own scripts (`make audit`, the aggregation) are stand-ins; `uv` is a
shim on PATH that runs its command."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.compat.compat_machine import UserMachine

pytestmark = pytest.mark.sim

SHARD = """\
    schema_version: 2
    name: {name}
    local:
      project_root: {root}
      required_paths: [pyproject.toml]
    pod:
      image: runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04
      datacenters: [EU-RO-1, US-IL-1]
      gpu_order: [NVIDIA RTX A4000]
    storage:
      mode: ephemeral
      volume_gb: 5
    budget:
      cost_cap_usd: 5.0
      max_runtime_minutes: 60
      assumed_hourly_rate_usd: 0.5
      poll_interval_sec: 1
    run:
      script_path: /workspace/job.sh
      log_path: /workspace/job.log
      success_marker: "[shard] DONE"
      body: |
        set -euo pipefail
        mkdir -p /workspace/out
        echo "{what}" > /workspace/out/result.txt
        {extra}
        echo "[shard] DONE"
    artifacts:
      - label: out
        remote_path: /workspace/out/
        local_path: "{{run_dir}}/out/"
    lifecycle:
      on_success: delete
      on_failure: delete
"""

SEQUENTIAL_DRIVER = """\
#!/usr/bin/env bash
set -euo pipefail

CONFIGS=(
  configs/runpod/sweep/r4.yaml
  configs/runpod/sweep/r8.yaml
  configs/runpod/sweep/r16.yaml
)

make audit

runpod-deploy capture-env --project-root . > artifacts/sweep_env.json

for config in "${CONFIGS[@]}"; do
  echo "==> $config"
  runpod-deploy validate --config "$config" --all
  runpod-deploy run --config "$config" \\
    --cost-cap-usd 5.0 \\
    --max-runtime-minutes 60
done

uv run python scripts/aggregate_sweep.py --pattern 'artifacts/runpod/*/'
"""

PARALLEL_DRIVER = """\
#!/usr/bin/env bash
set -euo pipefail

MAX_PARALLEL=${MAX_PARALLEL:-2}
SEEDS=(42 43 44 45 46 47)
declare -a FAILED_SEEDS=()

launch_shard() {
  local seed=$1
  local stdout_log="/tmp/sweep_attempt_${seed}.log"

  if runpod-deploy run \\
       --config configs/runpod/template.yaml \\
       --var "seed=${seed}" \\
       --print-run-dir \\
       --cost-cap-usd 5.0 \\
       --max-runtime-minutes 60 \\
       2>&1 | tee "$stdout_log"; then
    return 0
  fi

  local run_dir
  run_dir=$(grep -oE '^RUN_DIR=.*' "$stdout_log" | head -1 | cut -d= -f2-)
  if [ -n "$run_dir" ] && [ -f "$run_dir/events.jsonl" ]; then
    if grep -q '"event": "pod_killed_unexpected"' "$run_dir/events.jsonl"; then
      echo "[shard $seed] transient pod kill, eligible for retry"
    else
      echo "[shard $seed] non-transient failure; not retrying"
    fi
  fi
  return 1
}

for seed in "${SEEDS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$MAX_PARALLEL" ]; do
    wait -n 2>/dev/null || true
  done

  launch_shard "$seed" &
done

while [ "$(jobs -rp | wc -l)" -gt 0 ]; do
  wait -n 2>/dev/null || true
done

if [ ${#FAILED_SEEDS[@]} -gt 0 ]; then
  echo "Failed seeds: ${FAILED_SEEDS[*]}"
  exit 1
fi
"""

AGGREGATE = """\
import argparse, glob, json, os
parser = argparse.ArgumentParser()
parser.add_argument("--pattern")
args = parser.parse_args()
runs = sorted(glob.glob(args.pattern))
results = [open(os.path.join(r, "out", "result.txt")).read().strip() for r in runs]
json.dump(results, open("artifacts/aggregate.json", "w"))
"""


def _user_tools(machine: UserMachine) -> None:
    """What the recipe's user has beside runpod-deploy: a Makefile with `audit`, the
    aggregation script, and `uv` (here a shim that runs `uv run CMD...` as CMD...)."""
    machine.write("pyproject.toml", "[project]\nname = 'sweep'\nversion = '0'\n")
    machine.write("Makefile", "audit:\n\t@echo audit ok > artifacts/audit.txt\n")
    machine.write("scripts/aggregate_sweep.py", AGGREGATE)
    shim = machine.home / "bin" / "uv"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text('#!/usr/bin/env bash\n[ "$1" = run ] && shift\nexec "$@"\n')
    shim.chmod(0o755)
    machine.env["PATH"] = f"{shim.parent}{os.pathsep}{machine.env['PATH']}"
    (machine.project / "artifacts").mkdir(exist_ok=True)


def _max_pods_at_once(requests: list[dict[str, object]]) -> tuple[int, int]:
    """(most pods that existed at the same time, pods created), from the simulator's own log of
    the RunPod requests it served, in order: a create adds a pod, a terminate removes one."""
    alive = peak = created = 0
    for request in requests:
        listed = request.get("fields") or []
        fields = [str(f) for f in listed] if isinstance(listed, list) else []
        route, method = str(request["route"]), str(request["method"])
        if "podFindAndDeployOnDemand" in fields or "podRentInterruptable" in fields or (
                method == "POST" and route.rstrip("/") == "/v1/pods"):
            alive, created = alive + 1, created + 1
        elif "podTerminate" in fields or (method == "DELETE" and route.startswith("/v1/pods/")):
            alive -= 1
        peak = max(peak, alive)
    return peak, created


def test_sequential_sweep_recipe_as_written(machine: UserMachine) -> None:
    _user_tools(machine)
    for rank in (4, 8, 16):
        machine.write(f"configs/runpod/sweep/r{rank}.yaml",
                      SHARD.format(name=f"sweep-r{rank}", root="../../..", what=f"rank {rank}",
                                   extra=""))
    machine.write("sweep.sh", SEQUENTIAL_DRIVER)
    done = machine.ok("bash sweep.sh", timeout=600)
    assert done.stdout.count("==> configs/runpod/sweep/") == 3
    assert done.stdout.count("ok: configs/runpod/sweep/") == 3
    assert "cannot reach the registry" in done.stderr  # unreachable registry: warned, passed
    env = json.loads((machine.project / "artifacts/sweep_env.json").read_text())
    assert "local_git_sha" in env
    assert json.loads((machine.project / "artifacts/aggregate.json").read_text()) == [
        "rank 4", "rank 8", "rank 16"]
    assert machine.live_pods_named("sweep-r") == []


def test_makefile_sweep_target_as_written(machine: UserMachine) -> None:
    _user_tools(machine)
    for rank in (1, 2):
        machine.write(f"configs/runpod/sweep/m{rank}.yaml",
                      SHARD.format(name=f"make-m{rank}", root="../../..", what=f"m {rank}",
                                   extra=""))
    makefile = (machine.project / "Makefile").read_text() + (
        "\nSWEEP_CONFIGS := $(wildcard configs/runpod/sweep/*.yaml)\n\n"
        "sweep: audit\n"
        "\t@for config in $(SWEEP_CONFIGS); do \\\n"
        "\t\techo \"==> $$config\"; \\\n"
        "\t\trunpod-deploy validate --config $$config --all || exit 1; \\\n"
        "\t\trunpod-deploy run --config $$config || exit 1; \\\n"
        "\tdone\n"
        "\tuv run python scripts/aggregate_sweep.py --pattern 'artifacts/runpod/*/'\n")
    (machine.project / "Makefile").write_text(makefile)
    machine.ok("make sweep", timeout=600)
    assert sorted(json.loads((machine.project / "artifacts/aggregate.json").read_text())) == [
        "m 1", "m 2"]


def test_parallel_sweep_driver_runs_six_seeds_two_at_a_time(machine: UserMachine) -> None:
    """The template's name has no {seed}: each `--var seed=N` is its own stack instance (own
    state, lock and pods), so the driver as written gets 6 successes, never over 2 pods."""
    _user_tools(machine)
    machine.write("configs/runpod/template.yaml",
                  SHARD.format(name="sweep-template", root="../..", what="seed {seed}",
                               extra="sleep 1"))
    machine.write("sweep_parallel.sh", PARALLEL_DRIVER)
    machine.sim.requests(clear=True)
    done = machine.ok("bash sweep_parallel.sh", timeout=900)

    run_dirs = re.findall(r"^RUN_DIR=(.+)$", done.stdout, re.MULTILINE)
    assert len(run_dirs) == 6 and len(set(run_dirs)) == 6
    manifests = [json.loads((Path(d) / "runpod_deploy_pull_manifest.json").read_text())
                 for d in run_dirs]
    assert [m["failed"] for m in manifests] == [False] * 6
    assert sorted((Path(d) / "out/result.txt").read_text().strip() for d in run_dirs) == [
        f"seed {s}" for s in range(42, 48)]
    assert "non-transient failure" not in done.stdout

    peak, created = _max_pods_at_once(machine.sim.requests())
    assert created == 6 and peak <= 2, (peak, created)
    assert machine.live_pods_named("sweep-template") == []

    # The template alone cannot render ({seed} is undefined); drift shows its instances.
    drift = machine.sh("runpod-deploy drift configs/runpod/template.yaml --format json "
                       "--detailed-exitcode")
    assert drift.returncode == 0, drift.stderr
    stacks = json.loads(drift.stdout)["stacks"]
    assert sorted(s["name"] for s in stacks) == [
        f"sweep-template [seed={s}]" for s in range(42, 48)]
    assert {s["verdict"] for s in stacks} == {"in_sync"}


def test_two_runs_with_the_same_values_exclude_each_other(machine: UserMachine) -> None:
    _user_tools(machine)
    wait_for_release = ("for i in $(seq 1 600); do [ -f /workspace/release ] && break; "
                        "sleep 0.1; done")
    machine.write("configs/runpod/template.yaml",
                  SHARD.format(name="same-values", root="../..", what="seed {seed}",
                               extra=wait_for_release))
    command = ("runpod-deploy run --config configs/runpod/template.yaml --var seed=7 "
               "--print-run-dir")
    machine.sim.requests(clear=True)
    first = subprocess.Popen(["bash", "-c", command], cwd=machine.project, env=machine.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pod = _wait_for_live_pod(machine, "same-values", first)
        second = machine.sh(command)
        assert second.returncode != 0
        assert "lock" in second.stderr.lower() and str(first.pid) in second.stderr
        (machine.sim.home / "pods" / pod / "volume" / "release").write_text("go")
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
    assert _max_pods_at_once(machine.sim.requests()) == (1, 1)  # the refused run created none


def _wait_for_live_pod(machine: UserMachine, fragment: str, process: subprocess.Popen[str]) -> str:
    """The id of the pod the background run created, once it is running its job."""
    import time

    while process.poll() is None:
        pods = machine.live_pods_named(fragment)
        if pods and (machine.sim.home / "pods" / pods[0]["id"] / "volume" / "job.log").exists():
            return str(pods[0]["id"])
        time.sleep(0.1)
    raise AssertionError(f"the first run ended early: {process.communicate()}")
