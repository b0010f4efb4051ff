"""`drift` on the simulator: each situation of issue 5 gets its verdict and exit code 2; a clean
set exits 0; one listing serves every stack; the $/day of orphans is what the meter charges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runpod_deploy.api import load_stack
from runpod_deploy.cli import app
from runtime.drift_report import check_drift
from tests.drift.drift_world import GPU, IMAGE_A, IMAGE_B, World, normalise

pytestmark = pytest.mark.sim  # every test here starts the simulator

Golden = Callable[[str, str], None]


def drift(world: World, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["drift", str(world.root / "stacks"), "--provider", "api",
                                      *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def verdicts(out: str) -> dict[str, str]:
    return {s["name"]: s["verdict"] for s in json.loads(out)["stacks"]}


def test_a_clean_set_exits_0(world: World) -> None:
    world.in_sync("steady")
    world.stack("fresh")  # never applied: no pod is what it wants
    code, out, _ = drift(world, "--detailed-exitcode", "--format", "json")
    assert code == 0
    assert verdicts(out) == {"steady": "in_sync", "fresh": "in_sync"}
    assert json.loads(out)["orphans"] == []


def test_an_image_change_in_a_recycled_stack_is_drift(world: World) -> None:
    world.in_sync()
    world.image_changed()
    code, out, _ = drift(world, "--detailed-exitcode", "--format", "json")
    assert code == 2
    recycled = next(s for s in json.loads(out)["stacks"] if s["name"] == "recycled")
    assert recycled["verdict"] == "drifted"
    assert recycled["changes"] == [{"path": "image", "before": IMAGE_A, "after": IMAGE_B,
                                    "forces_replace": True}]


def test_a_pod_deleted_behind_our_back_is_missing(world: World) -> None:
    world.in_sync()
    world.deleted_behind_our_back()
    code, out, _ = drift(world, "--detailed-exitcode", "--format", "json")
    assert code == 2
    assert verdicts(out)["vanished"] == "pod_missing"


def test_a_pending_create_left_by_a_killed_apply_is_pending(world: World) -> None:
    world.in_sync()
    world.killed_apply()
    code, out, _ = drift(world, "--detailed-exitcode", "--format", "json")
    assert code == 2
    interrupted = next(s for s in json.loads(out)["stacks"] if s["name"] == "interrupted")
    assert interrupted["verdict"] == "pending"
    assert "an unconfirmed create made pod" in interrupted["details"][0]
    assert json.loads(out)["orphans"] == [], "the pending create's pod is accounted for"


def test_a_pod_started_by_hand_with_a_stacks_prefix_is_an_orphan(world: World) -> None:
    world.in_sync()
    _, pod = world.started_by_hand()
    code, out, _ = drift(world, "--detailed-exitcode", "--format", "json")
    assert code == 2
    report = json.loads(out)
    assert verdicts(out)["handmade"] == "in_sync"
    assert [(o["pod_id"], o["stack"]) for o in report["orphans"]] == [(pod.pod_id, "handmade")]


def test_without_detailed_exitcode_drift_exits_0(world: World) -> None:
    world.deleted_behind_our_back()
    assert drift(world)[0] == 0


def test_every_situation_at_once_in_each_format(world: World, golden: Golden) -> None:
    world.in_sync()
    world.image_changed()
    world.deleted_behind_our_back()
    world.killed_apply()
    world.started_by_hand()
    world.pod("someone-else--a1b2c3--x9")  # the tool's name shape, no known stack
    (world.root / "stacks" / "ci.yml").write_text("on: push\njobs: {}\n")
    for fmt, name in (("table", "drift_all.txt"), ("markdown", "drift_all.md"),
                      ("json", "drift_all.json")):
        code, out, _ = drift(world, "--detailed-exitcode", "--format", fmt)
        assert code == 2
        golden(name, normalise(out, world))


def test_a_broken_stack_is_an_error_and_the_others_are_still_checked(world: World) -> None:
    world.in_sync()
    world.deleted_behind_our_back()
    bad = world.root / "stacks" / "broken.yaml"
    bad.write_text("name: broken\npod:\n  image: x\nrun:\n  body: true\n")
    code, out, _ = drift(world, "--detailed-exitcode", "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["summary"]["error"] == 1 and report["summary"]["pod_missing"] == 1
    broken = next(s for s in report["stacks"] if s["verdict"] == "error")
    assert broken["config_path"] == str(bad) and "not valid" in broken["details"][0]


def test_a_missing_path_is_an_error(world: World) -> None:
    result = CliRunner().invoke(app, ["drift", str(world.root / "nope"), "--provider", "api"])
    assert result.exit_code == 1
    assert "no such file or directory" in result.stderr


@pytest.mark.parametrize("count", [1, 10, 100])
def test_one_listing_serves_any_number_of_stacks(world: World, count: int) -> None:
    world.sim.set_stock("EU-RO-1", GPU, 500)
    for i in range(count):
        world.in_sync(f"s{i:03d}")
    before = world.provider.calls
    report = check_drift([world.root / "stacks"], load=partial(load_stack, env=world.env),
                         provider=world.provider)
    assert world.provider.calls - before == 1  # pods and catalog in one GraphQL request
    assert report.count(report.stacks[0].verdict) == count and not report.has_drift


def test_a_recorded_pod_hidden_by_list_lag_is_looked_up_not_called_missing(world: World) -> None:
    world.sim.knobs(list_lag_sec=60)
    stack = world.stack("lagging")
    world.record(stack, world.pod(stack.pod_prefix + "l1"))
    before = world.provider.calls
    report = check_drift([world.root / "stacks"], load=partial(load_stack, env=world.env),
                         provider=world.provider)
    assert world.provider.calls - before == 2  # the account in one request + one get_pod
    assert [s.verdict.value for s in report.stacks] == ["in_sync"]


def test_orphan_cost_per_day_matches_the_billing_meter(world: World) -> None:
    stack, running = world.started_by_hand()
    stopped = world.pod(stack.pod_prefix + "stopped")
    world.provider.stop_pod(stopped.pod_id)
    world.sim.clock(freeze=True)
    report = check_drift([world.root / "stacks"], load=partial(load_stack, env=world.env),
                         provider=world.provider)
    before = world.sim.billing()["pods"]
    world.sim.clock(advance=86400)
    after = world.sim.billing()["pods"]
    per_day = {o.pod_id: o.usd_per_day for o in report.orphans}
    for pod in (running, stopped):
        metered = after[pod.pod_id]["total_usd"] - before[pod.pod_id]["total_usd"]
        assert per_day[pod.pod_id] == pytest.approx(metered, abs=0.005)
    running_day, stopped_day = per_day[running.pod_id], per_day[stopped.pod_id]
    assert running_day is not None and stopped_day is not None
    assert running_day > 6.0 > stopped_day > 0


def test_drift_as_a_subprocess_with_markdown_for_ci(world: World) -> None:
    world.in_sync()
    exe = Path(sys.executable).with_name("runpod-deploy")
    done = subprocess.run([str(exe), "drift", str(world.root / "stacks"), "--provider", "api",
                           "--format", "markdown", "--detailed-exitcode"], env=dict(os.environ),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## runpod-deploy drift: In sync")
