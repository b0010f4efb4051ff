"""ls-stale, cleanup, estimate and the GPU listings on the simulator: outputs pinned by goldens,
money checked against the billing meter, exit codes as the original's."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from reconciler.state import PendingKind, PendingOperation
from runtime.statestore import StateStore
from tests.ops.ops_account import GPU, Account

pytestmark = pytest.mark.sim  # every test here starts the simulator

Golden = Callable[[str, str], None]


def status(account: Account, pod_id: str) -> str:
    pod = account.sim.pod(pod_id)
    assert pod is not None
    return str(pod["desiredStatus"])


# ------------------------------------------------------------------------------------ ls-stale


def test_ls_stale_lists_stopped_pods_and_matches_the_meter(account: Account,
                                                           golden: Golden) -> None:
    big = account.pod("big--0a0a0a--1", volume_gb=73, stopped=True)
    small = account.pod("small--0b0b0b--1", volume_gb=5, stopped=True)
    account.pod("busy--0c0c0c--1")  # running: not stale
    code, out, _ = account.run("ls-stale")
    assert code == 0
    golden("ls_stale.txt", account.normalise(out))
    rows = {r["pod_id"]: r for r in json.loads(account.run("ls-stale", "--json")[1])}
    assert set(rows) == {big.pod_id, small.pod_id}

    account.sim.clock(freeze=True)
    before = account.sim.billing()["pods"]
    account.sim.clock(advance=86400)
    after = account.sim.billing()["pods"]
    for pod_id, row in rows.items():
        metered = after[pod_id]["total_usd"] - before[pod_id]["total_usd"]
        assert round(row["estimated_daily_cost_usd"], 2) == round(metered, 2)
        assert row["estimated_monthly_cost_usd"] == pytest.approx(row["volume_in_gb"] * 0.20)


def test_ls_stale_with_nothing_stopped(account: Account) -> None:
    account.pod("busy--0c0c0c--1")
    assert account.run("ls-stale") == (0, "No stale (EXITED) pods.\n", "")


# ------------------------------------------------------------------------------------- cleanup


def test_cleanup_delete_terminates_and_clears_the_record(account: Account, golden: Golden) -> None:
    stack = account.stack()
    pod = account.pod(stack.pod_prefix + "1")
    account.record(stack, pod)
    code, out, _ = account.run("cleanup", "--state-file", stack.state_path, "--mode", "delete")
    assert code == 0
    golden("cleanup_delete.txt", account.normalise(out))
    assert account.provider.get_pod(pod.pod_id) is None
    state = StateStore(stack.state_path).read()
    assert state.pod is None and state.serial == 2 and state.identity == stack.identity


def test_cleanup_stop_keeps_the_record_and_names_the_volume_cost(account: Account,
                                                                 golden: Golden) -> None:
    stack = account.stack()
    pod = account.pod(stack.pod_prefix + "1", volume_gb=73)
    account.record(stack, pod)
    code, out, _ = account.run("cleanup", "--state-file", stack.state_path, "--mode", "stop")
    assert code == 0
    golden("cleanup_stop.txt", account.normalise(out))
    assert status(account, pod.pod_id) == "EXITED"
    assert StateStore(stack.state_path).read().pod is not None


def test_cleanup_dry_run_and_preserve_change_nothing(account: Account) -> None:
    stack = account.stack()
    pod = account.pod(stack.pod_prefix + "1")
    account.record(stack, pod)
    for args in (("--mode", "delete", "--dry-run"), ("--mode", "preserve")):
        code, out, _ = account.run("cleanup", "--state-file", stack.state_path, *args)
        assert code == 0 and pod.pod_id in out
    assert status(account, pod.pod_id) == "RUNNING"
    assert StateStore(stack.state_path).read().serial == 1


def test_cleanup_refuses_a_locked_stack_and_a_state_without_pod(account: Account) -> None:
    stack = account.stack()
    pod = account.pod(stack.pod_prefix + "1")
    account.record(stack, pod)
    with StateStore(stack.state_path).lock(command="apply"):
        code, _, err = account.run("cleanup", "--state-file", stack.state_path)
    assert code == 1 and "locked" in err and "(apply)" in err
    store = StateStore(stack.state_path)
    state = store.read()
    store.write(state.evolve(pod=None, pending=state.pending or _pending(pod.name)))
    code, _, err = account.run("cleanup", "--state-file", stack.state_path)
    assert code == 1 and "records no pod" in err and "runpod-deploy plan" in err
    assert status(account, pod.pod_id) == "RUNNING"


def _pending(name: str) -> PendingOperation:
    return PendingOperation(kind=PendingKind.CREATE, pod_name=name,
                            started_at="2026-11-23T09:00:00+00:00")


def test_cleanup_all_stopped_deletes_every_exited_pod(account: Account) -> None:
    stopped = [account.pod(f"old--0a0a0a--{i}", stopped=True) for i in range(3)]
    running = account.pod("busy--0c0c0c--1")
    code, out, err = account.run("cleanup", "--all-stopped", "--yes")
    assert code == 0, err
    assert "TOTAL: 3 pods" in out and "deleted: 3; failed: 0" in err
    assert all(account.provider.get_pod(p.pod_id) is None for p in stopped)
    assert account.provider.get_pod(running.pod_id) is not None


def test_cleanup_all_stopped_exits_2_when_a_delete_fails(account: Account) -> None:
    stopped = [account.pod(f"old--0a0a0a--{i}", stopped=True) for i in range(2)]
    account.sim.fault("http_error", status=400, route="podTerminate", count=1)
    code, _, err = account.run("cleanup", "--all-stopped", "--yes")
    assert code == 2
    assert "deleted: 1; failed: 1" in err and "failed to delete" in err
    assert sum(account.provider.get_pod(p.pod_id) is not None for p in stopped) == 1


def test_cleanup_all_stopped_without_yes_reads_its_answer_from_stdin(account: Account) -> None:
    """As in the original: `echo y | runpod-deploy cleanup --all-stopped` deletes; no answer
    (end of input) or anything but y/yes deletes nothing."""
    pod = account.pod("old--0a0a0a--1", stopped=True)
    for answer in (None, "", "n\n", "sure\n"):
        code, _, err = account.run("cleanup", "--all-stopped", stdin=answer)
        assert code == 1 and "Delete all 1 pods? [y/N]" in err and "no pod deleted" in err
        assert account.provider.get_pod(pod.pod_id) is not None
    code, _, err = account.run("cleanup", "--all-stopped", stdin="y\n")
    assert code == 0 and "deleted: 1; failed: 0" in err
    assert account.provider.get_pod(pod.pod_id) is None


def test_cleanup_needs_exactly_one_target(account: Account) -> None:
    assert account.run("cleanup")[0] == 2
    assert account.run("cleanup", "--all-stopped", "--state-file", "x.json")[0] == 2


# ----------------------------------------------------------------------- estimate and the GPUs


def test_estimate_walks_the_failover_order(account: Account, golden: Golden) -> None:
    account.sim.set_stock("EU-RO-1", GPU, 0)
    account.stack()
    code, out, _ = account.run("estimate", "--config", account.root / "job.yaml")
    assert code == 0
    golden("estimate.txt", account.normalise(out))
    data = json.loads(account.run("estimate", "--config", account.root / "job.yaml",
                                  "--json")[1])
    assert data["selected"]["datacenter_id"] == "EU-RO-1"
    assert data["selected"]["gpu_type_id"] == "NVIDIA RTX A5000"


def test_estimate_exits_1_when_nothing_is_in_stock(account: Account) -> None:
    for dc in ("EU-RO-1", "US-IL-1"):
        for gpu in (GPU, "NVIDIA RTX A5000"):
            account.sim.set_stock(dc, gpu, 0)
    account.stack()
    code, out, _ = account.run("estimate", "--config", account.root / "job.yaml")
    assert code == 1 and "selected:       nothing" in out and "assumed_hourly_rate_usd" in out


def test_gpu_prices(account: Account, golden: Golden) -> None:
    code, out, _ = account.run("gpu-prices")
    assert code == 0
    golden("gpu_prices_secure.txt", out)
    rows = json.loads(account.run("gpu-prices", "--cloud-type", "COMMUNITY", "--spot",
                                  "--json")[1])
    priced = [r["hourly_usd"] for r in rows if r["hourly_usd"] is not None]
    assert priced == sorted(priced) and priced


def test_gpu_list(account: Account, golden: Golden) -> None:
    code, out, _ = account.run("gpu-list", "--datacenter", "EU-RO-1")
    assert code == 0
    golden("gpu_list_eu_ro_1.txt", out)
    code, _, err = account.run("gpu-list", "--datacenter", "MARS-1")
    assert code == 1 and "not in the catalog" in err and "EU-RO-1" in err


def test_gpu_inventory_ok_then_stock_out_exits_3(account: Account, golden: Golden) -> None:
    account.stack()
    config = account.root / "job.yaml"
    code, out, _ = account.run("gpu-inventory", "--config", config)
    assert code == 0
    golden("gpu_inventory_ok.txt", out)
    for dc in ("EU-RO-1", "US-IL-1"):
        for gpu in (GPU, "NVIDIA RTX A5000"):
            account.sim.set_stock(dc, gpu, 0)
    code, out, _ = account.run("gpu-inventory", "--config", config)
    assert code == 3
    golden("gpu_inventory_stockout.txt", out)
    data = json.loads(account.run("gpu-inventory", "--config", config, "--json")[1])
    assert data["any_stocked"] is False and data["widening_hint"]
