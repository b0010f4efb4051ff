"""Command groups of the CLI, one module per group, each with a `register(app)` function.

Ownership is by module so that the groups grow independently; the order here is the order of
`runpod-deploy --help`.

The command modules do not use `from __future__ import annotations`: typer reads every command's
signature on each run (`--help` included), and with string annotations it `eval`s each of them
four times (about 35 ms for all the commands); evaluated once at import, they cost ~nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from runpod_deploy.commands import apply, attach, core, drift, forensics, ops, sim, state, sweep

COMMAND_MODULES: tuple[Callable[[typer.Typer], None], ...] = (
    core.register,
    apply.register,
    sweep.register,
    attach.register,
    forensics.register,
    drift.register,
    ops.register,
    sim.register,
    state.register,
)
