"""runpod-deploy benchmarks: medians of repeated runs, as ratios against a baseline measured
in the same go (never absolute thresholds, which depend on the machine).

    ./dev bench                 # every scenario, table + bench/results/latest.json
    ./dev bench startup drift   # only these scenarios
    ./dev bench --repeat 9

Each scenario returns rows of (name, median seconds, baseline name, extra figures). Scenarios
that need the original runpod-deploy 0.8.4 install it into .cache/orig-venv (PyPI) and skip
with a note when that is not possible.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
VENV_BIN = Path(sys.executable).parent


@dataclass
class Row:
    scenario: str
    name: str
    median_sec: float
    samples: list[float]
    baseline: str | None = None
    ratio: float | None = None
    extra: dict[str, object] = field(default_factory=dict)


def timed(argv: list[str], *, repeat: int, env: dict[str, str] | None = None, cwd: Path = ROOT) -> list[float]:
    """Wall time of a whole process, `repeat` times (one warm-up run first, discarded)."""
    samples = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, env=env, cwd=cwd, timeout=600)
        elapsed = time.perf_counter() - start
        if done.returncode not in (0, 2):
            raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr.decode()[-400:]}")
        if i:
            samples.append(elapsed)
    return samples


def original_venv() -> Path | None:
    """The original runpod-deploy 0.8.4 in its own venv (its package name collides with ours)."""
    venv = CACHE / "orig-venv"
    exe = venv / "bin" / "runpod-deploy"
    if exe.exists():
        return exe
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--ignore-requires-python", "runpod-deploy==0.8.4"],
            check=True,
            timeout=300,
            capture_output=True,
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return exe if exe.exists() else None


def scenario_startup(repeat: int) -> list[Row]:
    """1. CLI start-up: `--help` and `plan` on stacks/hello.yaml, against a bare typer program."""
    rows = []
    floor = timed([sys.executable, str(ROOT / "bench" / "floor_typer.py"), "--help"], repeat=repeat)
    rows.append(Row("startup", "minimal typer --help (floor)", statistics.median(floor), floor))
    ours = timed([str(VENV_BIN / "runpod-deploy"), "--help"], repeat=repeat)
    rows.append(Row("startup", "runpod-deploy --help", statistics.median(ours), ours, "minimal typer --help (floor)"))
    original = original_venv()
    if original is not None:
        theirs = timed([str(original), "--help"], repeat=repeat)
        rows.append(Row("startup", "original 0.8.4 --help", statistics.median(theirs), theirs, "minimal typer --help (floor)"))
    hello = ROOT / "stacks" / "hello.yaml"
    if hello.exists():
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
        env["RUNPOD_DEPLOY_STATE_DIR"] = str(CACHE / "bench-state")
        env["PATH"] = "/usr/bin:/bin"  # no runpodctl: the plan of a stack with no pod
        plan = timed([str(VENV_BIN / "runpod-deploy"), "plan", "--config", str(hello)], repeat=repeat, env=env)
        rows.append(Row("startup", "runpod-deploy plan hello.yaml (no pod)", statistics.median(plan), plan, "minimal typer --help (floor)"))
    return rows


SCENARIOS: dict[str, Callable[[int], list[Row]]] = {"startup": scenario_startup}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], default=[])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    chosen = args.scenarios or list(SCENARIOS)
    rows: list[Row] = []
    for name in chosen:
        rows.extend(SCENARIOS[name](args.repeat))
    by_name = {row.name: row for row in rows}
    for row in rows:
        if row.baseline and row.baseline in by_name:
            row.ratio = round(row.median_sec / by_name[row.baseline].median_sec, 3)
    width = max(len(row.name) for row in rows)
    print(f"{'scenario':<10} {'what':<{width}} {'median':>9} {'ratio':>7}  baseline / extra")
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        tail = row.baseline or ""
        if row.extra:
            tail += (" " if tail else "") + " ".join(f"{k}={v}" for k, v in row.extra.items())
        print(f"{row.scenario:<10} {row.name:<{width}} {row.median_sec * 1000:>7.0f}ms {ratio:>7}  {tail}")
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps({"machine": machine, "rows": [asdict(r) for r in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
