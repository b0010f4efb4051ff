"""`--local`: point a command at the local RunPod simulator, starting it when needed.

The simulator gets its own throw-away SSH key (kept in its home, registered as the account's
key there), so `--local` never reads or changes the user's own keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalCloud:
    env: dict[str, str]
    """The caller's environment plus what points RunPod clients at the simulator."""
    ssh_key: Path
    home: Path


def local_cloud(env: Mapping[str, str] | None = None) -> LocalCloud:
    """The running simulator (started in `$RUNPOD_SIM_HOME` or its default home if it is not)."""
    from runpod_sim import cli as sim_cli
    from runpod_sim.control import control, default_home, env_for

    base = dict(os.environ if env is None else env)
    home = Path(base.get("RUNPOD_SIM_HOME") or default_home()).resolve()
    info = sim_cli.up(home, {})
    key = home / "keys" / "id_ed25519"
    if not key.exists():
        import subprocess

        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "runpod-sim", "-f", str(key)],
                       check=True, capture_output=True)
    public = Path(str(key) + ".pub").read_text().strip()
    account = control(info, "POST", "/_sim/account", {})
    if public not in str(account.get("pub_key", "")):
        control(info, "POST", "/_sim/account", {"addPubKey": public})
    return LocalCloud(env={**base, **env_for(info)}, ssh_key=key, home=home)
