"""The original's post-processing, recycle, forensics-then-cleanup, cost-reconciliation and
stock-out recipes (and the forensics example scripts' command lines), as written."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.compat.compat_machine import UserMachine

pytestmark = pytest.mark.sim

STACK = """\
    schema_version: 2
    name: {name}
    state_file: {state_file}
    local:
      project_root: {root}
    pod:
      image: runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04
      datacenters: [EU-RO-1, US-IL-1]
      gpu_order: [NVIDIA RTX A4000]
    storage:
      mode: ephemeral
      volume_gb: 5
    budget:
      cost_cap_usd: 2.0
      poll_interval_sec: 1
    run:
      script_path: /workspace/job.sh
      log_path: /workspace/run.log
      success_marker: "[job] DONE"
      body: |
        mkdir -p /workspace/out
        echo "metric 0.9" > /workspace/out/metrics.txt
        {body}
    artifacts:
      - label: out
        remote_path: /workspace/out/
        local_path: "{{run_dir}}/out/"
    lifecycle:
      on_success: {on_success}
      on_failure: stop
"""


def _stack(machine: UserMachine, path: str, *, name: str, state_file: str, root: str = ".",
           body: str = 'echo "[job] DONE"', on_success: str = "delete") -> None:
    machine.write(path, STACK.format(name=name, state_file=state_file, root=root, body=body,
                                     on_success=on_success))


def _uv_shim(machine: UserMachine) -> None:
    shim = machine.home / "bin" / "uv"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text('#!/usr/bin/env bash\n[ "$1" = run ] && shift\nexec "$@"\n')
    shim.chmod(0o755)
    machine.env["PATH"] = f"{shim.parent}{os.pathsep}{machine.env['PATH']}"


def test_local_postprocess_after_run_recipe(machine: UserMachine) -> None:
    _stack(machine, "configs/runpod/headline.yaml", name="headline", root="../..",
           state_file="~/.runpod-headline-current")
    _uv_shim(machine)
    machine.write("scripts/render_plots.py", """\
        import argparse, pathlib
        parser = argparse.ArgumentParser()
        parser.add_argument("--run-dir")
        run_dir = pathlib.Path(parser.parse_args().run_dir)
        (run_dir / "plot.txt").write_text((run_dir / "out" / "metrics.txt").read_text())
    """)
    machine.write("Makefile", (
        ".PHONY: headline-cloud headline-plots\n"
        "headline-cloud:\n"
        "\trunpod-deploy run --config configs/runpod/headline.yaml\n\n"
        "LATEST_RUN_DIR := $(shell ls -dt artifacts/runpod/*/ | head -1)\n\n"
        "headline-plots:\n"
        "\tuv run python scripts/render_plots.py --run-dir $(LATEST_RUN_DIR)\n"
        "\trunpod-deploy manifest-summary $(LATEST_RUN_DIR)/runpod_deploy_pull_manifest.json\n"))
    done = machine.ok("make headline-cloud && make headline-plots")
    [run_dir] = list((machine.project / "artifacts/runpod").iterdir())
    assert (run_dir / "plot.txt").read_text() == "metric 0.9\n"
    assert re.search(r"^job:\s+headline$", done.stdout, re.MULTILINE)
    summary = machine.ok(f"runpod-deploy manifest-summary artifacts/runpod/{run_dir.name}/"
                         "runpod_deploy_pull_manifest.json")
    assert "failed" in summary.stdout and run_dir.name in summary.stdout


def test_recycle_recipe(machine: UserMachine) -> None:
    _stack(machine, "foo.yaml", name="my-benchmark", state_file="~/.runpod-my-benchmark-current",
           on_success="recycle")
    machine.ok("runpod-deploy run --config foo.yaml")
    machine.ok("runpod-deploy run --config foo.yaml")
    machine.ok("runpod-deploy run --config foo.yaml --force-fresh")
    manifests = [json.loads(p.read_text()) for p in sorted(
        machine.project.glob("artifacts/runpod/*/runpod_deploy_pull_manifest.json"))]
    assert [m["pod_resumed"] for m in manifests] == [False, True, False]
    assert manifests[0]["pod_id"] == manifests[1]["pod_id"] != manifests[2]["pod_id"]
    stale = machine.ok("runpod-deploy ls-stale")
    assert manifests[2]["pod_id"] in stale.stdout
    assert manifests[0]["pod_id"] not in stale.stdout  # --force-fresh deleted the paused pod
    machine.ok("runpod-deploy cleanup --state-file ~/.runpod-my-benchmark-current --mode delete")
    assert machine.live_pods_named("my-benchmark") == []


def test_forensics_then_cleanup_recipe(machine: UserMachine) -> None:
    _stack(machine, "job.yaml", name="forensic", state_file="~/.runpod-deploy-current",
           body='echo "Traceback (most recent call last):"; exit 1')
    failed = machine.sh("runpod-deploy run --config job.yaml")
    assert failed.returncode != 0
    assert "runpod-deploy cleanup --state-file" in failed.stderr  # the nudge names the release
    [run_dir] = list((machine.project / "artifacts/runpod").iterdir())
    ts = run_dir.name
    summary = machine.ok(f"runpod-deploy manifest-summary "
                         f"artifacts/runpod/{ts}/runpod_deploy_pull_manifest.json")
    assert re.search(r"^failed:\s+True$", summary.stdout, re.MULTILINE)
    assert "Traceback" in machine.ok(f"tail -n 200 artifacts/runpod/{ts}/run.log").stdout
    assert machine.ok(f"runpod-deploy events artifacts/runpod/{ts}").stdout
    [pod] = machine.live_pods_named("forensic")
    assert pod["desiredStatus"] == "EXITED"
    assert pod["id"] in machine.ok("runpod-deploy ls-stale").stdout
    machine.ok(f"runpodctl pod start {pod['id']}")
    machine.ok("runpod-deploy cleanup --state-file ~/.runpod-deploy-current --mode delete")
    assert machine.live_pods_named("forensic") == []
    assert not (machine.home / ".runpod-deploy-current").exists() or json.loads(
        (machine.home / ".runpod-deploy-current").read_text())["pod"] is None

    # Step 4: bulk release after a sweep, interactive (the answer typed on stdin) and --yes.
    for index in (1, 2):
        _stack(machine, f"bulk{index}.yaml", name=f"bulk-{index}",
               state_file=f"~/.runpod-bulk-{index}", body="exit 1")
        assert machine.sh(f"runpod-deploy run --config bulk{index}.yaml").returncode != 0
    assert len(machine.live_pods_named("bulk-")) == 2
    declined = machine.sh("runpod-deploy cleanup --all-stopped", stdin="")
    assert declined.returncode == 1 and len(machine.live_pods_named("bulk-")) == 2
    machine.ok("runpod-deploy cleanup --all-stopped", stdin="y\n")
    assert machine.live_pods_named("bulk-") == []
    machine.ok("runpod-deploy cleanup --all-stopped --yes")  # nothing left: a no-op
    machine.ok("runpod-deploy ls-stale")


def test_cost_reconciliation_recipe_and_forensics_example_lines(machine: UserMachine) -> None:
    for index in (1, 2):
        _stack(machine, f"shard{index}.yaml", name=f"cost-{index}",
               state_file=f"~/.runpod-cost-{index}")
        machine.ok(f"runpod-deploy run --config shard{index}.yaml")
    latest = machine.ok("""\
        LATEST=$(ls -dt artifacts/runpod/*/ | head -1)
        runpod-deploy manifest-summary "$LATEST/runpod_deploy_pull_manifest.json"
    """)
    assert re.search(r"^job:\s+cost-2$", latest.stdout, re.MULTILINE)
    assert "est_cost_usd" in latest.stdout and "cost_cap_usd" in latest.stdout
    rollup = machine.ok('ROOT="artifacts/runpod"\nrunpod-deploy manifest-summary --root "$ROOT"')
    assert re.search(r"^manifests:\s+2$", rollup.stdout, re.MULTILINE)
    killed = machine.ok("""\
        SINCE="7d"; ROOT="artifacts/runpod"
        runpod-deploy events-query \\
          --root "$ROOT" \\
          --filter event=pod_killed_unexpected \\
          --since "$SINCE" \\
          --json
    """)
    assert killed.stdout == ""
    failovers = machine.ok("""\
        SINCE="30d"; ROOT="artifacts/runpod"
        runpod-deploy events-query \\
          --root "$ROOT" \\
          --filter event=datacenter_failover \\
          --since "$SINCE" \\
          --json
    """)
    assert all(json.loads(line)["event"] == "datacenter_failover"
               for line in failovers.stdout.splitlines())
    since = machine.ok("runpod-deploy events-query --filter event=gpu_selected --since 7d")
    assert since.stdout.count("gpu_selected") == 2


STOCK_OUT = """\
#!/usr/bin/env bash
set -euo pipefail

CONFIG=${1:-configs/runpod/headline.yaml}

if runpod-deploy validate --config "$CONFIG" --check-availability; then
  exec runpod-deploy run --config "$CONFIG"
fi

echo "==> STOCK-OUT"
for dc in $(python -c "import sys, yaml; print(' '.join(yaml.safe_load(open(sys.argv[1]))['pod']['datacenters']))" "$CONFIG"); do
  echo "    --- $dc ---"
  runpod-deploy gpu-list --datacenter "$dc" --no-prices || true
done
exit 3
"""


def test_stock_out_diagnostic_recipe(machine: UserMachine) -> None:
    _stack(machine, "configs/runpod/headline.yaml", name="stockout", root="../..",
           state_file="~/.runpod-stockout-current")
    machine.write("stock_out.sh", STOCK_OUT)
    for datacenter in ("EU-RO-1", "US-IL-1"):
        machine.sim.set_stock(datacenter, "NVIDIA RTX A4000", 0)
    try:
        out = machine.sh("bash stock_out.sh")
        assert out.returncode == 3, out.stderr
        assert "no configured GPU" in out.stderr and "STOCK-OUT" in out.stdout
        for datacenter in ("EU-RO-1", "US-IL-1"):
            assert f"--- {datacenter} ---\ndatacenter: {datacenter}\ngpu" in out.stdout
        assert "$/hr" not in out.stdout  # --no-prices: stock only
        assert re.search(r"NVIDIA RTX A4000\s+None", out.stdout)
    finally:
        for datacenter in ("EU-RO-1", "US-IL-1"):
            machine.sim.set_stock(datacenter, "NVIDIA RTX A4000", 8)
    machine.ok("bash stock_out.sh")
    assert len(list(machine.project.glob("artifacts/runpod/*/runpod_deploy_pull_manifest.json"))) == 1
