"""What a stack's state file holds, as frozen values, and its JSON form (no file I/O here).

    StackState(format_version, identity, lineage, serial, pod, pending, last_run)

- `identity` names the stack (rendered name + hash of the stack file path): a state file of
  another stack is refused by the shell (`StateMismatchError`).
- `lineage` is a uuid given once, at the first write; `serial` is bumped on every write. A saved
  plan records both and refuses to apply to a state that moved on.
- `pending` is written *before* a provider call and cleared after it is confirmed, so a crash
  in between leaves a record of what may exist (Pulumi's pending operations).
- The original's `{pod_id, gpu_id, image, datacenter_id}` file reads as a state with a pod.
Docs: docs/state.md.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.observed import CloudType

__all__ = [
    "FORMAT_VERSION",
    "LastRun",
    "PendingKind",
    "PendingOperation",
    "PodRecord",
    "RunJob",
    "StackIdentity",
    "StackState",
    "StateDecodeError",
]

FORMAT_VERSION = 1


class StateDecodeError(ValueError):
    """The text is not a state file this version can read (the shell reports it as corrupt)."""


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StackIdentity(_Value):
    """Which stack a state belongs to: rendered name, config path hash, and the 6-char key."""

    name: str
    config_hash: str
    key: str
    variables: dict[str, str] | None = None
    """The `--var` / vars-file values of a stack instance (None: the stack itself); a secret
    value is masked. See `reconciler.identity`."""

    @property
    def label(self) -> str:
        """`name` or `name [seed=1, lr=0.1]`: how messages and `drift` name the instance."""
        if not self.variables:
            return self.name
        return f"{self.name} [{', '.join(f'{k}={v}' for k, v in self.variables.items())}]"


class PodRecord(_Value):
    """The pod the stack owns, as it was when last confirmed."""

    pod_id: str
    name: str = ""
    gpu_type_id: str | None = None
    datacenter_id: str | None = None
    cloud_type: CloudType | None = None
    image: str | None = None
    gpu_count: int | None = None
    volume_gb: int | None = None
    storage_mode: str | None = None
    """`ephemeral` or `network_volume`, as the pod was created (None: not known). A provider
    that reports no volume id cannot tell "no network volume" from "not said"; this can."""
    network_volume_id: str | None = None
    """The network volume the pod was created with (None: none, or not known)."""
    created_at: str | None = None
    spec_fingerprint: str | None = None
    host_key_pins: tuple[str, ...] = ()


class PendingKind(StrEnum):
    CREATE = "create"
    START = "start"
    STOP = "stop"
    DELETE = "delete"


class PendingOperation(_Value):
    """A provider call begun and not yet confirmed. `pod_id` is None for a create."""

    kind: PendingKind
    pod_name: str
    pod_id: str | None = None
    started_at: str
    attempt: int = 1
    gpu_type_id: str | None = None
    datacenter_id: str | None = None


class LastRun(_Value):
    run_id: str
    run_dir: str
    outcome: str


class RunJob(_Value):
    """The job a run launched and no client has finished yet (journaled before the launch, cleared
    once the run is finished): what a later `apply`/`attach` needs to attach to it instead of
    running it again, and what the planner needs to say so. See docs/lifecycle.md."""

    run_id: str
    run_dir: str
    pod_id: str
    control_dir: str
    log_path: str
    durable_exit_code_path: str | None = None
    """On the volume: the job's exit code outlives a stop (the control dir does not)."""
    launched_at: str
    """ISO time of the launch (the plan's "running 3m12s" is measured from it)."""
    pid: str | None = None
    attempt: int = 1
    exit_code: int | None = None
    """Set when a client saw the job end but did not finish the run (pull, lifecycle)."""
    hourly_usd: float | None = None
    """The pod's real $/hr when launched (`status` reports spend from it)."""
    detached: bool = False


class StackState(_Value):
    format_version: int = FORMAT_VERSION
    identity: StackIdentity | None = None
    lineage: str | None = None
    serial: int = 0
    pod: PodRecord | None = None
    pending: PendingOperation | None = None
    last_run: LastRun | None = None
    job: RunJob | None = None
    """A launched job no client has finished (None: none, or finished)."""
    legacy: bool = False
    """Read from the original tool's file; written back in this format on the next write."""

    @classmethod
    def empty(cls, identity: StackIdentity | None = None) -> StackState:
        return cls(identity=identity)

    @property
    def is_empty(self) -> bool:
        return self.pod is None and self.pending is None

    def belongs_to(self, identity: StackIdentity) -> bool:
        """False when the file names another stack (a legacy or fresh file belongs to any)."""
        return self.identity is None or (self.identity.name == identity.name
                                         and self.identity.config_hash == identity.config_hash)

    def evolve(self, **changes: Any) -> StackState:
        return self.model_copy(update=changes)

    def to_json(self) -> str:
        data = self.model_dump(mode="json", exclude={"legacy"})
        if data.get("job") is None:
            data.pop("job", None)  # no unfinished job: the file reads as before
        if data.get("identity") and data["identity"].get("variables") is None:
            del data["identity"]["variables"]  # the stack itself: the file reads as before
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StackState:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateDecodeError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise StateDecodeError("expected a JSON object")
        if "format_version" not in data:
            return _from_legacy(data)
        if data["format_version"] != FORMAT_VERSION:
            raise StateDecodeError(f"format_version {data['format_version']!r} is not "
                                   f"supported (expected {FORMAT_VERSION})")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise StateDecodeError(f"{where}: {first['msg']}") from None


def _from_legacy(data: dict[str, Any]) -> StackState:
    """The original's file: `{pod_id, gpu_id, image, datacenter_id}` (older: `id`/`podId`)."""
    pod_id = data.get("pod_id") or data.get("id") or data.get("podId")
    if not isinstance(pod_id, str) or not pod_id:
        raise StateDecodeError("no pod_id (neither this tool's format nor the original's)")

    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and value else None

    record = PodRecord(pod_id=pod_id, gpu_type_id=text("gpu_id"), image=text("image"),
                       datacenter_id=text("datacenter_id"))
    return StackState(pod=record, legacy=True)
