"""The monitor's attach and reclaim paths, over a fake pod (no simulator needed): a run dir's
log copy is where an attach resumes the stream, and its markers still count; a job killed by a
signal with its pod is `pod_killed` (what `run.restart` acts on), not a plain failure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from runtime import phases
from runtime.reporter import Reporter
from runtime.rundir import EventLog
from tests.runtime.test_log_watcher import FakeClock


class FakePod:
    """The job's log and state as the monitor sees them over SSH."""

    def __init__(self, clock: FakeClock, log: bytes, status: str, pod_status: str = "RUNNING") -> None:
        self.clock, self.log, self.status, self.pod = clock, log, status, pod_status
        self.started_at: int | None = None

    def run(self, command: str, *, timeout: float, check: bool = True, sensitive: bool = False) -> Any:
        return SimpleNamespace(exit_status=0, stdout=self.status + "\n", stderr="")

    def follow(self, remote_path: str, *, start_offset: int, on_line: Callable[[str], None],
               should_stop: Callable[[], bool], writer_pid: int | None = None) -> int:
        self.started_at = start_offset
        for line in self.log[start_offset:].decode().splitlines():
            on_line(line)
        while not should_stop():
            self.clock.sleep(0.25)
        return len(self.log)

    def pod_status(self) -> str:
        return self.pod


def _ctx(tmp_path: Path, pod: FakePod, clock: FakeClock) -> Any:
    spec = SimpleNamespace(run=SimpleNamespace(log_path="/w/job.log", success_marker="[job] DONE",
                                               failure_markers=("Traceback",)),
                           storage=SimpleNamespace(volume_mount="/workspace"))
    budget = phases.SpendGuard(cap_usd=10.0, hourly_usd=1.0, billing_started_mono=clock.t, max_runtime_sec=None,
                               check_interval_sec=1000.0)
    return phases.JobContext(spec=spec, shell=pod, transfer=None, events=EventLog(tmp_path / "events.jsonl"),  # type: ignore[arg-type]
                             reporter=Reporter(), clock=clock, run_dir=tmp_path, project_root=tmp_path,
                             control_dir="/root/.runpod-deploy/r1", budget=budget, pod_watch=pod)


def test_an_attach_streams_from_where_the_copy_ends_and_counts_its_markers(tmp_path: Path) -> None:
    clock = FakeClock()
    seen = b"started\n[job] DONE\n"
    pod = FakePod(clock, seen + b"after the marker\n", status="exited 0")
    copy = tmp_path / "job.log"
    copy.write_bytes(seen)
    result = phases.monitor(_ctx(tmp_path, pod, clock), log_copy=copy)
    assert result.outcome is phases.JobOutcome.SUCCEEDED
    assert pod.started_at == len(seen)
    assert copy.read_bytes() == seen + b"after the marker\n"


def test_a_fresh_monitor_keeps_a_copy_of_the_streamed_log(tmp_path: Path) -> None:
    clock = FakeClock()
    pod = FakePod(clock, b"one\ntwo\n[job] DONE\n", status="running")
    copy = tmp_path / "job.log"
    assert phases.monitor(_ctx(tmp_path, pod, clock), log_copy=copy).outcome is phases.JobOutcome.SUCCEEDED
    assert pod.started_at == 0 and copy.read_text() == "one\ntwo\n[job] DONE\n"


def test_a_job_killed_by_sigterm_with_its_pod_is_pod_killed(tmp_path: Path) -> None:
    clock = FakeClock()
    pod = FakePod(clock, b"attempt 1\n", status="exited 143", pod_status="EXITED")
    result = phases.monitor(_ctx(tmp_path, pod, clock))
    assert result.outcome is phases.JobOutcome.POD_KILLED and result.exit_code == 143


def test_a_job_killed_by_a_signal_on_a_live_pod_is_a_failure(tmp_path: Path) -> None:
    clock = FakeClock()
    pod = FakePod(clock, b"attempt 1\n", status="exited 137")
    assert phases.monitor(_ctx(tmp_path, pod, clock)).outcome is phases.JobOutcome.FAILED
