"""Template variables: `{name}` references, built-ins, `variables:`, --vars-file and --var.

The rule (docs/templates.md has the long form and the compatibility notes):

- `{name}`, with `name` an identifier, is a reference. `{name!raw}` inserts the value verbatim
  even in a shell field.
- A `{` directly after `$` never starts a reference, so `${VAR}`, `$VAR`, `{a,b}` brace lists,
  awk programs `{print $1}` and JSON `{"k": 1}` pass through untouched.
- `{{name}}` is the escape: it stands for the literal text `{name}`. Other doubled braces (as
  in `{"a":{"b":1}}`) are left alone, so JSON stays intact.
- An undefined `{name}` is an error naming the variable and the field that uses it.
- In shell fields (run.body, setup/preflight commands), a value that is not made only of
  `[A-Za-z0-9_@%+=:,./-]` is quoted for the place it lands in: bare, it becomes one quoted
  word (`shlex.quote`); inside `"..."` its backslashes, double quotes, dollars and backticks
  are backslash-escaped; inside `'...'` its
  `'` closes and reopens the quote. Either way it stays data and cannot end the string it is
  in. Safe values are inserted verbatim, exactly as the original did.

Precedence: built-ins, then `variables:` (rendered in order), then --vars-file, then --var.
Two passes, as the original: `name` and `run_id_prefix` are rendered last and `job_name` and
`run_id` rebound to the rendered values. The core never reads the clock: the run stamp and the
run directory are inputs.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.diagnostics import Diagnostic, SpecError, error
from reconciler.redaction import MARKER, Redactor
from reconciler.spec import JobSpec, RemoteEnv

__all__ = [
    "BUILTINS",
    "RenderedJob",
    "Variables",
    "is_shell_safe",
    "references",
    "remote_env_prefix",
    "render_spec",
    "render_text",
    "resolve_variables",
]

BUILTINS = ("config_dir", "project_root", "run_dir", "run_id", "job_name", "volume_mount")
_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+\Z")
# `{{name}}` (escape), or `{name}` / `{name!raw}` not preceded by `$`.
_TOKEN = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*(?:!raw)?)\}\}"
                    r"|(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)(!raw)?\}")


def is_shell_safe(value: str) -> bool:
    """True when the value needs no quoting in a shell word."""
    return bool(_SAFE.match(value))


def references(text: str) -> tuple[str, ...]:
    """The variable names a text refers to, in order of first use."""
    seen: dict[str, None] = {}
    for match in _TOKEN.finditer(text):
        if match.group(2):
            seen.setdefault(match.group(2), None)
    return tuple(seen)


def referenced_names(spec: JobSpec) -> frozenset[str]:
    """Every variable name any string of the stack refers to (variables' own values included),
    so that a `--var` nothing uses can be pointed out: usually a typo of one that is used."""
    names: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, str):
            names.update(references(node))
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(spec.model_dump(mode="json"))
    return frozenset(names)


def _quote_contexts(text: str) -> list[str]:
    """For each index of a shell text: "bare", "double" or "single", the quoting in force
    there. A small scanner of POSIX quoting (backslash escapes, '...', "..."); heredoc bodies
    are read as bare text, where a quoted value stays one word of data."""
    contexts, state, escaped = [], "bare", False
    for char in text:
        contexts.append(state)
        if escaped:
            escaped = False
        elif state == "single":
            if char == "'":
                state = "bare"
        elif char == "\\":
            escaped = True
        elif state == "double":
            if char == '"':
                state = "bare"
        elif char == "'":
            state = "single"
        elif char == '"':
            state = "double"
    return contexts


def _quote_for(value: str, context: str) -> str:
    if context == "double":
        return re.sub(r'([\\"$`])', r"\\\1", value)
    if context == "single":
        return value.replace("'", "'\\''")
    return shlex.quote(value)


def _substitute(text: str, values: Mapping[str, str], *, shell: bool,
                missing: list[str]) -> str:
    contexts: list[str] | None = None

    def replace(match: re.Match[str]) -> str:
        nonlocal contexts
        if match.group(1) is not None:
            return "{" + match.group(1) + "}"
        name, raw = match.group(2), match.group(3)
        if name not in values:
            missing.append(name)
            return match.group(0)
        value = values[name]
        if shell and not raw and not is_shell_safe(value):
            contexts = contexts or _quote_contexts(text)
            return _quote_for(value, contexts[match.start()])
        return value

    return _TOKEN.sub(replace, text)


def render_text(text: str, values: Mapping[str, str], *, shell: bool = False,
                field_path: str = "") -> str:
    """Render one text; an undefined reference raises SpecError naming it and the field."""
    missing: list[str] = []
    out = _substitute(text, values, shell=shell, missing=missing)
    if missing:
        raise SpecError([_undefined(name, field_path, values) for name in dict.fromkeys(missing)])
    return out


def _undefined(name: str, field_path: str, values: Mapping[str, str]) -> Diagnostic:
    known = ", ".join(sorted(values))
    return error(f"undefined template variable '{name}'",
                 detail=f"define it under 'variables:' or pass --var {name}=VALUE; known: "
                 f"{known}. Write {{{{{name}}}}} for a literal '{{{name}}}'",
                 field_path=field_path)


@dataclass(frozen=True)
class Variables:
    """The resolved variables of one run. `secret_names` marks values that must not be shown."""

    values: Mapping[str, str]
    secret_names: frozenset[str] = frozenset()
    run_id: str = ""
    run_dir: str = ""
    project_root: str = ""
    job_name: str = ""
    run_id_prefix: str = ""

    def shown(self) -> dict[str, str]:
        """The values with every secret one replaced by the marker: safe to print or store."""
        return {k: (MARKER if k in self.secret_names else v) for k, v in self.values.items()}

    @property
    def redactor(self) -> Redactor:
        """The secret values of this run, as the one `Redactor` every output goes through."""
        return Redactor.of(self.values.get(name) for name in self.secret_names)

    def redact(self, text: str) -> str:
        """Replace every secret value (and its shell-quoted form) in a text by the marker."""
        return self.redactor.text(text)


def _resolve_path(value: str, *, base: str, home: str) -> str:
    if value == "~" or value.startswith("~/"):
        value = home + value[1:]
    if posixpath.isabs(value):
        return posixpath.normpath(value)
    return posixpath.normpath(posixpath.join(base, value))


def project_root_of(spec: JobSpec, *, config_dir: str, home: str) -> str:
    """The absolute project root of a stack (where its run dirs go), before any rendering."""
    return _resolve_path(spec.local.project_root, base=config_dir, home=home)


def resolve_variables(spec: JobSpec, *, config_dir: str, home: str, run_stamp: str,
                      run_dir: str | None = None, vars_file: Mapping[str, str] | None = None,
                      cli_vars: Mapping[str, str] | None = None) -> Variables:
    """Compute the variables of one run (pure: paths are joined, never looked up).

    `config_dir` is the absolute directory of the stack file, `home` the user's home (to
    expand `~` and refuse a project root that is the home itself), `run_stamp` the UTC
    `YYYYMMDDTHHMMSSZ` the shell took from its clock.
    """
    problems: list[Diagnostic] = []
    project_root = project_root_of(spec, config_dir=config_dir, home=home)
    if project_root == posixpath.normpath(home):
        problems.append(error(f"project_root resolves to the home directory ({project_root})",
                              detail="expected the project directory; staging it would copy "
                              "your whole home. For a stack in <repo>/configs/runpod/ use "
                              "'../..'", field_path="local.project_root"))
    the_run_dir = run_dir or posixpath.join(project_root, "artifacts", "runpod", run_stamp)
    values: dict[str, str] = {
        "config_dir": config_dir,
        "project_root": project_root,
        "run_dir": the_run_dir,
        "run_id": f"{spec.effective_run_id_prefix}-{run_stamp}",
        "job_name": spec.name,
        "volume_mount": spec.storage.volume_mount,
    }
    secret_names = {k for k, v in spec.variables.items() if v.secret}
    # Raw values by precedence: --var over --vars-file over `variables:`. They are rendered in
    # dependency order, so a file variable may use a --var-only one (as the original's
    # canonical-sweep example does) and a --var may use a file variable; a cycle is an error.
    raw: dict[str, tuple[str, str]] = {}
    for key, var in spec.variables.items():
        if var.value is not None:
            raw[key] = (var.value, f"variables.{key}")
    raw.update({k: (v, f"--vars-file {k}") for k, v in (vars_file or {}).items()})
    raw.update({k: (v, f"--var {k}") for k, v in (cli_vars or {}).items()})
    for key, var in spec.variables.items():
        if key not in raw:
            problems.append(error(f"variable '{key}' has no value",
                                  detail=f"expected a value in the file or --var {key}=VALUE "
                                  "(or --vars-file)", field_path=f"variables.{key}"))
    pending = dict(raw)
    for key in pending:
        values.pop(key, None) if key in BUILTINS else None
    while pending:
        ready = [k for k, (text, _) in pending.items()
                 if all(n in values or n not in pending or n == k for n in references(text))
                 and k not in references(text)]
        if not ready:
            for key, (text, where) in pending.items():
                loop = [n for n in references(text) if n in pending]
                problems.append(error(f"variable '{key}' refers to {', '.join(loop)} in a cycle",
                                      detail="expected variables that do not refer to "
                                      "themselves, directly or through others",
                                      field_path=where))
            break
        for key in ready:
            text, where = pending.pop(key)
            missing: list[str] = []
            values[key] = _substitute(text, values, shell=False, missing=missing)
            problems.extend(_undefined(n, where, values) for n in dict.fromkeys(missing))
    # Second pass: the name and the run-id prefix may use any variable.
    missing = []
    name = _substitute(spec.name, values, shell=False, missing=missing)
    problems.extend(_undefined(n, "name", values) for n in dict.fromkeys(missing))
    missing = []
    prefix = _substitute(spec.effective_run_id_prefix, values, shell=False, missing=missing)
    problems.extend(_undefined(n, "run_id_prefix", values) for n in dict.fromkeys(missing))
    if problems:
        raise SpecError(problems)
    values["job_name"] = name
    values["run_id"] = f"{prefix}-{run_stamp}"
    return Variables(values=values, secret_names=frozenset(secret_names), run_id=values["run_id"],
                     run_dir=the_run_dir, project_root=project_root, job_name=name,
                     run_id_prefix=prefix)


@dataclass(frozen=True)
class RenderedJob:
    """A spec with its template fields rendered for one run, and the variables used."""

    spec: JobSpec
    variables: Variables
    shell_fields: tuple[str, ...] = field(default=())

    @property
    def run_id(self) -> str:
        return self.variables.run_id

    @property
    def run_dir(self) -> str:
        return self.variables.run_dir

    @property
    def redactor(self) -> Redactor:
        return self.variables.redactor

    def redact(self, text: str) -> str:
        return self.variables.redact(text)


def render_spec(spec: JobSpec, variables: Variables) -> RenderedJob:
    """Render every template field (the original's set); pod.*, storage.*, state_file and
    ssh.key_path stay as written. Shell fields quote unsafe values. Collects every error."""
    values = variables.values
    problems: list[Diagnostic] = []

    def r(text: str, path: str, shell: bool = False) -> str:
        missing: list[str] = []
        out = _substitute(text, values, shell=shell, missing=missing)
        problems.extend(_undefined(n, path, values) for n in dict.fromkeys(missing))
        return out

    def each(items: tuple[Any, ...], path: str, fn: Callable[[Any, str], Any]) -> tuple[Any, ...]:
        return tuple(fn(item, f"{path}[{i}]") for i, item in enumerate(items))

    def strs(items: tuple[str, ...], path: str) -> tuple[str, ...]:
        return each(items, path, lambda s, p: r(s, p))

    def command(c: Any, p: str) -> Any:
        return c.model_copy(update={"command": r(c.command, f"{p}.command", shell=True)})

    run = spec.run
    update: dict[str, Any] = {
        "name": variables.job_name or spec.name,
        "run_id_prefix": variables.run_id_prefix or spec.run_id_prefix,
        "local": spec.local.model_copy(update={
            "required_paths": strs(spec.local.required_paths, "local.required_paths")}),
        "remote_env": spec.remote_env.model_copy(update={
            "source_files": strs(spec.remote_env.source_files, "remote_env.source_files"),
            "exports": {k: r(v, f"remote_env.exports.{k}")
                        for k, v in spec.remote_env.exports.items()}}),
        "setup": each(spec.setup, "setup", command),
        "preflight": each(spec.preflight, "preflight", command),
        "staging": each(spec.staging, "staging", lambda s, p: s.model_copy(update={
            "source": r(s.source, f"{p}.source"),
            "destination": r(s.destination, f"{p}.destination"),
            "excludes": strs(s.excludes, f"{p}.excludes"),
            "excludes_extra": strs(s.excludes_extra, f"{p}.excludes_extra")})),
        "secrets": each(spec.secrets, "secrets", lambda s, p: s.model_copy(update={
            "destination": r(s.destination, f"{p}.destination"),
            "file": r(s.file, f"{p}.file") if s.file is not None else None})),
        "run": run.model_copy(update={
            "script_path": r(run.script_path, "run.script_path"),
            "log_path": r(run.log_path, "run.log_path"),
            "success_marker": r(run.success_marker, "run.success_marker"),
            "failure_markers": strs(run.failure_markers, "run.failure_markers"),
            "body": r(run.body, "run.body", shell=True)}),
        "artifacts": each(spec.artifacts, "artifacts", lambda a, p: a.model_copy(update={
            "remote_path": r(a.remote_path, f"{p}.remote_path"),
            "local_path": r(a.local_path, f"{p}.local_path"),
            "excludes": strs(a.excludes, f"{p}.excludes")})),
    }
    if problems:
        raise SpecError(problems)
    return RenderedJob(spec=spec.model_copy(update=update), variables=variables,
                       shell_fields=("run.body", "setup[*].command", "preflight[*].command"))


def remote_env_prefix(remote_env: RemoteEnv) -> str:
    """The shell prefix for `with_env: true` commands, from a *rendered* remote_env:
    `[ -f F ] && source F || true` per file and `export K=<quoted>` per export, joined by
    `; ` with a trailing `;` (the original's form). Empty when there is nothing to prefix."""
    parts = []
    for path in remote_env.source_files:
        word = path if is_shell_safe(path) else shlex.quote(path)
        parts.append(f"[ -f {word} ] && source {word} || true")
    parts.extend(f"export {k}={shlex.quote(v)}" for k, v in remote_env.exports.items())
    return "; ".join(parts) + ";" if parts else ""
