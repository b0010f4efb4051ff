"""The original's examples, run with their own documented command lines and `--var`s.

The stack files are ours, written to the examples' paths with the examples' shape (templated
name, shared `state_file:`, required paths, staging with the hygiene preset, pulled
predictions); their job bodies only echo, since a simulated pod has no internet for the
examples' `curl | sh` and `uv sync`.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.compat.compat_machine import UserMachine

pytestmark = pytest.mark.sim

HELLO = """\
    schema_version: 2
    name: hello
    run_id_prefix: hello
    state_file: ~/.runpod-hello-current
    local:
      project_root: .
    pod:
      image: runpod/pytorch:2.4.0-py3.13-cuda12.4.1-devel-ubuntu22.04
      datacenters: [EU-RO-1]
      gpu_order: [NVIDIA RTX A4000]
    storage:
      mode: ephemeral
      volume_gb: 20
    ssh:
      key_path: ~/.ssh/id_ed25519
    budget:
      poll_interval_sec: 1
    run:
      script_path: /workspace/hello.sh
      log_path: /workspace/hello.log
      success_marker: "[hello] DONE"
      body: |
        set -euo pipefail
        echo "[hello] from $(hostname)"
        echo "[hello] DONE"
    lifecycle:
      on_success: delete
      on_failure: stop
"""

CANONICAL = """\
    schema_version: 2
    name: canonical-{backbone}-s{seed}
    run_id_prefix: canonical-{backbone}
    state_file: ~/.runpod-canonical-current
    local:
      project_root: ../..
      required_paths: [pyproject.toml]
    variables:
      remote_repo: /workspace/canonical-{backbone}-s{seed}
    pod:
      image: runpod/pytorch:2.4.0-py3.13-cuda12.4.1-devel-ubuntu22.04
      datacenters: [EU-RO-1, US-CA-2, US-GA-2]
      gpu_order: [NVIDIA H100 80GB HBM3, NVIDIA H100 NVL, NVIDIA A100-SXM4-80GB]
      cloud_type: SECURE
    storage:
      mode: ephemeral
      volume_gb: 50
    budget:
      cost_cap_usd: 2.0
      max_runtime_minutes: 60
      assumed_hourly_rate_usd: 2.0  # the example says 4.0, which its own budget check refuses
      poll_interval_sec: 1
    setup:
      - command: "mkdir -p {remote_repo}"
        timeout_sec: 30
    staging:
      - label: source
        source: "{project_root}/"
        destination: "{remote_repo}/"
        excludes_default: true
        excludes_extra: ["evals/", "artifacts/", "tests/", "docs/"]
    run:
      script_path: "{remote_repo}/run-{backbone}-s{seed}.sh"
      log_path: "{remote_repo}/run-{backbone}-s{seed}.log"
      success_marker: "[canonical-{backbone}-s{seed}] DONE"
      body: |
        set -euo pipefail
        cd {remote_repo}
        test -f pyproject.toml
        mkdir -p evals/canonical_{backbone}/seed{seed}
        echo "rows for seed {seed}" > evals/canonical_{backbone}/seed{seed}/predictions_full.parquet
        echo "[canonical-{backbone}-s{seed}] DONE"
    artifacts:
      - label: predictions
        remote_path: "{remote_repo}/evals/canonical_{backbone}/seed{seed}/"
        local_path: "{project_root}/evals/canonical_{backbone}/seed{seed}/"
        required: true
    lifecycle:
      on_success: delete
      on_failure: stop
"""


def test_hello_offline_dry_run_then_a_real_run(machine: UserMachine) -> None:
    machine.write("examples/hello/hello.yaml", HELLO)
    before = len(machine.sim.pods())
    dry = machine.ok("runpod-deploy run --config examples/hello/hello.yaml --offline-dry-run")
    assert len(machine.sim.pods()) == before, "an offline dry run created a pod"
    assert "[provision] create pod" in dry.stdout and "NVIDIA RTX A4000 in EU-RO-1" in dry.stdout
    assert "[lifecycle] on success: delete" in dry.stdout
    assert not (machine.project / "examples/hello/artifacts").exists()

    machine.ok("runpod-deploy run --config examples/hello/hello.yaml")
    logs = list(machine.project.glob("examples/hello/artifacts/runpod/*/hello.log"))
    assert len(logs) == 1 and "[hello] DONE" in logs[0].read_text()
    assert machine.live_pods_named("hello") == []


def test_canonical_sweep_runs_three_seeds_one_after_another_on_its_shared_state_file(
        machine: UserMachine) -> None:
    machine.write("examples/v0_5_canonical/canonical_sweep_pinned.yaml", CANONICAL)
    machine.write("pyproject.toml", "[project]\nname = 'canonical'\nversion = '0'\n")
    machine.ok("""\
        runpod-deploy run --config examples/v0_5_canonical/canonical_sweep_pinned.yaml \\
          --var seed=42 --var backbone=deberta \\
          --offline-dry-run
    """)
    run_dirs = []
    for seed in (42, 43, 44):
        done = machine.ok(f"""\
            runpod-deploy run --config examples/v0_5_canonical/canonical_sweep_pinned.yaml \\
              --var seed={seed} --var backbone=deberta --print-run-dir \\
              --cost-cap-usd 2.0 --max-runtime-minutes 60
        """)
        found = re.findall(r"^RUN_DIR=(.+)$", done.stdout, re.MULTILINE)
        assert len(found) == 1, done.stdout
        run_dirs.append(found[0])
        predictions = (machine.project / f"evals/canonical_deberta/seed{seed}/"
                       "predictions_full.parquet")
        assert predictions.read_text() == f"rows for seed {seed}\n"
        if seed != 42:  # the file the previous seed left (no pod) is taken over, with a note
            assert "takes it over" in done.stderr
    assert len(set(run_dirs)) == 3
    assert machine.live_pods_named("canonical-deberta") == []
    assert json.loads((machine.home / ".runpod-canonical-current").read_text())["pod"] is None

    summary = machine.ok("runpod-deploy manifest-summary --root artifacts/runpod")
    assert "== TOTALS ==" in summary.stdout
    assert re.search(r"^manifests:\s+3$", summary.stdout, re.MULTILINE)
    assert re.search(r"^failed:\s+0$", summary.stdout, re.MULTILINE)
    killed = machine.ok("runpod-deploy events-query --filter event=pod_killed_unexpected "
                        "--since 30d --json")
    assert killed.stdout == ""
    failovers = machine.ok("runpod-deploy events-query --filter event=datacenter_failover "
                           "--since 30d")
    assert "datacenter_failover" in failovers.stdout  # EU-RO-1 lists none of the H100s


def test_a_shared_state_file_still_holding_another_seeds_pod_is_refused_with_the_way_out(
        machine: UserMachine) -> None:
    stack = CANONICAL.replace("on_success: delete", "on_success: recycle")
    machine.write("examples/v0_5_canonical/canonical_sweep_pinned.yaml", stack)
    machine.write("pyproject.toml", "[project]\nname = 'canonical'\nversion = '0'\n")
    machine.ok("runpod-deploy run --config examples/v0_5_canonical/canonical_sweep_pinned.yaml "
               "--var seed=1 --var backbone=bert")
    kept = machine.live_pods_named("canonical-bert")
    assert len(kept) == 1 and kept[0]["desiredStatus"] == "EXITED"
    refused = machine.sh("runpod-deploy run --config "
                         "examples/v0_5_canonical/canonical_sweep_pinned.yaml "
                         "--var seed=2 --var backbone=bert")
    assert refused.returncode == 1
    assert "canonical-bert-s1" in refused.stderr and kept[0]["id"] in refused.stderr
    assert "{seed}" in refused.stderr and "cleanup --state-file" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(machine.live_pods_named("canonical-bert")) == 1
    machine.ok("runpod-deploy cleanup --state-file ~/.runpod-canonical-current --mode delete")
    assert machine.live_pods_named("canonical-bert") == []
