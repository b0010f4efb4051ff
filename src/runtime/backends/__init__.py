"""Where stack states live: a small protocol over a key-value store with conditional writes.

A backend is named by a URL:

- `file://DIR`: a directory (today's default is `~/.local/state/runpod-deploy`);
- `s3://BUCKET/PREFIX?endpoint=URL&region=R&profile=P`: any S3-compatible store (AWS S3,
  Cloudflare R2, MinIO, ...). Further query parameters: `lock=off` (no locking, for a store
  without conditional writes), `lease=SECONDS` (the lock's lease, default 60),
  `timeout=SECONDS` (per request, default 10).

Every write names the version it replaces (`write_if`) or that nothing exists
(`create_if_absent`); a store answers `ConditionFailed` when that is no longer true, which is
what makes a lock and a compare-and-swap possible on storage with no lock service. Keys are
relative to the backend's root (`stacks/<file>.json`, `runs/<stack>/<run_id>/manifest.json`).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

from runtime.errors import StateError

__all__ = [
    "BackendConfigError",
    "BackendError",
    "BackendUnavailableError",
    "BackendUrl",
    "ConditionFailed",
    "StateBackend",
    "Versioned",
    "open_backend",
    "parse_backend_url",
]

DEFAULT_LEASE_SEC = 60.0
DEFAULT_TIMEOUT_SEC = 10.0
_KNOWN_PARAMS = {"endpoint", "region", "profile", "lock", "lease", "timeout"}


class BackendError(StateError):
    """The state store refused or could not be read; the message names the store and key."""


class BackendConfigError(BackendError):
    """A backend URL that cannot be used as written."""


class BackendUnavailableError(BackendError):
    """The store did not answer (timeout, connection refused, 5xx after retries)."""


class ConditionFailed(BackendError):
    """A conditional write's condition no longer holds (412/409): someone else wrote first."""


@dataclass(frozen=True, slots=True)
class Versioned:
    """An object's bytes and the version (ETag) they were read at."""

    data: bytes
    version: str


class StateBackend(Protocol):
    """The five operations state, locks and run records need."""

    @property
    def url(self) -> str:
        """The backend's URL as shown to people (no credentials)."""
        ...

    @property
    def requests(self) -> int:
        """Requests sent so far (for the bench and tests)."""
        ...

    def read(self, key: str) -> Versioned | None:
        """The object and its version, or None when it does not exist."""
        ...

    def write_if(self, key: str, data: bytes, expected_version: str) -> str:
        """Replace the object only if it is still at `expected_version`; returns the new one.
        Raises ConditionFailed otherwise."""
        ...

    def create_if_absent(self, key: str, data: bytes) -> str:
        """Create the object only if none exists; raises ConditionFailed if one does."""
        ...

    def put(self, key: str, data: bytes) -> str:
        """Write unconditionally (run records, which only their own run writes)."""
        ...

    def delete(self, key: str, expected_version: str | None = None) -> None:
        """Delete (only if still at `expected_version` when given); a missing key is fine."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, sorted."""
        ...

    def where(self, key: str) -> str:
        """The full address of `key`, for messages (`s3://bucket/prefix/key`)."""
        ...


@dataclass(frozen=True, slots=True)
class BackendUrl:
    """A parsed backend URL."""

    scheme: str
    """`file` or `s3`."""
    root: str
    """file: the absolute directory; s3: the bucket."""
    prefix: str = ""
    """s3: the key prefix inside the bucket, without slashes at either end."""
    endpoint: str | None = None
    region: str | None = None
    profile: str | None = None
    locking: bool = True
    lease_sec: float = DEFAULT_LEASE_SEC
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    given: str = field(default="", compare=False)

    @property
    def display(self) -> str:
        """The URL without credentials or tuning parameters."""
        if self.scheme == "file":
            return f"file://{self.root}"
        base = f"s3://{self.root}" + (f"/{self.prefix}" if self.prefix else "")
        return base + (f" (endpoint {_without_userinfo(self.endpoint)})" if self.endpoint else "")

    @property
    def as_option(self) -> str:
        """The URL to give `--backend` in a hint: what finds the store, no credentials."""
        if self.scheme == "file":
            return f"file://{self.root}"
        base = f"s3://{self.root}" + (f"/{self.prefix}" if self.prefix else "")
        query = [(name, value) for name, value in (
            ("endpoint", _without_userinfo(self.endpoint) if self.endpoint else None),
            ("region", self.region), ("profile", self.profile)) if value]
        return base + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")

    @property
    def is_file(self) -> bool:
        return self.scheme == "file"


def _without_userinfo(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return endpoint


def _number(params: dict[str, str], name: str, default: float, given: str) -> float:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise BackendConfigError(f"backend URL {given!r}: {name}={raw!r} is not a positive number "
                                 "of seconds")
    return value


def parse_backend_url(url: str, *, cwd: Path | None = None, home: str | None = None) -> BackendUrl:
    """Parse `file://DIR` or `s3://BUCKET/PREFIX?...`; BackendConfigError says what is wrong."""
    text = url.strip()
    if text.startswith("file://"):
        raw = text[len("file://"):]
        if not raw:
            raise BackendConfigError(f"backend URL {url!r}: expected file://DIR")
        home = home or os.environ.get("HOME") or str(Path.home())
        if raw == "~" or raw.startswith("~/"):
            raw = home + raw[1:]
        directory = Path(raw) if Path(raw).is_absolute() else (cwd or Path.cwd()) / raw
        return BackendUrl(scheme="file", root=posixpath.normpath(str(directory)), given=url)
    if text.startswith("s3://"):
        parts = urlsplit(text)
        bucket = parts.netloc
        if not bucket:
            raise BackendConfigError(f"backend URL {url!r}: expected s3://BUCKET/PREFIX")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(params) - _KNOWN_PARAMS)
        if unknown:
            raise BackendConfigError(
                f"backend URL {url!r}: unknown parameter {unknown[0]!r} (known: "
                f"{', '.join(sorted(_KNOWN_PARAMS))})")
        lock = params.get("lock", "on").lower()
        if lock not in ("on", "off"):
            raise BackendConfigError(f"backend URL {url!r}: lock={lock!r} (expected on or off)")
        return BackendUrl(scheme="s3", root=bucket, prefix=parts.path.strip("/"),
                          endpoint=params.get("endpoint") or None,
                          region=params.get("region") or None,
                          profile=params.get("profile") or None, locking=lock == "on",
                          lease_sec=_number(params, "lease", DEFAULT_LEASE_SEC, url),
                          timeout_sec=_number(params, "timeout", DEFAULT_TIMEOUT_SEC, url),
                          given=url)
    scheme = text.split("://", 1)[0] if "://" in text else ""
    what = f"the scheme {scheme!r} is not supported" if scheme else "no scheme"
    raise BackendConfigError(f"backend URL {url!r}: {what}; expected file://DIR or "
                             "s3://BUCKET/PREFIX[?endpoint=URL&region=R&profile=P]")


def open_backend(url: BackendUrl) -> StateBackend:
    """The store for a URL. boto3 is imported only here, for an s3 URL."""
    if url.is_file:
        from runtime.backends.file import FileBackend

        return FileBackend(Path(url.root))
    from runtime.backends.s3 import S3Backend

    return S3Backend(url)


def state_key(state_file_name: str) -> str:
    """A stack's key in a backend: `stacks/<the file name its local state would have>`, so the
    name is derived exactly as for a local state file."""
    return f"stacks/{state_file_name}"
