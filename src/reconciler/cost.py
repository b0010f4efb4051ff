"""The cost line of a plan: $/hr per GPU candidate and the worst case under the deadline.

Prices come from the observed `Catalog` for the stack's cloud type (spot or on-demand), times
the GPU count; a candidate without a price uses `budget.assumed_hourly_rate_usd`. The source is
named on every candidate. The worst case is the dearest candidate running until the deadline
(`budget.timeout_sec`), which is when the monitor and the on-pod watchdog stop the job.
"""

from __future__ import annotations

from reconciler.observed import Catalog
from reconciler.plan import CostEstimate, GpuCost
from reconciler.spec import JobSpec

__all__ = ["estimate_cost"]


def estimate_cost(spec: JobSpec, catalog: Catalog | None) -> CostEstimate:
    cloud = spec.pod.cloud_type
    spot = spec.pod.spot
    candidates = []
    for gpu in spec.pod.gpu_order:
        entry = catalog.price(gpu) if catalog is not None else None
        price = entry.price_for(cloud, spot=spot) if entry is not None else None
        if price is not None and price > 0:
            mode = "spot" if spot else "on-demand"
            candidates.append(GpuCost(gpu_type_id=gpu, hourly_usd=round(price * spec.pod.gpu_count, 4),
                                      source=f"catalog ({cloud.value} {mode})"))
        else:
            candidates.append(GpuCost(gpu_type_id=gpu,
                                      hourly_usd=spec.budget.assumed_hourly_rate_usd,
                                      source="assumed_hourly_rate_usd"))
    max_hourly = max(c.hourly_usd for c in candidates)
    timeout = spec.budget.timeout_sec
    worst = round(max_hourly * timeout / 3600, 2)
    return CostEstimate(candidates=tuple(candidates), gpu_count=spec.pod.gpu_count,
                        max_hourly_usd=max_hourly, timeout_sec=timeout, worst_case_usd=worst,
                        cap_usd=spec.budget.cost_cap_usd,
                        within_cap=worst <= spec.budget.cost_cap_usd + 1e-9)
