"""A stack's lock on a shared store: an object created with `If-None-Match: *`, held by a lease.

The lock object (`<state key>.lease`) holds its id, the holder (user, host, pid, command, since)
and `expires_at` (epoch seconds). While the holder works, a daemon thread renews it every third
of the lease with `If-Match` on the ETag it last wrote. A lease that has expired is taken over by
a conditional overwrite on the ETag read, never by delete-then-create, so two takers cannot both
win. A holder that was paused past its lease finds out at its next state write: the renewal it
does first fails its condition, and the write is refused (`LeaseLostError`).

Before the first lock, each store is probed once for conditional writes (a second
`If-None-Match: *` create must answer 412): a store that ignores them cannot lock and is refused
with the reason (RunPod's network-volume S3 API documents none); `?lock=off` opts out.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from runtime.backends import BackendError, ConditionFailed, StateBackend
from runtime.errors import LockHolder, StateError, StateLockedError, locked_message

__all__ = [
    "Lease",
    "LeaseInfo",
    "LeaseLostError",
    "RemoteLockedError",
    "UnsupportedStoreError",
    "ensure_conditional_writes",
    "lease_key",
    "read_lease",
]

PROBE_KEY = "_runpod-deploy/conditional-writes.json"
_probed: dict[str, bool] = {}
_probe_lock = threading.Lock()


def lease_key(state_key: str) -> str:
    return f"{state_key}.lease"


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """What a lock object says."""

    lock_id: str
    user: str
    host: str
    pid: int
    command: str
    since: str
    expires_at: float
    command_line: str = ""
    variables: tuple[tuple[str, str], ...] = ()
    """The stack instance's variables (a secret one masked), for the locked-stack message."""

    def to_bytes(self) -> bytes:
        return json.dumps({"id": self.lock_id, "user": self.user, "host": self.host,
                           "pid": self.pid, "command": self.command, "since": self.since,
                           "expires_at": round(self.expires_at, 3),
                           "command_line": self.command_line,
                           "variables": dict(self.variables)}, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseInfo | None:
        try:
            raw = json.loads(data)
            return cls(lock_id=str(raw["id"]), user=str(raw.get("user", "")),
                       host=str(raw["host"]), pid=int(raw["pid"]),
                       command=str(raw.get("command", "")), since=str(raw["since"]),
                       expires_at=float(raw["expires_at"]),
                       command_line=str(raw.get("command_line", "")),
                       variables=tuple(sorted((str(k), str(v)) for k, v in
                                              dict(raw.get("variables") or {}).items())))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def holder(self) -> LockHolder:
        who = f"{self.user}@{self.host}" if self.user else self.host
        return LockHolder(pid=self.pid, host=who, since=self.since, command=self.command,
                          command_line=self.command_line, variables=self.variables)

    def describe(self) -> str:
        until = datetime.fromtimestamp(self.expires_at, UTC).isoformat(timespec="seconds")
        return f"{self.holder().describe()}, lease until {until}, lock id {self.lock_id}"


class RemoteLockedError(StateLockedError):
    """Another process holds the stack's lease."""

    def __init__(self, where: str, info: LeaseInfo | None, stack: str) -> None:
        super().__init__(where, info.holder() if info else None)
        self.info = info
        message = locked_message(where, info.holder() if info else None)
        if info is not None:
            until = datetime.fromtimestamp(info.expires_at, UTC).isoformat(timespec="seconds")
            message += (f" Its lease runs until {until} (lock id {info.lock_id}); if that process "
                        "is gone, wait for the lease to expire or run: runpod-deploy state unlock "
                        f"{stack} {info.lock_id}")
        self.args = (message,)


class LeaseLostError(StateError):
    """This process's lease expired and another process took the lock over."""


class UnsupportedStoreError(StateError):
    """The store ignores conditional writes, so it cannot hold a lock."""


def ensure_conditional_writes(backend: StateBackend) -> None:
    """Probe the store once (per process, and recorded in the store) for `If-None-Match: *`."""
    with _probe_lock:
        if _probed.get(backend.url):
            return
        recorded = backend.read(PROBE_KEY)
        if recorded is None:
            probe = f"_runpod-deploy/probe-{uuid.uuid4().hex}"
            backend.create_if_absent(probe, b"first")
            try:
                backend.create_if_absent(probe, b"second")
            except ConditionFailed:
                supported = True
            else:
                supported = False
            finally:
                backend.delete(probe)
            if not supported:
                raise UnsupportedStoreError(
                    f"the store at {backend.url} ignores conditional writes (a second "
                    "`If-None-Match: *` create of one key succeeded instead of answering 412), so "
                    "it cannot lock a stack and two applies could each create a pod; use a store "
                    "with conditional writes (AWS S3, Cloudflare R2, MinIO), or opt out of "
                    "locking with ?lock=off in the backend URL if only one writer ever applies")
            try:
                backend.create_if_absent(PROBE_KEY, json.dumps(
                    {"conditional_writes": True,
                     "probed_at": datetime.now(UTC).isoformat(timespec="seconds")}).encode())
            except ConditionFailed:
                pass  # another process recorded it first
        _probed[backend.url] = True


def read_lease(backend: StateBackend, key: str) -> tuple[LeaseInfo | None, str | None]:
    """The lock object of a state key and its version (None, None when unlocked)."""
    found = backend.read(lease_key(key))
    if found is None:
        return None, None
    return LeaseInfo.from_bytes(found.data), found.version


class Lease:
    """One held lock: acquire, renew in the background, verify before a write, release."""

    def __init__(self, backend: StateBackend, key: str, *, lease_sec: float, command: str,
                 stack: str, holder: LockHolder | None = None) -> None:
        self.backend = backend
        self.key = lease_key(key)
        self.state_key = key
        self.lease_sec = lease_sec
        self.stack = stack
        now = time.time()
        self.info = LeaseInfo(lock_id=uuid.uuid4().hex[:12], user=_user(),
                              host=socket.gethostname(), pid=os.getpid(), command=command,
                              since=datetime.now(UTC).isoformat(timespec="seconds"),
                              expires_at=now + lease_sec,
                              command_line=holder.command_line if holder else "",
                              variables=holder.variables if holder else ())
        self._version: str | None = None
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None
        """Why the lease was lost (None while held)."""

    def acquire(self) -> None:
        """Create the lock object, or take over an expired one; RemoteLockedError otherwise."""
        self.info = self._renewed()
        try:
            self._version = self.backend.create_if_absent(self.key, self.info.to_bytes())
        except ConditionFailed:
            current, version = read_lease(self.backend, self.state_key)
            if version is None:  # released meanwhile: one more try
                try:
                    self._version = self.backend.create_if_absent(self.key, self.info.to_bytes())
                except ConditionFailed:
                    current, _ = read_lease(self.backend, self.state_key)
                    raise RemoteLockedError(self.backend.where(self.key), current,
                                            self.stack) from None
            elif current is not None and not current.expired(time.time()):
                raise RemoteLockedError(self.backend.where(self.key), current,
                                        self.stack) from None
            else:  # expired (or unreadable): take it over on the version read
                try:
                    self._version = self.backend.write_if(self.key, self.info.to_bytes(), version)
                except ConditionFailed:
                    current, _ = read_lease(self.backend, self.state_key)
                    raise RemoteLockedError(self.backend.where(self.key), current,
                                            self.stack) from None
        self._thread = threading.Thread(target=self._renew_loop, name="lease-renewal",
                                        daemon=True)
        self._thread.start()

    def _renewed(self) -> LeaseInfo:
        info = self.info
        return dataclasses.replace(info, expires_at=time.time() + self.lease_sec)

    def renew(self) -> None:
        """Extend the lease now; sets `lost` when another process took the lock over."""
        with self._guard:
            if self.lost is not None or self._version is None:
                return
            info = self._renewed()
            try:
                self._version = self.backend.write_if(self.key, info.to_bytes(), self._version)
            except ConditionFailed:
                current, _ = read_lease(self.backend, self.state_key)
                who = current.describe() if current else "nobody (the lock was removed)"
                self.lost = (f"the lease expired at "
                             f"{datetime.fromtimestamp(self.info.expires_at, UTC).isoformat(timespec='seconds')}"
                             f" and the lock is now held by {who}")
                return
            self.info = info

    def _renew_loop(self) -> None:
        interval = max(self.lease_sec / 3, 0.05)
        while not self._stop.wait(interval):
            try:
                self.renew()
            except BackendError:
                continue  # try again next tick; a lease that runs out meanwhile is found lost
            if self.lost is not None:
                return

    def verify(self) -> None:
        """Before a state write: if the lease may have run out (this process was paused), renew
        first; a lease another process took over refuses the write."""
        if self.lost is None and time.time() >= self.info.expires_at - self.lease_sec / 3:
            self.renew()
        if self.lost is not None:
            raise LeaseLostError(f"lost the lock on {self.backend.where(self.key)}: {self.lost}; "
                                 "nothing was written over the other holder's state")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._guard:
            if self.lost is None and self._version is not None:
                try:
                    self.backend.delete(self.key, self._version)
                except ConditionFailed:
                    pass  # taken over meanwhile: it is theirs now


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
