"""The on-pod self-stop waiter and the attempt variable, on a real local bash.

A stand-in `runpodctl` on PATH records how it was called, and a NUL-separated file stands in for
`/proc/1/environ`; the same snippets run against the simulator in tests/sim/test_pod_self_stop.py.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from runtime import jobscripts

POD_ID = "abcdefghijklmn"
POD_KEY = "rpa_PODSECRET0123"


@pytest.fixture
def pod(tmp_path: Path) -> dict[str, Path]:
    """A fake pod: container env file, a recording runpodctl, and paths for one run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "runpodctl-calls"
    ctl = bin_dir / "runpodctl"
    ctl.write_text(f'#!/bin/sh\necho "$* key=$RUNPOD_API_KEY" >> {calls}\necho "{{}}"\n')
    ctl.chmod(0o755)
    environ = tmp_path / "environ"
    environ.write_bytes(f"PATH=/usr/bin\0RUNPOD_POD_ID={POD_ID}\0RUNPOD_API_KEY={POD_KEY}\0".encode())
    return {"bin": bin_dir, "calls": calls, "environ": environ, "script": tmp_path / "job.sh",
            "log": tmp_path / "run.log", "control": tmp_path / "ctl"}


def _sh(command: str, bin_dir: Path) -> str:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("RUNPOD_POD_ID", None)
    env.pop("RUNPOD_API_KEY", None)
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True,
                          timeout=30, env=env).stdout


def _launch(pod: dict[str, Path], body: str, **options: object) -> None:
    pod["script"].write_text(body)
    _sh(jobscripts.launch_command(script_path=str(pod["script"]), log_path=str(pod["log"]),
                                  control_dir=str(pod["control"]),
                                  container_env_path=str(pod["environ"]), **options),  # type: ignore[arg-type]
        pod["bin"])


def _wait_gone(pid_file: Path, timeout: float = 20) -> None:
    """Until the process named in `pid_file` has exited (the waiter's work is then done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.exists():
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    raise AssertionError(f"{pid_file.name} still running")


def test_unacknowledged_end_stops_the_pod_with_the_container_env(pod: dict[str, Path]) -> None:
    _launch(pod, "echo work; exit 3\n", self_stop_after_sec=1, self_stop_poll_sec=0.1)
    _wait_gone(pod["control"] / "self_stop.pid")
    assert pod["calls"].read_text() == f"pod stop {POD_ID} key={POD_KEY}\n"
    log = pod["log"].read_text()
    assert log.startswith("work\n")
    assert f"{jobscripts.SELF_STOP_MARKER} the job ended and no client finished the run within 1s" in log
    assert POD_KEY not in log


def test_finished_marker_in_time_keeps_the_pod_running(pod: dict[str, Path]) -> None:
    _launch(pod, "exit 0\n", self_stop_after_sec=30, self_stop_poll_sec=0.1)
    status = jobscripts.parse_status(_sh(jobscripts.status_command(control_dir=str(pod["control"])), pod["bin"]))
    while status[0] != "exited":
        time.sleep(0.05)
        status = jobscripts.parse_status(_sh(jobscripts.status_command(control_dir=str(pod["control"])), pod["bin"]))
    _sh(jobscripts.mark_finished_command(control_dir=str(pod["control"])), pod["bin"])
    _wait_gone(pod["control"] / "self_stop.pid")
    assert not pod["calls"].exists()
    assert jobscripts.SELF_STOP_MARKER not in pod["log"].read_text()


def test_deadline_end_is_an_end_too(pod: dict[str, Path]) -> None:
    _launch(pod, "sleep 300\n", self_stop_after_sec=0, self_stop_poll_sec=0.1)
    _sh(jobscripts.watchdog_command(control_dir=str(pod["control"]), log_path=str(pod["log"]),
                                    deadline_sec=1, grace_sec=1), pod["bin"])
    _wait_gone(pod["control"] / "self_stop.pid")
    log = pod["log"].read_text()
    assert jobscripts.WATCHDOG_MARKER in log and jobscripts.SELF_STOP_MARKER in log
    assert pod["calls"].read_text() == f"pod stop {POD_ID} key={POD_KEY}\n"


def test_a_failing_stop_is_retried_then_reported(pod: dict[str, Path]) -> None:
    (pod["bin"] / "runpodctl").write_text(
        f'#!/bin/sh\necho "$*" >> {pod["calls"]}\necho \'{{"error":"failed to stop pod: 403"}}\' >&2\nexit 1\n')
    _launch(pod, "exit 0\n", self_stop_after_sec=0, self_stop_poll_sec=0.1)
    _wait_gone(pod["control"] / "self_stop.pid")
    assert pod["calls"].read_text().splitlines() == [f"pod stop {POD_ID}", f"stop pod {POD_ID}"] * 3
    assert f'{jobscripts.SELF_STOP_MARKER} stopping pod {POD_ID} failed: {{"error":"failed to stop pod: 403"}}' \
        in pod["log"].read_text()


def test_a_v1_runpodctl_is_asked_with_its_verb_noun_command(pod: dict[str, Path]) -> None:
    (pod["bin"] / "runpodctl").write_text(
        f'#!/bin/sh\necho "$* key=$RUNPOD_API_KEY" >> {pod["calls"]}\n'
        '[ "$1" = stop ] || { echo "Error: unknown command \\"pod\\" for \\"runpodctl\\"" >&2; exit 1; }\n')
    _launch(pod, "exit 0\n", self_stop_after_sec=0, self_stop_poll_sec=0.1)
    _wait_gone(pod["control"] / "self_stop.pid")
    assert pod["calls"].read_text().splitlines() == [f"pod stop {POD_ID} key={POD_KEY}",
                                                     f"stop pod {POD_ID} key={POD_KEY}"]
    assert "failed" not in pod["log"].read_text()


def test_no_pod_id_anywhere_is_reported_not_guessed(pod: dict[str, Path]) -> None:
    pod["environ"].write_bytes(b"PATH=/usr/bin\0")
    _launch(pod, "exit 0\n", self_stop_after_sec=0, self_stop_poll_sec=0.1)
    _wait_gone(pod["control"] / "self_stop.pid")
    assert not pod["calls"].exists()
    assert "cannot stop the pod: no RUNPOD_POD_ID" in pod["log"].read_text()


def test_the_exit_code_outlives_the_control_dir_when_asked(pod: dict[str, Path], tmp_path: Path) -> None:
    durable = tmp_path / "volume" / "run 1" / "exit_code"
    durable.parent.mkdir(parents=True)
    durable.write_text("99\n")  # an earlier run's: the launch forgets it
    _launch(pod, "exit 3\n", self_stop_after_sec=0, self_stop_poll_sec=0.1,
            durable_exit_code_path=str(durable))
    _wait_gone(pod["control"] / "self_stop.pid")
    for name in ("exit_code", "pid"):
        (pod["control"] / name).unlink()  # what a stop does to the container disk
    status = _sh(jobscripts.status_command(control_dir=str(pod["control"]),
                                           durable_exit_code_path=str(durable)), pod["bin"])
    assert jobscripts.parse_status(status) == ("exited", 3)
    assert jobscripts.parse_status(_sh(jobscripts.status_command(control_dir=str(pod["control"])),
                                       pod["bin"])) == ("unknown", None)


def test_the_watchdogs_exit_code_is_made_durable_by_the_waiter(pod: dict[str, Path], tmp_path: Path) -> None:
    durable = tmp_path / "exit_code"
    # A job that ignores TERM: the watchdog's KILL takes the wrapper too, so only the
    # watchdog's 137 is recorded, and only the waiter can copy it.
    _launch(pod, "trap '' TERM; sleep 300\n", self_stop_after_sec=0, self_stop_poll_sec=0.1,
            durable_exit_code_path=str(durable))
    _sh(jobscripts.watchdog_command(control_dir=str(pod["control"]), log_path=str(pod["log"]),
                                    deadline_sec=1, grace_sec=1), pod["bin"])
    _wait_gone(pod["control"] / "self_stop.pid")
    assert durable.read_text().strip() == (pod["control"] / "exit_code").read_text().strip() != ""


def test_self_stop_is_off_by_default(pod: dict[str, Path]) -> None:
    command = jobscripts.launch_command(script_path="/w/job.sh", log_path="/w/run.log", control_dir="/c")
    assert "runpodctl" not in command and "self_stop.pid" not in command


def test_the_job_sees_its_attempt_number_and_user_exports_cannot_hide_it(pod: dict[str, Path]) -> None:
    _launch(pod, 'echo "attempt=$RUNPOD_DEPLOY_ATTEMPT"\n', attempt=2,
            env_prefix="export RUNPOD_DEPLOY_ATTEMPT=9;")
    _wait_gone(pod["control"] / "pid")
    assert pod["log"].read_text() == "attempt=2\n"


def test_the_first_attempt_is_1_by_default(pod: dict[str, Path]) -> None:
    _launch(pod, 'echo "attempt=$RUNPOD_DEPLOY_ATTEMPT"\n')
    _wait_gone(pod["control"] / "pid")
    assert pod["log"].read_text() == "attempt=1\n"


@pytest.mark.parametrize("options", [{"attempt": 0}, {"self_stop_after_sec": -1},
                                     {"self_stop_after_sec": 5, "self_stop_poll_sec": 0}])
def test_nonsense_options_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        jobscripts.launch_command(script_path="/w/job.sh", log_path="/w/run.log", control_dir="/c", **options)  # type: ignore[arg-type]


def test_mark_finished_is_idempotent(tmp_path: Path) -> None:
    command = jobscripts.mark_finished_command(control_dir=str(tmp_path / "ctl dir"))
    subprocess.run(["bash", "-c", f"{command} && {command}"], check=True)
    assert Path(jobscripts.finished_marker_path(str(tmp_path / "ctl dir"))).is_file()
