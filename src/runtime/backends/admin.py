"""What the `state` commands do, over any backend: list, show, pull, push, migrate, unlock.

Each works from a backend URL and state keys (`stacks/<file>.json`), so it needs no stack file:
a CI job or a new teammate with only the URL sees what the team's stacks hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.state import StackState, StateDecodeError
from runtime.backends import BackendUrl, ConditionFailed, StateBackend, open_backend
from runtime.backends.file import FileBackend
from runtime.errors import StateError
from runtime.statestore import StateStore, is_state_key, store_at

__all__ = [
    "MigrationReport",
    "StateRow",
    "backend_of",
    "find_key",
    "list_states",
    "migrate",
    "push_state",
    "unlock",
]


def backend_of(url: BackendUrl) -> StateBackend:
    return FileBackend(Path(url.root)) if url.is_file else open_backend(url)


def label_of(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name.removesuffix(".json")


@dataclass(frozen=True, slots=True)
class StateRow:
    """One stack as `state list` shows it."""

    stack: str
    name: str
    pod_id: str | None
    status: str
    serial: int
    lineage: str | None
    last_run: str | None
    last_outcome: str | None
    lock: str | None
    location: str

    def to_json_value(self) -> dict[str, Any]:
        return {"stack": self.stack, "name": self.name, "pod_id": self.pod_id,
                "status": self.status, "serial": self.serial, "lineage": self.lineage,
                "last_run": self.last_run, "last_outcome": self.last_outcome,
                "lock": self.lock, "location": self.location}


def _status(state: StackState) -> str:
    if state.pending is not None:
        return f"pending {state.pending.kind.value}"
    return "pod recorded" if state.pod is not None else "no pod"


def state_keys(backend: StateBackend, keys: list[str] | None = None) -> list[str]:
    """The stacks' state keys, with those only a lock names yet (an apply that died before
    its first write)."""
    keys = backend.list("stacks/") if keys is None else keys
    found = {key for key in keys if is_state_key(key)}
    found |= {key.removesuffix(".lease") for key in keys
              if key.endswith(".json.lease") and is_state_key(key.removesuffix(".lease"))}
    return sorted(found)


def list_states(url: BackendUrl, *, local_dir: str) -> list[StateRow]:
    """Every stack state in the backend, with its pod, serial, last run and lock holder."""
    backend = backend_of(url)
    keys = backend.list("stacks/")
    migrated = {key[: -len(".migrated")] for key in keys if key.endswith(".migrated")}
    rows: list[StateRow] = []
    for key in state_keys(backend, keys):
        store = store_at(url, key, local_dir=local_dir)
        if key in migrated:
            marker = backend.read(f"{key}.migrated")
            target = json.loads(marker.data).get("to", "?") if marker else "?"
            rows.append(StateRow(stack=label_of(key), name="", pod_id=None,
                                 status=f"migrated to {target}", serial=0, lineage=None,
                                 last_run=None, last_outcome=None, lock=None,
                                 location=store.location))
            continue
        try:
            state = store.read()
        except StateError as exc:
            rows.append(StateRow(stack=label_of(key), name="", pod_id=None,
                                 status=f"unreadable: {exc}", serial=0, lineage=None,
                                 last_run=None, last_outcome=None, lock=None,
                                 location=store.location))
            continue
        lock = store.lock_description()
        rows.append(StateRow(
            stack=label_of(key), name=state.identity.name if state.identity else "",
            pod_id=state.pod.pod_id if state.pod else None, status=_status(state),
            serial=state.serial, lineage=state.lineage,
            last_run=state.last_run.run_id if state.last_run else None,
            last_outcome=state.last_run.outcome if state.last_run else None,
            lock=lock, location=store.location))
    return rows


def find_key(url: BackendUrl, stack: str) -> str:
    """The key of a stack named by its label (`state list`'s STACK column) or its name."""
    keys = state_keys(backend_of(url))
    if f"stacks/{stack}.json" in keys:
        return f"stacks/{stack}.json"
    from reconciler.naming import slug

    matches = [key for key in keys if label_of(key).rsplit("-", 1)[0] == slug(stack)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise StateError(f"{len(matches)} stacks are named {stack!r} in {url.display}: "
                         f"{', '.join(label_of(k) for k in matches)}; give one of these")
    known = ", ".join(label_of(k) for k in keys[:10]) or "none"
    raise StateError(f"no stack {stack!r} in {url.display} (stacks there: {known}); see "
                     "`runpod-deploy state list`")


def push_state(store: StateStore, text: str, *, force: bool = False) -> StackState:
    """Replace a stack's state with `text` (a pulled state, edited), under its lock. Refused
    when its lineage differs or its serial is behind the stored one, unless `force`."""
    try:
        given = StackState.from_json(text)
    except StateDecodeError as exc:
        raise StateError(f"the state to push is not a state file: {exc}") from None
    with store.lock(timeout=0, command="state push"):
        current = store.read()
        if not force and current.lineage and given.lineage != current.lineage:
            raise StateError(f"the state to push has lineage {given.lineage}, the stored one "
                             f"{current.lineage}: it is another stack's history (--force to "
                             "replace it anyway)")
        if not force and given.serial < current.serial:
            raise StateError(f"the state to push is at serial {given.serial}, behind the stored "
                             f"serial {current.serial} (pull again, or --force)")
        return store.write(given.evolve(serial=max(given.serial, current.serial),
                                        identity=given.identity or current.identity))


@dataclass(frozen=True, slots=True)
class MigrationReport:
    copied: tuple[str, ...]
    unchanged: tuple[str, ...]
    runs_copied: int


def migrate(source: BackendUrl, target: BackendUrl, *, local_dir: str) -> MigrationReport:
    """Copy every stack state (bytes as they are: lineage and serial kept) and every run record
    from `source` to `target`, each under its source lock; mark each source state migrated."""
    if source.display == target.display:
        raise StateError(f"the source and the target are the same backend ({source.display})")
    src, dst = backend_of(source), backend_of(target)
    copied: list[str] = []
    unchanged: list[str] = []
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    for key in state_keys(src):
        store = store_at(source, key, local_dir=local_dir)
        with store.lock(timeout=0, command=f"state migrate --to {target.display}"):
            found = src.read(key)
            if found is None:
                continue
            if src.read(f"{key}.migrated") is not None:
                continue
            existing = dst.read(key)
            if existing is not None and existing.data == found.data:
                unchanged.append(key)
            elif existing is not None:
                theirs, ours = _lineage_serial(existing.data), _lineage_serial(found.data)
                if theirs[0] != ours[0] or theirs[1] > ours[1]:
                    raise StateError(
                        f"{dst.where(key)} already holds another state (lineage {theirs[0]}, "
                        f"serial {theirs[1]}) than {src.where(key)} (lineage {ours[0]}, serial "
                        f"{ours[1]}); nothing of this stack was moved")
                dst.write_if(key, found.data, existing.version)
                copied.append(key)
            else:
                dst.create_if_absent(key, found.data)
                copied.append(key)
            pins = src.read(f"{key}.hostkeys.json")
            if pins is not None:  # the pods' SSH host keys, so another machine can resume
                dst.put(f"{key}.hostkeys.json", pins.data)
            dst.delete(f"{key}.migrated")
            src.put(f"{key}.migrated", json.dumps({"to": target.display, "at": stamp}).encode())
    runs = 0
    for key in src.list("runs/"):
        if dst.read(key) is None:
            blob = src.read(key)
            if blob is not None:
                dst.put(key, blob.data)
                runs += 1
    return MigrationReport(tuple(copied), tuple(unchanged), runs)


def _lineage_serial(data: bytes) -> tuple[str | None, int]:
    try:
        state = StackState.from_json(data.decode("utf-8"))
    except (StateDecodeError, UnicodeDecodeError):
        return None, -1
    return state.lineage, state.serial


def unlock(url: BackendUrl, key: str, lock_id: str) -> str:
    """Remove a stuck lock (its holder is gone) by its id; returns who held it."""
    from runtime.backends.lease import lease_key, read_lease

    backend = backend_of(url)
    if url.is_file:
        raise StateError("a file:// backend's lock is the operating system's file lock, which "
                         "ends with its holder process: there is nothing to unlock")
    info, version = read_lease(backend, key)
    if version is None:
        raise StateError(f"{backend.where(key)} is not locked")
    if info is None or info.lock_id != lock_id:
        actual = info.lock_id if info else "unreadable"
        raise StateError(f"the lock on {backend.where(key)} has id {actual}, not {lock_id}; "
                         "nothing was removed")
    try:
        backend.delete(lease_key(key), version)
    except ConditionFailed:
        raise StateError(f"the lock on {backend.where(key)} changed while unlocking (renewed or "
                         "taken over): its holder is alive; nothing was removed") from None
    return info.describe()


def fetch_runs(url: BackendUrl, dest: Path) -> Path:
    """Copy the team's run records (`runs/<stack>/<run_id>/`) into `dest/artifacts/runpod/`,
    one dir per run, so the forensic readers work on them as on a project's own runs. Returns
    `dest` (a project root)."""
    backend = backend_of(url)
    base = dest / "artifacts" / "runpod"
    targets: dict[tuple[str, str], Path] = {}
    for key in backend.list("runs/"):
        parts = key.split("/")
        if len(parts) != 4:
            continue
        _, stack, run_id, name = parts
        target = targets.get((stack, run_id))
        if target is None:
            target = base / run_id
            if target.exists():  # two stacks' runs in the same second
                target = base / f"{run_id}-{stack}"
            target.mkdir(parents=True)
            targets[(stack, run_id)] = target
        blob = backend.read(key)
        if blob is not None:
            (target / name).write_bytes(blob.data)
    return dest


def migrate_stack(source: StateStore, target: StateStore, to: str) -> str:
    """Move one stack's state from `source` to `target`, which may key and identify it
    differently (a state written without a backend is keyed by the stack file's absolute path,
    one on a backend by its path in the repository): the state takes the target's identity and
    keeps its lineage, serial, pod and journal; the pins go along; the source is marked
    migrated. Returns `copied`, `unchanged` or `empty` (nothing recorded: nothing to move)."""
    with source.lock(timeout=0, command=f"state migrate --to {to}"):
        state = source.read()
        if state.lineage is None and state.is_empty:
            return "empty"
        with target.lock(timeout=0, command=f"state migrate --to {to}"):
            target.clear_migrated()
            existing = target.read()
            moved = state.evolve(identity=target.identity or state.identity)
            if existing.lineage is not None:
                if existing.lineage != state.lineage or existing.serial > state.serial:
                    raise StateError(
                        f"{target.location} already holds another state (lineage "
                        f"{existing.lineage}, serial {existing.serial}) than {source.location} "
                        f"(lineage {state.lineage}, serial {state.serial}); nothing was moved")
                if existing == moved:
                    source.mark_migrated(to)
                    return "unchanged"
            target.write(moved, bump=False)
            pins = source.read_pins()
            if pins is not None:
                target.write_pins(pins)
        source.mark_migrated(to)
    return "copied"
