"""Host-key pinning: the first key a pod shows is remembered, and a different one is refused.

There is no blind trust (no `AutoAddPolicy`, no `StrictHostKeyChecking=accept-new`). Pins are
keyed by a *pin id* chosen by the caller, not by host and port: RunPod reuses public IPs and
ports across pods, and one pod legitimately gets a new host key every time its container is
rebuilt (a stop/start). The executor therefore pins per pod *boot* (`"<pod_id>@<boot>"`) and
starts a new pin id only after a create or resume that it asked for itself; a new key under
the same pin id means someone else answered, and is refused.

The store is one small JSON file written atomically (temp file, fsync, rename). The paramiko
session checks it; `write_known_hosts` exports a pin for the system `ssh` that rsync runs, so
both transports enforce the very same key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from reconciler.observed import SshEndpoint
from runtime.clock import Clock, SystemClock
from runtime.errors import SshError, SshHostKeyMismatchError

__all__ = ["HostKey", "HostKeyPins", "known_hosts_host", "write_known_hosts"]

_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class HostKey:
    """A server's public host key: its algorithm name and the base64 of its wire blob."""

    key_type: str
    key_base64: str

    @property
    def fingerprint(self) -> str:
        """OpenSSH's notation (`SHA256:...`, unpadded), so users can compare with `ssh-keygen -l`."""
        digest = hashlib.sha256(base64.b64decode(self.key_base64)).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def known_hosts_host(endpoint: SshEndpoint) -> str:
    """The host field OpenSSH looks up: `host` on port 22, `[host]:port` otherwise."""
    if endpoint.port == 22:
        return endpoint.host
    return f"[{endpoint.host}]:{endpoint.port}"


class HostKeyPins:
    """The pinned host key of each pin id, persisted in a JSON file owned by the caller.

    Thread-safe within a process. Writers in different processes must not share one file
    (the stack lock already serialises applies of a stack).
    """

    def __init__(self, path: Path, *, clock: Clock | None = None) -> None:
        self._path = path
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def pinned(self, pin_id: str) -> HostKey | None:
        entry = self._read().get(pin_id)
        if entry is None:
            return None
        return HostKey(key_type=str(entry["key_type"]), key_base64=str(entry["key"]))

    def verify(
        self, pin_id: str, endpoint: SshEndpoint, presented: HostKey, *, allow_new: bool
    ) -> bool:
        """Accept `presented` for `pin_id` or raise; True when it was pinned just now.

        Raises `SshHostKeyMismatchError` (both fingerprints in the message) when another key
        is pinned, and `SshError` when nothing is pinned and `allow_new` is False.
        """
        with self._lock:
            pins = self._read()
            entry = pins.get(pin_id)
            if entry is not None:
                expected = HostKey(key_type=str(entry["key_type"]), key_base64=str(entry["key"]))
                if expected != presented:
                    raise SshHostKeyMismatchError(
                        f"host key of {known_hosts_host(endpoint)} changed for pin {pin_id!r}: "
                        f"pinned {expected.key_type} {expected.fingerprint}, "
                        f"presented {presented.key_type} {presented.fingerprint}; refusing to "
                        "connect (a resumed pod needs a new pin id; anything else may be an impostor)"
                    )
                return False
            if not allow_new:
                raise SshError(
                    f"no host key is pinned for {pin_id!r} and pinning a new one was not allowed "
                    f"({known_hosts_host(endpoint)} presented {presented.key_type} "
                    f"{presented.fingerprint})"
                )
            pins[pin_id] = {
                "key_type": presented.key_type,
                "key": presented.key_base64,
                "fingerprint": presented.fingerprint,
                "host": endpoint.host,
                "port": endpoint.port,
                "pinned_at": self._clock.now().isoformat(),
            }
            self._write(pins)
            return True

    def forget(self, pin_id: str) -> None:
        """Drop a pin (the pod was deleted); forgetting an unknown id is not an error."""
        with self._lock:
            pins = self._read()
            if pins.pop(pin_id, None) is not None:
                self._write(pins)

    def _read(self) -> dict[str, dict[str, object]]:
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SshError(f"host key pin file {self._path} is unreadable: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format_version") != _FORMAT_VERSION:
            raise SshError(f"host key pin file {self._path} has an unknown format")
        pins = raw.get("pins")
        return dict(pins) if isinstance(pins, dict) else {}

    def _write(self, pins: dict[str, dict[str, object]]) -> None:
        document = {"format_version": _FORMAT_VERSION, "pins": pins}
        _atomic_write(self._path, json.dumps(document, indent=2, sort_keys=True) + "\n")


def write_known_hosts(dest: Path, endpoint: SshEndpoint, key: HostKey) -> Path:
    """Write a one-line known_hosts file holding only `key` for `endpoint`.

    With `StrictHostKeyChecking=yes` and `GlobalKnownHostsFile=/dev/null` it makes the system
    `ssh` (and so rsync) refuse exactly what the paramiko session refuses.
    """
    _atomic_write(dest, f"{known_hosts_host(endpoint)} {key.key_type} {key.key_base64}\n")
    return dest


def _atomic_write(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
