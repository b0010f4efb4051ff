"""The parsers the telemetry sampler feeds with the text of nvidia-smi, top, free and df."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.rundir import CpuSample, DiskSample, GpuSample, HostMemorySample
from runtime.telemetry_parsers import parse_df, parse_free, parse_nvidia_smi, parse_top

TOP_PROCPS = """\
top - 09:09:47 up  1:41,  0 user,  load average: 3.29, 2.16, 1.12
Tasks:  73 total,   1 running,  72 sleeping,   0 stopped,   0 zombie
%Cpu(s): 61.5 us,  4.0 sy,  0.0 ni, 34.5 id,  0.0 wa,  0.0 hi,  0.0 si,  0.0 st
"""
TOP_IDLE_NO_SPACE = """\
top - 09:09:47 up 2 days,  1:41,  0 users,  load average: 0.00, 0.01, 0.05
Tasks:   3 total,   1 running,   2 sleeping,   0 stopped,   0 zombie
%Cpu(s):  0.0 us,  0.0 sy,  0.0 ni,100.0 id,  0.0 wa,  0.0 hi,  0.0 si,  0.0 st
"""
TOP_OLD_PROCPS = """\
top - 10:00:00 up 10 min,  1 user,  load average: 1.50, 1.00, 0.50
Tasks:  90 total,   2 running,  88 sleeping,   0 stopped,   0 zombie
Cpu(s): 12.3%us,  2.1%sy,  0.0%ni, 85.6%id,  0.0%wa,  0.0%hi,  0.0%si,  0.0%st
"""
FREE = """\
               total        used        free      shared  buff/cache   available
Mem:          257612       41230      200001          12       16381      214700
Swap:              0           0           0
"""
DF = """\
Filesystem          1B-blocks        Used    Available Use% Mounted on
overlay          107374182400 21474836480  85899345920  21% /workspace
"""
DF_WRAPPED = """\
Filesystem                                  1B-blocks        Used    Available Use% Mounted on
mfs#eu-ro-1.runpod.net:9421/very/long/volume/name
                                         536870912000 10737418240 526133493760   2% /workspace
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "97, 20480, 24576, 71, 0\n",
            GpuSample(
                gpu_util_pct=97,
                gpu_mem_used_mb=20480,
                gpu_mem_total_mb=24576,
                gpu_temp_c=71,
                gpu_ecc_errors=0,
            ),
        ),
        (
            "12, 100, 46068, 40, [N/A]\n",
            GpuSample(gpu_util_pct=12, gpu_mem_used_mb=100, gpu_mem_total_mb=46068, gpu_temp_c=40),
        ),
        (
            "5, 1, 2, 3\n",
            GpuSample(gpu_util_pct=5, gpu_mem_used_mb=1, gpu_mem_total_mb=2, gpu_temp_c=3),
        ),
        (
            "88, 1, 2, 60, 0\n10, 1, 2, 30, 0\n",
            GpuSample(
                gpu_util_pct=88,
                gpu_mem_used_mb=1,
                gpu_mem_total_mb=2,
                gpu_temp_c=60,
                gpu_ecc_errors=0,
            ),
        ),
    ],
    ids=["ecc", "ecc-not-available", "no-ecc-column", "first-of-two-gpus"],
)
def test_nvidia_smi_first_gpu_line(text: str, expected: GpuSample) -> None:
    assert parse_nvidia_smi(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "NVIDIA-SMI has failed because it couldn't communicate with the driver.",
        "1, 2, 3",
        "a, b, c, d, e",
    ],
)
def test_nvidia_smi_without_a_gpu_line_is_no_sample(text: str) -> None:
    assert parse_nvidia_smi(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TOP_PROCPS, CpuSample(cpu_load_1m=3.29, cpu_user_pct=61.5, cpu_sys_pct=4.0)),
        (TOP_IDLE_NO_SPACE, CpuSample(cpu_load_1m=0.0, cpu_user_pct=0.0, cpu_sys_pct=0.0)),
        (TOP_OLD_PROCPS, CpuSample(cpu_load_1m=1.5, cpu_user_pct=12.3, cpu_sys_pct=2.1)),
        (TOP_PROCPS.splitlines()[0], CpuSample(cpu_load_1m=3.29)),
    ],
    ids=["procps-ng", "idle-100", "old-procps-percent-signs", "load-line-only"],
)
def test_top_load_and_cpu_split(text: str, expected: CpuSample) -> None:
    assert parse_top(text) == expected


def test_top_gibberish_is_no_sample() -> None:
    assert parse_top("bash: top: command not found") is None


def test_free_reads_used_and_total_of_the_mem_row() -> None:
    assert parse_free(FREE) == HostMemorySample(host_mem_used_mb=41230, host_mem_total_mb=257612)


@pytest.mark.parametrize("text", ["", "Swap: 0 0 0", "Mem: lots some"])
def test_free_without_a_mem_row_is_no_sample(text: str) -> None:
    assert parse_free(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            DF,
            DiskSample(
                workspace_disk_used_bytes=21474836480, workspace_disk_total_bytes=107374182400
            ),
        ),
        (
            DF_WRAPPED,
            DiskSample(
                workspace_disk_used_bytes=10737418240, workspace_disk_total_bytes=536870912000
            ),
        ),
    ],
    ids=["one-line", "wrapped-long-filesystem-name"],
)
def test_df_reads_used_and_total_bytes(text: str, expected: DiskSample) -> None:
    assert parse_df(text) == expected


@pytest.mark.parametrize(
    "text", ["", "df: /workspace: No such file or directory", DF.splitlines()[0]]
)
def test_df_without_a_data_row_is_no_sample(text: str) -> None:
    assert parse_df(text) is None


@given(
    total=st.integers(min_value=0, max_value=10**7),
    used=st.integers(min_value=0, max_value=10**7),
    disk_total=st.integers(min_value=0, max_value=10**15),
    disk_used=st.integers(min_value=0, max_value=10**15),
)
def test_free_and_df_read_back_any_sizes(
    total: int, used: int, disk_total: int, disk_used: int
) -> None:
    free_text = f"{'':15}total        used\nMem: {total:>14} {used:>11} 0 0 0 0\n"
    df_text = (
        "Filesystem 1B-blocks Used Available Use% Mounted on\n"
        f"overlay {disk_total} {disk_used} 0 0% /w\n"
    )
    assert parse_free(free_text) == HostMemorySample(host_mem_used_mb=used, host_mem_total_mb=total)
    assert parse_df(df_text) == DiskSample(
        workspace_disk_used_bytes=disk_used, workspace_disk_total_bytes=disk_total
    )
