"""The stack format (`schema_version: 2`) as frozen pydantic models.

Every section is `ConfigDict(frozen=True, extra="forbid")`, with the original 0.8.4 defaults and
validation rules, so that existing stack files load unchanged. Types are exact, as in the
original: a bool is not an int, an int is accepted where a float is expected, lists hold
strings only. What this tool adds is optional and has a default (a variable may be marked
secret; see docs/templates.md).

The models hold the text as written. Rendering `{variables}` is `reconciler.template`'s job;
`load.py` turns YAML text into a `JobSpec` and pydantic errors into located diagnostics.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reconciler.observed import CloudType

__all__ = [
    "DEFAULT_FAILURE_MARKERS",
    "DEFAULT_STAGING_EXCLUDES",
    "SCHEMA_VERSION",
    "ArtifactPull",
    "Budget",
    "Command",
    "JobSpec",
    "Lifecycle",
    "LifecycleAction",
    "LocalSpec",
    "PodSpec",
    "RemoteEnv",
    "RestartOn",
    "RestartSpec",
    "RunSpec",
    "SecretSpec",
    "SshSpec",
    "StagingPush",
    "StorageMode",
    "StorageSpec",
    "Telemetry",
    "Variable",
    "json_schema",
]

SCHEMA_VERSION = 2
DEFAULT_FAILURE_MARKERS: tuple[str, ...] = (
    "Traceback",
    "OutOfMemoryError",
    "CUDA out of memory",
    "No space left on device",
    "Killed",
)
DEFAULT_STAGING_EXCLUDES: tuple[str, ...] = (
    ".git/",
    ".venv/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".mypy_cache/",
    "**/__pycache__/",
    "**/*.pyc",
)

_PYTHON_VERSION = re.compile(r"^3\.\d+(\.\d+)?$")
_OCTAL_MODE = re.compile(r"^0?[0-7]{3}$")

Str = StrictStr
Int = StrictInt
Bool = StrictBool
Float = Annotated[float, Strict()]
NonEmpty = Annotated[StrictStr, Field(min_length=1)]
PosInt = Annotated[StrictInt, Field(gt=0)]
PosFloat = Annotated[float, Strict(), Field(gt=0)]
Strs = tuple[StrictStr, ...]


def _fail(error_type: str, message: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(error_type, message, ctx or None)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class LifecycleAction(StrEnum):
    """What happens to the pod when the job ends."""

    PRESERVE = "preserve"
    STOP = "stop"
    DELETE = "delete"
    RECYCLE = "recycle"


class StorageMode(StrEnum):
    EPHEMERAL = "ephemeral"
    NETWORK_VOLUME = "network_volume"


class LocalSpec(_Section):
    """Local paths: the project root (relative to the stack file's directory) and required paths."""

    project_root: Str = "."
    required_paths: Strs = ()


class PodSpec(_Section):
    """The pod to provision. Not template-rendered."""

    image: NonEmpty
    datacenters: Annotated[Strs, Field(min_length=1)]
    gpu_order: Annotated[Strs, Field(min_length=1)]
    cloud_type: CloudType = CloudType.SECURE
    ports: Strs = ("22/tcp",)
    container_disk_gb: PosInt = 20
    gpu_count: PosInt = 1
    spot: Bool = False
    min_vcpu_count: PosInt | None = None
    min_memory_gb: PosInt | None = None
    python_version: Str | None = None

    @field_validator("python_version")
    @classmethod
    def _python_version(cls, value: str | None) -> str | None:
        if value is not None and not _PYTHON_VERSION.match(value):
            raise _fail("python_version", "expected '3.MINOR' or '3.MINOR.PATCH' (e.g. '3.13' "
                        "or '3.13.5'), got '{value}'; pre-releases are rejected on purpose",
                        value=value)
        return value


class StorageSpec(_Section):
    """Ephemeral pod volume (`volume_gb`) or a named network volume. Not template-rendered."""

    mode: StorageMode
    volume_mount: Str = "/workspace"
    volume_name: Str | None = None
    volume_gb: Int | None = None

    @field_validator("volume_mount")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise _fail("absolute_path", "expected an absolute path, got '{value}'", value=value)
        return value

    @model_validator(mode="after")
    def _by_mode(self) -> StorageSpec:
        if self.mode is StorageMode.NETWORK_VOLUME and not self.volume_name:
            raise _fail("volume_name", "storage.volume_name is required when mode is "
                        "network_volume")
        if self.mode is StorageMode.EPHEMERAL and (self.volume_gb is None or self.volume_gb <= 0):
            raise _fail("volume_gb", "storage.volume_gb must be a positive integer when mode "
                        "is ephemeral")
        return self


class SshSpec(_Section):
    key_path: Str = "~/.ssh/id_ed25519"


class Budget(_Section):
    """Cost and time limits. Enforcement is by wall clock: see `timeout_sec`."""

    cost_cap_usd: PosFloat = 10.0
    assumed_hourly_rate_usd: PosFloat = 1.65
    max_runtime_minutes: PosInt | None = None
    poll_interval_sec: PosInt = 60
    ssh_ready_timeout_sec: PosInt = 900

    @property
    def timeout_sec(self) -> int:
        """The run's deadline: max_runtime_minutes, else what the cap buys at the assumed rate."""
        if self.max_runtime_minutes is not None:
            return self.max_runtime_minutes * 60
        return int(self.cost_cap_usd / self.assumed_hourly_rate_usd * 3600)


class RemoteEnv(_Section):
    source_files: Strs = ()
    exports: dict[StrictStr, StrictStr] = Field(default_factory=dict)


class Command(_Section):
    """One remote shell command of `setup` or `preflight`."""

    command: Str
    timeout_sec: PosInt = 600
    with_env: Bool = False

    @field_validator("command")
    @classmethod
    def _non_blank(cls, value: str) -> str:
        if not value.strip():
            raise _fail("blank", "expected a non-empty command")
        return value


class StagingPush(_Section):
    """One rsync push, local -> pod."""

    label: NonEmpty
    source: NonEmpty
    destination: NonEmpty
    excludes: Strs = ()
    delete: Bool = True
    excludes_default: Bool = False
    excludes_extra: Strs = ()

    @property
    def effective_excludes(self) -> tuple[str, ...]:
        base = DEFAULT_STAGING_EXCLUDES if self.excludes_default else ()
        return base + self.excludes + self.excludes_extra


class SecretSpec(_Section):
    """A file staged on the pod from local env vars (`env`) or a local file (`file`)."""

    name: NonEmpty
    destination: NonEmpty
    env: Strs = ()
    file: Str | None = None
    mode: Str = "0600"

    @field_validator("destination")
    @classmethod
    def _dest(cls, value: str) -> str:
        if not value.startswith(("/", "{")):
            raise _fail("absolute_path", "expected an absolute path or a template such as "
                        "'{remote_repo}/.env', got '{value}'", value=value)
        return value

    @field_validator("env")
    @classmethod
    def _identifiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name.isidentifier():
                raise _fail("identifier", "expected environment variable names, got '{name}'",
                            name=name)
        return value

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if not _OCTAL_MODE.match(value):
            raise _fail("octal", "expected a 3- or 4-digit octal mode such as '0600', got "
                        "'{value}'", value=value)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> SecretSpec:
        if bool(self.env) == (self.file is not None):
            raise _fail("secret_source", "set exactly one of 'env' (a list of local variable "
                        "names) or 'file' (a local path)")
        return self


def _remote_path(value: str) -> str:
    if not value.startswith(("/", "{")):
        raise _fail("absolute_path", "expected an absolute path or a template such as "
                    "'{remote_repo}/run.sh', got '{value}'", value=value)
    return value


class RestartOn(StrEnum):
    """What ends an attempt and starts the next (the event vocabulary's names)."""

    POD_KILLED_UNEXPECTED = "pod_killed_unexpected"
    """The pod left RUNNING under the job: a spot reclaim, a lost host."""


class RestartSpec(_Section):
    """`run.restart`: relaunch the job after an interruption, `max_attempts` in all (the first
    included); each attempt sees `RUNPOD_DEPLOY_ATTEMPT=<n>`, to resume from its checkpoint."""

    max_attempts: PosInt = 1
    on: tuple[Literal["pod_killed_unexpected"], ...] = ("pod_killed_unexpected",)
    """`RestartOn` values, kept as plain strings so a dumped spec is plain data."""


class RunSpec(_Section):
    """The job: a script written to `script_path`, run detached, logging to `log_path`."""

    script_path: Str
    log_path: Str
    success_marker: NonEmpty
    body: Str
    failure_markers: Strs = DEFAULT_FAILURE_MARKERS
    restart: RestartSpec = RestartSpec()

    _paths = field_validator("script_path", "log_path")(_remote_path)

    @field_validator("body")
    @classmethod
    def _body(cls, value: str) -> str:
        if not value.strip():
            raise _fail("blank", "expected a non-empty script body")
        return value


class ArtifactPull(_Section):
    """One rsync pull, pod -> local, after the run."""

    label: NonEmpty
    remote_path: NonEmpty
    local_path: NonEmpty
    required: Bool = True
    excludes: Strs = ()
    delete: Bool = True


class Lifecycle(_Section):
    """What to do with the pod after success and after failure (never recycle a failed pod)."""

    on_success: LifecycleAction = LifecycleAction.DELETE
    on_failure: LifecycleAction = LifecycleAction.STOP
    self_stop_after_sec: Annotated[StrictInt, Field(ge=0)] | None = 300
    """Once the job has ended, a client has this long to finish the run (pull, lifecycle);
    then the pod stops itself from inside (`runpodctl pod stop`), so a pod nobody watches stops
    billing GPU time. Stop, never delete. null: never."""

    @field_validator("on_success", "on_failure", mode="before")
    @classmethod
    def _string(cls, value: object) -> object:
        if not isinstance(value, str):
            raise _fail("lifecycle_action", "expected one of preserve, stop, delete, recycle; "
                        "got {kind} '{value}'", kind=type(value).__name__, value=value)
        return value

    @field_validator("on_failure")
    @classmethod
    def _no_recycle(cls, value: LifecycleAction) -> LifecycleAction:
        if value is LifecycleAction.RECYCLE:
            raise _fail("recycle_on_failure", "cannot be 'recycle': a failed pod may hold "
                        "corrupted state; use preserve, stop or delete")
        return value


class Telemetry(_Section):
    enabled: Bool = True
    sample_interval_sec: Annotated[StrictInt, Field(ge=5)] = 30
    capture_nvidia_smi: Bool = True
    capture_dmesg: Bool = True
    capture_pod_describe: Bool = True
    capture_remote_env: Bool = True
    capture_local_git: Bool = True
    capture_payload_lockfile: Bool = True


class Variable(_Section):
    """A `variables:` entry. Written as a plain string, or as `{value, secret}`.

    A secret variable's value never reaches a plan, a log or the state; it may be left without
    a value in the file and supplied by `--var` or `--vars-file`.
    """

    value: Str | None = None
    secret: Bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, raw: object) -> object:
        if isinstance(raw, str):
            return {"value": raw}
        if not isinstance(raw, dict):
            raise _fail("variable", "expected a string, or a mapping {value: ..., secret: "
                        "true}; got {kind}", kind=type(raw).__name__)
        return raw


class JobSpec(_Section):
    """A whole stack file. `name`, `pod`, `storage` and `run` are required."""

    schema_version: Literal[2] = 2
    name: NonEmpty
    run_id_prefix: NonEmpty | None = None
    state_file: Str | None = None
    backend: Str | None = Field(default=None, exclude=True)
    """Where the stack's state lives for everyone (`s3://BUCKET/PREFIX?...`, `file://DIR`);
    `--backend` and `RUNPOD_DEPLOY_BACKEND` take precedence. Docs: docs/state.md. Left out of
    dumps (and so of the plan's fingerprint): where the state lives is not what to run."""
    variables: dict[StrictStr, Variable] = Field(default_factory=dict)
    local: LocalSpec = LocalSpec()
    pod: PodSpec
    storage: StorageSpec
    ssh: SshSpec = SshSpec()
    budget: Budget = Budget()
    remote_env: RemoteEnv = RemoteEnv()
    setup: tuple[Command, ...] = ()
    preflight: tuple[Command, ...] = ()
    staging: tuple[StagingPush, ...] = ()
    secrets: tuple[SecretSpec, ...] = ()
    run: RunSpec
    artifacts: tuple[ArtifactPull, ...] = ()
    lifecycle: Lifecycle = Lifecycle()
    telemetry: Telemetry = Telemetry()

    @field_validator("variables")
    @classmethod
    def _identifier_keys(cls, value: dict[str, Variable]) -> dict[str, Variable]:
        for key in value:
            if not key.isidentifier():
                raise _fail("identifier", "variable names must be identifiers "
                            "([A-Za-z_][A-Za-z0-9_]*), got '{key}'", key=key)
        return value

    @property
    def effective_run_id_prefix(self) -> str:
        return self.run_id_prefix or self.name

    @property
    def uses_network_volume(self) -> bool:
        return self.storage.mode is StorageMode.NETWORK_VOLUME


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the stack format, for editors (yaml-language-server)."""
    schema = JobSpec.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "runpod-deploy stack (schema_version 2)"
    # A variable may be written as a plain string as well as {value, secret}.
    defs = schema.get("$defs", {})
    if "Variable" in defs:
        defs["VariableOrString"] = {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/Variable"}]}
        schema["properties"]["variables"]["additionalProperties"] = {
            "$ref": "#/$defs/VariableOrString"}
    return schema
