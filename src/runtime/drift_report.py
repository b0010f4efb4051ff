"""check_drift(paths, ...) -> DriftReport: the I/O side of `runpod-deploy drift`.

One provider listing serves every stack: the account's pods are listed once (`list_pods()`
returns RUNNING and EXITED alike) and the catalog read once; each stack is then planned in
memory by the pure planner against its slice of that listing. The only other calls are a
`get_pod` per pod that a state records and the listing lacks, so that a pod hidden by RunPod's
list lag is not called missing: a clean account costs two calls whatever the number of stacks
(three when a stack mounts a network volume: the account's volumes are listed once too).

Stacks are found under the given files and directories (`*.yaml`/`*.yml`, recursively, hidden
directories left out). A YAML file without the top-level `pod:` and `run:` keys every stack
has is skipped with a note; a stack that fails to load, to plan or to read its state is
reported as an error, and the other stacks are still checked.

Loading a stack file (variables, identity, state path) belongs to the face
(`runpod_deploy.api.load_stack`); it is passed in as `load`, so this module keeps to the
layering and a Python user can pass any loader that returns a `DriftTarget`.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from reconciler.diagnostics import RunpodDeployError
from reconciler.drift import (
    POD_NAME_SHAPE,
    DriftReport,
    SkippedPath,
    StackDrift,
    account_orphans,
    stack_drift,
    stack_failure,
)
from reconciler.naming import config_path_hash
from reconciler.observed import Catalog, NetworkVolume, Observation, ObservedPod
from reconciler.planner import plan
from reconciler.redaction import MARKER
from reconciler.state import StackIdentity, StackState
from reconciler.template import RenderedJob
from runtime.clock import Clock, SystemClock
from runtime.errors import ProviderError
from runtime.observe import read_account
from runtime.providers.protocol import PodProvider
from runtime.statestore import open_store

__all__ = [
    "AccountListing",
    "DriftInputError",
    "DriftTarget",
    "StackFiles",
    "check_drift",
    "find_stack_files",
    "instance_variables",
    "list_account",
]

_STACK_KEYS = (re.compile(r"^pod\s*:", re.MULTILINE), re.compile(r"^run\s*:", re.MULTILINE))
_SUFFIXES = (".yaml", ".yml")


class DriftInputError(RunpodDeployError):
    """A path given to `drift` does not exist."""


class DriftTarget(Protocol):
    """What drift needs of a loaded stack; `runpod_deploy.api.Stack` is one."""

    @property
    def config_path(self) -> Path: ...

    @property
    def job(self) -> RenderedJob: ...

    @property
    def identity(self) -> StackIdentity: ...

    @property
    def state_path(self) -> Path: ...

    @property
    def pod_prefix(self) -> str: ...


@dataclass(frozen=True, slots=True)
class StackFiles:
    stacks: tuple[Path, ...]
    skipped: tuple[SkippedPath, ...]


def find_stack_files(paths: Iterable[Path]) -> StackFiles:
    """The stack files under `paths`, in a stable order, and the YAML files that are not stacks.
    Raises DriftInputError for a path that does not exist (a typo in CI must not pass)."""
    stacks: list[Path] = []
    skipped: list[SkippedPath] = []
    for given in paths:
        if given.is_dir():
            candidates = sorted(
                p for p in given.rglob("*") if p.suffix in _SUFFIXES and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(given).parts))
        elif given.is_file():
            candidates = [given]
        else:
            raise DriftInputError(f"no such file or directory: {given}")
        for path in candidates:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                skipped.append(SkippedPath(path=str(path), why=f"unreadable ({exc})"))
                continue
            if all(key.search(text) for key in _STACK_KEYS):
                stacks.append(path)
            else:
                skipped.append(SkippedPath(path=str(path),
                                           why="not a stack (no top-level pod: and run:)"))
    return StackFiles(stacks=tuple(dict.fromkeys(stacks)), skipped=tuple(skipped))


@dataclass
class AccountListing:
    """Every pod of the account, indexed for slicing per stack, and the catalog."""

    pods: dict[str, ObservedPod]
    catalog: Catalog | None
    observed_at: datetime
    provider: str
    notes: list[str] = field(default_factory=list)
    network_volumes: tuple[NetworkVolume, ...] | None = None
    _by_prefix: dict[str, list[ObservedPod]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for pod in self.pods.values():
            self._index(pod)

    def _index(self, pod: ObservedPod) -> None:
        shape = POD_NAME_SHAPE.match(pod.name)
        if shape is not None:
            self._by_prefix.setdefault(shape.group(1), []).append(pod)

    def add(self, pod: ObservedPod) -> None:
        """A pod found by id after the listing (list lag)."""
        if pod.pod_id not in self.pods:
            self.pods[pod.pod_id] = pod
            self._index(pod)

    def observation_for(self, prefix: str, state: StackState) -> Observation:
        """What `runtime.observe.observe` would have returned for this stack, without a call:
        the pods carrying its prefix and those its state names."""
        chosen = {p.pod_id: p for p in self._by_prefix.get(prefix, ())}
        wanted = [state.pod.pod_id] if state.pod else []
        if state.pending is not None:
            if state.pending.pod_id:
                wanted.append(state.pending.pod_id)
            shape = POD_NAME_SHAPE.match(state.pending.pod_name)
            if shape is not None and shape.group(1) != prefix:
                # The name was given under another prefix (the stack was renamed since).
                chosen.update((p.pod_id, p) for p in self._by_prefix.get(shape.group(1), ())
                              if p.name.startswith(state.pending.pod_name))
        for pod_id in wanted:
            if pod_id in self.pods:
                chosen[pod_id] = self.pods[pod_id]
        return Observation(observed_at=self.observed_at, pods=tuple(chosen.values()),
                           catalog=self.catalog, network_volumes=self.network_volumes,
                           complete=True, provider=self.provider, notes=tuple(self.notes))


def list_account(provider: PodProvider, *, clock: Clock,
                 with_network_volumes: bool = False) -> AccountListing:
    """Every pod, the catalog and (on request) the network volumes, in one request where the
    provider can. A catalog or volume listing that fails is a note, not an error (plans then
    check ids against the static table only, and say a volume was not checked)."""
    notes: list[str] = []
    account = read_account(provider, prefix=None, cloud_type=None, with_catalog=True,
                           with_network_volumes=with_network_volumes, notes=notes,
                           volumes_required=False)
    return AccountListing(pods={p.pod_id: p for p in account.pods}, catalog=account.catalog,
                          observed_at=clock.now(), provider=provider.name, notes=notes,
                          network_volumes=account.network_volumes)


def instance_variables(directory: Path, pattern: str) -> list[dict[str, str]]:
    """The `--var` values of every instance of a stack with a state file in `directory` named
    by `pattern` (`<stem>@<digest>.json` beside the stack's own, see `reconciler.identity`)."""
    texts: list[bytes] = []
    for candidate in sorted(directory.glob(pattern)):
        with contextlib.suppress(OSError):
            texts.append(candidate.read_bytes())
    return variables_of(texts)


def variables_of(states: Iterable[bytes]) -> list[dict[str, str]]:
    """The `--var` values recorded in these instance states. An instance whose values include
    a masked secret cannot be re-rendered and is left out."""
    found: list[dict[str, str]] = []
    for text in states:
        try:
            data = json.loads(text)
            variables = data["identity"]["variables"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(variables, dict) and variables and not any(
                str(v) == MARKER for v in variables.values()):
            found.append({str(k): str(v) for k, v in variables.items()})
    return found


def check_drift(paths: Sequence[Path], *, load: Callable[..., DriftTarget],
                provider: PodProvider | None, clock: Clock | None = None,
                state_dir: Path | None = None) -> DriftReport:
    """Find the stacks under `paths`, list the account once, plan each stack in memory and
    read the plans as a drift report. Each `--var` instance that has a state file is a stack
    of its own; `state_dir` (the default state files' directory) finds those of a template
    that cannot load without its variables. Raises DriftInputError for a missing path and
    ProviderError when the account cannot be listed (no verdict is possible without it)."""
    if provider is None:
        raise ProviderError("runpodctl was not found on PATH; install it, or use --provider api "
                            "(with RUNPOD_API_KEY) or --local", provider="runpodctl",
                            operation="list_pods")
    files = find_stack_files(paths)

    loaded: list[tuple[DriftTarget, StackState]] = []
    located: dict[str, str] = {}
    entries: dict[str, StackDrift] = {}
    unknowable: set[str] = set()
    for path in files.stacks:
        where = str(path.absolute())
        targets: list[tuple[str, DriftTarget]] = []
        try:
            stack = load(path)
            targets.append((where, stack))
            own = open_store(stack.state_path, stack.identity, getattr(stack, "backend", None))
            instances = variables_of(own.instance_states())  # on the stack's backend too
        except RunpodDeployError as exc:
            # A template that cannot render without its `--var`s: its instances can.
            instances = [] if state_dir is None else instance_variables(
                state_dir, f"*-{config_path_hash(where)[:8]}@*.json")
            if not instances:
                entries[where] = stack_failure(where, str(exc))
                continue
        for variables in instances:
            label = ", ".join(f"{k}={v}" for k, v in sorted(variables.items()))
            try:  # each `--var` instance of the stack has its own state and pods
                targets.append((f"{where} [{label}]", load(path, cli_vars=variables)))
            except RunpodDeployError as exc:
                entries[f"{where} [{label}]"] = stack_failure(where, str(exc))
        for key, target in targets:
            try:
                store = open_store(target.state_path, target.identity,
                                   getattr(target, "backend", None))
                located[key] = store.location  # on a shared backend: its URL
                state = store.read()
            except RunpodDeployError as exc:
                unknowable.add(target.pod_prefix)
                entries[key] = stack_failure(where, str(exc), name=target.job.spec.name,
                                             state_path=str(target.state_path))
                continue
            loaded.append((target, state))

    # One listing for every stack; volumes only when a stack mounts one. Without them such a
    # stack's plan says its volume was not checked, which is no reason to give up on the others.
    account = list_account(provider, clock=clock or SystemClock(),
                           with_network_volumes=any(stack.job.spec.uses_network_volume
                                                    for stack, _ in loaded))

    # A recorded pod the listing lacks is looked up by id: gone, or hidden by list lag?
    for _, state in loaded:
        for pod_id in _named_pod_ids(state):
            if pod_id not in account.pods:
                found = provider.get_pod(pod_id)
                if found is not None:
                    account.add(found)

    accounted: set[str] = set()
    stack_by_prefix: dict[str, str] = {}
    for stack, state in loaded:
        name, where = stack.identity.label, str(stack.config_path)
        if stack.identity.variables:
            where = f"{where} [{', '.join(f'{k}={v}' for k, v in sorted(stack.identity.variables.items()))}]"
        stack_by_prefix[stack.pod_prefix] = name
        accounted.update(_named_pod_ids(state))
        try:
            the_plan = plan(stack.job, state, account.observation_for(stack.pod_prefix, state),
                            config_path=where,
                            state_path=located.get(where, str(stack.state_path)))
        except RunpodDeployError as exc:
            unknowable.add(stack.pod_prefix)
            entries[where] = stack_failure(where, str(exc), name=name,
                                           state_path=str(stack.state_path))
            continue
        accounted.update(step.pod_id for step in the_plan.steps if step.pod_id)
        entries[where] = stack_drift(the_plan, state).model_copy(update={"name": name})

    orphans = account_orphans(account.pods.values(), stack_by_prefix=stack_by_prefix,
                              accounted=accounted, unknowable_prefixes=frozenset(unknowable))
    return DriftReport(provider=account.provider,
                       observed_at=account.observed_at.isoformat(timespec="seconds"),
                       stacks=tuple(entries[k] for k in sorted(entries)), orphans=orphans,
                       skipped=files.skipped, notes=tuple(account.notes))


def _named_pod_ids(state: StackState) -> list[str]:
    ids = [state.pod.pod_id] if state.pod else []
    if state.pending is not None and state.pending.pod_id:
        ids.append(state.pending.pod_id)
    return ids
