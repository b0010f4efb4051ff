"""The root of the tool's exception tree and the diagnostics a user mistake turns into.

    RunpodDeployError            the CLI catches this: message on stderr, exit_code (1)
      SpecError(diagnostics)     bad YAML, schema or variables; nothing was created
      PlanError(diagnostics)     the stack is valid but cannot be planned (placement, blind plan)

The shell's exceptions (state, provider, transport, budget) derive from RunpodDeployError in
`runtime.errors`.

A `Diagnostic` is a user mistake as a value: what is wrong (summary), what was expected
(detail), where (file:line:col) and which field (a dotted path such as `pod.gpu_order[1]`).
Errors are collected and raised together, so a user hears about all of them at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class RunpodDeployError(Exception):
    """Base of every error the tool raises on purpose; carries the exit code for the CLI."""

    exit_code: int = 1


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """A place in a source text; line and column are 1-based, as editors count them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem with a stack. `field_path` is dotted with list indexes: `setup[0].command`."""

    severity: Severity
    summary: str
    detail: str = ""
    location: SourceLocation | None = None
    field_path: str = ""

    def format(self) -> str:
        """`file:line:col: error: field: summary (detail)`, the form compilers use."""
        where = f"{self.location}: " if self.location else ""
        field = f"{self.field_path}: " if self.field_path else ""
        detail = f"\n    {self.detail}" if self.detail else ""
        return f"{where}{self.severity.value}: {field}{self.summary}{detail}"

    def with_location(self, location: SourceLocation | None) -> Diagnostic:
        if location is None or self.location is not None:
            return self
        return Diagnostic(self.severity, self.summary, self.detail, location, self.field_path)


def error(summary: str, *, detail: str = "", field_path: str = "",
          location: SourceLocation | None = None) -> Diagnostic:
    return Diagnostic(Severity.ERROR, summary, detail, location, field_path)


def warning(summary: str, *, detail: str = "", field_path: str = "",
            location: SourceLocation | None = None) -> Diagnostic:
    return Diagnostic(Severity.WARNING, summary, detail, location, field_path)


class _DiagnosticsError(RunpodDeployError):
    @staticmethod
    def headline(count: int) -> str:
        return f"{count} error{'s' if count != 1 else ''}"

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        errors = [d for d in self.diagnostics if d.severity is Severity.ERROR]
        head = self.headline(len(errors))
        body = "\n".join(d.format() for d in self.diagnostics)
        super().__init__(f"{head}\n{body}" if body else head)


class SpecError(_DiagnosticsError):
    """The stack file (or its variables) is not valid; every problem found is in `diagnostics`."""

    @staticmethod
    def headline(count: int) -> str:
        return f"the stack is not valid ({count} error{'s' if count != 1 else ''})"


class PlanError(_DiagnosticsError):
    """The stack is valid but cannot be planned safely (placement, an unobservable pod)."""

    @staticmethod
    def headline(count: int) -> str:
        return f"cannot plan ({count} error{'s' if count != 1 else ''})"
