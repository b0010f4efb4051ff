"""The job-control snippets behave on a real bash exactly as they will on a pod."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from runtime import jobscripts


def _sh(command: str) -> str:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True, timeout=30).stdout


def _wait_status(control: Path, want: str, timeout: float = 10) -> tuple[str, int | None]:
    deadline = time.monotonic() + timeout
    while True:
        state = jobscripts.parse_status(_sh(jobscripts.status_command(control_dir=str(control))))
        if state[0] == want or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def test_launch_detaches_records_pid_and_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "job dir" / "job.sh"
    script.parent.mkdir()
    script.write_text("echo hello; echo '[job] DONE'; exit 3\n")
    log, control = tmp_path / "logs" / "run.log", tmp_path / "ctl"
    pid = _sh(jobscripts.launch_command(script_path=str(script), log_path=str(log), control_dir=str(control)))
    assert pid.strip().isdigit()
    assert _wait_status(control, "exited") == ("exited", 3)
    assert log.read_text() == "hello\n[job] DONE\n"


def test_launch_truncates_an_old_log_so_old_markers_cannot_count(tmp_path: Path) -> None:
    script, log, control = tmp_path / "job.sh", tmp_path / "run.log", tmp_path / "ctl"
    script.write_text("echo new\n")
    log.write_text("[job] DONE from the previous run\n")
    _sh(jobscripts.launch_command(script_path=str(script), log_path=str(log), control_dir=str(control)))
    _wait_status(control, "exited")
    assert log.read_text() == "new\n"


def test_running_job_reports_running_and_stop_ends_its_whole_group(tmp_path: Path) -> None:
    script, log, control = tmp_path / "job.sh", tmp_path / "run.log", tmp_path / "ctl"
    script.write_text("sleep 300 & wait\n")
    _sh(jobscripts.launch_command(script_path=str(script), log_path=str(log), control_dir=str(control)))
    assert _wait_status(control, "running")[0] == "running"
    _sh(jobscripts.stop_command(control_dir=str(control), grace_sec=2))
    status, code = _wait_status(control, "exited")
    assert status == "exited" and code != 0
    pgid = (control / "pid").read_text().strip()
    alive = subprocess.run(["pgrep", "-g", pgid], capture_output=True, text=True, check=False)
    assert alive.stdout.strip() == "", "a process of the job survived the stop"


def test_watchdog_ends_the_job_at_the_deadline_and_says_so_in_the_log(tmp_path: Path) -> None:
    script, log, control = tmp_path / "job.sh", tmp_path / "run.log", tmp_path / "ctl"
    script.write_text("echo started; sleep 300\n")
    _sh(jobscripts.launch_command(script_path=str(script), log_path=str(log), control_dir=str(control)))
    _sh(jobscripts.watchdog_command(control_dir=str(control), log_path=str(log), deadline_sec=1, grace_sec=1))
    status, code = _wait_status(control, "exited", timeout=15)
    assert status == "exited" and code != 0
    assert jobscripts.WATCHDOG_MARKER in log.read_text()


def test_watchdog_is_quiet_when_the_job_finished_first(tmp_path: Path) -> None:
    script, log, control = tmp_path / "job.sh", tmp_path / "run.log", tmp_path / "ctl"
    script.write_text("echo quick\n")
    _sh(jobscripts.launch_command(script_path=str(script), log_path=str(log), control_dir=str(control)))
    _sh(jobscripts.watchdog_command(control_dir=str(control), log_path=str(log), deadline_sec=1, grace_sec=1))
    assert _wait_status(control, "exited") == ("exited", 0)
    time.sleep(1.5)
    assert jobscripts.WATCHDOG_MARKER not in log.read_text()


def test_parse_status_rejects_garbage() -> None:
    assert jobscripts.parse_status("") == ("unknown", None)
    assert jobscripts.parse_status("exited x") == ("unknown", None)
    assert jobscripts.parse_status("exited 0\n") == ("exited", 0)
