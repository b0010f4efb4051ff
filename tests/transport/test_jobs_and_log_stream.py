"""A detached job outlives SSH; its log streams live, across dropped connections, exactly once."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.errors import SshError
from runtime.ssh import FollowResult, SshSession
from tests.transport.transport_sshd import SshServer

OpenSession = Callable[..., SshSession]


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _job(tmp_path: Path, body: str) -> tuple[str, str, str]:
    script = tmp_path / "job.sh"
    script.write_text(body)
    return str(script), str(tmp_path / "run.log"), str(tmp_path / "control")


def test_detached_job_survives_losing_every_ssh_session(
    open_session: OpenSession, sshd: SshServer, tmp_path: Path
) -> None:
    script, log, control = _job(tmp_path, "for i in $(seq 1 8); do echo tick $i; sleep 0.1; done\n")
    session = open_session()
    pid = session.launch_detached(script, log, control_dir=control, env_prefix="")
    assert session.is_alive(pid)
    assert sshd.kill_sessions() >= 1
    assert session.is_alive(pid)  # asked over a new connection: the job did not notice
    _wait_for(lambda: (Path(control) / "exit_code").exists())
    assert (Path(control) / "exit_code").read_text().strip() == "0"
    assert Path(log).read_text().splitlines() == [f"tick {i}" for i in range(1, 9)]
    assert not session.is_alive(pid)
    assert session.connections_opened == 2


def test_follow_survives_three_drops_without_losing_or_repeating_a_line(
    open_session: OpenSession, sshd: SshServer, tmp_path: Path
) -> None:
    # 90 lines over ~2.7 s; line 45 is written in two halves to cross read boundaries.
    script, log, control = _job(
        tmp_path,
        "for i in $(seq 1 90); do\n"
        '  if [ $i = 45 ]; then printf "line 45 first half, "; sleep 0.05; printf "second half\\n"\n'
        '  else echo "line $i"; fi\n'
        "  sleep 0.03\n"
        "done\n",
    )
    session = open_session()
    pid = session.launch_detached(script, log, control_dir=control)
    received: list[str] = []
    outcome: list[FollowResult] = []
    follower = threading.Thread(
        target=lambda: outcome.append(
            session.follow(log, on_line=received.append, should_stop=lambda: False, writer_pid=pid)
        )
    )
    follower.start()
    for threshold in (15, 40, 65):
        _wait_for(lambda: len(received) >= threshold)  # noqa: B023 - evaluated inside the loop
        assert sshd.kill_sessions() >= 1
    follower.join(timeout=20)

    expected = [f"line {i}" for i in range(1, 91)]
    expected[44] = "line 45 first half, second half"
    assert received == expected
    (result,) = outcome
    assert result.writer_finished
    assert result.reconnects >= 3
    assert result.lines == 90
    assert result.offset == Path(log).stat().st_size


def test_follow_stops_on_request_and_resumes_from_its_offset(
    open_session: OpenSession, tmp_path: Path
) -> None:
    log = tmp_path / "run.log"
    log.write_text("".join(f"early {i}\n" for i in range(5)))
    session = open_session()
    stop = threading.Event()
    stop_requested_at: list[float] = []
    first: list[str] = []

    def request_stop() -> None:
        stop_requested_at.append(time.monotonic())
        stop.set()

    def on_line(line: str) -> None:
        first.append(line)
        if len(first) == 5:
            threading.Timer(0.2, request_stop).start()

    result = session.follow(str(log), on_line=on_line, should_stop=stop.is_set)
    assert time.monotonic() - stop_requested_at[0] < 0.5
    assert first == [f"early {i}" for i in range(5)]
    assert not result.writer_finished

    with log.open("a") as handle:
        handle.write("late 0\nlate 1\n")
    second: list[str] = []
    resumed = session.follow(
        str(log),
        start_offset=result.offset,
        on_line=second.append,
        should_stop=lambda: len(second) >= 2,
    )
    assert second == ["late 0", "late 1"]
    assert resumed.offset == log.stat().st_size
    assert session.connections_opened == 1


def test_line_latency_is_well_under_half_a_second(
    open_session: OpenSession, tmp_path: Path
) -> None:
    """The file does not exist yet when the stream starts (as before a job's first output)."""
    log = tmp_path / "later.log"
    session = open_session()
    latencies: list[float] = []
    done = threading.Event()

    def on_line(line: str) -> None:
        latencies.append(time.monotonic() - float(line))
        if len(latencies) == 20:
            done.set()

    follower = threading.Thread(
        target=session.follow,
        args=(str(log),),
        kwargs={"on_line": on_line, "should_stop": done.is_set},
    )
    follower.start()
    time.sleep(0.3)
    with log.open("a") as handle:
        for _ in range(20):
            handle.write(f"{time.monotonic()}\n")
            handle.flush()
            time.sleep(0.05)
    follower.join(timeout=10)
    assert len(latencies) == 20
    print(
        f"\nlog line latency: median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    assert statistics.median(latencies) < 0.2
    assert max(latencies) < 0.5


def test_follow_gives_up_when_the_pod_stays_unreachable(
    open_session: OpenSession, sshd: SshServer, tmp_path: Path
) -> None:
    log = tmp_path / "run.log"
    log.write_text("one\n")
    session = open_session()
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        sshd.stop()  # the pod is gone for good

    with pytest.raises(SshError, match="2 reconnects failed"):
        session.follow(
            str(log), on_line=on_line, should_stop=lambda: False, max_reconnect_attempts=2
        )
    assert seen == ["one"]
