"""MetricsSampler on a real local shell: rows, cadence, stopping, failures that stay local."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtime.clock import SystemClock
from runtime.errors import SshError
from runtime.rundir import MetricsLog, load_metrics
from runtime.telemetry import MetricsSampler
from tests.telemetry.telemetry_shell import (
    BROKEN_NVIDIA_SMI,
    FakeBin,
    LocalResult,
    LocalShell,
    wait_until,
)

STAMP = datetime(2026, 5, 13, 12, 0, tzinfo=UTC)
GPU_KEYS = {"gpu_util_pct", "gpu_mem_used_mb", "gpu_mem_total_mb", "gpu_temp_c", "gpu_ecc_errors"}
DISK_KEYS = {"workspace_disk_used_bytes", "workspace_disk_total_bytes"}


@pytest.fixture
def metrics_log(tmp_path: Path) -> MetricsLog:
    return MetricsLog(tmp_path / "metrics.jsonl", now=lambda: STAMP)


def raw_rows(log: MetricsLog) -> list[dict[str, object]]:
    """The lines as written, so that a left-out key is told apart from a null one."""
    if not log.path.exists():
        return []
    return [json.loads(line) for line in log.path.read_text().splitlines()]


def run_until_rows(sampler: MetricsSampler, log: MetricsLog, count: int) -> None:
    sampler.start()
    try:
        wait_until(lambda: len(raw_rows(log)) >= count)
    finally:
        assert sampler.stop(timeout=10)


def test_rows_hold_the_parsed_gpu_cpu_memory_and_disk_values(
    shell: LocalShell, metrics_log: MetricsLog, tmp_path: Path
) -> None:
    sampler = MetricsSampler(
        shell, metrics_log, interval_sec=0.05, clock=SystemClock(), workspace_path=str(tmp_path)
    )
    run_until_rows(sampler, metrics_log, 1)

    row = load_metrics(metrics_log.path)[0]
    assert row.ts_utc == "2026-05-13T12:00:00+00:00"
    assert (row.gpu_util_pct, row.gpu_mem_used_mb, row.gpu_mem_total_mb) == (87, 12034, 16376)
    assert (row.gpu_temp_c, row.gpu_ecc_errors) == (64, 0)
    assert row.cpu_load_1m is not None and row.cpu_load_1m >= 0
    assert row.cpu_user_pct is not None and row.cpu_sys_pct is not None
    mem_total_kib = int(Path("/proc/meminfo").read_text().split()[1])
    assert (
        row.host_mem_total_mb is not None
        and abs(row.host_mem_total_mb - mem_total_kib // 1024) <= 1
    )
    assert row.host_mem_used_mb is not None and 0 < row.host_mem_used_mb <= row.host_mem_total_mb
    disk = os.statvfs(tmp_path)
    assert row.workspace_disk_total_bytes == disk.f_blocks * disk.f_frsize
    assert sampler.failures == 0


def test_each_sample_is_one_remote_command(shell: LocalShell, metrics_log: MetricsLog) -> None:
    sampler = MetricsSampler(shell, metrics_log, interval_sec=3600, clock=SystemClock())
    run_until_rows(sampler, metrics_log, 1)

    assert sampler.samples_written == 1
    assert len(shell.commands) == 1
    assert all(tool in shell.commands[0] for tool in ("nvidia-smi", "top", "free -m", "df -B1"))


def test_stop_interrupts_the_wait_between_samples(
    shell: LocalShell, metrics_log: MetricsLog
) -> None:
    sampler = MetricsSampler(shell, metrics_log, interval_sec=3600, clock=SystemClock())
    sampler.start()
    wait_until(lambda: sampler.samples_written == 1)

    began = time.monotonic()
    assert sampler.stop(timeout=5)
    assert time.monotonic() - began < 1.0


def test_a_failing_probe_leaves_out_only_its_keys(
    fake_bin: FakeBin, shell: LocalShell, metrics_log: MetricsLog
) -> None:
    fake_bin.add("nvidia-smi", BROKEN_NVIDIA_SMI)
    warnings: list[str] = []
    sampler = MetricsSampler(
        shell,
        metrics_log,
        interval_sec=0.05,
        clock=SystemClock(),
        workspace_path="/no/such/workspace",
        warn=warnings.append,
    )
    run_until_rows(sampler, metrics_log, 2)

    for row in raw_rows(metrics_log):
        assert not (GPU_KEYS | DISK_KEYS) & row.keys()
        assert {"cpu_load_1m", "host_mem_used_mb", "host_mem_total_mb"} <= row.keys()
    assert len(warnings) == 2, "one warning per failing probe, not one per sample"
    assert any("nvidia-smi" in warning for warning in warnings)
    assert any("/no/such/workspace" in warning for warning in warnings)


class FlakyShell:
    """The real shell behind a link that drops the first `drops` commands."""

    def __init__(self, shell: LocalShell, drops: int) -> None:
        self.shell, self.drops = shell, drops

    def run(
        self, command: str, *, timeout: float, check: bool = True, sensitive: bool = False
    ) -> LocalResult:
        if self.drops > 0:
            self.drops -= 1
            raise SshError("connection lost while running a command")
        return self.shell.run(command, timeout=timeout, check=check, sensitive=sensitive)


def test_transport_errors_are_counted_and_sampling_goes_on(
    shell: LocalShell, metrics_log: MetricsLog
) -> None:
    warnings: list[str] = []
    sampler = MetricsSampler(
        FlakyShell(shell, drops=3),
        metrics_log,
        interval_sec=0.05,
        clock=SystemClock(),
        warn=warnings.append,
    )
    run_until_rows(sampler, metrics_log, 1)

    assert sampler.failures == 3
    assert sampler.samples_written >= 1
    assert len(warnings) == 1 and "connection lost" in warnings[0], "one warning per outage"
    assert raw_rows(metrics_log)[0]["gpu_util_pct"] == 87


class HangingShell:
    """A pod whose command never returns until the test lets it go."""

    def __init__(self, shell: LocalShell) -> None:
        self.shell = shell
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(
        self, command: str, *, timeout: float, check: bool = True, sensitive: bool = False
    ) -> LocalResult:
        self.entered.set()
        self.release.wait(30)
        return self.shell.run(command, timeout=timeout, check=check, sensitive=sensitive)


def test_a_hung_sampler_is_abandoned_with_a_warning_and_writes_nothing_after(
    shell: LocalShell, metrics_log: MetricsLog
) -> None:
    hanging = HangingShell(shell)
    warnings: list[str] = []
    sampler = MetricsSampler(
        hanging, metrics_log, interval_sec=5, clock=SystemClock(), warn=warnings.append
    )
    sampler.start()
    assert hanging.entered.wait(5)

    began = time.monotonic()
    assert sampler.stop(timeout=0.2) is False
    assert time.monotonic() - began < 2.0
    assert any("abandoning" in warning for warning in warnings)

    hanging.release.set()
    assert sampler.stop(timeout=10), "once the command returns, the thread ends"
    assert len(shell.commands) == 1
    assert raw_rows(metrics_log) == [], "a row after stop() would land after the monitor ended"
    assert sampler.samples_written == 0


def test_without_gpu_capture_nvidia_smi_is_not_run(
    shell: LocalShell, metrics_log: MetricsLog
) -> None:
    warnings: list[str] = []
    sampler = MetricsSampler(
        shell,
        metrics_log,
        interval_sec=3600,
        clock=SystemClock(),
        capture_gpu=False,
        warn=warnings.append,
    )
    run_until_rows(sampler, metrics_log, 1)

    assert "nvidia-smi" not in shell.commands[0]
    assert not GPU_KEYS & raw_rows(metrics_log)[0].keys()
    assert "host_mem_total_mb" in raw_rows(metrics_log)[0]


def test_a_sampler_needs_a_positive_interval(shell: LocalShell, metrics_log: MetricsLog) -> None:
    with pytest.raises(ValueError, match="interval_sec"):
        MetricsSampler(shell, metrics_log, interval_sec=0, clock=SystemClock())
