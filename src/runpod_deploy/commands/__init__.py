"""Command groups of the CLI, one module per group, each with a `register(app)` function.

Ownership is by module so that the groups grow independently; the order here is the order of
`runpod-deploy --help`.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from runpod_deploy.commands import apply, core, drift, forensics, ops, sim

COMMAND_MODULES: tuple[Callable[[typer.Typer], None], ...] = (
    core.register,
    apply.register,
    forensics.register,
    drift.register,
    ops.register,
    sim.register,
)
