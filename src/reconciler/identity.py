"""Which stack *instance* a run belongs to: the stack file plus the values of its variables.

One template run with `--var seed=1` and with `--var seed=2` is two stacks, each with its own
state file, lock and pods, exactly as two stack files would be; the same values twice are the
same instance, so two runs of it still exclude each other. A stack run without `--var` /
`--vars-file` keeps the identity (and the state path) it always had, so existing state is found.

The derivation is pure and is the one place the key is made: the state backends address a
stack by `StackInstance.key`, and sweep drivers reuse it.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.naming import config_path_hash, stack_key
from reconciler.redaction import MARKER

__all__ = ["StackInstance", "instance_state_path", "stack_instance", "variables_digest"]


@dataclass(frozen=True)
class StackInstance:
    """The identity of one instance: what a state file records and what pod names carry."""

    name: str
    """The rendered stack name."""
    config_hash: str
    """16 hex characters: the stack file's path, and the variables' values when any were given."""
    key: str
    """6 hex characters in every pod name of the instance (`<slug>--<key>--<nonce>`)."""
    variables: tuple[tuple[str, str], ...] = ()
    """The `--var` / `--vars-file` values that make this instance, sorted by name (a secret
    one masked)."""

    @property
    def instance_suffix(self) -> str:
        """`""` for the stack itself; `@<8 hex of config_hash>` for an instance of given
        variables."""
        return f"@{self.config_hash[:8]}" if self.variables else ""


def variables_digest(variables: Mapping[str, str]) -> str:
    """sha256 (hex) of the values, independent of the order they were given in."""
    canonical = json.dumps(sorted(variables.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def stack_instance(name: str, abs_config_path: str, variables: Mapping[str, str] | None = None,
                   *, secret_names: frozenset[str] = frozenset()) -> StackInstance:
    """The instance of the stack at `abs_config_path` (rendered `name`) for the given CLI
    variables. With no variables it is the plain stack: the key the tool always used.

    The key hashes the real values; `variables` keeps them for display, with a secret one
    replaced by a marker (they are written to the state file)."""
    path_hash = config_path_hash(abs_config_path)
    given = dict(variables or {})
    if not given:
        return StackInstance(name=name, config_hash=path_hash[:16],
                             key=stack_key(name, abs_config_path))
    combined = hashlib.sha256(f"{path_hash}\0{variables_digest(given)}".encode()).hexdigest()
    key = hashlib.sha256(f"{name}\0{combined}".encode()).hexdigest()[:6]
    shown = tuple(sorted((k, MARKER if k in secret_names else v)
                         for k, v in given.items()))
    return StackInstance(name=name, config_hash=combined[:16], key=key, variables=shown)


def instance_state_path(base_state_path: str, instance: StackInstance) -> str:
    """The state file of an instance: the stack's own path, with `@<digest>` before `.json`
    (or at the end) when the instance has variables. The stack's path is unchanged."""
    suffix = instance.instance_suffix
    if not suffix:
        return base_state_path
    head, tail = posixpath.split(base_state_path)
    stem, dot, ext = tail.rpartition(".")
    if dot and stem and ext == "json":
        return posixpath.join(head, f"{stem}{suffix}.json")
    return base_state_path + suffix
