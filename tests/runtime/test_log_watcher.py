"""How a run ends, decided from log lines, the job's exit and the guards (no pod needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runtime.jobscripts import WATCHDOG_MARKER
from runtime.phases import JobOutcome, LogWatcher


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _watcher(clock: FakeClock) -> LogWatcher:
    return LogWatcher(success_marker="[job] DONE", failure_markers=("Traceback", "Killed"), clock=clock)


def test_success_marker_ends_the_run_at_once(clock: FakeClock) -> None:
    watcher = _watcher(clock)
    watcher.on_line("step 1")
    assert not watcher.finished()
    watcher.on_line("[job] DONE in 3s")
    assert watcher.finished()
    assert watcher.result().outcome is JobOutcome.SUCCEEDED
    assert watcher.result().lines_seen == 2


def test_failure_marker_waits_for_the_grace_then_fails(clock: FakeClock) -> None:
    watcher = _watcher(clock)
    assert watcher.on_line("Traceback (most recent call last):") == "Traceback"
    assert not watcher.finished()
    clock.sleep(10.5)
    assert watcher.finished()
    result = watcher.result()
    assert result.outcome is JobOutcome.FAILED and "Traceback" in result.detail


def test_success_after_a_handled_traceback_still_wins(clock: FakeClock) -> None:
    watcher = _watcher(clock)
    watcher.on_line("Traceback (handled, retrying)")
    clock.sleep(2)
    watcher.on_line("[job] DONE")
    assert watcher.finished() and watcher.result().outcome is JobOutcome.SUCCEEDED


def test_only_the_first_failure_marker_is_reported(clock: FakeClock) -> None:
    watcher = _watcher(clock)
    assert watcher.on_line("Killed") == "Killed"
    assert watcher.on_line("Traceback") is None


def test_exit_without_marker_fails_after_the_drain(clock: FakeClock) -> None:
    watcher = _watcher(clock)
    watcher.job_exited(2)
    assert not watcher.finished(), "the follower gets time to deliver the last lines"
    clock.sleep(1.1)
    assert watcher.finished()
    result = watcher.result()
    assert result.outcome is JobOutcome.FAILED and result.exit_code == 2
    assert "without the success marker" in result.detail


def test_marker_delivered_during_the_drain_turns_exit_into_success(clock: FakeClock) -> None:
    watcher = _watcher(clock)
    watcher.job_exited(0)
    watcher.on_line("[job] DONE")
    assert watcher.finished() and watcher.result().outcome is JobOutcome.SUCCEEDED
    assert watcher.result().exit_code == 0


def test_watchdog_line_means_runtime_exceeded(clock: FakeClock) -> None:
    watcher = _watcher(clock)
    watcher.on_line(f"{WATCHDOG_MARKER} deadline of 60s reached")
    assert watcher.finished() and watcher.result().outcome is JobOutcome.RUNTIME_EXCEEDED


def test_first_guard_verdict_stands(clock: FakeClock) -> None:
    watcher = _watcher(clock)
    watcher.decide(JobOutcome.BUDGET_EXCEEDED, "cap")
    watcher.decide(JobOutcome.POD_KILLED, "later")
    assert watcher.result().outcome is JobOutcome.BUDGET_EXCEEDED


def test_stream_ending_undecided_is_a_failure(clock: FakeClock) -> None:
    result = _watcher(clock).result()
    assert result.outcome is JobOutcome.FAILED and "stream ended" in result.detail
