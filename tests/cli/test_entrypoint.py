"""The installed console script starts, lists its commands and exits 0, as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("runpod-deploy")
    return [str(script)] if script.exists() else [shutil.which("runpod-deploy") or "runpod-deploy"]


def test_help_lists_commands_and_exits_zero() -> None:
    done = subprocess.run([*_cli(), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Usage: runpod-deploy" in done.stdout
    assert "version" in done.stdout


def test_python_dash_m_is_the_same_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runpod_deploy", "version"], capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("runpod-deploy ")


def test_unknown_command_is_a_usage_error_without_traceback() -> None:
    done = subprocess.run([*_cli(), "no-such-command"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
