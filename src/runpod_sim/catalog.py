"""The simulated RunPod catalogue: GPU types with prices and the datacenters that stock them.

Static data only. Prices are $/GPU/hr in the range RunPod lists; stock counts are what a fresh
simulator home starts with (a test can change them at run time through faults and knobs).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuType:
    id: str
    display_name: str
    memory_gb: int
    secure_price: float
    community_price: float
    secure_spot_price: float
    community_spot_price: float
    max_gpu_count: int = 8
    manufacturer: str = "Nvidia"
    cuda_cores: int = 0
    power_watts: int = 300

    def price(self, *, secure: bool, spot: bool) -> float:
        """The per-GPU hourly price for one way of renting it."""
        if spot:
            return self.secure_spot_price if secure else self.community_spot_price
        return self.secure_price if secure else self.community_price


@dataclass(frozen=True, slots=True)
class DataCenter:
    id: str
    name: str
    location: str
    initial_stock: tuple[tuple[str, int], ...]


GPU_TYPES: tuple[GpuType, ...] = (
    GpuType("NVIDIA RTX A4000", "RTX A4000", 16, 0.25, 0.17, 0.13, 0.09, cuda_cores=6144, power_watts=140),
    GpuType("NVIDIA RTX A5000", "RTX A5000", 24, 0.27, 0.16, 0.14, 0.08, cuda_cores=8192, power_watts=230),
    GpuType("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 0.69, 0.34, 0.35, 0.20, cuda_cores=16384, power_watts=450),
    GpuType("NVIDIA A40", "A40", 48, 0.40, 0.35, 0.20, 0.17, cuda_cores=10752, power_watts=300),
    GpuType("NVIDIA L40S", "L40S", 48, 0.86, 0.79, 0.43, 0.40, cuda_cores=18176, power_watts=350),
    GpuType("NVIDIA RTX A6000", "RTX A6000", 48, 0.49, 0.33, 0.25, 0.17, cuda_cores=10752, power_watts=300),
    GpuType("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, 1.64, 1.19, 0.82, 0.60, cuda_cores=6912, power_watts=300),
    GpuType("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 2.99, 2.69, 1.50, 1.35, cuda_cores=16896, power_watts=700),
)

DATA_CENTERS: tuple[DataCenter, ...] = (
    DataCenter("EU-RO-1", "EU-RO-1", "Romania", (
        ("NVIDIA RTX A4000", 24), ("NVIDIA RTX A5000", 12), ("NVIDIA GeForce RTX 4090", 40),
        ("NVIDIA A40", 8), ("NVIDIA RTX A6000", 6), ("NVIDIA L40S", 3))),
    DataCenter("US-IL-1", "US-IL-1", "United States", (
        ("NVIDIA RTX A4000", 10), ("NVIDIA A40", 16), ("NVIDIA L40S", 12),
        ("NVIDIA A100 80GB PCIe", 8), ("NVIDIA H100 80GB HBM3", 16))),
    DataCenter("CA-MTL-1", "CA-MTL-1", "Canada", (
        ("NVIDIA RTX A5000", 16), ("NVIDIA RTX A6000", 20), ("NVIDIA A40", 2),
        ("NVIDIA A100 80GB PCIe", 4))),
    DataCenter("EU-SE-1", "EU-SE-1", "Sweden", (
        ("NVIDIA RTX A4000", 3), ("NVIDIA GeForce RTX 4090", 8), ("NVIDIA RTX A6000", 8),
        ("NVIDIA L40S", 6))),
    DataCenter("US-TX-3", "US-TX-3", "United States", (
        ("NVIDIA GeForce RTX 4090", 16), ("NVIDIA H100 80GB HBM3", 32), ("NVIDIA A100 80GB PCIe", 16))),
    DataCenter("EUR-IS-1", "EUR-IS-1", "Iceland", (
        ("NVIDIA RTX A4000", 8), ("NVIDIA RTX A5000", 4), ("NVIDIA A40", 4))),
    DataCenter("EU-CZ-1", "EU-CZ-1", "Czech Republic", (
        ("NVIDIA GeForce RTX 4090", 24), ("NVIDIA RTX A4000", 2))),
    DataCenter("US-GA-2", "US-GA-2", "United States", (
        ("NVIDIA H100 80GB HBM3", 8), ("NVIDIA L40S", 8), ("NVIDIA RTX A6000", 1))),
)

GPU_BY_ID: dict[str, GpuType] = {gpu.id: gpu for gpu in GPU_TYPES}
DATA_CENTER_BY_ID: dict[str, DataCenter] = {dc.id: dc for dc in DATA_CENTERS}

VOLUME_USD_PER_GB_MONTH_RUNNING = 0.10
VOLUME_USD_PER_GB_MONTH_STOPPED = 0.20
CONTAINER_DISK_USD_PER_GB_MONTH = 0.10
HOURS_PER_MONTH = 730.0
"""RunPod bills storage per GB-month; an average month has 730 hours."""


def stock_status(count: int) -> str:
    """RunPod's coarse stock level for a number of free GPUs."""
    if count <= 0:
        return "None"
    if count < 4:
        return "Low"
    if count < 12:
        return "Medium"
    return "High"
