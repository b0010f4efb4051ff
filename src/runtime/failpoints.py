"""Named crash points: a test facility that SIGKILLs this process at a chosen line.

    RUNPOD_DEPLOY_CRASH_AT=after_create_call        die the first time that point is reached
    RUNPOD_DEPLOY_CRASH_AT=state_write@3            die the third time

A SIGKILL cannot be caught, so what is on disk at that moment is exactly what a power cut, an
OOM kill or `kill -9` would leave (etcd's gofail and pingcap's failpoint do the same). The kill
matrix in tests/reliability/test_kill_matrix.py drives every point through the real CLI; the
points, in the order an apply reaches them:

    after_lock             the stack lock is held, nothing else done
    before_create_call     the pending create (with its pod name) is in the state; no call yet
    after_create_call      the provider made the pod; the state still says "pending create"
    ssh_wait               the pod is recorded; waiting for SSH (no host key pinned yet)
    setup                  setup commands are about to run on the pod
    stage                  the first staging entry was pushed, others not
    launch                 the job's handle is journaled; the launch command not yet sent
    monitor                the job runs (detached) and its first log line arrived
    before_pull            the job ended (its success marker seen); nothing pulled yet
    pull                   the run log was pulled, the artifacts not yet
    before_lifecycle_call  the pending stop/delete is in the state; no call yet
    after_lifecycle_call   the provider stopped/deleted the pod; the state still says pending
    before_manifest        the lifecycle is done; the manifest and last_run are not written
    state_write            a new state file is written and fsynced as a temp file, not renamed

Unset (always, outside tests) it costs one dictionary lookup per point.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["CRASH_ENV", "POINTS", "crash_point"]

CRASH_ENV = "RUNPOD_DEPLOY_CRASH_AT"

POINTS = (
    "after_lock",
    "before_create_call",
    "after_create_call",
    "ssh_wait",
    "setup",
    "stage",
    "launch",
    "monitor",
    "before_pull",
    "pull",
    "before_lifecycle_call",
    "after_lifecycle_call",
    "before_manifest",
    "state_write",
)

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL the process if `RUNPOD_DEPLOY_CRASH_AT` names this point (and hit count)."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != (int(nth) if nth.isdigit() else 1):
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os.kill(os.getpid(), signal.SIGKILL)
