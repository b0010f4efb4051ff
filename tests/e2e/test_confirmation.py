"""The confirmation, as a user meets it: `apply` asks and reads the answer from standard input
whatever it is (a terminal, a pipe, nothing); `run` never asks; what runs is what was shown."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Project

pytestmark = pytest.mark.sim

CLI = str(Path(sys.executable).with_name("runpod-deploy"))
PROMPT = b"Apply this plan?"


def _run_dirs(project: Project) -> list[Path]:
    runs = project.root / "artifacts" / "runpod"
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.exists() else []


def _cli(project: Project, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(  # type: ignore[call-overload]
        [CLI, *args, "--provider", "api"], env=project.env, cwd=project.root,
        capture_output=True, text=True, timeout=180, check=False, **kwargs)
    return done


def _read_until(fd: int, wanted: bytes, seen: bytearray) -> None:
    """Read the pty until `wanted` shows (or the program ends: then the assertion says why)."""
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], 120)
        assert ready, f"no prompt; output so far: {seen.decode(errors='replace')[-2000:]}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            chunk = b""
        assert chunk, f"the program ended without asking: {seen.decode(errors='replace')[-2000:]}"
        seen += chunk


def _drain(fd: int, seen: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return
        if not chunk:
            return
        seen += chunk


def _apply_at_a_terminal(project: Project, config: Path,
                         at_prompt: Callable[[str], None]) -> tuple[int, str, str]:
    """Run `apply` on a real pty, call `at_prompt(output so far)` when it asks, answer "y";
    returns (exit code, what was shown before the answer, everything shown)."""
    controller, terminal = os.openpty()
    child = subprocess.Popen([CLI, "apply", "--plain", "--config", str(config), "--provider", "api"],
                             stdin=terminal, stdout=terminal, stderr=terminal, env=project.env,
                             cwd=project.root)
    os.close(terminal)
    seen = bytearray()
    try:
        _read_until(controller, PROMPT, seen)
        shown = seen.decode(errors="replace")
        at_prompt(shown)
        os.write(controller, b"y\n")
        _drain(controller, seen)
        code = child.wait(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
        os.close(controller)
    return code, shown, seen.decode(errors="replace")


def test_a_stack_edited_while_apply_waits_at_the_terminal_prompt_never_runs(project: Project) -> None:
    config = project.stack({"run": {"body": "echo 'ORIGINAL job'\necho '[job] DONE'\n"}})

    def edit(shown: str) -> None:
        assert "ORIGINAL job" in shown  # the plan shows the rendered command it will run
        config.write_text(config.read_text().replace("ORIGINAL job", "EDITED job"))

    code, _, output = _apply_at_a_terminal(project, config, edit)
    assert code != 0, output[-2000:]
    assert "changed after the plan was shown" in output
    assert project.live_pods() == []
    assert _run_dirs(project) == [], "a refused apply leaves no run dir"
    assert project.state(config).pod is None


def test_the_job_confirmed_at_the_terminal_is_the_job_that_runs(project: Project) -> None:
    config = project.stack({"run": {"body": "echo 'CONFIRMED job {run_id}'\necho '[job] DONE'\n"}})
    code, shown, output = _apply_at_a_terminal(project, config, lambda _shown: None)
    assert code == 0, output[-2000:]
    [run_dir] = _run_dirs(project)
    log = (run_dir / "job.log").read_text()
    # The run id the plan showed (rendered once, with the reserved run dir) is the one that ran.
    assert f"CONFIRMED job e2e-{run_dir.name}" in log
    assert f"CONFIRMED job e2e-{run_dir.name}" in shown


def test_no_at_the_prompt_from_a_pipe_creates_nothing(project: Project) -> None:
    config = project.stack()
    done = _cli(project, "apply", "--config", str(config), input="n\n")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Apply this plan?" in done.stderr and "Cancelled: nothing was changed." in done.stderr
    assert project.live_pods() == []
    assert _run_dirs(project) == []
    assert project.state(config).pod is None


def test_yes_from_a_pipe_applies(project: Project) -> None:
    config = project.stack()
    done = _cli(project, "apply", "--config", str(config), input="y\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Run succeeded" in done.stderr
    assert len(_run_dirs(project)) == 1


def test_apply_with_no_answer_on_stdin_refuses_and_names_yes(project: Project) -> None:
    config = project.stack()
    done = _cli(project, "apply", "--config", str(config), stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert "--yes" in done.stderr and "nothing was changed" in done.stderr
    assert "Traceback" not in done.stderr
    assert project.live_pods() == []
    assert _run_dirs(project) == []


def test_run_never_asks(project: Project) -> None:
    config = project.stack()
    done = _cli(project, "run", "--config", str(config), stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Apply this plan?" not in done.stderr
    assert len(_run_dirs(project)) == 1
