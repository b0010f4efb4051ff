"""`./dev demo` (`python -m runpod_deploy.demo`): stacks/hello.yaml end to end on the simulator.

It runs the same commands a user types — validate, plan, apply, manifest-summary — against a
throw-away local RunPod (its own home, state dir and SSH key, all in a temp directory), shows
what each prints, then stops the simulator. Nothing touches the user's RunPod account or keys.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _step(title: str, argv: list[str], env: dict[str, str]) -> int:
    print(f"\n$ {' '.join(shlex.quote(a) for a in argv)}    # {title}", flush=True)
    return subprocess.run(argv, env=env, cwd=ROOT, timeout=600, check=False).returncode


def main() -> int:
    stack = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "stacks" / "hello.yaml"
    exe = str(Path(sys.executable).with_name("runpod-deploy"))
    with tempfile.TemporaryDirectory(prefix="runpod-deploy-demo-") as scratch:
        env = {
            **os.environ,
            "RUNPOD_SIM_HOME": str(Path(scratch) / "sim"),
            "RUNPOD_DEPLOY_STATE_DIR": str(Path(scratch) / "state"),
        }
        print("runpod-deploy demo: a local RunPod simulator (real sshd pods on loopback), no account.")
        try:
            for title, argv in (
                ("check the stack", [exe, "validate", "--config", str(stack)]),
                ("preview: what apply will do and what it may cost", [exe, "plan", "--config", str(stack), "--local"]),
            ):
                if _step(title, argv, env) != 0:
                    return 1
            code = _step(
                "do it: create the pod, run the job, pull the results, delete the pod",
                [exe, "apply", "--config", str(stack), "--local", "--yes", "--print-run-dir"],
                env,
            )
            runs = sorted((stack.parent / "artifacts" / "runpod").glob("*/runpod_deploy_pull_manifest.json"))
            if runs:
                _step("what the run left behind", [exe, "manifest-summary", str(runs[-1])], env)
                print(f"\nRun dir: {runs[-1].parent}")
                for item in sorted(runs[-1].parent.iterdir()):
                    print(f"  {item.name}")
            _step("the simulator's pods and bill afterwards", [exe, "sim", "status"], env)
            return code
        finally:
            subprocess.run([exe, "sim", "down"], env=env, cwd=ROOT, capture_output=True, timeout=60,
                           check=False)  # best effort: the scratch dir goes anyway


if __name__ == "__main__":
    sys.exit(main())
