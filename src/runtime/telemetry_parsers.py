"""Parsers of the remote sampling commands' output: nvidia-smi, top, free, df -> samples.

Pure functions, so the sampler that runs the commands over SSH (`runtime.telemetry`) stays a
thin loop; the samples are the columns of the metrics.jsonl format (`runtime.rundir`).
"""

from __future__ import annotations

import re

from runtime.rundir import CpuSample, DiskSample, GpuSample, HostMemorySample

__all__ = ["parse_df", "parse_free", "parse_nvidia_smi", "parse_top"]


def parse_nvidia_smi(text: str) -> GpuSample | None:
    """Parse `nvidia-smi --query-gpu=utilization.gpu,memory.used,memory.total,temperature.gpu,
    ecc.errors.uncorrected.volatile.total --format=csv,noheader,nounits`: the first GPU's line.

    ECC counts read `[N/A]` on GPUs without ECC, which becomes None rather than a failed sample.
    """
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    parts = [part.strip() for part in lines[0].split(",")]
    if len(parts) < 4:
        return None
    try:
        util, used, total, temp = (int(part) for part in parts[:4])
    except ValueError:
        return None
    ecc = _int_or_none(parts[4]) if len(parts) > 4 else None
    return GpuSample(
        gpu_util_pct=util,
        gpu_mem_used_mb=used,
        gpu_mem_total_mb=total,
        gpu_temp_c=temp,
        gpu_ecc_errors=ecc,
    )


_LOAD_AVERAGE = re.compile(r"load averages?:\s*([0-9.]+)")
_CPU_FIELD = re.compile(r"([0-9.]+)\s*%?\s*(us|sy)\b")


def parse_top(text: str) -> CpuSample | None:
    """Parse `top -b -n1 | head -3`: the 1-minute load and the user/system CPU percentages."""
    load: float | None = None
    user: float | None = None
    system: float | None = None
    for line in text.splitlines():
        load_match = _LOAD_AVERAGE.search(line)
        if load_match and load is None:
            load = _float_or_none(load_match.group(1))
        if line.lstrip().startswith(("%Cpu(s):", "Cpu(s):")):
            for number, kind in _CPU_FIELD.findall(line.split(":", 1)[1]):
                if kind == "us":
                    user = _float_or_none(number)
                else:
                    system = _float_or_none(number)
    if load is None and user is None and system is None:
        return None
    return CpuSample(cpu_load_1m=load, cpu_user_pct=user, cpu_sys_pct=system)


def parse_free(text: str) -> HostMemorySample | None:
    """Parse `free -m`: the `Mem:` row's total (1st number) and used (2nd number)."""
    for line in text.splitlines():
        columns = line.split()
        if columns and columns[0] == "Mem:" and len(columns) >= 3:
            total, used = _int_or_none(columns[1]), _int_or_none(columns[2])
            if total is None or used is None:
                return None
            return HostMemorySample(host_mem_used_mb=used, host_mem_total_mb=total)
    return None


def parse_df(text: str) -> DiskSample | None:
    """Parse `df -B1 <path>`: the data row's 1B-blocks (total) and Used columns.

    Old coreutils wrap a long filesystem name onto its own line, so the data row is read as all
    the words after the header line, not as the second line alone.
    """
    lines = text.strip().splitlines()
    if len(lines) < 2:
        return None
    columns = " ".join(lines[1:]).split()
    if len(columns) < 3:
        return None
    total, used = _int_or_none(columns[1]), _int_or_none(columns[2])
    if total is None or used is None:
        return None
    return DiskSample(workspace_disk_used_bytes=used, workspace_disk_total_bytes=total)


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
