"""The one redaction boundary: every byte that leaves the process passes a `Redactor`.

A run knows its secrets once it has rendered the stack: the values of `secret: true`
variables (from the file, `--var` or `--vars-file`), the values of the environment variables
that `secrets[].env` ships to the pod, and the provider's API key. One `Redactor` made from
them is handed to every writer and view (terminal lines, events.jsonl, the manifest, metrics,
telemetry snapshots, the state, a saved plan, the text of an exception the CLI shows), and
each replaces every value by the one marker, `<redacted>`. A new output path therefore needs
one call, not a new redaction scheme.

It lives in the pure core because the planner needs it too (a plan shows the rendered phase
commands and is saved to disk); it has no I/O.

What it does not touch: the job's own log and the artifacts pulled into the run dir are the
user's data and stay verbatim; only the copy of the log streamed to the terminal is redacted.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["MARKER", "MIN_SECRET_LENGTH", "SECRET_NAME", "Redactor"]

MARKER = "<redacted>"
"""What every secret value is replaced with, in every output."""

MIN_SECRET_LENGTH = 4
"""Shorter values are not redacted: replacing every `1` or `ab` in every output would hide
everything and protect nothing (such a value is not a secret worth the name)."""

SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASS|CREDENTIAL|AUTH|PRIVATE|COOKIE|SESSION|SIGNATURE|DSN", re.IGNORECASE
)
"""Environment-variable names whose value is hidden even when it is not a known secret (the
pod's own environment, as the telemetry snapshots record it)."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

E = TypeVar("E", bound=BaseException)


def _forms(value: str) -> tuple[str, ...]:
    """The spellings a value takes on its way out: as is, shell-quoted, JSON-escaped."""
    quoted = shlex.quote(value)
    escaped = json.dumps(value, ensure_ascii=False)[1:-1]
    ascii_escaped = json.dumps(value, ensure_ascii=True)[1:-1]
    return tuple(dict.fromkeys((quoted, escaped, ascii_escaped, value)))


@dataclass(frozen=True, slots=True)
class Redactor:
    """Replaces known secret values by `MARKER`. Frozen: add values with `with_values`."""

    values: tuple[str, ...] = ()
    """Every spelling to replace, longest first (so a secret containing another goes whole)."""

    @classmethod
    def of(cls, secrets: Iterable[str | None]) -> Redactor:
        forms = {form for value in secrets if value and len(value.strip()) >= MIN_SECRET_LENGTH
                 for form in _forms(value)}
        return cls(values=tuple(sorted(forms, key=lambda f: (-len(f), f))))

    def with_values(self, secrets: Iterable[str | None]) -> Redactor:
        more = Redactor.of(secrets).values
        return Redactor(values=tuple(sorted(set(self.values) | set(more), key=lambda f: (-len(f), f))))

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, MARKER)
        return text

    def json(self, value: Any) -> Any:
        """A JSON-like tree with every string (keys too) redacted by value."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)) if isinstance(k, str) else k: self.json(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.json(item) for item in value]
        return value

    def environment(self, variables: Mapping[str, str]) -> dict[str, str]:
        """Environment variables: by value, and by name for names that look secret."""
        return {name: MARKER if SECRET_NAME.search(name) else self.text(value)
                for name, value in variables.items()}

    def env_tree(self, value: Any) -> Any:
        """Like `json`, and also hides the values of secret-looking names in whichever of
        RunPod's env shapes holds them: `{"HF_TOKEN": v}`, `["HF_TOKEN=v"]` or
        `[{"key": "HF_TOKEN", "value": v}]`."""
        if isinstance(value, str):
            name, sep, _ = value.partition("=")
            if sep and _ENV_NAME.fullmatch(name) and SECRET_NAME.search(name):
                return f"{name}={MARKER}"
            return self.text(value)
        if isinstance(value, Mapping):
            if set(value) == {"key", "value"} and SECRET_NAME.search(str(value["key"])):
                return {"key": self.text(str(value["key"])), "value": MARKER}
            return {
                self.text(str(key)): MARKER if SECRET_NAME.search(str(key)) else self.env_tree(item)
                for key, item in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.env_tree(item) for item in value]
        return value

    def exception(self, error: E) -> E:
        """The same exception with its message redacted (in place: its type, and so its exit
        code and the `except` clauses that catch it, stay)."""
        if not self.values:
            return error
        shown = str(error)
        clean = self.text(shown)
        if clean != shown:
            error.args = (clean,)
            for name in ("detail", "output_tail", "command", "excerpt"):
                attribute = getattr(error, name, None)
                if isinstance(attribute, str):
                    try:
                        setattr(error, name, self.text(attribute))
                    except AttributeError:
                        pass
        return error
