"""Signals, the state file on disk, and the stack lock, through the real CLI process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from runtime.statestore import backup_path, lock_path

from .conftest import Proj, events_in, start_cli, wait_until
from .test_kill_matrix import QUIET_TELEMETRY

pytestmark = pytest.mark.sim

WAIT_FOR_RELEASE = "echo started\nwhile [ ! -e /workspace/release ]; do sleep 0.1; done\necho '[job] DONE'\n"
"""A job that runs until the test drops /workspace/release on the pod's volume disk."""


def _apply_args(config: Path) -> list[str]:
    return ["apply", "--config", str(config), "--yes", "--provider", "api", "--print-run-dir"]


def _run_dir_of(proc_stdout_first_line: str) -> Path:
    return Path(proc_stdout_first_line.strip().removeprefix("RUN_DIR="))


def _wait_for_event(proj: Proj, name: str, timeout: float = 60) -> Path:
    found: list[Path] = []

    def seen() -> bool:
        for run_dir in (proj.root / "artifacts" / "runpod").glob("*"):
            if any(e.get("event") == name for e in events_in(run_dir)):
                found.append(run_dir)
                return True
        return False

    wait_until(seen, timeout, f"event {name}")
    return found[0]


def _release(proj: Proj, pod_id: str) -> None:
    (proj.sim.home / "pods" / pod_id / "volume" / "release").write_text("go\n")


@pytest.mark.parametrize(
    ("sig", "on_failure", "left"),
    [(signal.SIGINT, "delete", []), (signal.SIGTERM, "stop", ["EXITED"])],
    ids=["sigint-delete", "sigterm-stop"],
)
def test_a_signal_during_the_run_shuts_down_cleanly_per_on_failure(
    proj: Proj, sig: signal.Signals, on_failure: str, left: list[str]
) -> None:
    config = proj.stack({"run": {"body": WAIT_FOR_RELEASE}, "lifecycle": {"on_failure": on_failure},
                         "telemetry": QUIET_TELEMETRY})
    proc = start_cli(proj, *_apply_args(config))
    run_dir = _wait_for_event(proj, "job_launched")
    wait_until(lambda: "started" in (proj.sim.home / "pods" / proj.pods(config)[0]["id"] / "volume" /
                                     "job.log").read_text(), 30, "the job's first line")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err[-3000:]
    manifest = json.loads((run_dir / "runpod_deploy_pull_manifest.json").read_text())
    assert manifest["outcome"] == "interrupted" and manifest["lifecycle_action"] == on_failure
    assert "started" in (run_dir / "job.log").read_text(), "the run log is pulled"
    assert [p["desiredStatus"] for p in proj.pods(config)] == left
    state = proj.state(config)
    assert state.pending is None and state.last_run.outcome == "interrupted"
    proj.assert_no_leak(config)


def _ids_and_status(proj: Proj, config: Path) -> list[tuple[str, str]]:
    return [(p["id"], p["desiredStatus"]) for p in proj.pods(config, live=False)]


# -- the state file ------------------------------------------------------------------------


def test_each_write_keeps_the_previous_version_as_bak(proj: Proj) -> None:
    config = proj.stack({"lifecycle": {"on_success": "recycle"}, "telemetry": QUIET_TELEMETRY})
    assert proj.apply(config).ok
    store = proj.store(config)
    current = json.loads(store.path.read_text())
    previous = json.loads(backup_path(store.path).read_text())
    assert previous["serial"] == current["serial"] - 1 and previous["lineage"] == current["lineage"]
    assert not list(store.path.parent.glob("*.tmp")), "no temp file is left behind"


DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2].encode(),
    "garbage": lambda text: b"\x00\xff not json at all",
    "empty": lambda text: b"",
    "wrong_type": lambda text: b"[1, 2, 3]",
    "missing_with_backup": None,
}


def test_a_damaged_state_file_is_refused_naming_the_backup_and_nothing_is_created(proj: Proj) -> None:
    config = proj.stack({"lifecycle": {"on_success": "recycle"}, "telemetry": QUIET_TELEMETRY})
    assert proj.apply(config).ok
    path = proj.store(config).path
    good = path.read_text()
    pods_before = _ids_and_status(proj, config)
    for damage, corrupt in DAMAGE.items():
        if corrupt is None:
            path.unlink()
        else:
            path.write_bytes(corrupt(good))
        done = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api")
        assert done.returncode == 1, (damage, done.stderr)
        assert "Traceback" not in done.stderr
        assert f"state file {path} is unreadable" in done.stderr, (damage, done.stderr)
        assert f"cp {backup_path(path)} {path}" in done.stderr, (damage, done.stderr)
        assert _ids_and_status(proj, config) == pods_before, f"{damage}: a pod was created or touched"
        path.write_text(good)
    path.write_text("{")
    planned = proj.cli("plan", "--config", str(config), "--provider", "api")
    assert planned.returncode == 1 and "unreadable" in planned.stderr and "Traceback" not in planned.stderr

    shutil.copy(backup_path(path), path)  # the recovery the message names
    assert proj.apply(config).ok
    proj.assert_no_leak(config)


def test_a_state_file_of_another_stack_is_refused(proj: Proj) -> None:
    one = proj.stack({"telemetry": QUIET_TELEMETRY, "lifecycle": {"on_success": "recycle"}}, name="one.yaml",
                     job="one")
    assert proj.apply(one).ok
    two = proj.stack({"state_file": str(proj.store(one).path)}, name="two.yaml", job="two")
    done = proj.cli("apply", "--config", str(two), "--yes", "--provider", "api")
    pod = proj.state(one).pod.pod_id
    assert done.returncode == 1, done.stderr
    assert f"belongs to stack 'one' and still records its pod {pod}; stack 'two'" in done.stderr
    assert proj.pods(two, live=False) == []


# -- the lock --------------------------------------------------------------------------------


def test_a_second_apply_fails_fast_naming_the_holder(proj: Proj) -> None:
    config = proj.stack({"run": {"body": WAIT_FOR_RELEASE}, "telemetry": QUIET_TELEMETRY})
    holder = start_cli(proj, *_apply_args(config))
    _wait_for_event(proj, "job_launched")
    began = time.monotonic()
    second = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api")
    assert time.monotonic() - began < 15
    assert second.returncode == 1
    assert f"stack is locked by pid {holder.pid} on {socket.gethostname()} since " in second.stderr, second.stderr
    assert f"(apply {config})" in second.stderr
    _release(proj, proj.pods(config)[0]["id"])
    holder.communicate(timeout=60)
    assert holder.returncode == 0
    proj.assert_no_leak(config)


def test_a_lock_left_by_a_killed_apply_is_taken_over(proj: Proj) -> None:
    config = proj.stack({"telemetry": QUIET_TELEMETRY})
    killed = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api", crash_at="after_lock")
    assert killed.returncode == -9
    store = proj.store(config)
    stale = json.loads(store.path.with_name(store.path.name + ".lock.holder").read_text())
    assert lock_path(store.path).exists() and stale["command"] == f"apply {config}"
    with pytest.raises(ProcessLookupError):
        os.kill(stale["pid"], 0)  # the recorded holder is dead; the kernel dropped its flock
    began = time.monotonic()
    done = proj.cli("apply", "--config", str(config), "--yes", "--provider", "api")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began < 30
    proj.assert_no_leak(config)


def test_eight_concurrent_applies_on_one_stack_create_exactly_one_pod(proj: Proj) -> None:
    config = proj.stack({"run": {"body": WAIT_FOR_RELEASE}, "telemetry": QUIET_TELEMETRY})
    billed_before = set(proj.sim.billing()["pods"])  # every pod ever made, terminated ones too
    procs = [start_cli(proj, "apply", "--config", str(config), "--yes", "--provider", "api") for _ in range(8)]
    wait_until(lambda: sum(p.poll() is not None for p in procs) >= 7, 120, "seven applies to give up")
    losers = [p for p in procs if p.poll() is not None]
    (winner,) = [p for p in procs if p.poll() is None]
    for loser in losers:
        _, err = loser.communicate()
        assert loser.returncode == 1 and f"stack is locked by pid {winner.pid} on " in err, err
    wait_until(lambda: len(proj.pods(config)) == 1, 60, "the winner's pod")
    _release(proj, proj.pods(config)[0]["id"])
    winner.communicate(timeout=60)
    assert winner.returncode == 0
    assert len(set(proj.sim.billing()["pods"]) - billed_before) == 1, "exactly one pod was ever created"
    proj.assert_no_leak(config)


def test_different_stacks_apply_in_parallel(proj: Proj) -> None:
    configs = [proj.stack({"telemetry": QUIET_TELEMETRY}, name=f"s{i}.yaml", job=f"sweep-{i}") for i in range(3)]
    billed_before = set(proj.sim.billing()["pods"])
    procs = [start_cli(proj, "apply", "--config", str(c), "--yes", "--provider", "api") for c in configs]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    assert len(set(proj.sim.billing()["pods"]) - billed_before) == 3, "one pod per stack"
    for config in configs:
        proj.assert_no_leak(config)
