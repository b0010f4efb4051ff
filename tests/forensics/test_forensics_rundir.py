"""The run dir and its record files: unique names, atomic manifests, crash-safe JSONL."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from runtime.rundir import (
    ArtifactPull,
    ArtifactStatus,
    AttemptOutcome,
    CpuSample,
    DeployMetadata,
    EventLog,
    EventName,
    GpuSample,
    LifecycleAction,
    ManifestError,
    MetricsLog,
    PlanSummary,
    ProvisioningAttempt,
    RunDirError,
    RunManifest,
    RunOutcome,
    create_run_dir,
    estimate_cost_usd,
    load_events,
    load_manifest,
    load_metrics,
    write_manifest,
)
from tests.forensics.forensics_data import (
    ORIGINAL_V1,
    ORIGINAL_V2,
    OURS_POD_KILLED,
    OURS_SUCCEEDED,
    TORN_MANIFEST,
)

T0 = datetime(2026, 5, 15, 12, 0, 0, 250000, tzinfo=UTC)

# The original 0.8.x writes these keys in this order; our manifest must start with them.
ORIGINAL_V2_KEYS = [
    "schema_version",
    "pulled_at_utc",
    "failed",
    "job_name",
    "run_id",
    "config_path",
    "storage_mode",
    "datacenter_id",
    "gpu_id",
    "gpu_price_per_hour_usd",
    "gpu_price_source",
    "pod_id",
    "pod_final_state",
    "pod_resumed",
    "image",
    "cost_cap_usd",
    "wall_time_sec",
    "estimated_cost_usd",
    "volume_mount",
    "volume_name",
    "volume_gb",
    "deploy_metadata",
    "artifacts",
    "telemetry_files",
]


def fixed(moment: datetime = T0) -> Callable[[], datetime]:
    return lambda: moment


# ---------------------------------------------------------------------------- run dir names


def test_run_dir_is_named_by_its_utc_start_second(tmp_path: Path) -> None:
    in_paris = T0.astimezone(timezone(timedelta(hours=2)))
    run_dir = create_run_dir(tmp_path, now=fixed(in_paris))
    assert run_dir.name == "20260515T120000Z"
    assert run_dir.path == (tmp_path / "artifacts" / "runpod" / "20260515T120000Z").resolve()
    assert run_dir.path.is_dir()
    assert run_dir.started_at == in_paris
    assert run_dir.manifest_path.name == "runpod_deploy_pull_manifest.json"
    assert run_dir.events_path.name == "events.jsonl"
    assert run_dir.metrics_path.name == "metrics.jsonl"


def test_eight_shards_starting_in_the_same_second_get_eight_dirs_in_order(tmp_path: Path) -> None:
    start = threading.Barrier(8)
    names: list[str] = []
    lock = threading.Lock()

    def shard() -> None:
        start.wait()
        run_dir = create_run_dir(tmp_path, now=fixed())
        with lock:
            names.append(run_dir.name)

    threads = [threading.Thread(target=shard) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(names) == ["20260515T120000Z"] + [
        f"20260515T120000Z-{n:03d}" for n in range(1, 8)
    ]
    later = create_run_dir(tmp_path, now=fixed(T0 + timedelta(seconds=1))).name
    earlier = create_run_dir(tmp_path, now=fixed(T0 - timedelta(seconds=1))).name
    on_disk = sorted(p.name for p in (tmp_path / "artifacts" / "runpod").iterdir())
    assert on_disk[0] == earlier and on_disk[-1] == later, "name order must be time order"


def test_run_dir_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "artifacts").write_text("not a directory")
    with pytest.raises(RunDirError, match="cannot create"):
        create_run_dir(tmp_path, now=fixed())


# ---------------------------------------------------------------------------- manifest


def full_manifest() -> RunManifest:
    return RunManifest(
        pulled_at_utc=T0,
        failed=False,
        job_name="unit-job",
        run_id="unit-job-20260515T120000Z",
        config_path="/p/stack.yaml",
        storage_mode="ephemeral",
        datacenter_id="EU-RO-1",
        gpu_id="NVIDIA L4",
        gpu_price_per_hour_usd=0.44,
        gpu_price_source="pod_describe",
        pod_id="pod123",
        pod_final_state="EXITED",
        pod_resumed=False,
        image="img:1",
        cost_cap_usd=3.0,
        wall_time_sec=600.0,
        estimated_cost_usd=estimate_cost_usd(600.0, 0.44),
        volume_mount="/workspace",
        volume_gb=20,
        deploy_metadata=DeployMetadata(local_git_sha="abc", local_git_dirty=True),
        artifacts=(
            ArtifactPull(
                label="out",
                remote_path="/w/out",
                local_path="/p/out",
                required=True,
                status=ArtifactStatus.SUCCESS,
                duration_sec=1.5,
            ),
        ),
        telemetry_files=("events.jsonl",),
        outcome=RunOutcome.SUCCEEDED,
        lifecycle_action=LifecycleAction.DELETE,
        plan_summary=PlanSummary(steps=("create",), reasons=("no_pod",), worst_case_cost_usd=3.0),
        provisioning_attempts=(
            ProvisioningAttempt(
                gpu_id="NVIDIA L4",
                datacenter_id="EU-RO-1",
                outcome=AttemptOutcome.CREATED,
                seconds=80.0,
                usd=0.01,
            ),
        ),
    )


def test_manifest_round_trips_and_keeps_the_original_key_order(tmp_path: Path) -> None:
    manifest = full_manifest()
    path = write_manifest(tmp_path, manifest)

    assert load_manifest(path) == manifest
    assert load_manifest(tmp_path) == manifest, "a run dir is as good as its manifest path"
    raw = json.loads(path.read_text())
    assert list(raw)[: len(ORIGINAL_V2_KEYS)] == ORIGINAL_V2_KEYS
    assert raw["pulled_at_utc"] == "2026-05-15T12:00:00.250000+00:00"
    assert raw["estimated_cost_usd"] == 0.0733
    assert raw["volume_name"] is None, "every v2 key is written, nulls included"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runpod_deploy_pull_manifest.json"]


def test_manifest_write_replaces_the_previous_one_whole(tmp_path: Path) -> None:
    write_manifest(tmp_path, RunManifest(job_name="first", failed=True))
    write_manifest(tmp_path, RunManifest(job_name="second", failed=False))
    loaded = load_manifest(tmp_path)
    assert (loaded.job_name, loaded.failed) == ("second", False)


def test_manifest_write_into_a_missing_dir_is_a_run_dir_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="cannot write manifest"):
        write_manifest(tmp_path / "gone", RunManifest())


def test_the_originals_v2_manifest_loads_field_for_field() -> None:
    manifest = load_manifest(ORIGINAL_V2)
    assert manifest.schema_version == "v2"
    assert manifest.pulled_at_utc == datetime(2026, 3, 2, 21, 12, 44, 918273, tzinfo=UTC)
    assert manifest.pod_resumed is True
    assert manifest.gpu_price_per_hour_usd is None and manifest.gpu_price_source == "assumed_rate"
    assert manifest.deploy_metadata.payload_lockfile == "requirements.txt"
    assert [a.status for a in manifest.artifacts] == [ArtifactStatus.SUCCESS, None]
    assert manifest.outcome is None and manifest.provisioning_attempts == ()


def test_a_v1_manifest_loads_with_its_missing_fields_empty() -> None:
    manifest = load_manifest(ORIGINAL_V1)
    assert (manifest.schema_version, manifest.failed, manifest.wall_time_sec) == ("v1", None, None)
    assert manifest.deploy_metadata.present_fields() == {}
    assert manifest.artifacts[0].label == "logs" and manifest.artifacts[0].status is None


def test_unknown_keys_survive_a_read_and_a_write(tmp_path: Path) -> None:
    raw = json.loads((ORIGINAL_V2 / "runpod_deploy_pull_manifest.json").read_text())
    raw["from_the_future"] = {"x": 1}
    raw["deploy_metadata"]["remote_uname"] = "Linux pod 6.8"
    raw["artifacts"][0]["checksum"] = "sha256:00"
    (tmp_path / "in.json").write_text(json.dumps(raw))

    manifest = load_manifest(tmp_path / "in.json")
    write_manifest(tmp_path, manifest)
    rewritten = json.loads((tmp_path / "runpod_deploy_pull_manifest.json").read_text())

    assert rewritten["from_the_future"] == {"x": 1}
    assert rewritten["deploy_metadata"]["remote_uname"] == "Linux pod 6.8"
    assert rewritten["artifacts"][0]["checksum"] == "sha256:00"


def test_null_collections_read_as_empty(tmp_path: Path) -> None:
    nulls = {"job_name": "j", "deploy_metadata": None, "artifacts": None, "telemetry_files": None}
    (tmp_path / "m.json").write_text(json.dumps(nulls))
    manifest = load_manifest(tmp_path / "m.json")
    assert (manifest.artifacts, manifest.telemetry_files) == ((), ())


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ('{"failed": tru', ManifestError, "not valid JSON"),
        ("[1, 2]", ManifestError, "a JSON list, expected an object"),
        ('{"wall_time_sec": "long"}', ManifestError, "wall_time_sec"),
        ('{"artifacts": [{"status": "success"}]}', ManifestError, "artifacts.0.label"),
    ],
)
def test_a_bad_manifest_names_its_problem(
    tmp_path: Path, content: str, error: type[Exception], message: str
) -> None:
    (tmp_path / "m.json").write_text(content)
    with pytest.raises(error, match=message):
        load_manifest(tmp_path / "m.json")


def test_a_missing_manifest_is_a_run_dir_error_not_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="manifest not found") as caught:
        load_manifest(tmp_path)
    assert not isinstance(caught.value, ManifestError)


def test_the_torn_fixture_manifest_is_unreadable() -> None:
    with pytest.raises(ManifestError):
        load_manifest(TORN_MANIFEST)


# ---------------------------------------------------------------------------- events


def test_events_are_one_json_object_a_line_stamped_by_the_injected_clock(tmp_path: Path) -> None:
    ticks = iter([T0, T0 + timedelta(seconds=42)])
    with EventLog(tmp_path / "events.jsonl", now=lambda: next(ticks)) as events:
        events.emit(EventName.GPU_SELECTED, gpu_id="NVIDIA L4", datacenter_id="EU-RO-1")
        events.emit(
            EventName.ARTIFACT_PULL_FAILED,
            label="out",
            duration_sec=2.5,
            error="rsync: exit 23",
            at=T0,
            local=Path("/p/out"),
        )

    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "ts_utc": "2026-05-15T12:00:00.250000+00:00",
            "event": "gpu_selected",
            "gpu_id": "NVIDIA L4",
            "datacenter_id": "EU-RO-1",
        },
        {
            "ts_utc": "2026-05-15T12:00:42.250000+00:00",
            "event": "artifact_pull_failed",
            "label": "out",
            "duration_sec": 2.5,
            "error": "rsync: exit 23",
            "at": "2026-05-15T12:00:00.250000+00:00",
            "local": "/p/out",
        },
    ]
    first = load_events(tmp_path)[0]
    assert (first.event, first.timestamp, first.fields) == (
        "gpu_selected",
        T0,
        {"gpu_id": "NVIDIA L4", "datacenter_id": "EU-RO-1"},
    )


def test_event_fields_cannot_overwrite_the_time_or_the_name(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.jsonl", now=fixed())
    with pytest.raises(ValueError, match="ts_utc"):
        events.emit(EventName.POD_READY, ts_utc="yesterday")


def test_events_from_eight_threads_never_interleave(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.jsonl", now=fixed())
    payload = "x" * 5000  # larger than a stdio buffer, so a torn write would show

    def writer(thread_number: int) -> None:
        for index in range(100):
            events.emit(
                EventName.REMOTE_STEP_STARTED, name=f"t{thread_number}-{index}", pad=payload
            )

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events.close()

    events_read = load_events(tmp_path)
    assert all(event.fields["pad"] == payload for event in events_read), "a line was torn"
    names = [event.fields["name"] for event in events_read]
    assert sorted(names) == sorted(f"t{n}-{i}" for n in range(8) for i in range(100))
    for thread_number in range(8):  # each thread's own events stay in the order it wrote them
        mine = [name for name in names if name.startswith(f"t{thread_number}-")]
        assert mine == [f"t{thread_number}-{i}" for i in range(100)]


def test_two_writers_of_one_file_never_overwrite_each_other(tmp_path: Path) -> None:
    executor = EventLog(tmp_path / "events.jsonl", now=fixed())
    sampler = EventLog(tmp_path / "events.jsonl", now=fixed())
    executor.emit(EventName.PHASE_STARTED, phase="monitor")
    sampler.emit(EventName.POD_KILLED_UNEXPECTED, state="TERMINATED")
    executor.emit(EventName.PHASE_FAILED, phase="monitor")
    assert [e.event for e in load_events(tmp_path)] == [
        "phase_started",
        "pod_killed_unexpected",
        "phase_failed",
    ]


def test_a_line_torn_by_a_crash_is_skipped_and_the_rest_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    events = load_events(OURS_POD_KILLED)
    assert [e.event for e in events] == [
        "gpu_selected",
        "pod_killed_unexpected",
        "artifact_pull_failed",
    ]
    assert "events.jsonl:4: skipping malformed line" in caplog.text


def test_sigkill_loses_nothing_already_emitted(tmp_path: Path) -> None:
    """The process dies without any cleanup; every emitted event must already be on disk."""
    child = f"""
import os, signal
from pathlib import Path
from runtime.rundir import EventLog, EventName
log = EventLog(Path({str(tmp_path / "events.jsonl")!r}))
for index in range(50):
    log.emit(EventName.REMOTE_STEP_COMPLETED, name=str(index))
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL
    assert [e.fields["name"] for e in load_events(tmp_path)] == [str(i) for i in range(50)]


def test_an_unwritable_events_file_warns_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    events = EventLog(tmp_path / "no-such-dir" / "events.jsonl", now=fixed())
    for _ in range(3):
        events.emit(EventName.POD_READY)
    events.sync()
    events.close()
    warnings = [r.getMessage() for r in caplog.records if "cannot append" in r.getMessage()]
    assert len(warnings) == 1, "one warning, not one per event"
    assert str(tmp_path / "no-such-dir" / "events.jsonl") in warnings[0]


def test_sync_makes_events_durable_and_is_safe_before_any_event(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.jsonl", now=fixed())
    events.sync()
    events.emit(EventName.PHASE_COMPLETED, phase="setup")
    events.sync()
    assert load_events(tmp_path)[0].fields == {"phase": "setup"}


def test_a_missing_events_file_is_an_empty_history(tmp_path: Path) -> None:
    assert load_events(tmp_path) == ()


def test_every_original_event_name_is_in_the_vocabulary() -> None:
    original = {
        "gpu_selected",
        "datacenter_failover",
        "cloud_type_fallback",
        "pod_resumed",
        "remote_step_started",
        "remote_step_completed",
        "artifact_pull_started",
        "artifact_pull_completed",
        "artifact_pull_failed",
        "remote_log_pull_failed",
        "pod_killed_unexpected",
    }
    assert original <= {name.value for name in EventName}


# ---------------------------------------------------------------------------- metrics


def test_metrics_rows_keep_failed_samples_out_and_round_trip(tmp_path: Path) -> None:
    gpu = GpuSample(gpu_util_pct=97, gpu_mem_used_mb=20000, gpu_mem_total_mb=24000, gpu_temp_c=70)
    with MetricsLog(tmp_path / "metrics.jsonl", now=fixed()) as metrics:
        metrics.record(gpu, None, None, None)
        metrics.record(None, CpuSample(cpu_load_1m=3.5), None, None)

    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0] == {
        "ts_utc": "2026-05-15T12:00:00.250000+00:00",
        "gpu_util_pct": 97,
        "gpu_mem_used_mb": 20000,
        "gpu_mem_total_mb": 24000,
        "gpu_temp_c": 70,
        "gpu_ecc_errors": None,
    }
    assert set(lines[1]) == {"ts_utc", "cpu_load_1m", "cpu_user_pct", "cpu_sys_pct"}
    rows = load_metrics(tmp_path)
    assert (
        rows[0].gpu_util_pct == 97 and rows[1].cpu_load_1m == 3.5 and rows[1].gpu_util_pct is None
    )


def test_metrics_of_a_fixture_run_read_back(tmp_path: Path) -> None:
    shutil.copy(OURS_SUCCEEDED / "metrics.jsonl", tmp_path / "metrics.jsonl")
    rows = load_metrics(tmp_path)
    assert [row.cpu_load_1m for row in rows] == [0.42, 7.9]
    assert rows[0].workspace_disk_total_bytes == 53687091200
