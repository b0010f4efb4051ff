"""Every shell and Python block of docs/recipes runs, in order, against a fresh simulator.

Each recipe runs as one bash script (`set -euo pipefail`) in its own copy of the repo's
`stacks/`, with its own RUNPOD_SIM_HOME and RUNPOD_DEPLOY_STATE_DIR; a Python block becomes a
file the script runs with the venv's python. A failing command fails the test with the output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.conftest import DOCS, REPO, code_blocks

RECIPES = sorted(p for p in (DOCS / "recipes").glob("*.md") if p.name != "index.md")
VENV_BIN = Path(sys.executable).parent


def recipe_script(page: Path, workdir: Path) -> str:
    lines = ["set -euo pipefail"]
    for number, block in enumerate(code_blocks(page)):
        lines.append(f"echo '### {block.where}' >&2")
        if block.language == "bash":
            lines.append(block.text)
        elif block.language == "python":
            script = workdir / f"block_{number}.py"
            script.write_text(block.text, encoding="utf-8")
            lines.append(f"python {script}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    shutil.copytree(REPO / "stacks", tmp_path / "stacks", ignore=shutil.ignore_patterns("artifacts"))
    try:
        yield tmp_path
    finally:
        subprocess.run([str(VENV_BIN / "runpod-sim"), "down", "--home", str(tmp_path / "sim")],
                       capture_output=True, check=False)


def test_every_recipe_has_runnable_blocks() -> None:
    assert len(RECIPES) == 6
    for page in RECIPES:
        assert any(b.language == "bash" for b in code_blocks(page)), page.name


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("page", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_runs_on_the_simulator(page: Path, workdir: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RUNPOD_")}
    env.update(RUNPOD_SIM_HOME=str(workdir / "sim"),
               RUNPOD_DEPLOY_STATE_DIR=str(workdir / "state"),
               PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    out = subprocess.run(["bash", "-c", recipe_script(page, workdir)], cwd=workdir, env=env,
                         capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, (f"{page.name} failed (exit {out.returncode})\n"
                                 f"--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-5000:]}")
