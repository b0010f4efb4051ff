#!/usr/bin/env python3
"""The fake `nvidia-smi` placed on every pod's PATH (copied into the pod; stdlib only).

It prints the real tool's two output forms that telemetry code parses: the plain table and
`--query-gpu=a,b,c --format=csv[,noheader][,nounits]`, for the GPUs described in the JSON file
beside it (written by the simulator at container start).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

_DRIVER = "550.127.05"
_CUDA = "12.4"


def _gpus() -> list[dict[str, object]]:
    return list(json.loads((Path(__file__).resolve().parent / "gpus.json").read_text()))


def _query_value(gpu: dict[str, object], field: str, units: bool) -> str | None:
    total = int(str(gpu["memory_mib"]))
    used = 1
    values: dict[str, tuple[str, str]] = {
        "index": (str(gpu["index"]), ""),
        "name": (str(gpu["name"]), ""),
        "uuid": (str(gpu["uuid"]), ""),
        "pci.bus_id": (str(gpu["bus_id"]), ""),
        "driver_version": (_DRIVER, ""),
        "count": (str(gpu["count"]), ""),
        "utilization.gpu": ("0", " %"),
        "utilization.memory": ("0", " %"),
        "memory.total": (str(total), " MiB"),
        "memory.used": (str(used), " MiB"),
        "memory.free": (str(total - used), " MiB"),
        "temperature.gpu": ("34", ""),
        "power.draw": ("16.00", " W"),
        "power.limit": (f"{gpu['power_watts']}.00", " W"),
        "ecc.errors.uncorrected.volatile.total": ("0", ""),
        "pstate": ("P8", ""),
        "fan.speed": ("41", " %"),
    }
    if field not in values:
        return None
    value, unit = values[field]
    return value + unit if units else value


def _query(gpus: list[dict[str, object]], fields: list[str], fmt: set[str]) -> int:
    units = "nounits" not in fmt
    lines = []
    if "noheader" not in fmt:
        unit_names = {" %": " [%]", " MiB": " [MiB]", " W": " [W]"}
        header = []
        for name in fields:
            sample = _query_value(gpus[0], name, True) if gpus else ""
            suffix = next((u for k, u in unit_names.items() if sample and sample.endswith(k)), "")
            header.append(name + (suffix if units else ""))
        lines.append(", ".join(header))
    for gpu in gpus:
        row = []
        for name in fields:
            value = _query_value(gpu, name, units)
            if value is None:
                print(f'Field "{name}" is not a valid field to query.', file=sys.stderr)
                return 2
            row.append(value)
        lines.append(", ".join(row))
    print("\n".join(lines))
    return 0


def _table(gpus: list[dict[str, object]]) -> None:
    rule = "+-----------------------------------------+------------------------+----------------------+"
    print(time.strftime("%a %b %d %H:%M:%S %Y") + "       ")
    print("+" + "-" * 89 + "+")
    print(f"| NVIDIA-SMI {_DRIVER}             Driver Version: {_DRIVER}     CUDA Version: {_CUDA}     |")
    print(rule.replace("+-", "|-", 1)[:-1] + "+")
    print("| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |")
    print("| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |")
    print("|                                         |                        |               MIG M. |")
    print("|=========================================+========================+======================|")
    for gpu in gpus:
        total = int(str(gpu["memory_mib"]))
        first = f" {gpu['index']:>3}  {str(gpu['name'])[:28]:<28}".ljust(36) + "On  "
        print(f"|{first:<41}|   {gpu['bus_id']} Off |{'Off':>21} |")
        power = f"16W / {gpu['power_watts']:>4}W"
        print(f"| 41%   34C    P8{power:>24} |{f'1MiB / {total:>6}MiB':>23} |      0%      Default |")
        print(f"|{'':41}|{'':24}|{'N/A':>21} |")
        print(rule)
    print(" " * 89)
    print("+" + "-" * 89 + "+")
    print("| Processes:" + " " * 78 + "|")
    print("|  GPU   GI   CI        PID   Type   Process name" + " " * 30 + "GPU Memory |")
    print("|        ID   ID" + " " * 63 + "Usage      |")
    print("|" + "=" * 89 + "|")
    print("|  No running processes found" + " " * 61 + "|")
    print("+" + "-" * 89 + "+")


def main(argv: list[str]) -> int:
    gpus = _gpus()
    if not gpus:
        print("No devices were found")
        return 6
    query = next((a.split("=", 1)[1] for a in argv if a.startswith("--query-gpu=")), None)
    if query is None:
        _table(gpus)
        return 0
    fmt = next((a.split("=", 1)[1] for a in argv if a.startswith("--format=")), "")
    if "csv" not in fmt.split(","):
        print("ERROR: Option --format must be given with --query-gpu (e.g. --format=csv)",
              file=sys.stderr)
        return 2
    return _query(gpus, [f.strip() for f in query.split(",") if f.strip()], set(fmt.split(",")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
