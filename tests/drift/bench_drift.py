"""The figure for docs/drift.md: `drift` over many stacks (not part of the suite).

    .venv/bin/python tests/drift/bench_drift.py [--stacks 1000]

Generates the stacks in a temp dir, each with a state recording a stopped pod on a fresh
simulator, then times `check_drift` in process and the `runpod-deploy drift` command end to end,
and prints the provider calls made.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parents[2]), str(Path(__file__).parents[2] / "src")]

from runpod_deploy.api import load_stack
from runpod_sim.testing import FAST_KNOBS, Simulator
from runtime.drift_report import check_drift
from runtime.providers.api import ApiProvider, ApiSettings
from tests.drift.drift_world import GPU, World


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stacks", type=int, default=1000)
    count = parser.parse_args().stacks
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sim = Simulator.start(root / "sim", **FAST_KNOBS)
        try:
            env = {**sim.env, "RUNPOD_DEPLOY_STATE_DIR": str(root / "state")}
            world = World(sim=sim, provider=ApiProvider(ApiSettings.from_env(env)), root=root,
                          env=env)
            sim.set_stock("EU-RO-1", GPU, count + 10)
            started = time.monotonic()
            for i in range(count):
                world.in_sync(f"s{i:04d}")
            print(f"set up {count} stacks with stopped pods in {time.monotonic() - started:.1f}s")
            provider = ApiProvider(ApiSettings.from_env(env))
            started = time.monotonic()
            report = check_drift([root / "stacks"], load=partial(load_stack, env=env),
                                 provider=provider)
            took = time.monotonic() - started
            print(f"check_drift: {took:.2f}s for {len(report.stacks)} stacks, "
                  f"{provider.calls} provider calls, drift={report.has_drift}")
            exe = Path(sys.executable).with_name("runpod-deploy")
            started = time.monotonic()
            done = subprocess.run([str(exe), "drift", str(root / "stacks"), "--provider", "api",
                                   "--detailed-exitcode"], env={**os.environ, **env},
                                  capture_output=True, text=True, check=False)
            print(f"runpod-deploy drift (subprocess): {time.monotonic() - started:.2f}s, "
                  f"exit {done.returncode}")
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
