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

With a shared backend (`s3://...`, see `runtime.backends`) the same interface reads and writes
the object `stacks/<file name>` instead: every write is a compare-and-swap on the ETag that was
read (on top of lineage and serial), the lock is a lease (`runtime.backends.lease`), and a write
the store refused is kept in a local file the message names, so nothing is lost. `open_store`
builds the right one from the stack's state path, identity and backend URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.redaction import MARKER
from reconciler.state import StackIdentity, StackState, StateDecodeError
from runtime.errors import (
    LockHolder,
    StateCorruptError,
    StateError,
    StateLockedError,
    StateMismatchError,
    locked_message,
)
from runtime.failpoints import crash_point

if TYPE_CHECKING:
    from runtime.backends import BackendUrl, StateBackend
    from runtime.backends.lease import Lease

__all__ = [
    "MigratedStateError",
    "StaleStateError",
    "StateStore",
    "backup_path",
    "lock_path",
    "locked_message",
    "migrated_marker",
    "open_store",
    "publish_run",
    "read_state",
    "write_state",
]


class StaleStateError(StateError):
    """A write based on a read that another writer has since replaced."""


class MigratedStateError(StateError):
    """The state was moved to another backend by `state migrate`."""


def migrated_marker(path: Path) -> Path:
    return path.with_name(path.name + ".migrated")


def _refuse_migrated(where: str, marker: bytes | None) -> None:
    if marker is None:
        return
    try:
        target = str(json.loads(marker).get("to", "?"))
    except (ValueError, AttributeError):
        target = "?"
    raise MigratedStateError(f"the state at {where} was migrated to {target}; use that backend "
                             f"(--backend {target}, RUNPOD_DEPLOY_BACKEND or `backend:` in the "
                             "stack file)")


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
    marker = migrated_marker(path)
    _refuse_migrated(str(path), marker.read_bytes() if marker.exists() else None)
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
    return _owned(state, str(path), identity)


def _owned(state: StackState, where: str, identity: StackIdentity | None) -> StackState:
    """The state, refused when it belongs to another stack; given `identity` if it has none."""
    if identity is not None:
        if not state.belongs_to(identity):
            state = _take_over(where, state, identity)
        if state.identity is None:
            state = state.evolve(identity=identity)
    return state


def _take_over(where: str, state: StackState, identity: StackIdentity) -> StackState:
    """A state file shared between stacks (the original's `state_file:` in a sweep template):
    one that records nothing goes to the stack that reads it now, with a note; one that still
    records another stack's pod or pending operation is refused, naming both and the way out."""
    other = f"'{state.identity.label}'" if state.identity else "'?'"
    if state.identity is not None and state.identity.label == identity.label:
        # Same name: another stack file of that name, or the same file with other `--var`s.
        other += " (another stack file of that name, or other --var values)"
    if state.is_empty:
        logging.getLogger(__name__).warning(
            "note: state file %s was last used by stack %s and records no pod; stack '%s' "
            "takes it over", where, other, identity.label)
        return state.evolve(identity=identity)
    held = (f"its pod {state.pod.pod_id}" if state.pod is not None else
            f"a pending {state.pending.kind.value} of pod {state.pending.pod_id or state.pending.pod_name}"
            if state.pending is not None else "a pod")
    raise StateMismatchError(
        f"state file {where} belongs to stack {other} and still records {held}; stack "
        f"'{identity.label}' cannot share it. Give this stack its own state_file: (one per "
        "stack file, or put the variable in it, e.g. state_file: ~/.runpod-deploy-{seed}.json), "
        f"or release the other stack's pod first: runpod-deploy cleanup --state-file {where}")


def write_state(path: Path, state: StackState, *, bump: bool = True) -> StackState:
    """Write atomically; bumps `serial` (unless `bump` is False: a migration keeps it), gives a
    `lineage` on the first write. Returns what was written. The caller holds the lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = _next(state, bump)
    if path.exists():
        _atomic_write(backup_path(path), path.read_bytes())
    _atomic_write(path, new.to_json().encode("utf-8"), before_replace=lambda: crash_point("state_write"))
    return new


def _next(state: StackState, bump: bool) -> StackState:
    return state.evolve(serial=state.serial + 1 if bump else state.serial,
                        lineage=state.lineage or str(uuid.uuid4()), legacy=False)


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
            args[i] = ("--var=" if arg.startswith("--var=") else "") + f"{key}={MARKER}"
    if args:  # `python -m runpod_deploy` runs `__main__.py`: name the command as it is installed
        name = os.path.basename(args[0])
        args[0] = "runpod-deploy" if name == "__main__.py" else name
    return shlex.join(args)


class StateStore:
    """One stack's state: read, write, lock. A local file, or an object in a shared backend."""

    def __init__(self, path: Path | str, identity: StackIdentity | None = None, *,
                 backend: StateBackend | None = None, key: str | None = None,
                 backend_url: BackendUrl | None = None,
                 runs_backend: StateBackend | None = None) -> None:
        """`path`: the local state file (and, with a shared backend, where the host-key pins and
        a refused write are kept). `backend`/`key`: the shared object that holds the state
        instead. `runs_backend`: where run records go (`publish_run`), None for none."""
        self.path = Path(path)
        self.identity = identity
        self.backend = backend
        self.key = key
        self.backend_url = backend_url
        self.runs_backend = runs_backend if runs_backend is not None else backend
        self._version: str | None = None
        self._lease: Lease | None = None
        self._pins_shared: bytes | None = None
        self.pull_pins_on_read = False
        """Merge the shared host-key pins into the local file on every read (a writer holding
        the lock always does): `logs` sets it, `plan` and `drift` need no pins."""
        self._locked = False

    @property
    def location(self) -> str:
        """Where the state lives, as shown in plans and messages."""
        if self.backend is None or self.key is None:
            return str(self.path)
        return self.backend.where(self.key)

    def instance_states(self) -> list[bytes]:
        """The stored states of this stack's `--var` instances (`<name>@<digest>.json` beside
        its own, see `reconciler.identity`), wherever they live: drift lists them as stacks."""
        stem = self.path.stem if self.key is None else self.key.rsplit("/", 1)[-1].removesuffix(".json")
        if self.backend is None or self.key is None:
            found = []
            for candidate in sorted(self.path.parent.glob(f"{stem}@*.json")):
                with contextlib.suppress(OSError):
                    found.append(candidate.read_bytes())
            return found
        folder = self.key.rsplit("/", 1)[0] + "/" if "/" in self.key else ""
        wanted = re.compile(re.escape(f"{folder}{stem}@") + r"[0-9a-f]+\.json")
        states = []
        for key in self.backend.list(folder):
            if wanted.fullmatch(key):
                stored = self.backend.read(key)
                if stored is not None:
                    states.append(stored.data)
        return states

    def cleanup_command(self, config_path: Path | str) -> str:
        """The `cleanup` line that reaches this state: its local file, or the stack file on
        the shared backend (`--state-file` would name a local path no one else has)."""
        if self.backend is None or self.key is None:
            return f"runpod-deploy cleanup --state-file {self.path}"
        url = self.backend_url.as_option if self.backend_url is not None else self.backend.url
        return f"runpod-deploy cleanup --config {config_path} --backend '{url}'"

    @property
    def stack_label(self) -> str:
        """How `state` commands name this stack (its state file name without `.json`)."""
        name = self.key.rsplit("/", 1)[-1] if self.key else self.path.name
        return name.removesuffix(".json")

    # -- read and write ------------------------------------------------------------------------

    def read(self) -> StackState:
        if self.backend is None or self.key is None:
            return read_state(self.path, self.identity)
        backend, key = self.backend, self.key
        marker = backend.read(f"{key}.migrated")
        _refuse_migrated(self.location, marker.data if marker else None)
        found = backend.read(key)
        if found is None:
            self._version = None
            return StackState.empty(self.identity)
        try:
            text = found.data.decode("utf-8")
            if not text.strip():
                raise StateDecodeError("the object is empty")
            state = StackState.from_json(text)
        except (StateDecodeError, UnicodeDecodeError) as exc:
            raise StateCorruptError(self.location, f"{exc}; inspect it with `runpod-deploy state "
                                    f"pull {self.stack_label}` and fix it with `state push`"
                                    ) from None
        self._version = found.version
        if self._locked or self.pull_pins_on_read:
            self._pull_pins()
        return _owned(state, self.location, self.identity)

    # -- host-key pins travel with a shared state --------------------------------------------
    # The executor pins each pod boot's SSH host key in a local file beside the state path and
    # records the pin id in the state; another machine that resumes the pod needs the key too.
    # So a shared state carries the file as `<key>.hostkeys.json`: merged in on read, stored
    # with every state write that follows a change (both under the stack's lock).

    def read_pins(self) -> bytes | None:
        """The stack's host-key pin file as stored (for `state migrate`)."""
        if self.backend is not None and self.key is not None:
            found = self.backend.read(f"{self.key}.hostkeys.json")
            return found.data if found is not None else None
        local = self._pins_path()
        return local.read_bytes() if local.exists() else None

    def write_pins(self, data: bytes) -> None:
        if self.backend is not None and self.key is not None:
            self.backend.put(f"{self.key}.hostkeys.json", data)
            return
        self._pins_path().parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(self._pins_path(), data)

    def mark_migrated(self, to: str) -> None:
        """Leave the state in place, marked: reading it from now on names the new backend."""
        marker = json.dumps({"to": to, "at": datetime.now(UTC).isoformat(timespec="seconds")})
        if self.backend is not None and self.key is not None:
            self.backend.put(f"{self.key}.migrated", marker.encode())
        else:
            _atomic_write(migrated_marker(self.path), marker.encode())

    def clear_migrated(self) -> None:
        if self.backend is not None and self.key is not None:
            self.backend.delete(f"{self.key}.migrated")
        else:
            with contextlib.suppress(FileNotFoundError):
                migrated_marker(self.path).unlink()

    def _pins_path(self) -> Path:
        return self.path.with_name(self.path.name + ".hostkeys.json")

    def _pull_pins(self) -> None:
        assert self.backend is not None and self.key is not None
        shared = self.backend.read(f"{self.key}.hostkeys.json")
        if shared is None:
            return
        self._pins_shared = shared.data
        try:
            theirs = json.loads(shared.data).get("pins", {})
            local = self._pins_path()
            document: dict[str, Any] = json.loads(local.read_text()) if local.exists() else \
                {"format_version": 1, "pins": {}}
            pins: dict[str, Any] = dict(document.get("pins", {}))
        except (ValueError, AttributeError, OSError):
            return  # an unreadable pin file is reported by the SSH code that uses it
        merged = {**theirs, **pins}
        if merged != pins:
            local.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(local, (json.dumps({**document, "pins": merged}, indent=2,
                                             sort_keys=True) + "\n").encode())

    def _push_pins(self) -> None:
        assert self.backend is not None and self.key is not None
        local = self._pins_path()
        if not local.exists():
            return
        data = local.read_bytes()
        if data != self._pins_shared:
            self.backend.put(f"{self.key}.hostkeys.json", data)
            self._pins_shared = data

    def write(self, state: StackState, *, bump: bool = True) -> StackState:
        """Write (a compare-and-swap on a shared backend); `bump=False` keeps the serial (for
        `state migrate` only)."""
        if self.identity is not None and state.identity is None:
            state = state.evolve(identity=self.identity)
        if self.backend is None or self.key is None:
            return write_state(self.path, state, bump=bump)
        new = _next(state, bump)
        data = new.to_json().encode("utf-8")
        from runtime.backends import BackendError, ConditionFailed

        try:
            if self._lease is not None:
                self._lease.verify()
            crash_point("state_write")
            if self._version is None:
                self._version = self.backend.create_if_absent(self.key, data)
            else:
                self._version = self.backend.write_if(self.key, data, self._version)
            self._push_pins()
        except ConditionFailed:
            kept = self._keep_unwritten(data)
            raise StaleStateError(
                f"the state at {self.location} changed since this process read it (serial "
                f"{state.serial}): another writer got there first, and this write (serial "
                f"{new.serial}) was refused so that neither is lost; it is kept at {kept}. Run "
                "`runpod-deploy plan` to see the state as it is now") from None
        except BackendError as exc:
            kept = self._keep_unwritten(data)
            raise type(exc)(f"{exc}; the stored state is unchanged, and this write (serial "
                            f"{new.serial}) is kept at {kept} (`runpod-deploy state push` "
                            "can store it once the store answers)") from None
        return new

    def _keep_unwritten(self, data: bytes) -> Path:
        """A write the store refused, kept beside the local state path so nothing is lost."""
        kept = self.path.with_name(f"{self.path.name}.unwritten-{os.getpid()}-"
                                   f"{int(time.time() * 1000)}.json")
        kept.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(kept, data)
        return kept

    def holder(self) -> LockHolder | None:
        if self.backend is not None and self.key is not None:
            from runtime.backends.lease import read_lease

            info, _ = read_lease(self.backend, self.key)
            return info.holder() if info is not None else None
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

    def lock_description(self) -> str | None:
        """Who holds the lock, for people (with a lease's id and expiry); None when free."""
        if self.backend is not None and self.key is not None:
            from runtime.backends.lease import read_lease

            info, version = read_lease(self.backend, self.key)
            if version is None:
                return None
            return info.describe() if info is not None else "an unreadable lock object"
        holder = self.holder()
        return holder.describe() if holder is not None else None

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
        if self.backend is not None and self.key is not None:
            with self._lease_lock(command) as leased:
                yield leased
            return
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
                    raise StateLockedError(str(self.path), holder) from None
            else:
                raise StateLockedError(str(self.path), holder) from None
        me = self._me(command)
        variables = dict(me.variables)
        try:
            _atomic_write(_holder_path(self.path), json.dumps(
                {"pid": me.pid, "host": me.host, "since": me.since, "command": me.command,
                 "command_line": me.command_line, "variables": variables}).encode())
            yield me
        finally:
            with contextlib.suppress(FileNotFoundError):
                _holder_path(self.path).unlink()
            lock.release()

    def _me(self, command: str) -> LockHolder:
        """This process as a lock holder: its command line and the instance's variables."""
        variables = dict(self.identity.variables or {}) if self.identity is not None else {}
        return LockHolder(pid=os.getpid(), host=socket.gethostname(),
                          since=datetime.now(UTC).isoformat(timespec="seconds"), command=command,
                          command_line=_command_line(frozenset(
                              k for k, v in variables.items() if v == MARKER)),
                          variables=tuple(sorted(variables.items())))

    @contextlib.contextmanager
    def _lease_lock(self, command: str) -> Iterator[LockHolder]:
        from runtime.backends import DEFAULT_LEASE_SEC
        from runtime.backends.lease import Lease, ensure_conditional_writes

        assert self.backend is not None and self.key is not None
        url = self.backend_url
        if url is not None and not url.locking:
            self._locked = True
            try:
                yield LockHolder(pid=os.getpid(), host=socket.gethostname(),
                                 since=datetime.now(UTC).isoformat(timespec="seconds"),
                                 command=command)
            finally:
                self._locked = False
            return
        ensure_conditional_writes(self.backend)
        lease = Lease(self.backend, self.key,
                      lease_sec=url.lease_sec if url is not None else DEFAULT_LEASE_SEC,
                      command=command, stack=self.stack_label, holder=self._me(command))
        lease.acquire()
        self._lease, self._locked = lease, True
        try:
            yield lease.info.holder()
        finally:
            self._lease, self._locked = None, False
            lease.release()


def open_store(state_path: Path | str, identity: StackIdentity | None,
               backend: str | None, *, home: str | None = None) -> StateStore:
    """The store of a stack: its local file when no backend is set; `file://DIR` puts the same
    file under DIR (locked as today); `s3://...` the object `stacks/<file name>` in the bucket.
    The key reuses the local file's name, so it is derived exactly as that name is."""
    state_path = Path(state_path)
    if not backend:
        return StateStore(state_path, identity)
    from runtime.backends import open_backend, parse_backend_url, state_key

    url = parse_backend_url(backend, home=home)
    key = state_key(state_path.name)
    if url.is_file:
        from runtime.backends.file import FileBackend

        return StateStore(Path(url.root) / key, identity, backend_url=url,
                          runs_backend=FileBackend(Path(url.root)))
    return StateStore(state_path, identity, backend=open_backend(url), key=key, backend_url=url)


RUN_FILES = ("runpod_deploy_pull_manifest.json", "events.jsonl")
"""What a run leaves under the backend (`runs/<stack>/<run_id>/`); artifacts stay local."""


def publish_run(store: StateStore, stack_name: str, run_dir: Path) -> list[str]:
    """Copy a finished run's manifest and events to the store's backend, so that `ls-runs` and
    `manifest-summary` with that backend show the whole team's runs. Returns the keys written;
    nothing without a backend. Failures are the caller's to report: the run itself is done."""
    backend = store.runs_backend
    if backend is None:
        return []
    from reconciler.naming import slug

    written: list[str] = []
    for name in RUN_FILES:
        source = run_dir / name
        if source.is_file():
            key = f"runs/{slug(stack_name)}/{run_dir.name}/{name}"
            backend.put(key, source.read_bytes())
            written.append(key)
    return written


def default_state_dir(env: dict[str, str] | None = None) -> str:
    """`$RUNPOD_DEPLOY_STATE_DIR`, else `~/.local/state/runpod-deploy` (what `default_state_path`
    puts `stacks/` under)."""
    env = dict(os.environ) if env is None else env
    home = env.get("HOME") or str(Path.home())
    base = env.get("RUNPOD_DEPLOY_STATE_DIR") or os.path.join(home, ".local", "state",
                                                               "runpod-deploy")
    return home + base[1:] if base == "~" or base.startswith("~/") else base


def store_at(url: BackendUrl, key: str, *, local_dir: str,
             identity: StackIdentity | None = None) -> StateStore:
    """The store of one key of a backend (for the `state` commands, which start from keys).
    `local_dir`: where an s3 store keeps a write the store refused."""
    from runtime.backends import open_backend
    from runtime.backends.file import FileBackend

    if url.is_file:
        return StateStore(Path(url.root) / key, identity, backend_url=url,
                          runs_backend=FileBackend(Path(url.root)))
    return StateStore(Path(local_dir) / key, identity, backend=open_backend(url), key=key,
                      backend_url=url)


def is_state_key(key: str) -> bool:
    """`stacks/<name>.json`, not one of its companions (`.bak`, `.lease`, `.hostkeys.json`...)."""
    name = key.rsplit("/", 1)[-1]
    return key.startswith("stacks/") and name.endswith(".json") and ".json." not in name \
        and not name.startswith(".")
