"""A team on one S3 backend (moto on loopback) and the simulator, through the real CLI: two
machines (own HOME, own local state dir) applying one stack at once, a holder killed with
SIGKILL at any point, a CI checkout that has only the backend URL, and the team's runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runpod_deploy.api import load_stack, open_stack_store
from runpod_sim.testing import FAST_KNOBS, Simulator
from runtime.backends import open_backend, parse_backend_url
from runtime.backends.lease import read_lease
from tests.e2e.conftest import BASE_STACK, merge

from .conftest import S3, s3_url

pytestmark = pytest.mark.sim

CLI = str(Path(sys.executable).with_name("runpod-deploy"))
WAIT_FOR_RELEASE = "echo started\nwhile [ ! -e /workspace/release ]; do sleep 0.1; done\necho '[job] DONE'\n"
QUIET_TELEMETRY = {"enabled": False, "capture_nvidia_smi": False, "capture_dmesg": False,
                   "capture_pod_describe": False, "capture_remote_env": False}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    started = Simulator.start(tmp_path_factory.mktemp("sim"), **FAST_KNOBS)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def ssh_key(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "team", "-f", str(key)],
                   check=True)
    sim.add_pubkey(key.with_suffix(".pub").read_text())
    return key


class Team:
    """One repository (a `.git` marker), one backend URL, machines that each have their own
    HOME and local state directory."""

    def __init__(self, sim: Simulator, key: Path, root: Path, url: str, aws: dict[str, str]):
        self.sim, self.key, self.root, self.url, self.aws = sim, key, root, url, aws
        self.repo = root / "repo"
        (self.repo / ".git").mkdir(parents=True)

    def stack(self, job: str, changes: dict[str, Any] | None = None) -> Path:
        data = merge(BASE_STACK, {"name": job, "ssh": {"key_path": str(self.key)},
                                  "telemetry": QUIET_TELEMETRY})
        data = merge(data, changes or {})
        path = self.repo / "stacks" / f"{job}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def machine(self, name: str, **extra: str) -> dict[str, str]:
        home = self.root / name
        (home / "state").mkdir(parents=True, exist_ok=True)
        return {**self.sim.env, **self.aws, "HOME": str(home),
                "RUNPOD_DEPLOY_STATE_DIR": str(home / "state"),
                "RUNPOD_DEPLOY_BACKEND": self.url, **extra}

    def cli(self, env: dict[str, str], *args: str, cwd: Path | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=cwd or self.repo, check=False)

    def start(self, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([CLI, *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=self.repo)

    def prefix(self, config: Path) -> str:
        return load_stack(config, env=self.machine("observer")).pod_prefix

    def pods(self, config: Path, *, live: bool = True) -> list[dict[str, Any]]:
        prefix = self.prefix(config)
        return [p for p in self.sim.pods() if p["name"].startswith(prefix)
                and (not live or p["desiredStatus"] != "TERMINATED")]

    def state(self, config: Path) -> Any:
        env = self.machine("observer")
        return open_stack_store(load_stack(config, env=env), env).read()

    def assert_no_leak(self, config: Path) -> None:
        state = self.state(config)
        live = {p["id"] for p in self.pods(config)}
        recorded = {state.pod.pod_id} if state.pod else set()
        assert live <= recorded, f"pods no state records: {live - recorded}"

    def release(self, pod_id: str) -> None:
        """Let the job end, once it has started (its log is on the pod's volume disk)."""
        volume = self.sim.home / "pods" / pod_id / "volume"
        wait_until(lambda: (volume / "job.log").exists(), "the job to start")
        (volume / "release").write_text("go\n")


@pytest.fixture
def team(sim: Simulator, ssh_key: Path, moto_s3: S3, bucket: str, aws_env: dict[str, str],
         tmp_path: Path) -> Iterator[Team]:
    yield Team(sim, ssh_key, tmp_path, s3_url(moto_s3.endpoint, bucket, lease="2"), aws_env)
    # the account is shared by the module's tests and `drift` sees all of it: leave it empty
    for pod in sim.pods():
        if pod["desiredStatus"] != "TERMINATED":
            subprocess.run([sim.runpodctl, "pod", "delete", pod["id"]], env=sim.env,
                           capture_output=True, check=False, timeout=60)


def wait_until(predicate: Any, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def apply_args(config: Path) -> list[str]:
    return ["apply", "--config", str(config), "--yes", "--provider", "api", "--plain"]


def test_two_machines_apply_one_stack_at_once_and_exactly_one_pod_is_created(team: Team) -> None:
    config = team.stack("shared", {"run": {"body": WAIT_FOR_RELEASE}})
    billed_before = set(team.sim.billing()["pods"])
    laptops = [team.start(team.machine("alice"), *apply_args(config)),
               team.start(team.machine("bob"), *apply_args(config))]
    try:
        _one_wins(team, config, laptops)
    finally:
        for proc in laptops:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert len(set(team.sim.billing()["pods"]) - billed_before) == 1, "exactly one pod ever"
    team.assert_no_leak(config)
    # the plan header names the backend; the team's run is under the backend
    plan = team.cli(team.machine("carol"), "plan", "--config", str(config), "--provider", "api")
    assert plan.returncode == 0 and f"s3://{team.url.split('/')[2]}/team/stacks/" in plan.stdout
    keys = open_backend(parse_backend_url(team.url)).list("runs/shared/")
    assert any(k.endswith("/runpod_deploy_pull_manifest.json") for k in keys)
    assert any(k.endswith("/events.jsonl") for k in keys)


def _one_wins(team: Team, config: Path, laptops: list[subprocess.Popen[str]]) -> None:
    wait_until(lambda: any(p.poll() is not None for p in laptops), "one apply to give up")
    (loser,) = [p for p in laptops if p.poll() is not None]
    (winner,) = [p for p in laptops if p.poll() is None]
    _, err = loser.communicate()
    assert loser.returncode == 1, err
    assert "stack is locked by " in err
    assert f"pid {winner.pid} on " in err and f"(apply {config})" in err and "lock id" in err
    assert "Traceback" not in err
    wait_until(lambda: len(team.pods(config)) == 1, "the winner's pod")
    team.release(team.pods(config)[0]["id"])
    _, err = winner.communicate(timeout=120)
    assert winner.returncode == 0, err[-2000:]


@pytest.mark.parametrize("point", ["after_lock", "after_create_call", "monitor",
                                   "before_lifecycle_call"])
def test_a_holder_killed_at_any_point_leaks_no_pod_when_the_other_machine_applies(
        team: Team, point: str) -> None:
    config = team.stack(f"kill-{point.replace('_', '-')}")
    killed = team.cli(team.machine("alice", RUNPOD_DEPLOY_CRASH_AT=point), *apply_args(config))
    assert killed.returncode == -9, killed.stderr[-2000:]
    store = open_stack_store(load_stack(config, env=team.machine("bob")), team.machine("bob"))
    backend = open_backend(parse_backend_url(team.url))
    assert store.key is not None
    info, _ = read_lease(backend, store.key)
    assert info is not None, "the killed holder's lease is still there"
    done = team.cli(team.machine("bob"), *apply_args(config))
    if done.returncode == 1 and "stack is locked by" in done.stderr:
        # still leased: refused, naming the dead apply and its lock id; retried once it expires
        assert f"(apply {config})" in done.stderr and info.lock_id in done.stderr
        wait_until(lambda: time.time() > info.expires_at, "the dead holder's lease to expire")
        done = team.cli(team.machine("bob"), *apply_args(config))
    assert done.returncode == 0, done.stderr[-3000:]
    team.assert_no_leak(config)
    assert team.pods(config) == []  # lifecycle delete: nothing left billing
    state = team.state(config)
    assert state.pending is None and state.last_run is not None


def test_a_ci_checkout_with_only_the_backend_url_sees_the_teams_state(team: Team,
                                                                       tmp_path: Path) -> None:
    config = team.stack("recorded", {"lifecycle": {"on_success": "stop", "on_failure": "stop"}})
    applied = team.cli(team.machine("alice"), *apply_args(config))
    assert applied.returncode == 0, applied.stderr[-2000:]
    (pod,) = team.pods(config)
    assert pod["desiredStatus"] == "EXITED"
    checkout = tmp_path / "ci" / "checkout"
    shutil.copytree(team.repo, checkout)  # another path: the stack is found by its repo path
    ci = {**team.sim.env, **team.aws, "HOME": str(tmp_path / "ci-home"),
          "RUNPOD_DEPLOY_BACKEND": team.url}
    synced = team.cli(ci, "drift", str(checkout / "stacks"), "--detailed-exitcode",
                      "--provider", "api", "--format", "json", cwd=checkout)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    report = json.loads(synced.stdout)
    assert [s["verdict"] for s in report["stacks"]] == ["in_sync"] and report["orphans"] == []
    assert report["stacks"][0]["state_path"].startswith(f"s3://{team.url.split('/')[2]}/team/")
    deleted = subprocess.run([team.sim.runpodctl, "pod", "delete", pod["id"]], env=team.sim.env,
                             capture_output=True, text=True, check=False)
    assert deleted.returncode == 0, deleted.stderr  # changed by hand, outside the tool
    drifted = team.cli(ci, "drift", str(checkout / "stacks"), "--detailed-exitcode",
                       "--provider", "api", "--format", "json", cwd=checkout)
    assert drifted.returncode == 2, drifted.stdout + drifted.stderr
    assert json.loads(drifted.stdout)["stacks"][0]["verdict"] == "pod_missing"
    # anyone with the URL clears the record, by the stack file (no state file path to know)
    cleaned = team.cli(ci, "cleanup", "--config", str(checkout / "stacks" / "recorded.yaml"),
                       "--mode", "delete", "--provider", "api", cwd=checkout)
    assert cleaned.returncode == 0 and "already gone" in cleaned.stdout, cleaned.stderr
    assert team.state(config).pod is None
    settled = team.cli(ci, "drift", str(checkout / "stacks"), "--detailed-exitcode",
                       "--provider", "api", cwd=checkout)
    assert settled.returncode == 0, settled.stdout + settled.stderr
    # the team's runs, from the CI checkout
    runs = team.cli(ci, "ls-runs", "--backend", team.url, "--json", cwd=checkout)
    assert runs.returncode == 0, runs.stderr
    assert [row["job"] for row in json.loads(runs.stdout)] == ["recorded"]
    summary = team.cli(ci, "manifest-summary", "--backend", team.url, "--json", cwd=checkout)
    assert summary.returncode == 0 and json.loads(summary.stdout)["totals"]["manifests"] == 1


def test_a_ci_checkout_sees_the_var_instances_recorded_on_the_backend(team: Team,
                                                                      tmp_path: Path) -> None:
    """A `--var` instance lives beside its stack on the backend: drift from a checkout with no
    local state lists it as a stack of its own (in sync), not its pod as an orphan."""
    config = team.stack("seeded", {"variables": {"seed": "0"},
                                   "lifecycle": {"on_success": "stop", "on_failure": "stop"}})
    applied = team.cli(team.machine("alice"), *apply_args(config), "--var", "seed=7")
    assert applied.returncode == 0, applied.stderr[-2000:]
    checkout = tmp_path / "ci" / "checkout"
    shutil.copytree(team.repo, checkout)
    ci = {**team.sim.env, **team.aws, "HOME": str(tmp_path / "ci-home"),
          "RUNPOD_DEPLOY_BACKEND": team.url}
    seen = team.cli(ci, "drift", str(checkout / "stacks"), "--detailed-exitcode",
                    "--provider", "api", "--format", "json", cwd=checkout)
    assert seen.returncode == 0, seen.stdout + seen.stderr
    report = json.loads(seen.stdout)
    assert report["orphans"] == []
    verdicts = {s["config_path"]: s["verdict"] for s in report["stacks"]}
    assert any(path.endswith("seeded.yaml [seed=7]") for path in verdicts), verdicts
    assert set(verdicts.values()) == {"in_sync"}


def test_a_machine_without_the_backend_does_not_see_the_teams_state(team: Team) -> None:
    """The opposite check: the shared state is what made the CI checkout see the pod."""
    config = team.stack("elsewhere", {"lifecycle": {"on_success": "stop", "on_failure": "stop"}})
    assert team.cli(team.machine("alice"), *apply_args(config)).returncode == 0
    alone = {k: v for k, v in team.machine("dave").items() if k != "RUNPOD_DEPLOY_BACKEND"}
    blind = team.cli(alone, "drift", str(team.repo / "stacks"), "--detailed-exitcode",
                     "--provider", "api", "--format", "json")
    assert blind.returncode == 2 and json.loads(blind.stdout)["orphans"], blind.stdout


def test_a_laptops_local_state_moves_to_the_team_backend_and_another_machine_resumes_its_pod(
        team: Team, tmp_path: Path) -> None:
    config = team.stack("solo", {"lifecycle": {"on_success": "stop", "on_failure": "stop"}})
    laptop = {k: v for k, v in team.machine("alice").items() if k != "RUNPOD_DEPLOY_BACKEND"}
    applied = team.cli(laptop, *apply_args(config))
    assert applied.returncode == 0, applied.stderr[-2000:]
    (pod,) = [p for p in team.sim.pods() if p["name"].startswith("solo--")
              and p["desiredStatus"] != "TERMINATED"]
    billed_before = set(team.sim.billing()["pods"])
    moved = team.cli(laptop, "state", "migrate", "--to", team.url, str(config))
    assert moved.returncode == 0 and "solo.yaml: copied" in moved.stdout, moved.stderr
    stale = team.cli(laptop, "plan", "--config", str(config), "--provider", "api")
    assert stale.returncode == 1 and "was migrated to s3://" in stale.stderr
    assert team.state(config).pod.pod_id == pod["id"]  # keyed by its path in the repository
    resumed = team.cli(team.machine("bob"), *apply_args(config))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert set(team.sim.billing()["pods"]) == billed_before, "no second pod"
    assert team.state(config).pod.pod_id == pod["id"]
    checkout = tmp_path / "ci"
    shutil.copytree(team.repo, checkout)
    ci = {**team.sim.env, **team.aws, "HOME": str(tmp_path / "ci-home"),
          "RUNPOD_DEPLOY_BACKEND": team.url}
    synced = team.cli(ci, "drift", str(checkout / "stacks"), "--detailed-exitcode",
                      "--provider", "api", cwd=checkout)
    assert synced.returncode == 0, synced.stdout + synced.stderr
