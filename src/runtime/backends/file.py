"""A directory as a backend: versions are content hashes, conditions are checked under one
`flock` per directory, and every write is an atomic replace (temp file, fsync, rename)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from runtime.backends import BackendError, ConditionFailed, Versioned

__all__ = ["FileBackend"]

_GUARD = ".runpod-deploy-backend.lock"


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


class FileBackend:
    """Keys are paths under `root`; the same layout as the default state directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._requests = 0

    @property
    def url(self) -> str:
        return f"file://{self.root}"

    @property
    def requests(self) -> int:
        return self._requests

    def where(self, key: str) -> str:
        return str(self._path(key))

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise BackendError(f"invalid key {key!r} for {self.url}")
        return self.root.joinpath(*parts)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """One writer at a time checks a condition and replaces the file."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / _GUARD, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self, key: str) -> Versioned | None:
        self._requests += 1
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackendError(f"cannot read {self.where(key)}: {exc.strerror}") from None
        return Versioned(data, _version(data))

    def _current(self, key: str) -> str | None:
        try:
            return _version(self._path(key).read_bytes())
        except FileNotFoundError:
            return None

    def write_if(self, key: str, data: bytes, expected_version: str) -> str:
        self._requests += 1
        with self._guard():
            current = self._current(key)
            if current != expected_version:
                raise ConditionFailed(f"{self.where(key)} changed since it was read")
            self._replace(key, data)
        return _version(data)

    def create_if_absent(self, key: str, data: bytes) -> str:
        self._requests += 1
        with self._guard():
            if self._path(key).exists():
                raise ConditionFailed(f"{self.where(key)} already exists")
            self._replace(key, data)
        return _version(data)

    def put(self, key: str, data: bytes) -> str:
        self._requests += 1
        with self._guard():
            self._replace(key, data)
        return _version(data)

    def delete(self, key: str, expected_version: str | None = None) -> None:
        self._requests += 1
        with self._guard():
            if expected_version is not None and self._current(key) not in (None, expected_version):
                raise ConditionFailed(f"{self.where(key)} changed since it was read")
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()

    def list(self, prefix: str) -> list[str]:
        self._requests += 1
        base = self.root
        if not base.is_dir():
            return []
        found: list[str] = []
        for path in base.rglob("*"):
            if not path.is_file() or path.name.startswith("."):
                continue
            key = path.relative_to(base).as_posix()
            if key.startswith(prefix):
                found.append(key)
        return sorted(found)

    def _replace(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
