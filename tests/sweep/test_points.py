"""The pure parts of a sweep: the matrix expanded into points, the retry policy, the fleet cap;
and bad input at the command line (a clear message, exit non-zero, nothing created)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.diagnostics import SpecError
from reconciler.sweep import (
    FleetBudget,
    SweepPoint,
    combine_points,
    expand_matrix,
    is_transient,
    parse_matrix_file,
)
from runpod_deploy.cli import app


def test_the_matrix_is_every_combination_first_axis_slowest() -> None:
    points = combine_points(None, expand_matrix(["seed=1,2", "lr=1e-4,3e-4"]))
    assert [p.label for p in points] == ["seed=1,lr=1e-4", "seed=1,lr=3e-4",
                                         "seed=2,lr=1e-4", "seed=2,lr=3e-4"]
    assert [p.index for p in points] == [1, 2, 3, 4]
    assert points[0].cli_vars == ("seed=1", "lr=1e-4")


def test_a_matrix_file_is_a_list_of_maps_crossed_with_the_matrix() -> None:
    rows = parse_matrix_file("- {seed: 1, fast: true}\n- {seed: 2, fast: false}\n", source="m.yaml")
    points = combine_points(rows, expand_matrix(["lr=0.1,0.2"]))
    assert [p.as_dict() for p in points][:2] == [{"seed": "1", "fast": "true", "lr": "0.1"},
                                                 {"seed": "1", "fast": "true", "lr": "0.2"}]
    assert len(points) == 4
    assert parse_matrix_file('[{"seed": 3}]', source="m.json") == ((("seed", "3"),),)


@pytest.mark.parametrize(("axes", "text", "expected"), [
    (["seed"], None, "is not NAME=V1,V2"),
    (["seed=1,,2"], None, "has an empty value"),
    (["seed=1,1"], None, "repeats a value"),
    (["seed=1", "seed=2"], None, "is given twice"),
    ([], "- {seed: 1}\n- {seed: 1}\n", "point seed=1 is given twice"),
    (["seed=1"], "- {seed: 2}\n", "set by both --matrix-file and --matrix"),
    ([], "seed: 1\n", "expected a non-empty list of variable maps"),
    ([], "- [1, 2]\n", "item 1 is not a map"),
    ([], "- {seed: [1, 2]}\n", "must be a variable name with a scalar value"),
    ([], "- {seed: 1\n", "not valid YAML/JSON (line"),
    ([], None, "a sweep needs points"),
])
def test_bad_points_are_refused_with_the_reason(axes: list[str], text: str | None,
                                                expected: str) -> None:
    with pytest.raises(SpecError, match=None) as caught:
        rows = parse_matrix_file(text, source="m.yaml") if text is not None else None
        combine_points(rows, expand_matrix(axes))
    assert expected in str(caught.value)


def test_only_transient_outcomes_are_retried() -> None:
    assert is_transient("pod_killed", frozenset({"job_launched"}))
    assert is_transient("provisioning_failed", frozenset())
    assert is_transient("job_failed", frozenset({"job_launched"})), "SSH lost before a verdict"
    assert not is_transient("job_failed", frozenset({"job_launched", "job_finished"}))
    assert not is_transient("job_failed", frozenset({"failure_marker_seen"}))
    for outcome in ("budget_exceeded", "runtime_exceeded", "remote_command_failed",
                    "artifact_pull_failed", "interrupted", "succeeded"):
        assert not is_transient(outcome, frozenset())


def test_the_fleet_cap_counts_spend_running_reserves_and_the_next_worst_case() -> None:
    budget = FleetBudget(1.0)
    assert budget.allows(spent_usd=0.2, running_reserve_usd=0.3, next_worst_usd=0.5)
    assert not budget.allows(spent_usd=0.2, running_reserve_usd=0.3, next_worst_usd=0.51)
    assert FleetBudget(None).allows(spent_usd=9, running_reserve_usd=9, next_worst_usd=9)
    assert "fleet cap $1.00" in budget.explain(spent_usd=0.2, running_reserve_usd=0.3,
                                               next_worst_usd=0.6)


def test_a_point_is_named_by_its_variables() -> None:
    assert SweepPoint(index=1, variables=(("a", "1"), ("b", "x"))).label == "a=1,b=x"


@pytest.mark.parametrize(("args", "expected"), [
    (["--matrix", "seed"], "--matrix 'seed' is not NAME=V1,V2"),
    (["--matrix-file", "missing.yaml"], "cannot read missing.yaml"),
    (["--matrix", "seed=1", "--cost-cap-usd", "0"], "--cost-cap-usd must be > 0"),
    (["--matrix", "nope=1"], "tmpl.yaml:13:9: error: run.body: undefined template variable 'seed'"),
])
def test_bad_input_at_the_command_line_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       args: list[str], expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNPOD_DEPLOY_STATE_DIR", str(tmp_path / "state"))
    stack = Path(__file__).with_name("data") / "tmpl.yaml"
    out = CliRunner().invoke(app, ["sweep", "--config", str(stack), "--provider", "api", *args])
    assert out.exit_code != 0
    assert expected in out.output, out.output
    assert "Traceback" not in out.output
    assert not (tmp_path / "state").exists() and not list(tmp_path.iterdir())


def _stack_with(tmp_path: Path, extra: str) -> Path:
    text = (Path(__file__).with_name("data") / "tmpl.yaml").read_text() + extra
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


def test_a_secret_variable_cannot_be_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_DEPLOY_STATE_DIR", str(tmp_path / "state"))
    config = _stack_with(tmp_path, "variables:\n  token: {secret: true}\n  seed: '0'\n")
    out = CliRunner().invoke(app, ["sweep", "--config", str(config), "--provider", "api",
                                   "--matrix", "token=abc,def"])
    assert out.exit_code == 1
    assert "variable 'token' is secret and cannot be swept" in out.output
    assert "abc" not in out.output and not (tmp_path / "state").exists()


def test_points_sharing_one_state_file_cannot_run_at_once(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_DEPLOY_STATE_DIR", str(tmp_path / "state"))
    config = _stack_with(tmp_path, f"state_file: {tmp_path / 'one.json'}\n")
    out = CliRunner().invoke(app, ["sweep", "--config", str(config), "--provider", "api",
                                   "--matrix", "seed=1,2", "--max-parallel", "2"])
    assert out.exit_code == 1
    assert f"points seed=1 and seed=2 share the state file {tmp_path / 'one.json'}" in out.output
    assert "--max-parallel 1" in out.output
    assert not (tmp_path / "state").exists() and not (tmp_path / "one.json").exists()


def test_the_holder_command_line_masks_a_secret_var(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.statestore import _command_line

    monkeypatch.setattr("sys.argv", ["/venv/bin/runpod-deploy", "run", "--var", "token=hunter2",
                                     "--var=token=hunter2", "--var", "seed=1"])
    line = _command_line(frozenset({"token"}))
    assert "hunter2" not in line
    assert line == "runpod-deploy run --var 'token=<redacted>' '--var=token=<redacted>' --var seed=1"


@pytest.mark.parametrize(("args", "expected"), [
    (["--status", "sw-a", "--attach", "sw-b"], "--status and --attach cannot be used together"),
    (["--config", "x.yaml", "--detach", "--plan"], "--plan and --detach cannot be used together"),
    (["--attach", "../elsewhere"], "'../elsewhere' is not a sweep id"),
    (["--status", "sw-20260101T000000Z-000000"], "no sweep sw-20260101T000000Z-000000"),
    (["--matrix", "seed=1"], "--config is required"),
])
def test_bad_detach_status_attach_input_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      args: list[str], expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNPOD_DEPLOY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("RUNPOD_DEPLOY_BACKEND", raising=False)
    out = CliRunner().invoke(app, ["sweep", "--provider", "api", *args])
    assert out.exit_code != 0
    assert expected in out.output, out.output
    assert "Traceback" not in out.output
    assert not list(tmp_path.iterdir())


def test_a_recorded_secret_var_must_be_given_again(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The record masks a secret `--var`: `--status`/`--attach` ask for it instead of running
    the points with the mask as its value."""
    import json

    from reconciler.redaction import MARKER

    monkeypatch.setenv("RUNPOD_DEPLOY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("RUNPOD_DEPLOY_BACKEND", raising=False)
    config = _stack_with(tmp_path, "variables:\n  token: {secret: true}\n  seed: '0'\n")
    record = tmp_path / "state" / "sweeps" / "sw-test.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({
        "sweep_id": "sw-test", "config_path": str(config), "cli_vars": [f"token={MARKER}"],
        "vars_file": None, "provider": "api", "points": [
            {"index": 1, "variables": {"seed": "1"}, "status": "detached", "attempts": 1}]}))
    out = CliRunner().invoke(app, ["sweep", "--attach", "sw-test"])
    assert out.exit_code == 1
    assert "the sweep's --var token is secret and was not recorded" in out.output, out.output
    assert "pass it again: --var token=..." in out.output
