"""The lease: a holder paused past its lease loses the lock to another process and cannot write
over that process's state; a stuck lock is removed by `state unlock STACK LOCK_ID`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from reconciler.state import LastRun, StackIdentity
from runtime.backends import open_backend, parse_backend_url
from runtime.backends.lease import read_lease
from runtime.statestore import open_store

from .conftest import S3, s3_url

KEY = "stacks/train-01234567.json"
HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from reconciler.state import StackIdentity
    from runtime.statestore import open_store
    identity = StackIdentity(name="train", config_hash="0123456789abcdef", key="abc123")
    store = open_store(Path(sys.argv[2]), identity, sys.argv[1])
    with store.lock(command="apply paused.yaml"):
        state = store.read()
        print("locked", flush=True)
        sys.stdin.readline()
        try:
            store.write(state)
        except Exception as exc:
            print(f"ERROR {type(exc).__name__}: {exc}", flush=True)
            sys.exit(1)
        print("wrote", flush=True)
""")
IDENTITY = StackIdentity(name="train", config_hash="0123456789abcdef", key="abc123")
CLI = str(Path(sys.executable).with_name("runpod-deploy"))


def wait_until(predicate, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def start_holder(url: str, tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(tmp_path / "a" / "train-01234567.json")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, **env})
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_holder_paused_past_its_lease_loses_the_lock_and_writes_nothing(
        moto_s3: S3, bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    url = s3_url(moto_s3.endpoint, bucket, lease="1")
    backend = open_backend(parse_backend_url(url))
    holder = start_holder(url, tmp_path, aws_env)
    os.kill(holder.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: (info := read_lease(backend, KEY)[0]) is not None
                   and info.expires_at < time.time(), "the paused holder's lease expired")
        other = open_store(tmp_path / "b" / "train-01234567.json", IDENTITY, url)
        with other.lock(command="apply other.yaml"):
            state = other.read()
            ours = other.write(state.evolve(last_run=LastRun(run_id="other", run_dir="/r",
                                                             outcome="succeeded")))
            os.kill(holder.pid, signal.SIGCONT)
            out, _ = holder.communicate("go\n", timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder.pid, signal.SIGCONT)
            holder.kill()
    assert holder.returncode == 1, out
    assert "LeaseLostError: lost the lock on" in out and "apply other.yaml" in out
    assert "nothing was written" in out
    stored = open_store(tmp_path / "c" / "train-01234567.json", IDENTITY, url).read()
    assert stored.serial == ours.serial and stored.last_run is not None
    assert stored.last_run.run_id == "other"


def test_state_unlock_removes_a_dead_holders_lock_by_its_id(
        moto_s3: S3, bucket: str, aws_env: dict[str, str], tmp_path: Path) -> None:
    url = s3_url(moto_s3.endpoint, bucket)
    backend = open_backend(parse_backend_url(url))
    holder = start_holder(url, tmp_path, aws_env)
    holder.kill()  # kill -9: the lease stays until it expires
    holder.communicate()
    info, _ = read_lease(backend, KEY)
    assert info is not None
    env = {**os.environ, **aws_env, "HOME": str(tmp_path)}
    locked = subprocess.run([CLI, "state", "list", "--backend", url], env=env, check=False,
                            capture_output=True, text=True)
    assert locked.returncode == 0 and info.lock_id in locked.stdout
    wrong = subprocess.run([CLI, "state", "unlock", "train", "not-the-id", "--backend", url],
                           env=env, capture_output=True, text=True, check=False)
    assert wrong.returncode == 1 and f"has id {info.lock_id}, not not-the-id" in wrong.stderr
    assert "Traceback" not in wrong.stderr and read_lease(backend, KEY)[1] is not None
    done = subprocess.run([CLI, "state", "unlock", "train", info.lock_id, "--backend", url],
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "removed the lock held by" in done.stdout and read_lease(backend, KEY)[1] is None
