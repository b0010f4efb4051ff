"""The S3 backend against a real S3 endpoint on loopback (moto): conditional writes, the lease
lock, compare-and-swap state writes, and faults (5xx, a timeout, a lost lease, two writers)
each with nothing lost and a clear message."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from reconciler.state import LastRun, StackIdentity, StackState
from runtime.backends import (
    BackendConfigError,
    BackendUnavailableError,
    ConditionFailed,
    open_backend,
    parse_backend_url,
)
from runtime.backends.lease import RemoteLockedError, UnsupportedStoreError, read_lease
from runtime.statestore import StaleStateError, StateStore, open_store

from .conftest import S3, FaultProxy, Rule, s3_url

IDENTITY = StackIdentity(name="train", config_hash="0123456789abcdef", key="abc123")


def store(tmp_path: Path, url: str, name: str = "train-01234567.json") -> StateStore:
    return open_store(tmp_path / "local" / "stacks" / name, IDENTITY, url)


def with_run(state: StackState, run_id: str) -> StackState:
    return state.evolve(last_run=LastRun(run_id=run_id, run_dir=f"/runs/{run_id}", outcome="succeeded"))


def test_moto_honours_if_none_match_and_if_match(moto_s3: S3, bucket: str) -> None:
    backend = open_backend(parse_backend_url(s3_url(moto_s3.endpoint, bucket)))
    first = backend.create_if_absent("k", b"one")
    with pytest.raises(ConditionFailed):
        backend.create_if_absent("k", b"two")
    second = backend.write_if("k", b"three", first)
    with pytest.raises(ConditionFailed):
        backend.write_if("k", b"four", first)  # stale ETag
    found = backend.read("k")
    assert found is not None and found.data == b"three" and found.version == second


def test_writes_are_compare_and_swap_with_lineage_and_serial(moto_s3: S3, bucket: str,
                                                             tmp_path: Path) -> None:
    url = s3_url(moto_s3.endpoint, bucket)
    one = store(tmp_path, url)
    assert one.read().serial == 0
    written = one.write(with_run(one.read(), "r1"))
    again = store(tmp_path, url).read()
    assert (again.serial, again.lineage, again.last_run) == (1, written.lineage, written.last_run)
    assert one.location == f"s3://{bucket}/team/stacks/train-01234567.json"


def test_two_writers_racing_one_wins_the_other_is_refused_and_kept(moto_s3: S3, bucket: str,
                                                                   tmp_path: Path) -> None:
    url = s3_url(moto_s3.endpoint, bucket)
    seed = store(tmp_path, url)
    seed.write(seed.read())
    a, b = store(tmp_path, url), store(tmp_path, url)
    state_a, state_b = a.read(), b.read()
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def write(name: str, who: StateStore, state: StackState) -> None:
        barrier.wait()
        try:
            results[name] = who.write(with_run(state, name))
        except StaleStateError as exc:
            results[name] = exc

    threads = [threading.Thread(target=write, args=("a", a, state_a)),
               threading.Thread(target=write, args=("b", b, state_b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, r in results.items() if isinstance(r, StackState)]
    losers = [r for r in results.values() if isinstance(r, StaleStateError)]
    assert len(winners) == 1 and len(losers) == 1
    stored = store(tmp_path, url).read()
    assert stored.serial == 2 and stored.last_run is not None
    assert stored.last_run.run_id == winners[0]
    message = str(losers[0])
    assert "changed since this process read it" in message and "neither is lost" in message
    kept = Path(message.split("it is kept at ")[1].split(". Run")[0])
    assert StackState.from_json(kept.read_text()).last_run.run_id != winners[0]  # type: ignore[union-attr]


def test_a_503_on_every_attempt_fails_clearly_and_changes_nothing(
        moto_s3: S3, bucket: str, tmp_path: Path, fault_proxy: FaultProxy) -> None:
    url = s3_url(fault_proxy.endpoint, bucket)
    one = store(tmp_path, url)
    before = one.write(one.read())
    fault_proxy.add(Rule("PUT", "/stacks/train-01234567.json", times=10, status=503))
    with pytest.raises(BackendUnavailableError) as caught:
        one.write(with_run(before, "lost?"))
    message = str(caught.value)
    assert "503" in message and "the stored state is unchanged" in message
    assert f"s3://{bucket}/team/stacks/train-01234567.json" in message
    kept = Path(message.split("is kept at ")[1].split(" (")[0])
    assert StackState.from_json(kept.read_text()).last_run.run_id == "lost?"  # type: ignore[union-attr]
    assert store(tmp_path, url).read().serial == before.serial
    # the kept write can be stored once the store answers: nothing was lost
    fault_proxy.rules.clear()
    healed = store(tmp_path, url)
    healed.read()
    assert healed.write(StackState.from_json(kept.read_text())).serial == 3


def test_a_single_500_is_retried(moto_s3: S3, bucket: str, tmp_path: Path,
                                 fault_proxy: FaultProxy) -> None:
    url = s3_url(fault_proxy.endpoint, bucket)
    one = store(tmp_path, url)
    first = one.write(one.read())
    rule = fault_proxy.add(Rule("PUT", "/stacks/train-01234567.json", times=1, status=500))
    assert one.write(with_run(first, "r2")).serial == 2
    assert rule.hits == 1 and store(tmp_path, url).read().last_run.run_id == "r2"  # type: ignore[union-attr]


def test_a_timeout_before_the_store_saw_the_write_fails_clearly(
        moto_s3: S3, bucket: str, tmp_path: Path, fault_proxy: FaultProxy) -> None:
    url = s3_url(fault_proxy.endpoint, bucket, timeout="0.5")
    one = store(tmp_path, url)
    first = one.write(one.read())
    fault_proxy.add(Rule("PUT", "/stacks/train-01234567.json", times=10, stall_sec=1.5))
    with pytest.raises(BackendUnavailableError) as caught:
        one.write(with_run(first, "r2"))
    assert "did not answer" in str(caught.value) and "unchanged" in str(caught.value)
    assert store(tmp_path, url).read().serial == 1


def test_a_write_whose_answer_was_lost_is_recognised(
        moto_s3: S3, bucket: str, tmp_path: Path, fault_proxy: FaultProxy) -> None:
    """The store applied the write, the answer timed out, the retry got 412: it is ours."""
    url = s3_url(fault_proxy.endpoint, bucket, timeout="0.5")
    one = store(tmp_path, url)
    first = one.write(one.read())
    fault_proxy.add(Rule("PUT", "/stacks/train-01234567.json", times=1, stall_sec=1.5,
                         stall_after_forward=True))
    second = one.write(with_run(first, "r2"))
    assert second.serial == 2
    third = one.write(with_run(second, "r3"))  # the version adopted is the real one
    assert store(tmp_path, url).read().serial == third.serial == 3


def test_the_lock_names_its_holder_and_one_of_many_racers_wins(moto_s3: S3, bucket: str,
                                                               tmp_path: Path) -> None:
    url = s3_url(moto_s3.endpoint, bucket)
    outcomes: list[object] = []
    release = threading.Event()
    barrier = threading.Barrier(4)

    def take() -> None:
        mine = store(tmp_path, url)
        barrier.wait()
        try:
            with mine.lock(command="apply stack.yaml"):
                outcomes.append("held")
                release.wait(10)
        except RemoteLockedError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    while len(outcomes) < 4:
        threading.Event().wait(0.02)
    release.set()
    for thread in threads:
        thread.join()
    assert outcomes.count("held") == 1
    refusals = [o for o in outcomes if isinstance(o, RemoteLockedError)]
    assert len(refusals) == 3
    assert all("apply stack.yaml" in str(r) and "lock id" in str(r) and "state unlock" in str(r)
               for r in refusals)
    assert read_lease(open_backend(parse_backend_url(url)), "stacks/train-01234567.json")[1] is None


def test_a_shared_lock_names_the_holders_command_line_and_variables(moto_s3: S3, bucket: str,
                                                                    tmp_path: Path) -> None:
    """The locked-stack message is the same on a shared backend as on a local file: the holder's
    command line and the instance's variables, and that other values are their own instance."""
    url = s3_url(moto_s3.endpoint, bucket)
    seeded = IDENTITY.model_copy(update={"variables": {"seed": "1"}})
    holder = open_store(tmp_path / "local" / "stacks" / "train@1.json", seeded, url)
    other = open_store(tmp_path / "other" / "stacks" / "train@1.json", seeded, url)
    with holder.lock(command="apply stack.yaml"), pytest.raises(RemoteLockedError) as refused, \
            other.lock(command="apply stack.yaml"):
        pass
    message = str(refused.value)
    assert "with variables seed=1" in message and "command line: " in message
    assert "instance of its own" in message and "state unlock" in message
    assert refused.value.holder is not None and refused.value.holder.variables == (("seed", "1"),)


def test_a_store_that_ignores_conditional_writes_is_refused_for_locking(
        moto_s3: S3, bucket: str, tmp_path: Path, fault_proxy: FaultProxy) -> None:
    fault_proxy.add(Rule("PUT", "/_runpod-deploy/probe-", times=10, strip_conditions=True))
    unprobed = store(tmp_path, s3_url(fault_proxy.endpoint, bucket))
    with pytest.raises(UnsupportedStoreError) as caught, unprobed.lock(command="apply"):
        pass
    assert "ignores conditional writes" in str(caught.value) and "lock=off" in str(caught.value)
    # the explicit opt-out works (and writes are still compare-and-swap)
    opted = store(tmp_path, s3_url(fault_proxy.endpoint, bucket, lock="off"))
    with opted.lock(command="apply"):
        assert opted.write(opted.read()).serial == 1


def test_the_probe_runs_once_per_store(moto_s3: S3, bucket: str, tmp_path: Path) -> None:
    url = s3_url(moto_s3.endpoint, bucket)
    with store(tmp_path, url).lock():
        pass
    marker = open_backend(parse_backend_url(url)).read("_runpod-deploy/conditional-writes.json")
    assert marker is not None and json.loads(marker.data)["conditional_writes"] is True


def test_bad_backend_urls_say_what_is_wrong() -> None:
    for url, words in [("ftp://x", "scheme 'ftp' is not supported"),
                       ("s3://", "expected s3://BUCKET/PREFIX"),
                       ("s3://b/p?lease=-1", "lease='-1' is not a positive number"),
                       ("s3://b/p?color=red", "unknown parameter 'color'"),
                       ("/tmp/state", "no scheme")]:
        with pytest.raises(BackendConfigError) as caught:
            parse_backend_url(url)
        assert words in str(caught.value), url


def test_the_cleanup_hint_reaches_the_shared_state_without_credentials(moto_s3: S3, bucket: str,
                                                                      tmp_path: Path) -> None:
    """A lifecycle hint on a shared backend names the stack file and the backend (a local
    `--state-file` path would exist on no teammate's machine), and never a credential."""
    url = s3_url(moto_s3.endpoint.replace("http://", "http://key:sekrit@", 1), bucket)
    shared = store(tmp_path, url)
    hint = shared.cleanup_command("stacks/train.yaml")
    assert hint.startswith("runpod-deploy cleanup --config stacks/train.yaml --backend 's3://")
    assert f"s3://{bucket}/team?endpoint=" in hint and "sekrit" not in hint
    local = StateStore(tmp_path / "train.json", IDENTITY)
    assert local.cleanup_command("stacks/train.yaml") == \
        f"runpod-deploy cleanup --state-file {tmp_path / 'train.json'}"
