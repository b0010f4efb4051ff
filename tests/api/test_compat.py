"""The original 0.8 names on the new core: same calls, errors from one tree, no run-time warnings."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import runpod_deploy as rd
from runpod_sim.testing import Simulator

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "stacks" / "hello.yaml"


def write_stack(root: Path, **changes: Any) -> Path:
    data = yaml.safe_load(HELLO.read_text())
    data.update(changes)
    path = root / "stack.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_spec_types_keep_their_original_names() -> None:
    assert rd.RunpodJobSpec is rd.JobSpec
    assert rd.BudgetSpec is rd.Budget
    assert rd.RemoteEnvSpec is rd.RemoteEnv
    assert rd.CommandSpec is rd.Command
    assert rd.RsyncPushSpec is rd.StagingPush
    assert rd.ArtifactPullSpec is rd.ArtifactPull
    assert rd.LifecyclePolicySpec is rd.Lifecycle
    assert rd.TelemetrySpec is rd.Telemetry


def test_deprecations_are_static_only() -> None:
    """Marked for type checkers (`__deprecated__`), silent at run time: a user suite with
    `-W error` keeps passing."""
    for name in ("load_job_spec", "build_job_context", "run_job", "JobContext"):
        assert "use runpod_deploy." in getattr(rd, name).__deprecated__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rd.build_job_context(rd.load_job_spec(HELLO), HELLO)
    assert caught == []


def test_load_job_spec_is_the_unrendered_stack() -> None:
    spec = rd.load_job_spec(HELLO)
    assert isinstance(spec, rd.RunpodJobSpec)
    assert spec == rd.load_stack(HELLO).spec
    assert "{greeting}" in spec.run.body


def test_load_job_spec_raises_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(rd.SpecError, match="cannot read the stack file"):
        rd.load_job_spec(tmp_path / "missing.yaml")
    bad = write_stack(tmp_path, budget={"cost_cap_usd": -1})
    with pytest.raises(rd.SpecError) as caught:
        rd.load_job_spec(bad)
    assert [d.field_path for d in caught.value.diagnostics] == ["budget.cost_cap_usd"]


def test_build_job_context_resolves_variables(tmp_path: Path) -> None:
    config = write_stack(tmp_path, name="demo-{seed}", variables={"seed": "1"})
    ctx = rd.build_job_context(rd.load_job_spec(config), config, cli_variables={"seed": "42"},
                               timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert ctx.variables["seed"] == "42"
    assert ctx.variables["job_name"] == "demo-42"
    assert ctx.run_id == "demo-42-20260102T030405Z"
    assert ctx.run_dir == tmp_path / "artifacts" / "runpod" / "20260102T030405Z"
    assert ctx.render("{job_name}/{seed}") == "demo-42/42"
    assert ctx.render_path("data/x") == tmp_path / "data" / "x"


def test_build_job_context_refuses_the_home_directory(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = write_stack(tmp_path)
    with pytest.raises(rd.SpecError, match="project_root resolves to the home directory"):
        rd.build_job_context(rd.load_job_spec(config), config)


def test_validate_local_paths_names_every_missing_path(tmp_path: Path) -> None:
    (tmp_path / "present.txt").write_text("x")
    config = write_stack(tmp_path, local={"required_paths": ["present.txt", "a.txt",
                                                             "{config_dir}/b.txt"]})
    ctx = rd.build_job_context(rd.load_job_spec(config), config)
    with pytest.raises(rd.SpecError) as caught:
        rd.validate_local_paths(ctx)
    assert [d.field_path for d in caught.value.diagnostics] == [
        "local.required_paths[1]", "local.required_paths[2]"]
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.txt").write_text("x")
    rd.validate_local_paths(ctx)


def test_select_price_for_pod() -> None:
    prices = {"A": rd.GpuPrice(gpu_type_id="A", secure_price=0.5, community_spot_price=0.1)}
    assert rd.select_price_for_pod(prices, gpu_id="A", cloud_type="secure", spot=False) == 0.5
    assert rd.select_price_for_pod(prices, gpu_id="A", cloud_type="COMMUNITY", spot=True) == 0.1
    assert rd.select_price_for_pod(prices, gpu_id="B", cloud_type="SECURE", spot=False) is None
    with pytest.raises(rd.SpecError, match="unknown cloud type 'MOON'"):
        rd.select_price_for_pod(prices, gpu_id="A", cloud_type="MOON", spot=False)


def test_run_job_refuses_what_it_cannot_honour(tmp_path: Path) -> None:
    config = write_stack(tmp_path)
    spec = rd.load_job_spec(config)
    changed = spec.model_copy(update={"pod": spec.pod.model_copy(update={"gpu_count": 2})})
    with pytest.raises(rd.SpecError, match="differs from the file"):
        rd.run_job(changed, config_path=config, offline_dry_run=True)
    with pytest.raises(rd.SpecError, match="fallback_cloud_type is not supported"):
        rd.run_job(spec, config_path=config, offline_dry_run=True, fallback_cloud_type="COMMUNITY")


def test_run_job_offline_dry_run_asks_nobody(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider is configured here: an offline dry run must not need one."""
    monkeypatch.setenv("RUNPOD_DEPLOY_STATE_DIR", str(tmp_path / "state"))
    config = write_stack(tmp_path)
    spec = rd.load_job_spec(config)
    cheaper = spec.model_copy(update={"budget": spec.budget.model_copy(
        update={"cost_cap_usd": 0.5})})
    assert rd.run_job(cheaper, config_path=config, offline_dry_run=True,
                      print_run_dir=True) is None
    out = capsys.readouterr().out
    assert out.startswith(f"RUN_DIR={tmp_path / 'artifacts' / 'runpod'}/")
    assert "+ create" in out
    assert "within the cap of $0.50" in out
    assert not (tmp_path / "artifacts").exists()


def test_fetch_gpu_prices_needs_a_key() -> None:
    with pytest.raises(rd.ProviderAuthError):
        rd.fetch_gpu_prices(env={})


@pytest.mark.sim
def test_fetch_gpu_prices_from_the_simulator(runpod_sim: Simulator) -> None:
    prices = rd.fetch_gpu_prices(env=runpod_sim.env)
    a4000 = prices["NVIDIA RTX A4000"]
    assert a4000.gpu_type_id == "NVIDIA RTX A4000"
    assert a4000.secure_price is not None and a4000.secure_price > 0


@pytest.mark.sim
def test_run_job_runs_on_the_simulator_and_raises_on_failure(
        runpod_sim: Simulator, sim_ssh_key: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    env = {**runpod_sim.env, "RUNPOD_DEPLOY_STATE_DIR": str(tmp_path / "state")}
    config = write_stack(tmp_path, budget={"cost_cap_usd": 1.0, "max_runtime_minutes": 5,
                                           "poll_interval_sec": 1})
    spec = rd.load_job_spec(config)
    result = rd.run_job(spec, config_path=config, provider="api", ssh_key=str(sim_ssh_key),
                        env=env, print_run_dir=True)
    assert result is not None and result.ok and result.run_dir is not None
    assert f"RUN_DIR={result.run_dir}\n" in capsys.readouterr().out
    assert rd.load_manifest(result.run_dir).failed is False

    failing = write_stack(tmp_path, run={**spec.run.model_dump(), "body": "exit 3\n"})
    with pytest.raises(rd.RunFailedError) as caught:
        rd.run_job(rd.load_job_spec(failing), config_path=failing, provider="api",
                   ssh_key=str(sim_ssh_key), env=env)
    assert caught.value.exit_code == 1
    assert caught.value.result.outcome is rd.RunOutcome.JOB_FAILED
    assert [p for p in runpod_sim.status()["pods"] if p["desiredStatus"] != "TERMINATED"] == []
