"""The error of a run that finds its stack instance locked says who holds it (command line and
variables), and that other variables are an instance of their own."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from runpod_deploy.api import load_stack
from runtime.statestore import StateStore
from tests.e2e.conftest import Project, project, wait_for
from tests.sweep.helpers import cli, cli_env, write_template

pytestmark = pytest.mark.sim
__all__ = ["project"]


def test_the_locked_stack_message_names_the_holders_command_and_variables(project: Project) -> None:
    config = write_template(project)
    holder_args = ["run", "--config", str(config), "--var", "seed=1", "--var", "sleep=120"]
    holder = subprocess.Popen([sys.executable, "-m", "runpod_deploy", *holder_args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=cli_env(project), cwd=project.root)
    stack = load_stack(config, cli_vars={"seed": "1", "sleep": "120"}, env=project.env)
    try:
        wait_for(lambda: StateStore(stack.state_path, stack.identity).holder() is not None, 60)
        same = cli(project, "run", "--config", str(config), "--var", "sleep=120", "--var", "seed=1")
        other = cli(project, "run", "--config", str(config), "--var", "seed=2")
    finally:
        holder.send_signal(signal.SIGINT)
        holder.communicate(timeout=120)
    assert same.returncode == 1
    message = same.stderr
    assert f"pid {holder.pid}" in message
    assert " ".join(holder_args) in message, message  # the holder's command line, as typed
    assert "with variables seed=1, sleep=120" in message
    assert "other variables is an instance of its own" in message
    assert "same variables is the same instance and must wait" in message
    assert "Traceback" not in message
    assert other.returncode == 0, other.stderr[-2000:]  # seed=2 is not blocked by seed=1
    assert project.live_pods() == []
