"""The root of the tool's exception tree and the diagnostics a user mistake turns into.

    RunpodDeployError            the CLI catches this: message on stderr, exit_code (1)
      SpecError(diagnostics)     bad YAML, schema or variables; nothing was created

The shell's exceptions (state, provider, transport, budget) derive from RunpodDeployError in
`runtime.errors`.
"""

from __future__ import annotations


class RunpodDeployError(Exception):
    """Base of every error the tool raises on purpose; carries the exit code for the CLI."""

    exit_code: int = 1
