"""The run directory and the three record files in it: the pull manifest, events, metrics.

One run of a job leaves `<project_root>/artifacts/runpod/<YYYYMMDDTHHMMSSZ>/` behind, in the
layout and formats of the original runpod-deploy (0.8.x), so that its users' scripts and its
own forensic commands keep reading our runs:

    runpod_deploy_pull_manifest.json   RunManifest, schema "v2" plus our optional keys
    events.jsonl                       one EventRecord a line, appended by EventLog
    metrics.jsonl                      one MetricsRow a line, appended by MetricsLog

This module owns both directions of each format: the writers the executor and the telemetry
sampler call, and the readers (`load_*`) that the forensic commands call. Readers are lenient
the way a forensic tool must be: they accept the original's v1 and v2 manifests, keep keys they
do not know, and skip a torn last line of a JSONL file.

Writers never read a clock of their own: the time comes from the `UtcClock` they are given
(`runtime.clock.Clock.now` fits), so that tests and replays control every timestamp.

The parsers that turn the remote sampling commands' text into these samples live apart, in
`runtime.telemetry_parsers` (a format is not a parser of nvidia-smi).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_serializer, model_validator

from reconciler.diagnostics import RunpodDeployError
from reconciler.redaction import Redactor
from runtime.clock import SystemClock

__all__ = [
    "EVENTS_FILENAME",
    "MANIFEST_FILENAME",
    "MANIFEST_SCHEMA_VERSION",
    "METRICS_FILENAME",
    "RUNS_DIRNAME",
    "ArtifactPull",
    "ArtifactStatus",
    "AttemptOutcome",
    "CpuSample",
    "DeployMetadata",
    "DiskSample",
    "EventLog",
    "EventName",
    "EventRecord",
    "GpuSample",
    "HostMemorySample",
    "JobAttempt",
    "LifecycleAction",
    "ManifestError",
    "MetricsLog",
    "MetricsRow",
    "PlanSummary",
    "ProvisioningAttempt",
    "RunDir",
    "RunDirError",
    "RunManifest",
    "RunOutcome",
    "Sample",
    "UtcClock",
    "create_run_dir",
    "estimate_cost_usd",
    "format_utc",
    "load_events",
    "load_manifest",
    "load_metrics",
    "parse_utc",
    "system_utc_now",
    "write_manifest",
]

logger = logging.getLogger(__name__)

RUNS_DIRNAME = Path("artifacts") / "runpod"
"""Where run dirs live under the project root; the original's `ls-runs` looks exactly here."""
MANIFEST_FILENAME = "runpod_deploy_pull_manifest.json"
EVENTS_FILENAME = "events.jsonl"
METRICS_FILENAME = "metrics.jsonl"
MANIFEST_SCHEMA_VERSION = "v2"
"""We still write "v2": our additions are new optional keys, which the original's readers ignore."""

_MAX_SAME_SECOND_RUNS = 999

UtcClock = Callable[[], datetime]
"""Where writers get "now": a callable returning an aware UTC datetime."""


def system_utc_now() -> datetime:
    """The one real clock (`runtime.clock.SystemClock`), the default of every writer."""
    return _SYSTEM_CLOCK.now()


_SYSTEM_CLOCK = SystemClock()


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `+00:00` offset, the original's `ts_utc` spelling."""
    if moment.tzinfo is None:
        raise ValueError(f"timestamps must be timezone-aware, got naive {moment!r}")
    return moment.astimezone(UTC).isoformat()


class RunDirError(RunpodDeployError):
    """A run dir or one of its files is missing or cannot be used."""


class ManifestError(RunDirError):
    """A manifest exists but is not JSON, not an object, or has fields of the wrong type."""


# --------------------------------------------------------------------------------------------
# The run directory


class RunDir(BaseModel):
    """A created run directory and the paths of the files that belong in it."""

    model_config = ConfigDict(frozen=True)

    path: Path
    started_at: datetime

    @property
    def name(self) -> str:
        """The directory name: `YYYYMMDDTHHMMSSZ`, or with `-NNN` when that second was taken."""
        return self.path.name

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILENAME

    @property
    def events_path(self) -> Path:
        return self.path / EVENTS_FILENAME

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILENAME


def create_run_dir(project_root: Path, *, now: UtcClock = system_utc_now) -> RunDir:
    """Create a fresh run dir under `<project_root>/artifacts/runpod/`, unique even in a sweep.

    The name is the start second, `20260515T120000Z`, as the original names it; a second run
    starting in the same second (parallel sweep shards) gets `20260515T120000Z-001`, `-002`, ...
    Every name sorts after the bare second and before the next second, so lexicographic order
    stays chronological, and the original's `\\d{8}T\\d{6}Z` patterns still match. Uniqueness
    comes from `mkdir` itself (no exist_ok): whoever creates a name owns it.
    """
    started_at = now()
    stem = started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    parent = project_root / RUNS_DIRNAME
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"cannot create {parent}: {error.strerror or error}") from error
    for attempt in range(_MAX_SAME_SECOND_RUNS + 1):
        path = parent / (stem if attempt == 0 else f"{stem}-{attempt:03d}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as error:
            raise RunDirError(f"cannot create run dir {path}: {error.strerror or error}") from error
        return RunDir(path=path.resolve(), started_at=started_at)
    raise RunDirError(f"more than {_MAX_SAME_SECOND_RUNS} run dirs started at {stem} in {parent}")


# --------------------------------------------------------------------------------------------
# The pull manifest

Number = int | float
"""A JSON number kept as written, so reports print `8` for `8` and `8.0` for `8.0` as before."""


class _Record(BaseModel):
    """A record read from or written to a run dir: immutable, and keeps keys it does not know."""

    model_config = ConfigDict(frozen=True, extra="allow")

    def present_fields(self) -> dict[str, Any]:
        """The keys the file had (or the writer set), declared ones first, then unknown ones."""
        return self.model_dump(mode="json", exclude_unset=True)


class ArtifactStatus(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"


class LifecycleAction(StrEnum):
    """What was done with the pod after the job (ours; the original did not record it)."""

    PRESERVE = "preserve"
    STOP = "stop"
    DELETE = "delete"
    RECYCLE = "recycle"


class RunOutcome(StrEnum):
    """Why the run ended (ours). `failed` in the manifest stays the original's bool."""

    SUCCEEDED = "succeeded"
    PROVISIONING_FAILED = "provisioning_failed"
    REMOTE_COMMAND_FAILED = "remote_command_failed"
    JOB_FAILED = "job_failed"
    POD_KILLED = "pod_killed"
    RUNTIME_EXCEEDED = "runtime_exceeded"
    BUDGET_EXCEEDED = "budget_exceeded"
    ARTIFACT_PULL_FAILED = "artifact_pull_failed"
    INTERRUPTED = "interrupted"


class AttemptOutcome(StrEnum):
    """How one GPU x datacenter provisioning attempt ended (ours)."""

    CREATED = "created"
    STOCK_OUT = "stock_out"
    OVER_PRICE = "over_price"
    CREATE_FAILED = "create_failed"
    BOOT_TIMEOUT = "boot_timeout"
    RESTART_LOOP = "restart_loop"


class DeployMetadata(_Record):
    """Where the payload came from: local git state and the lockfile hash (`capture-env`).

    Unknown keys are kept: `compare-runs` also reads `remote_python_version` and `remote_uname`
    when a manifest has them.
    """

    local_git_sha: str | None = None
    local_git_dirty: bool | None = None
    local_git_branch: str | None = None
    payload_lockfile: str | None = None
    payload_lockfile_sha256: str | None = None


class ArtifactPull(_Record):
    """One artifact rsync pull: what the stack asked for and how it went."""

    label: str
    remote_path: str | None = None
    local_path: str | None = None
    required: bool | None = None
    excludes: tuple[str, ...] = ()
    delete: bool | None = None
    status: ArtifactStatus | None = None
    bytes_transferred: int | None = None
    duration_sec: Number | None = None
    error: str | None = None


class ProvisioningAttempt(_Record):
    """One candidate tried while getting a pod, with what it cost in time and money (ours)."""

    gpu_id: str
    datacenter_id: str
    outcome: AttemptOutcome
    seconds: Number | None = None
    usd: Number | None = None
    cloud_type: str | None = None
    pod_id: str | None = None
    detail: str | None = None


class PlanSummary(_Record):
    """The plan this run carried out, in a few words (ours); the full plan is not stored here."""

    steps: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    worst_case_cost_usd: Number | None = None
    inputs_fingerprint: str | None = None


_COLLECTION_KEYS = frozenset(
    {"deploy_metadata", "artifacts", "telemetry_files", "provisioning_attempts", "job_attempts"}
)


_SWEEP_KEYS = ("sweep_id", "sweep_point")


class JobAttempt(_Record):
    """One attempt of the job (`run.restart`): its pod, how it ended, what it cost."""

    attempt: int
    pod_id: str | None = None
    outcome: str | None = None
    seconds: Number | None = None
    usd: Number | None = None
    detail: str | None = None


class RunManifest(_Record):
    """`runpod_deploy_pull_manifest.json`: what ran, where, for how long, at what price.

    The first block of fields is the original's schema "v2", in its key order, so our file is a
    v2 manifest to every existing reader. Every field may be null or absent because v1
    manifests (before the original's 0.2) lack most of them, and a forensic reader must still
    list those runs. The second block is ours: new keys, all optional.
    """

    schema_version: str | None = MANIFEST_SCHEMA_VERSION
    pulled_at_utc: datetime | None = None
    failed: bool | None = None
    job_name: str | None = None
    run_id: str | None = None
    config_path: str | None = None
    storage_mode: str | None = None
    datacenter_id: str | None = None
    gpu_id: str | None = None
    gpu_price_per_hour_usd: Number | None = None
    gpu_price_source: str | None = None
    pod_id: str | None = None
    pod_final_state: str | None = None
    pod_resumed: bool | None = None
    image: str | None = None
    cost_cap_usd: Number | None = None
    wall_time_sec: Number | None = None
    estimated_cost_usd: Number | None = None
    volume_mount: str | None = None
    volume_name: str | None = None
    volume_gb: int | None = None
    deploy_metadata: DeployMetadata = DeployMetadata()
    artifacts: tuple[ArtifactPull, ...] = ()
    telemetry_files: tuple[str, ...] = ()

    outcome: RunOutcome | None = None
    lifecycle_action: LifecycleAction | None = None
    plan_summary: PlanSummary | None = None
    provisioning_attempts: tuple[ProvisioningAttempt, ...] = ()
    sweep_id: str | None = None
    """The `runpod-deploy sweep` this run was a point of (absent outside a sweep)."""
    sweep_point: dict[str, str] | None = None
    """That point's variables (a secret one masked)."""
    job_attempts: tuple[JobAttempt, ...] = ()
    """Every attempt of the job when `run.restart` relaunched it (empty: one attempt)."""

    @model_validator(mode="before")
    @classmethod
    def _null_collections_are_empty(cls, raw: Any) -> Any:
        """The original's readers treat `"artifacts": null` and friends as empty; so do we."""
        if isinstance(raw, dict):
            return {
                key: value
                for key, value in raw.items()
                if not (value is None and key in _COLLECTION_KEYS)
            }
        return raw

    @field_serializer("pulled_at_utc")
    def _spell_pulled_at(self, value: datetime | None) -> str | None:
        return None if value is None else format_utc(value)

    def to_json(self) -> str:
        """The file's text: every key written (nulls included), as the original writes them;
        the sweep keys only in a sweep's runs."""
        body = self.model_dump(mode="json")
        for key in _SWEEP_KEYS:
            if body.get(key) is None:
                body.pop(key, None)
        return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def estimate_cost_usd(
    wall_time_sec: float | None, price_per_hour_usd: float | None
) -> float | None:
    """Wall time at the captured $/hr, rounded to 4 places as the original rounds it."""
    if wall_time_sec is None or price_per_hour_usd is None:
        return None
    return round(price_per_hour_usd * wall_time_sec / 3600.0, 4)


def write_manifest(run_dir: Path, manifest: RunManifest, redactor: Redactor | None = None) -> Path:
    """Write the manifest atomically: a reader sees the old file or the whole new one, never half.

    Temp file in the same dir, fsync, rename over the target, fsync the dir. Raises `RunDirError`
    if the dir is missing or the disk refuses; the caller decides whether that fails the run.
    """
    target = run_dir / MANIFEST_FILENAME
    payload = (redactor or Redactor()).text(manifest.to_json()).encode("utf-8")
    try:
        fd, temp_name = tempfile.mkstemp(
            dir=run_dir, prefix=f".{MANIFEST_FILENAME}.", suffix=".tmp"
        )
    except OSError as error:
        raise RunDirError(
            f"cannot write manifest in {run_dir}: {error.strerror or error}"
        ) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
        _fsync_dir(run_dir)
    except OSError as error:
        Path(temp_name).unlink(missing_ok=True)
        raise RunDirError(f"cannot write {target}: {error.strerror or error}") from error
    return target


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; some filesystems refuse to open a dir, which is not worth failing."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_manifest(path: Path) -> RunManifest:
    """Read a manifest from its file or from the run dir holding it (v1, v2 or ours)."""
    file = path / MANIFEST_FILENAME if path.is_dir() else path
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunDirError(f"manifest not found: {file}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(f"cannot read manifest {file}: {error}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(f"manifest {file} is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"manifest {file} is a JSON {type(raw).__name__}, expected an object")
    try:
        return RunManifest.model_validate(raw)
    except ValidationError as error:
        raise ManifestError(
            f"manifest {file} has fields of the wrong type: {_first_problem(error)}"
        ) from None


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


# --------------------------------------------------------------------------------------------
# events.jsonl and metrics.jsonl


class EventName(StrEnum):
    """Every event a run records. The first block is the original's vocabulary, unchanged."""

    GPU_SELECTED = "gpu_selected"
    DATACENTER_FAILOVER = "datacenter_failover"
    CLOUD_TYPE_FALLBACK = "cloud_type_fallback"
    POD_RESUMED = "pod_resumed"
    REMOTE_STEP_STARTED = "remote_step_started"
    REMOTE_STEP_COMPLETED = "remote_step_completed"
    ARTIFACT_PULL_STARTED = "artifact_pull_started"
    ARTIFACT_PULL_COMPLETED = "artifact_pull_completed"
    ARTIFACT_PULL_FAILED = "artifact_pull_failed"
    REMOTE_LOG_PULL_FAILED = "remote_log_pull_failed"
    POD_KILLED_UNEXPECTED = "pod_killed_unexpected"

    RUN_STARTED = "run_started"
    PROVISIONING_ATTEMPT = "provisioning_attempt"
    POD_CREATED = "pod_created"
    POD_READY = "pod_ready"
    SSH_READY = "ssh_ready"
    PHASE_STARTED = "phase_started"
    PHASE_COMPLETED = "phase_completed"
    PHASE_FAILED = "phase_failed"
    SECRET_STAGED = "secret_staged"
    STAGING_PUSHED = "staging_pushed"
    JOB_LAUNCHED = "job_launched"
    JOB_RESTARTED = "job_restarted"
    RUN_ATTACHED = "run_attached"
    RUN_DETACHED = "run_detached"
    FAILURE_MARKER_SEEN = "failure_marker_seen"
    BUDGET_EXCEEDED = "budget_exceeded"
    RUNTIME_EXCEEDED = "runtime_exceeded"
    JOB_FINISHED = "job_finished"
    LIFECYCLE_APPLIED = "lifecycle_applied"
    RUN_FINISHED = "run_finished"


class EventRecord(_Record):
    """One line of events.jsonl: when, what, and the event's own fields as extra keys.

    `ts_utc` stays the string the file holds, so listings print it exactly as written.
    """

    ts_utc: str | None = None
    event: str | None = None

    @property
    def fields(self) -> dict[str, Any]:
        """The event's own fields, in file order (everything except `ts_utc` and `event`)."""
        return dict(self.model_extra or {})

    @property
    def timestamp(self) -> datetime | None:
        """`ts_utc` parsed (a naive time is taken as UTC), or None when absent or unparseable."""
        return parse_utc(self.ts_utc)


def parse_utc(text: str | None) -> datetime | None:
    """Parse an ISO 8601 time as the readers do: naive means UTC, garbage means None."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _JsonlAppender:
    """Appends whole JSON lines to one file, safely from many threads, never raising.

    Each line goes to the kernel in one `write` on an O_APPEND descriptor, so a crash (even
    SIGKILL) loses at most the line being written and never interleaves two lines. A failure to
    open or write is logged once and then the appender stays quiet: losing telemetry must never
    fail the job it describes.
    """

    def __init__(self, path: Path, redactor: Redactor | None = None) -> None:
        self.path = path
        self._redactor = redactor or Redactor()
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._warned = False

    def append(self, record: dict[str, Any]) -> None:
        text = json.dumps(record, ensure_ascii=False, default=_json_fallback)
        line = (self._redactor.text(text) + "\n").encode("utf-8")
        with self._lock:
            try:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                view = memoryview(line)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
            except OSError as error:
                self._warn_once(f"cannot append to {self.path}: {error.strerror or error}")

    def sync(self) -> None:
        with self._lock:
            if self._fd is None:
                return
            try:
                os.fsync(self._fd)
            except OSError as error:
                self._warn_once(f"cannot fsync {self.path}: {error.strerror or error}")

    def close(self) -> None:
        with self._lock:
            if self._fd is None:
                return
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("%s; further records to this file may be lost", message)


def _json_fallback(value: object) -> object:
    """Event fields are whatever the caller had at hand: times become ISO text, the rest str()."""
    if isinstance(value, datetime):
        return format_utc(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


_RESERVED_EVENT_KEYS = frozenset({"ts_utc", "event"})


class EventLog:
    """The writer of a run's events.jsonl. Thread-safe; I/O errors are logged once, never raised.

    `emit` makes each event durable against a crash of this process; `sync` (call it at phase
    boundaries) also makes it durable against a crash of the machine.
    """

    def __init__(self, path: Path, *, now: UtcClock = system_utc_now, redactor: Redactor | None = None) -> None:
        self._appender = _JsonlAppender(path, redactor)
        self._now = now

    @property
    def path(self) -> Path:
        return self._appender.path

    def emit(self, event: EventName, /, **fields: object) -> None:
        """Append `{"ts_utc", "event", **fields}` as one line, flushed to the kernel at once."""
        clash = _RESERVED_EVENT_KEYS.intersection(fields)
        if clash:
            raise ValueError(f"event fields may not be named {sorted(clash)}")
        record: dict[str, Any] = {"ts_utc": format_utc(self._now()), "event": str(event), **fields}
        self._appender.append(record)

    def sync(self) -> None:
        self._appender.sync()

    def close(self) -> None:
        self._appender.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class GpuSample(BaseModel):
    """The first GPU's line of `nvidia-smi --query-gpu=...` (see `parse_nvidia_smi`)."""

    model_config = ConfigDict(frozen=True)

    gpu_util_pct: int
    gpu_mem_used_mb: int
    gpu_mem_total_mb: int
    gpu_temp_c: int
    gpu_ecc_errors: int | None = None


class CpuSample(BaseModel):
    """Load and CPU split from `top -b -n1 | head -3`; a part top did not print stays None."""

    model_config = ConfigDict(frozen=True)

    cpu_load_1m: float | None = None
    cpu_user_pct: float | None = None
    cpu_sys_pct: float | None = None


class HostMemorySample(BaseModel):
    model_config = ConfigDict(frozen=True)

    host_mem_used_mb: int
    host_mem_total_mb: int


class DiskSample(BaseModel):
    model_config = ConfigDict(frozen=True)

    workspace_disk_used_bytes: int
    workspace_disk_total_bytes: int


Sample = GpuSample | CpuSample | HostMemorySample | DiskSample


class MetricsRow(_Record):
    """One line of metrics.jsonl. A sub-sample that failed leaves its keys out of the line."""

    ts_utc: str | None = None
    gpu_util_pct: int | None = None
    gpu_mem_used_mb: int | None = None
    gpu_mem_total_mb: int | None = None
    gpu_temp_c: int | None = None
    gpu_ecc_errors: int | None = None
    cpu_load_1m: Number | None = None
    cpu_user_pct: Number | None = None
    cpu_sys_pct: Number | None = None
    host_mem_used_mb: int | None = None
    host_mem_total_mb: int | None = None
    workspace_disk_used_bytes: int | None = None
    workspace_disk_total_bytes: int | None = None

    @classmethod
    def from_samples(cls, at: datetime, *samples: Sample | None) -> MetricsRow:
        """A row stamped `at`, with the keys of each sample that succeeded (None = failed)."""
        values: dict[str, Any] = {"ts_utc": format_utc(at)}
        for sample in samples:
            if sample is not None:
                values.update(sample.model_dump())
        return cls.model_validate(values)


class MetricsLog:
    """The writer of a run's metrics.jsonl, with the same never-raise guarantees as EventLog."""

    def __init__(self, path: Path, *, now: UtcClock = system_utc_now, redactor: Redactor | None = None) -> None:
        self._appender = _JsonlAppender(path, redactor)
        self._now = now

    @property
    def path(self) -> Path:
        return self._appender.path

    def record(self, *samples: Sample | None) -> MetricsRow:
        """Stamp the samples with the clock, append them as one row, and return the row."""
        row = MetricsRow.from_samples(self._now(), *samples)
        self._appender.append(row.present_fields())
        return row

    def close(self) -> None:
        self._appender.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def load_events(path: Path) -> tuple[EventRecord, ...]:
    """Read events.jsonl (the file or its run dir); a missing file is an empty history.

    A line that is not a JSON object (typically the last one, torn by a crash) is skipped with
    a warning naming the file and line, so one bad line never hides the rest of a run.
    """
    return tuple(_load_jsonl(path, EVENTS_FILENAME, EventRecord))


def load_metrics(path: Path) -> tuple[MetricsRow, ...]:
    """Read metrics.jsonl (the file or its run dir), skipping bad lines as `load_events` does."""
    return tuple(_load_jsonl(path, METRICS_FILENAME, MetricsRow))


_RecordT = TypeVar("_RecordT", bound=_Record)


def _load_jsonl(path: Path, filename: str, record_type: type[_RecordT]) -> Iterator[_RecordT]:
    file = path / filename if path.is_dir() else path
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    except OSError as error:
        logger.warning("cannot read %s: %s", file, error.strerror or error)
        return
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise TypeError(f"a JSON {type(raw).__name__}, not an object")
            yield record_type.model_validate(raw)
        except (ValueError, TypeError, ValidationError) as error:
            reason = _first_problem(error) if isinstance(error, ValidationError) else error
            logger.warning("%s:%d: skipping malformed line (%s)", file, line_number, reason)
