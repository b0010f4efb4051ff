"""The loader: the original examples load unchanged; malformed stacks give located errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.diagnostics import Severity, SpecError
from reconciler.load import load_spec, load_spec_report, parse_var_assignment, parse_vars_file
from reconciler.spec import JobSpec, LifecycleAction, json_schema
from reconciler.template import render_spec, resolve_variables

BAD = Path(__file__).resolve().parents[1] / "data" / "bad_stacks"
# Variables an example's header says to pass (the original needs them too).
EXAMPLE_VARS = {"canonical_sweep_pinned.yaml": {"seed": "42", "backbone": "deberta"}}


@pytest.fixture(scope="module")
def examples(original_sdist: Path) -> list[Path]:
    found = sorted((original_sdist / "examples").rglob("*.yaml"))
    assert len(found) >= 8
    return found


def test_every_original_example_validates_and_renders(examples: list[Path]) -> None:
    for path in examples:
        spec = load_spec(path.read_text(), source=str(path))
        assert spec.schema_version == 2
        values = resolve_variables(spec, config_dir=str(path.parent), home="/home/u",
                                   run_stamp="20260102T030405Z",
                                   cli_vars=EXAMPLE_VARS.get(path.name, {}))
        render_spec(spec, values)


def _cases() -> list[Path]:
    return sorted(BAD.glob("*.yaml"))


def test_every_bad_stack_states_the_error_it_expects() -> None:
    """The cases below check what each file's `# expect:` header says; a file without one (or
    a glob that found nothing) would check nothing."""
    cases = _cases()
    assert len(cases) >= 30
    stated = re.compile(r"^# expect: \S", re.MULTILINE)
    unstated = [p.name for p in cases if not stated.search(p.read_text())]
    assert unstated == []


@pytest.mark.parametrize("path", _cases(), ids=lambda p: p.stem)
def test_bad_stack_gives_a_located_error(path: Path) -> None:
    text = path.read_text()
    expect = re.search(r"^# expect: (.*)$", text, re.MULTILINE).group(1)  # type: ignore[union-attr]
    field = re.search(r"^# field: (.*)$", text, re.MULTILINE)
    with pytest.raises(SpecError) as caught:
        load_spec(text, source=str(path))
    diagnostics = [d for d in caught.value.diagnostics if d.severity is Severity.ERROR]
    assert diagnostics
    match = [d for d in diagnostics if expect in d.format()]
    assert match, f"no diagnostic says {expect!r}: {caught.value}"
    diag = match[0]
    assert diag.location is not None and diag.location.file == str(path)
    if field:
        assert diag.location.line > 2  # past the comment lines: a real position
        assert diag.field_path == field.group(1)
    assert str(path) in str(caught.value)


def test_positions_point_at_the_value() -> None:
    text = "name: x\npod:\n  image: i\n  datacenters: [A]\n  gpu_order: [B]\n  gpu_count: -2\n" \
           "storage: {mode: ephemeral, volume_gb: 1}\nrun: {script_path: /a, log_path: /b, " \
           "success_marker: m, body: b}\n"
    with pytest.raises(SpecError) as caught:
        load_spec(text, source="s.yaml")
    (diag,) = caught.value.diagnostics
    assert (diag.location.line, diag.location.column) == (6, 14)  # type: ignore[union-attr]
    assert diag.format().startswith("s.yaml:6:14: error: pod.gpu_count: expected a value > 0")


def test_all_errors_are_reported_together() -> None:
    """Two unrelated mistakes: both come back from one load, each at its own place."""
    text = (BAD / "unknown_pod_key.yaml").read_text().replace("volume_gb: 10", "volume_gb: 0")
    with pytest.raises(SpecError) as caught:
        load_spec(text, source="s.yaml")
    found = sorted((d.location.line if d.location else 0, d.field_path, d.severity)
                   for d in caught.value.diagnostics)
    assert found == [(7, "pod.gpu_ordr", Severity.ERROR), (10, "storage", Severity.ERROR)]
    assert "unknown key 'gpu_ordr'" in str(caught.value)
    assert "volume_gb must be a positive integer" in str(caught.value)


def test_legacy_stop_maps_to_lifecycle_with_a_warning() -> None:
    text = (BAD / "unknown_root_key.yaml").read_text().replace(
        "lifecyle: {on_success: delete}", "stop: true")
    loaded = load_spec_report(text, source="s.yaml")
    assert loaded.spec.lifecycle.on_success is LifecycleAction.STOP
    assert loaded.spec.lifecycle.on_failure is LifecycleAction.STOP
    (warn,) = loaded.warnings
    assert warn.severity is Severity.WARNING and "deprecated" in warn.summary
    assert warn.location is not None and warn.location.line == 16
    off = load_spec(text.replace("stop: true", "stop: false"), source="s.yaml")
    assert off.lifecycle.on_success is LifecycleAction.PRESERVE


def test_defaults_match_the_original() -> None:
    text = (BAD / "unknown_root_key.yaml").read_text().replace(
        "lifecyle: {on_success: delete}\n", "")
    spec = load_spec(text, source="s.yaml")
    assert isinstance(spec, JobSpec)
    assert spec.pod.cloud_type == "SECURE" and spec.pod.ports == ("22/tcp",)
    assert spec.pod.container_disk_gb == 20 and spec.pod.gpu_count == 1
    assert spec.budget.cost_cap_usd == 10.0 and spec.budget.assumed_hourly_rate_usd == 1.65
    assert spec.budget.poll_interval_sec == 60 and spec.budget.ssh_ready_timeout_sec == 900
    assert spec.budget.timeout_sec == int(10 / 1.65 * 3600)
    assert spec.lifecycle.on_success is LifecycleAction.DELETE
    assert spec.lifecycle.on_failure is LifecycleAction.STOP
    assert spec.run.failure_markers[0] == "Traceback"
    assert spec.telemetry.sample_interval_sec == 30
    assert spec.ssh.key_path == "~/.ssh/id_ed25519"
    assert spec.storage.volume_mount == "/workspace"
    with pytest.raises(ValidationError, match="frozen"):
        spec.name = "y"  # type: ignore[misc]


def test_secret_variable_forms() -> None:
    text = (BAD / "unknown_root_key.yaml").read_text().replace(
        "lifecyle: {on_success: delete}\n",
        "variables:\n  plain: p\n  token: {secret: true}\n  other: {value: v, secret: true}\n")
    spec = load_spec(text, source="s.yaml")
    assert spec.variables["plain"].value == "p" and not spec.variables["plain"].secret
    assert spec.variables["token"].value is None and spec.variables["token"].secret


def test_var_assignments_and_vars_files() -> None:
    assert parse_var_assignment("seed=3") == ("seed", "3")
    assert parse_var_assignment("empty=") == ("empty", "")
    assert parse_var_assignment("eq=a=b") == ("eq", "a=b")
    for bad in ("noequals", "1x=3", "a-b=3"):
        with pytest.raises(SpecError):
            parse_var_assignment(bad)
    assert parse_vars_file('{"a": "1"}', source="v.json") == {"a": "1"}
    for bad in ("[1]", '{"a": 1}', "{", '{"a-b": "x"}'):
        with pytest.raises(SpecError):
            parse_vars_file(bad, source="v.json")


def test_json_schema_describes_the_format() -> None:
    schema = json_schema()
    assert set(schema["required"]) == {"name", "pod", "storage", "run"}
    assert "gpu_order" in schema["$defs"]["PodSpec"]["properties"]
    assert schema["$defs"]["PodSpec"]["additionalProperties"] is False
