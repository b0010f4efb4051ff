"""The billing meter: GPUs and container disk while running, the volume at 2x once stopped."""

from __future__ import annotations

import pytest

from tests.sim.clients import Clients

pytestmark = pytest.mark.sim  # every test here starts the simulator


def test_billing_running_then_stopped(clients: Clients) -> None:
    pod_id = clients.create(volume_gb=73)  # 73 GB: 0.01 $/hr running, 0.02 $/hr stopped
    clients.wait_ssh(pod_id)
    clients.sim.clock(freeze=True)
    before = clients.sim.billing()["pods"][pod_id]
    clients.sim.clock(advance=3600)
    running = clients.sim.billing()["pods"][pod_id]
    assert running["compute_usd"] - before["compute_usd"] == pytest.approx(0.25)
    assert running["volume_usd"] - before["volume_usd"] == pytest.approx(0.01)
    assert running["container_disk_usd"] - before["container_disk_usd"] == pytest.approx(20 * 0.1 / 730)
    clients.ctl("pod", "stop", pod_id)
    assert clients.ctl_json("pod", "get", pod_id)["costPerHr"] == pytest.approx(0.02)
    clients.sim.clock(advance=3600)
    stopped = clients.sim.billing()["pods"][pod_id]
    assert stopped["compute_usd"] == pytest.approx(running["compute_usd"])
    assert stopped["container_disk_usd"] == pytest.approx(running["container_disk_usd"])
    assert stopped["volume_usd"] - running["volume_usd"] == pytest.approx(0.02)
    clients.ctl("pod", "delete", pod_id)
    clients.sim.clock(advance=3600)
    final = clients.sim.billing()
    assert final["pods"][pod_id]["total_usd"] == pytest.approx(stopped["total_usd"])
    assert final["total_usd"] == pytest.approx(stopped["total_usd"])
