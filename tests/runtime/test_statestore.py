"""State file IO: atomic writes with a backup, corruption refused, and the lock under contention."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from reconciler.state import PendingKind, PendingOperation, PodRecord, StackIdentity, StackState
from runtime.errors import StateCorruptError, StateLockedError, StateMismatchError
from runtime.statestore import StateStore, backup_path, read_state, write_state

IDENT = StackIdentity(name="t", config_hash="c" * 16, key="abc123")


def test_fresh_read_write_roundtrip_serial_lineage_and_backup(tmp_path: Path) -> None:
    path = tmp_path / "s" / "state.json"
    store = StateStore(path, IDENT)
    assert store.read() == StackState.empty(IDENT)
    first = store.write(store.read().evolve(pod=PodRecord(pod_id="p1")))
    assert first.serial == 1 and first.lineage and not backup_path(path).exists()
    second = store.write(first)
    assert second.serial == 2 and second.lineage == first.lineage
    assert StackState.from_json(backup_path(path).read_text()) == first
    assert store.read() == second
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.parametrize("text", ["", "{\"format_version\": 1, \"serial\": ", "[1]",
                                  '{"format_version": 9}'])
def test_corrupt_file_names_the_backup(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    write_state(path, StackState.empty(IDENT))
    write_state(path, StackState.empty(IDENT))
    path.write_text(text)
    with pytest.raises(StateCorruptError) as caught:
        read_state(path, IDENT)
    assert caught.value.backup == str(backup_path(path))
    assert f"cp {backup_path(path)} {path}" in str(caught.value)


def test_other_stack_holding_a_pod_is_refused_and_legacy_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state(path, StackState.empty(IDENT).evolve(pod=PodRecord(pod_id="pod-of-t")))
    other = StackIdentity(name="u", config_hash="d" * 16, key="def456")
    with pytest.raises(StateMismatchError) as caught:
        read_state(path, other)
    message = str(caught.value)
    assert "'t'" in message and "pod-of-t" in message and "'u'" in message
    assert "state_file:" in message and "{seed}" in message
    assert f"cleanup --state-file {path}" in message
    path.write_text(json.dumps({"pod_id": "abc", "gpu_id": "NVIDIA A40", "image": "i",
                                "datacenter_id": "EU-RO-1"}))
    state = read_state(path, IDENT)
    assert state.legacy and state.identity == IDENT
    assert state.pod == PodRecord(pod_id="abc", gpu_type_id="NVIDIA A40", image="i",
                                  datacenter_id="EU-RO-1")


def test_second_locker_sees_the_holder(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json", IDENT)
    with store.lock(command="apply"):
        with pytest.raises(StateLockedError) as caught, \
                StateStore(tmp_path / "state.json", IDENT).lock(timeout=0):
            pass
        assert caught.value.holder is not None
        assert caught.value.holder.pid == os.getpid() and caught.value.holder.command == "apply"
    with store.lock(timeout=0):
        pass


def _die_holding(path: str) -> None:
    store = StateStore(path, IDENT)
    cm = store.lock(command="doomed")
    cm.__enter__()
    os._exit(0)


def test_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    proc = multiprocessing.get_context("fork").Process(target=_die_holding, args=(path,))
    proc.start()
    proc.join()
    store = StateStore(path, IDENT)
    assert store.holder() is not None and store.holder().command == "doomed"  # type: ignore
    with store.lock(timeout=0) as me:
        assert store.holder() == me


def _bump(path: str, rounds: int) -> None:
    store = StateStore(path, IDENT)
    for _ in range(rounds):
        with store.lock(timeout=60):
            store.write(store.read())


def test_eight_processes_never_lose_a_write(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_bump, args=(path, 10)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert StateStore(path, IDENT).read().serial == 80


def _try_once(path: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = StateStore(path, IDENT)
    try:
        with store.lock(timeout=0):
            queue.put("won")
            import time

            time.sleep(0.5)
    except StateLockedError:
        queue.put("locked")


def test_eight_racers_with_timeout_zero_one_wins(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_try_once, args=(path, queue)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = sorted(queue.get() for _ in procs)
    assert results.count("won") >= 1 and results.count("locked") >= 1
    assert len(results) == 8


def test_an_empty_state_of_another_stack_is_taken_over_with_a_note(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The original's sweep template shares one `state_file:` between seeds: once the first
    seed's pod is gone the file records nothing, and the next seed takes it over."""
    path = tmp_path / "state.json"
    first = write_state(path, StackState.empty(IDENT))
    other = StackIdentity(name="u", config_hash="d" * 16, key="def456")
    state = read_state(path, other)
    assert state.identity == other and state.pod is None
    assert state.lineage == first.lineage and state.serial == first.serial
    assert "takes it over" in caplog.text and "'t'" in caplog.text and "'u'" in caplog.text


def test_a_pending_operation_of_another_stack_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    pending = PendingOperation(kind=PendingKind.CREATE, pod_name="t--abc123--0a0a0a",
                               started_at="2026-01-01T00:00:00+00:00")
    write_state(path, StackState.empty(IDENT).evolve(pending=pending))
    with pytest.raises(StateMismatchError, match="pending create of pod t--abc123--0a0a0a"):
        read_state(path, StackIdentity(name="u", config_hash="d" * 16, key="def456"))
