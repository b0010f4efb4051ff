"""YAML text -> `JobSpec`, with every error located at file:line:col and named by field path.

The loader takes text and a source name; reading the file is the shell's job. It composes the
YAML into nodes (which carry their marks), builds plain values while recording where each key
and value sits, then validates with the pydantic models. Every problem is collected and raised
at once as `SpecError(diagnostics)`; an unknown key suggests the nearest valid one.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from reconciler.diagnostics import Diagnostic, Severity, SourceLocation, SpecError, error, warning
from reconciler.spec import JobSpec

__all__ = [
    "LoadedSpec",
    "SourceMap",
    "format_path",
    "load_spec",
    "load_spec_report",
    "parse_var_assignment",
    "parse_vars_file",
]

Path_ = tuple[str | int, ...]


def format_path(path: Path_) -> str:
    """('setup', 0, 'command') -> 'setup[0].command'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class SourceMap:
    """Where each key and value of a stack file sits, by field path."""

    source: str
    values: Mapping[Path_, SourceLocation] = field(default_factory=dict)
    keys: Mapping[Path_, SourceLocation] = field(default_factory=dict)

    def locate(self, path: Path_, *, prefer_key: bool = False) -> SourceLocation:
        """The best location for a field: itself, else its nearest ancestor that exists."""
        probe = tuple(path)
        while True:
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            for table in (first, second):
                if probe in table:
                    return table[probe]
            if not probe:
                return SourceLocation(self.source, 1, 1)
            probe = probe[:-1]
            prefer_key = True

    def locate_dotted(self, dotted: str) -> SourceLocation:
        return self.locate(_parse_dotted(dotted))


def _parse_dotted(dotted: str) -> Path_:
    parts: list[str | int] = []
    for chunk in dotted.split("."):
        while "[" in chunk:
            head, _, rest = chunk.partition("[")
            if head:
                parts.append(head)
            index, _, chunk = rest.partition("]")
            parts.append(int(index) if index.isdigit() else index)
        if chunk:
            parts.append(chunk)
    return tuple(parts)


@dataclass(frozen=True)
class LoadedSpec:
    """A valid spec, the warnings found on the way, and where everything was in the file."""

    spec: JobSpec
    warnings: tuple[Diagnostic, ...]
    source_map: SourceMap


def load_spec(text: str, *, source: str) -> JobSpec:
    """Parse and validate a stack; raises SpecError with every problem found."""
    return load_spec_report(text, source=source).spec


def load_spec_report(text: str, *, source: str) -> LoadedSpec:
    """Like `load_spec`, also returning warnings (deprecations) and the source map."""
    values: dict[Path_, SourceLocation] = {}
    keys: dict[Path_, SourceLocation] = {}
    diagnostics: list[Diagnostic] = []
    raw = _compose(text, source, values, keys, diagnostics)
    smap = SourceMap(source, values, keys)
    if diagnostics and any(d.severity is Severity.ERROR for d in diagnostics):
        raise SpecError(diagnostics)
    if raw is None:
        raise SpecError([error("the stack file is empty", detail="expected a mapping with at "
                               "least name, pod, storage and run",
                               location=SourceLocation(source, 1, 1))])
    if not isinstance(raw, dict):
        raise SpecError([error(f"the top level is a {_kind(raw)}", detail="expected a mapping "
                               "(key: value lines)", location=smap.locate(()))])
    raw = _legacy_stop(raw, smap, diagnostics)
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as exc:
        diagnostics.extend(_from_pydantic(exc, raw, smap))
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if errors:
        raise SpecError(sorted(diagnostics, key=_position))
    return LoadedSpec(spec, tuple(diagnostics), smap)


def _position(diagnostic: Diagnostic) -> tuple[int, int]:
    loc = diagnostic.location
    return (loc.line, loc.column) if loc else (0, 0)


# -- YAML with positions -------------------------------------------------------------------

def _mark(source: str, node: yaml.Node) -> SourceLocation:
    return SourceLocation(source, node.start_mark.line + 1, node.start_mark.column + 1)


# libyaml's parser when PyYAML was built with it (several times faster on a stack file, which
# was most of `drift` over 1,000 stacks), else the pure-Python one. Both compose nodes with
# line/column marks, construct with SafeConstructor and raise `MarkedYAMLError`s: all that
# `_compose` and `_build` rely on.
_Loader: type[yaml.CSafeLoader | yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(text: str, source: str, values: dict[Path_, SourceLocation],
             keys: dict[Path_, SourceLocation], diagnostics: list[Diagnostic]) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _build(loader, node, (), source, values, keys, diagnostics)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = SourceLocation(source, mark.line + 1, mark.column + 1) if mark else None
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        diagnostics.append(error(f"YAML syntax error: {problem}{context}",
                                 detail="expected well-formed YAML", location=where))
        return None
    except yaml.YAMLError as exc:
        diagnostics.append(error(f"YAML error: {exc}", location=SourceLocation(source, 1, 1)))
        return None
    finally:
        loader.dispose()


def _build(loader: yaml.CSafeLoader | yaml.SafeLoader, node: yaml.Node, path: Path_, source: str,
           values: dict[Path_, SourceLocation], keys: dict[Path_, SourceLocation],
           diagnostics: list[Diagnostic]) -> Any:
    values[path] = _mark(source, node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                diagnostics.append(error(f"key {key!r} is a {_kind(key)}",
                                         detail="expected a string key",
                                         location=_mark(source, key_node),
                                         field_path=format_path(path)))
                continue
            child = (*path, key)
            if key in out:
                diagnostics.append(error(f"duplicate key {key!r}",
                                         detail=f"first given at line {keys[child].line}; "
                                         "expected each key once",
                                         location=_mark(source, key_node),
                                         field_path=format_path(child)))
                continue
            keys[child] = _mark(source, key_node)
            out[key] = _build(loader, value_node, child, source, values, keys, diagnostics)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), source, values, keys, diagnostics)
                for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _legacy_stop(raw: dict[str, Any], smap: SourceMap,
                 diagnostics: list[Diagnostic]) -> dict[str, Any]:
    """The pre-0.8.3 root `stop: true|false` is mapped to `lifecycle`, with a warning."""
    if "stop" not in raw:
        return raw
    where = smap.locate(("stop",), prefer_key=True)
    value = raw["stop"]
    rest = {k: v for k, v in raw.items() if k != "stop"}
    if not isinstance(value, bool):
        diagnostics.append(error(f"legacy 'stop' is a {_kind(value)}",
                                 detail="expected true or false, or better a 'lifecycle:' "
                                 "block (on_success / on_failure: preserve|stop|delete)",
                                 location=where, field_path="stop"))
        return rest
    if "lifecycle" in raw:
        diagnostics.append(error("both the legacy 'stop' and 'lifecycle' are set",
                                 detail="expected only 'lifecycle'; remove 'stop'",
                                 location=where, field_path="stop"))
        return rest
    action = "stop" if value else "preserve"
    diagnostics.append(warning("'stop' is deprecated",
                               detail=f"read as lifecycle: {{on_success: {action}, on_failure: "
                               f"{action}}}; write that block instead",
                               location=where, field_path="stop"))
    rest["lifecycle"] = {"on_success": action, "on_failure": action}
    return rest


# -- pydantic errors -> diagnostics ---------------------------------------------------------

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _from_pydantic(exc: ValidationError, raw: dict[str, Any], smap: SourceMap) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for err in exc.errors(include_url=False):
        loc: Path_ = tuple(err["loc"])
        kind = err["type"]
        value = err.get("input")
        path = format_path(loc)
        if kind == "extra_forbidden":
            key = str(loc[-1])
            valid = _valid_keys(loc[:-1])
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            out.append(error(f"unknown key '{key}'",
                             detail=f"{hint}expected one of: {', '.join(valid)}",
                             location=smap.locate(loc, prefer_key=True), field_path=path))
            continue
        if kind == "missing":
            out.append(error(f"required key '{loc[-1]}' is missing",
                             detail=f"expected '{loc[-1]}' in "
                             f"{format_path(loc[:-1]) or 'the top level'}",
                             location=smap.locate(loc[:-1], prefer_key=True), field_path=path))
            continue
        location = smap.locate(loc)
        if kind in _EXPECTED:
            summary = f"expected {_EXPECTED[kind]}, got {_kind(value)} {_short(value)}"
        elif kind == "enum":
            summary = f"expected one of {err['ctx']['expected']}, got {_short(value)}"
        elif kind == "literal_error":
            summary = f"expected {err['ctx']['expected']}, got {_short(value)}"
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
                  "less_than_equal": "<="}[kind]
            bound = next(iter(err["ctx"].values()))
            summary = f"expected a value {op} {bound}, got {_short(value)}"
        elif kind in ("too_short", "string_too_short"):
            summary = ("expected a non-empty string" if isinstance(value, str)
                       else "expected at least one item, got an empty list")
        else:
            summary = err["msg"].removeprefix("Value error, ")
        out.append(error(summary, location=location, field_path=path))
    return out


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _valid_keys(path: Path_) -> list[str]:
    model = _model_at(path)
    return list(model.model_fields) if model else []


def _model_at(path: Path_) -> type[BaseModel] | None:
    annotation: Any = JobSpec
    for part in path:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not isinstance(part, str) or part not in annotation.model_fields:
                return None
            annotation = annotation.model_fields[part].annotation
            continue
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is tuple and args:
            annotation = args[0]
        elif origin is dict and len(args) == 2:
            annotation = args[1]
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = members[0] if len(members) == 1 else annotation
            if len(members) != 1:
                return annotation
        else:
            return annotation


# -- --var and --vars-file ------------------------------------------------------------------

def parse_var_assignment(text: str) -> tuple[str, str]:
    """`KEY=VALUE` -> (KEY, VALUE). KEY must be an identifier; VALUE may be empty."""
    key, sep, value = text.partition("=")
    if not sep:
        raise SpecError([error(f"--var {text!r} has no '='", detail="expected KEY=VALUE",
                               field_path="--var")])
    if not key.isidentifier():
        raise SpecError([error(f"--var name {key!r} is not an identifier",
                               detail="expected KEY=VALUE with KEY like [A-Za-z_][A-Za-z0-9_]*",
                               field_path="--var")])
    return key, value


def parse_vars_file(text: str, *, source: str) -> dict[str, str]:
    """A JSON object of identifier -> string (the `--vars-file` format)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError([error(f"not valid JSON: {exc.msg}", detail="expected a JSON object "
                               "of strings", location=SourceLocation(source, exc.lineno,
                                                                     exc.colno))]) from None
    if not isinstance(data, dict):
        raise SpecError([error(f"the vars file holds a {_kind(data)}",
                               detail="expected a JSON object of strings",
                               location=SourceLocation(source, 1, 1))])
    problems = []
    for key, value in data.items():
        if not key.isidentifier():
            problems.append(error(f"variable name {key!r} is not an identifier",
                                  location=SourceLocation(source, 1, 1), field_path=key))
        if not isinstance(value, str):
            problems.append(error(f"expected a string, got {_kind(value)} {_short(value)}",
                                  location=SourceLocation(source, 1, 1), field_path=key))
    if problems:
        raise SpecError(problems)
    return dict(data)
