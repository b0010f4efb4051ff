"""Names derived from a stack: its identity key, the default state file and its pods' names.

A pod name is `<slug>--<key>--<nonce>`: the slug of the rendered run_id_prefix (or name), six hex
characters of the stack identity hash, and a fresh nonce per create attempt. A slug never holds
`--` (runs of `-` collapse), so the first `--` in a name ends the slug: two stacks' prefixes
`<slug>--<key>--` can only be prefixes of one another when slug and key are equal. Pods that
carry the prefix and that the state does not record are orphans.
"""

from __future__ import annotations

import hashlib
import posixpath
import re

__all__ = [
    "config_path_hash",
    "default_state_path",
    "pod_name",
    "slug",
    "stack_key",
    "stack_pod_prefix",
]

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_MAX_SLUG = 40


def slug(text: str) -> str:
    """Lowercase letters, digits and single dashes; never empty, at most 40 characters."""
    out = _NOT_SLUG.sub("-", text.lower()).strip("-")[:_MAX_SLUG].strip("-")
    return out or "stack"


def config_path_hash(abs_config_path: str) -> str:
    """sha256 of the absolute stack file path, hex."""
    return hashlib.sha256(abs_config_path.encode()).hexdigest()


def stack_key(name: str, abs_config_path: str) -> str:
    """Six hex characters identifying a stack: its rendered name and its file."""
    digest = hashlib.sha256(f"{name}\0{config_path_hash(abs_config_path)}".encode()).hexdigest()
    return digest[:6]


def stack_pod_prefix(run_id_prefix: str, key: str) -> str:
    """The part of every pod name of the stack before the per-attempt nonce."""
    return f"{slug(run_id_prefix)}--{key}--"


def pod_name(prefix: str, nonce: str) -> str:
    """The name of one create attempt; the shell supplies a fresh nonce (e.g. 6 hex)."""
    return f"{prefix}{slug(nonce)}"


def default_state_path(name: str, abs_config_path: str, *, home: str,
                       state_dir: str | None = None) -> str:
    """`$RUNPOD_DEPLOY_STATE_DIR` (default `~/.local/state/runpod-deploy`) +
    `stacks/<slug(name)>-<sha256(config path)[:8]>.json`. The shell passes the env value."""
    base = state_dir or posixpath.join(home, ".local", "state", "runpod-deploy")
    if base == "~" or base.startswith("~/"):
        base = home + base[1:]
    filename = f"{slug(name)}-{config_path_hash(abs_config_path)[:8]}.json"
    return posixpath.join(base, "stacks", filename)
