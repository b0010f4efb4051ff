"""The state file on disk: atomic writes that keep a backup, and a lock with holder info.

- `write` puts the new text in a temp file in the same directory, fsyncs it, keeps the current
  file as `<file>.bak`, `os.replace`s the temp file over the state and fsyncs the directory. A
  crash at any point leaves either the old or the new state, never half of one.
- `read` refuses a corrupt or truncated file with `StateCorruptError` naming the `.bak` and how
  to recover; it is never a silent fresh start. A file of another stack that still records a
  pod (or a pending operation) is `StateMismatchError`; one that records nothing is taken over
  with a note (a sweep template's shared `state_file:`).
- `lock` is a `filelock` on `<file>.lock` plus a holder record (`<file>.lock.holder`: pid, host,
  since, command, command line, the instance's variables) that a second apply reads for its message. The OS drops a dead process's
  lock, so a holder record left by a dead pid on this host is simply replaced.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from reconciler.state import StackIdentity, StackState, StateDecodeError
from runtime.errors import LockHolder, StateCorruptError, StateLockedError, StateMismatchError
from runtime.failpoints import crash_point

__all__ = ["StateStore", "backup_path", "lock_path", "locked_message", "read_state", "write_state"]


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _holder_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock.holder")


def read_state(path: Path, identity: StackIdentity | None = None) -> StackState:
    """The stack's state; an empty one (carrying `identity`) when no file exists yet."""
    path = Path(path)
    bak = backup_path(path)
    if not path.exists():
        if bak.exists():
            raise StateCorruptError(str(path), "the file is missing but its backup exists; "
                                    f"restore it with: cp {bak} {path}", str(bak))
        return StackState.empty(identity)
    try:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            raise StateDecodeError("the file is empty (truncated?)")
        state = StackState.from_json(text)
    except (StateDecodeError, UnicodeDecodeError) as exc:
        hint = (f"; inspect it, then restore the previous version with: cp {bak} {path}"
                if bak.exists() else "; no backup exists: fix the file by hand or move it away "
                "(then run `plan` to see what exists)")
        raise StateCorruptError(str(path), f"{exc}{hint}", str(bak) if bak.exists() else None
                                ) from None
    if identity is not None:
        if not state.belongs_to(identity):
            state = _take_over(path, state, identity)
        if state.identity is None:
            state = state.evolve(identity=identity)
    return state


def _take_over(path: Path, state: StackState, identity: StackIdentity) -> StackState:
    """A state file shared between stacks (the original's `state_file:` in a sweep template):
    one that records nothing goes to the stack that reads it now, with a note; one that still
    records another stack's pod or pending operation is refused, naming both and the way out."""
    other = state.identity.label if state.identity else "?"
    if state.is_empty:
        logging.getLogger(__name__).warning(
            "note: state file %s was last used by stack '%s' and records no pod; stack '%s' "
            "takes it over", path, other, identity.label)
        return state.evolve(identity=identity)
    held = (f"its pod {state.pod.pod_id}" if state.pod is not None else
            f"a pending {state.pending.kind.value} of pod {state.pending.pod_id or state.pending.pod_name}"
            if state.pending is not None else "a pod")
    raise StateMismatchError(
        f"state file {path} belongs to stack '{other}' and still records {held}; stack "
        f"'{identity.label}' cannot share it. Give this stack its own state_file: (one per "
        "stack file, or put the variable in it, e.g. state_file: ~/.runpod-deploy-{seed}.json), "
        f"or release the other stack's pod first: runpod-deploy cleanup --state-file {path}")


def write_state(path: Path, state: StackState) -> StackState:
    """Write atomically; bumps `serial`, gives a `lineage` on the first write. Returns what was
    written. The caller holds the lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = state.evolve(serial=state.serial + 1, lineage=state.lineage or str(uuid.uuid4()),
                       legacy=False)
    if path.exists():
        _atomic_write(backup_path(path), path.read_bytes())
    _atomic_write(path, new.to_json().encode("utf-8"), before_replace=lambda: crash_point("state_write"))
    return new


def _atomic_write(path: Path, data: bytes, *, before_replace: Callable[[], None] | None = None) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command_line(secret: frozenset[str] = frozenset()) -> str:
    """This process's command line as typed (`runpod-deploy run --config t.yaml --var seed=1`),
    the value of a `--var` of a secret variable masked as the state masks it."""
    import shlex
    import sys

    args = list(sys.argv)
    for i, arg in enumerate(args):
        given = arg.removeprefix("--var=") if arg.startswith("--var=") else \
            arg if i > 0 and args[i - 1] == "--var" else None
        if given is not None and given.partition("=")[0] in secret:
            key = given.partition("=")[0]
            args[i] = ("--var=" if arg.startswith("--var=") else "") + f"{key}=<secret:{key}>"
    if args:  # `python -m runpod_deploy` runs `__main__.py`: name the command as it is installed
        name = os.path.basename(args[0])
        args[0] = "runpod-deploy" if name == "__main__.py" else name
    return shlex.join(args)


def locked_message(path: str, holder: LockHolder | None) -> str:
    """What a run that finds its stack instance locked is told: who holds it (command line and
    variables), that other variables would be an instance of their own, and that the same
    variables must wait or fail. The one place this message is composed."""
    if holder is None:
        who = "another process (it left no holder record)"
    else:
        who = holder.describe()
        if holder.command_line:
            who += f", command line: {holder.command_line}"
    values = ("with variables " + ", ".join(f"{k}={v}" for k, v in holder.variables)
              if holder is not None and holder.variables else "with no --var/--vars-file values")
    return (f"stack is locked by {who} ({values}): {path}. A run with other variables is an "
            "instance of its own (its own state, lock and pods) and is not blocked by this one; "
            "a run with the same variables is the same instance and must wait until that run "
            "ends (or fails now, as this one did). To run several values at once, give each "
            "its own --var values, or use `runpod-deploy sweep`.")


class StateStore:
    """One stack's state file: read, write, lock."""

    def __init__(self, path: Path | str, identity: StackIdentity | None = None) -> None:
        self.path = Path(path)
        self.identity = identity

    def read(self) -> StackState:
        return read_state(self.path, self.identity)

    def write(self, state: StackState) -> StackState:
        if self.identity is not None and state.identity is None:
            state = state.evolve(identity=self.identity)
        return write_state(self.path, state)

    def holder(self) -> LockHolder | None:
        try:
            data = json.loads(_holder_path(self.path).read_text())
            variables = data.get("variables") or {}
            return LockHolder(pid=int(data["pid"]), host=str(data["host"]),
                              since=str(data["since"]), command=str(data.get("command", "")),
                              command_line=str(data.get("command_line", "")),
                              variables=tuple(sorted((str(k), str(v))
                                                     for k, v in dict(variables).items())))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _holder_once_written(self, wait_sec: float = 2.0) -> LockHolder | None:
        """The holder record of a busy lock. The winner writes it just after taking the lock, so
        a loser that lost by microseconds waits briefly for it rather than saying "another
        process" (the message must name the holder)."""
        deadline = time.monotonic() + wait_sec
        while True:
            holder = self.holder()
            if holder is not None or time.monotonic() >= deadline:
                return holder
            time.sleep(0.02)

    @contextlib.contextmanager
    def lock(self, *, timeout: float = 0, command: str = "") -> Iterator[LockHolder]:
        """Hold the stack's lock; raises StateLockedError (with the holder) after `timeout` s."""
        import filelock  # only a writer locks: `plan` and `drift` read without it

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(lock_path(self.path)))
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            holder = self._holder_once_written()
            if (holder is not None and holder.host == socket.gethostname()
                    and not _pid_alive(holder.pid)):
                # The recorded holder is dead, so the OS has dropped its lock: retry once.
                try:
                    lock.acquire(timeout=max(timeout, 1.0))
                except filelock.Timeout:
                    holder = self.holder()
                    raise StateLockedError(str(self.path), holder,
                                           locked_message(str(self.path), holder)) from None
            else:
                raise StateLockedError(str(self.path), holder,
                                       locked_message(str(self.path), holder)) from None
        variables = dict(self.identity.variables or {}) if self.identity is not None else {}
        me = LockHolder(pid=os.getpid(), host=socket.gethostname(),
                        since=datetime.now(UTC).isoformat(timespec="seconds"), command=command,
                        command_line=_command_line(frozenset(
                            k for k, v in variables.items() if v == f"<secret:{k}>")),
                        variables=tuple(sorted(variables.items())))
        try:
            _atomic_write(_holder_path(self.path), json.dumps(
                {"pid": me.pid, "host": me.host, "since": me.since, "command": me.command,
                 "command_line": me.command_line, "variables": variables}).encode())
            yield me
        finally:
            with contextlib.suppress(FileNotFoundError):
                _holder_path(self.path).unlink()
            lock.release()
