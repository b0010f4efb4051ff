"""A project outside git is an ordinary project (issue 12 item 7): capturing its git state gives
nulls without a false error line, while a real git failure is still reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RUNPOD_DEPLOY = str(Path(sys.executable).with_name("runpod-deploy"))


def capture_env(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`runpod-deploy capture-env` as a user runs it, never seeing a repository above `project`."""
    return subprocess.run(
        [RUNPOD_DEPLOY, "capture-env", "--project-root", str(project)],
        check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "GIT_CEILING_DIRECTORIES": str(project.parent), **env},
    )


def test_a_project_outside_git_prints_no_error_line(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    done = capture_env(project, LANG="de_DE.UTF-8")
    assert done.returncode == 0
    assert done.stderr == ""
    assert json.loads(done.stdout)["local_git_sha"] is None


def test_a_repository_without_a_commit_yet_prints_no_error_line(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    done = capture_env(project)
    assert done.returncode == 0 and done.stderr == ""
    assert json.loads(done.stdout)["local_git_sha"] is None


def test_a_git_that_cannot_run_is_still_a_warning(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "runpod_deploy", "capture-env", "--project-root", str(project)],
        check=False, capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": str(empty_bin)},
    )
    assert done.returncode == 0
    assert "git is not on PATH" in done.stderr
