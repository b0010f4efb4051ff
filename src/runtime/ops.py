"""Operations that ask RunPod: what stopped pods cost and cleaning them up (ls-stale, cleanup),
a stack's run log (logs), and where a stack would land and at what price (estimate,
gpu-prices, gpu-list, gpu-inventory).

Each command is a function that makes the provider calls and returns typed rows, and a pure
`format_*` function that turns the rows into the text the original runpod-deploy printed (same
columns, same footers), so scripts written against it keep working. The CLI and a Python user
call the same functions. Money follows RunPod's billing: GPUs by the hour while running, the
volume disk at $0.20/GB-month once stopped (twice the running rate), a month of 730 hours
(`reconciler.drift.pod_usd_per_hour`), which is what the simulator's meter charges too.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from reconciler.drift import HOURS_PER_MONTH, pod_usd_per_hour
from reconciler.observed import Catalog, CloudType, PodStatus, StockStatus
from reconciler.spec import JobSpec
from reconciler.state import StackIdentity
from runtime.errors import PodNotFoundError, ProviderError, SshError, StateError
from runtime.providers.protocol import PodProvider
from runtime.statestore import StateStore, read_state

__all__ = [
    "CandidateCheck",
    "CleanupMode",
    "CleanupOutcome",
    "DatacenterInventory",
    "DeleteResult",
    "Estimate",
    "GpuInventory",
    "GpuPriceRow",
    "GpuStockRow",
    "StalePod",
    "UnknownDatacenterError",
    "cleanup_recorded_pod",
    "delete_pods",
    "estimate",
    "format_cleanup",
    "format_estimate",
    "format_gpu_list",
    "format_gpu_prices",
    "format_inventory",
    "format_stale_table",
    "gpu_inventory",
    "gpu_prices",
    "gpu_stock",
    "list_stale_pods",
    "price_label",
    "priced_catalog",
    "stream_pod_log",
]


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _money(value: float | None) -> str:
    return "—" if value is None else f"${value:.2f}"


# --------------------------------------------------------------------------------------------
# ls-stale


class StalePod(_Row):
    """A stopped (EXITED) pod: no GPU bills, its volume disk does, at the stopped rate."""

    pod_id: str
    name: str
    volume_gb: int | None
    usd_per_day: float | None
    uptime_hours: float | None = None

    @property
    def usd_per_month(self) -> float | None:
        return None if self.usd_per_day is None else self.usd_per_day / 24 * HOURS_PER_MONTH

    def to_json_value(self) -> dict[str, Any]:
        """The original's keys (scripts read them) plus the monthly figure."""
        return {"pod_id": self.pod_id, "name": self.name, "volume_in_gb": self.volume_gb,
                "age_hours": self.uptime_hours,
                "estimated_daily_cost_usd": _round(self.usd_per_day, 4),
                "estimated_monthly_cost_usd": _round(self.usd_per_month, 4)}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def list_stale_pods(provider: PodProvider) -> tuple[StalePod, ...]:
    """Every EXITED pod of the account (one listing), oldest name first."""
    stale = []
    for pod in provider.list_pods():
        if pod.status is not PodStatus.EXITED:
            continue
        hourly = pod_usd_per_hour(pod)
        stale.append(StalePod(
            pod_id=pod.pod_id, name=pod.name, volume_gb=pod.volume_gb,
            usd_per_day=None if hourly is None else hourly * 24,
            uptime_hours=None if pod.uptime_sec is None else pod.uptime_sec / 3600))
    return tuple(sorted(stale, key=lambda p: (p.name, p.pod_id)))


def format_stale_table(pods: Sequence[StalePod]) -> str:
    """The original's table: POD_ID, NAME (cut to 40), GB, $/day, $/mo, then a TOTAL line."""
    if not pods:
        return "No stale (EXITED) pods.\n"
    header = f"{'POD_ID':<16} {'NAME':<40} {'GB':>6} {'$/day':>8} {'$/mo':>8}"
    rule = "-" * len(header)
    lines = [header, rule]
    for pod in pods:
        name = pod.name if len(pod.name) <= 40 else pod.name[:37] + "..."
        gb = "?" if pod.volume_gb is None else str(pod.volume_gb)
        day = "?" if pod.usd_per_day is None else f"{pod.usd_per_day:.2f}"
        month = "?" if pod.usd_per_month is None else f"{pod.usd_per_month:.2f}"
        lines.append(f"{pod.pod_id:<16} {name:<40} {gb:>6} {day:>8} {month:>8}")
    daily = sum(p.usd_per_day or 0.0 for p in pods)
    lines += [rule, (f"TOTAL: {len(pods)} pods, ${daily:.2f}/day "
                     f"(~${daily / 24 * HOURS_PER_MONTH:.2f}/mo)")]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# cleanup


class CleanupMode(StrEnum):
    """What `cleanup --state-file` does to the stack's pod (the lifecycle actions by hand)."""

    DELETE = "delete"
    STOP = "stop"
    PRESERVE = "preserve"


class CleanupOutcome(_Row):
    pod_id: str
    mode: CleanupMode
    dry_run: bool
    pod_existed: bool
    state_cleared: bool
    usd_per_day_after: float | None = None
    """What the pod still costs per day afterwards (the stopped volume, for `stop`)."""
    volume_gb: int | None = None


def cleanup_recorded_pod(state_path: Path, mode: CleanupMode, provider: PodProvider, *,
                         dry_run: bool = False, store: StateStore | None = None) -> CleanupOutcome:
    """Delete, stop or keep the pod a state file records, holding the stack's lock so no apply
    runs meanwhile. `delete` clears the record (serial bumped, lineage kept); a pod already
    gone counts as deleted. Raises StateError (no file, no pod recorded, locked) and the
    provider's errors."""
    if store is None:  # `--config STACK` passes the stack's store (on its backend)
        if not state_path.exists():
            raise StateError(f"state file not found: {state_path}")
        store = StateStore(state_path)
    with store.lock(timeout=0, command=f"cleanup --mode {mode.value}"):
        state = store.read()
        if state.pod is None:
            hint = (f"; an unconfirmed {state.pending.kind.value} of {state.pending.pod_name} is "
                    "recorded: run `runpod-deploy plan` to see what exists"
                    if state.pending else "")
            raise StateError(f"state file {store.location} records no pod{hint}")
        pod_id = state.pod.pod_id
        pod = provider.get_pod(pod_id)
        if mode is CleanupMode.STOP and pod is None and not dry_run:
            raise PodNotFoundError(pod_id, provider=provider.name, operation="stop")
        volume_gb = pod.volume_gb if pod else state.pod.volume_gb
        after: float | None = None
        if mode is CleanupMode.STOP and pod is not None:
            after = pod_usd_per_hour(replace(pod, status=PodStatus.EXITED))
        elif mode is CleanupMode.PRESERVE and pod is not None:
            after = pod_usd_per_hour(pod)
        cleared = False
        if not dry_run:
            if mode is CleanupMode.DELETE:
                provider.terminate_pod(pod_id)
                store.write(state.evolve(pod=None))
                cleared = True
            elif mode is CleanupMode.STOP:
                provider.stop_pod(pod_id)
        return CleanupOutcome(pod_id=pod_id, mode=mode, dry_run=dry_run,
                              pod_existed=pod is not None, state_cleared=cleared,
                              usd_per_day_after=None if after is None else after * 24,
                              volume_gb=volume_gb)


def format_cleanup(outcome: CleanupOutcome, state_path: Path | str) -> str:
    """One sentence of what was done (or would be), and for a kept pod what it still costs."""
    pod = outcome.pod_id
    would = "would " if outcome.dry_run else ""
    delete_later = f"runpod-deploy cleanup --state-file {state_path} --mode delete"
    if outcome.mode is CleanupMode.DELETE:
        gone = "" if outcome.pod_existed else " (it was already gone)"
        return (f"{would}delete pod {pod}{gone}; its volume disk is released and the state "
                f"record {'would be ' if outcome.dry_run else ''}cleared: {state_path}\n")
    cost = ("" if outcome.usd_per_day_after is None else
            f" ~${outcome.usd_per_day_after:.2f}/day "
            f"(~${outcome.usd_per_day_after / 24 * HOURS_PER_MONTH:.2f}/mo)")
    if outcome.mode is CleanupMode.STOP:
        disk = f"{outcome.volume_gb} GB " if outcome.volume_gb is not None else ""
        return (f"{would}stop pod {pod}; its {disk}volume disk keeps billing{cost} until it is "
                f"deleted:\n  {delete_later}\nor list every stopped pod: runpod-deploy ls-stale\n")
    state = "running" if outcome.pod_existed else "gone"
    return (f"left pod {pod} as it is ({state}; it keeps billing{cost}); delete it with:\n"
            f"  {delete_later}\n")


class DeleteResult(_Row):
    pod_id: str
    ok: bool
    message: str = ""


def delete_pods(provider: PodProvider, pod_ids: Iterable[str], *,
                dry_run: bool = False) -> tuple[DeleteResult, ...]:
    """Terminate each pod; one failure does not stop the others (each is reported)."""
    results = []
    for pod_id in pod_ids:
        if dry_run:
            results.append(DeleteResult(pod_id=pod_id, ok=True, message="dry run"))
            continue
        try:
            provider.terminate_pod(pod_id)
        except ProviderError as exc:
            results.append(DeleteResult(pod_id=pod_id, ok=False, message=str(exc)[:200]))
        else:
            results.append(DeleteResult(pod_id=pod_id, ok=True))
    return tuple(results)


# --------------------------------------------------------------------------------------------
# logs


def stream_pod_log(*, state_path: Path, identity: StackIdentity, provider: PodProvider,
                   key_path: Path, log_path: str, lines: int, follow: bool,
                   on_line: Callable[[str], None],
                   should_stop: Callable[[], bool] = lambda: False,
                   store: StateStore | None = None) -> None:
    """Print the last `lines` lines of the stack's run log, then (with `follow`) every line
    appended, until `should_stop()`. Connects with the host key pinned for the pod's current
    boot and never pins a new one: a pod that shows another key is refused."""
    from runtime.executor import hostkeys_path_for
    from runtime.hostkeys import HostKeyPins
    from runtime.ssh import SshSession

    record = (store.read() if store is not None else read_state(state_path, identity)).pod
    if record is None:
        raise StateError(f"no pod is recorded for this stack ({state_path}); nothing to tail")
    if not record.host_key_pins:
        raise SshError(f"no host key is pinned for pod {record.pod_id}; only a pod that "
                       "runpod-deploy connected to can be tailed")
    pod = provider.get_pod(record.pod_id)
    if pod is None:
        raise PodNotFoundError(record.pod_id, provider=provider.name, operation="logs")
    if pod.status is not PodStatus.RUNNING or pod.ssh is None:
        raise SshError(f"pod {pod.pod_id} is {pod.status.value} and publishes no SSH; resume "
                       "it with `runpod-deploy apply`, or read the pulled run.log in its run dir")
    pins = HostKeyPins(hostkeys_path_for(state_path))
    with SshSession(pod.ssh, key_path=key_path, pins=pins, pin_id=record.host_key_pins[-1],
                    allow_new_host_key=False) as session:
        quoted = shlex.quote(log_path)
        # The size first, then the tail of exactly that many bytes: the follow starts there.
        head = session.run(f"s=$(stat -c %s {quoted}) && echo \"$s\" && "
                           f"head -c \"$s\" {quoted} | tail -n {int(lines)}")
        size, _, text = head.stdout.partition("\n")
        for line in text.splitlines():
            on_line(line)
        if follow:
            session.follow(log_path, on_line=on_line, should_stop=should_stop,
                           start_offset=int(size))


# --------------------------------------------------------------------------------------------
# prices and stock


def priced_catalog(provider: PodProvider, env: Mapping[str, str]) -> Catalog:
    """The provider's catalog (one call). runpodctl's carries no prices; with an API key set,
    the prices then come from the API, as they always did in the original."""
    catalog = provider.catalog()
    if provider.name == "api" or not env.get("RUNPOD_API_KEY") or _has_prices(catalog):
        return catalog
    from runtime.providers import make_provider

    api = make_provider("api", env)
    if api is None:
        return catalog
    return replace(catalog, prices=api.catalog().prices)


def _has_prices(catalog: Catalog) -> bool:
    return any(p.secure_price is not None or p.community_price is not None
               for p in catalog.prices)


def price_label(cloud_type: CloudType, spot: bool) -> str:
    return f"{cloud_type.value.lower()}{'-spot' if spot else ''}"


class GpuPriceRow(_Row):
    gpu_type_id: str
    display_name: str | None = None
    memory_gb: int | None = None
    hourly_usd: float | None = None
    """Per GPU, in the asked cloud (on-demand or spot); None where RunPod gives no price."""


def gpu_prices(catalog: Catalog, cloud_type: CloudType, *, spot: bool) -> tuple[GpuPriceRow, ...]:
    """Every GPU type's price, cheapest first, unpriced last."""
    rows = [GpuPriceRow(gpu_type_id=p.gpu_type_id, display_name=p.display_name,
                        memory_gb=p.memory_gb, hourly_usd=p.price_for(cloud_type, spot=spot))
            for p in catalog.prices]
    return tuple(sorted(rows, key=lambda r: (r.hourly_usd is None, r.hourly_usd or 0.0,
                                             r.gpu_type_id)))


def format_gpu_prices(rows: Sequence[GpuPriceRow], cloud_type: CloudType, *, spot: bool) -> str:
    width = max((len(r.gpu_type_id) for r in rows), default=3)
    lines = [f"{'gpu':<{width}}  $/hr ({price_label(cloud_type, spot)})"]
    lines += [f"{r.gpu_type_id:<{width}}  {_money(r.hourly_usd)}" for r in rows]
    return "\n".join(lines) + "\n"


class UnknownDatacenterError(ProviderError):
    """The datacenter is not in RunPod's catalog."""


class GpuStockRow(_Row):
    gpu_type_id: str
    stock: StockStatus
    hourly_usd: float | None = None


_TIER = {StockStatus.HIGH: 0, StockStatus.MEDIUM: 1, StockStatus.LOW: 2}


def gpu_stock(catalog: Catalog, datacenter_id: str, cloud_type: CloudType, *,
              spot: bool) -> tuple[GpuStockRow, ...]:
    """The GPUs one datacenter lists, best stocked first, with their price."""
    if datacenter_id not in catalog.datacenter_ids:
        raise UnknownDatacenterError(
            f"datacenter {datacenter_id!r} is not in the catalog; known: "
            + ", ".join(sorted(catalog.datacenter_ids)), operation="gpu-list")
    rows = []
    for entry in catalog.availability:
        if entry.datacenter_id != datacenter_id:
            continue
        price = catalog.price(entry.gpu_type_id)
        rows.append(GpuStockRow(
            gpu_type_id=entry.gpu_type_id, stock=entry.stock,
            hourly_usd=price.price_for(cloud_type, spot=spot) if price else None))
    return tuple(sorted(rows, key=lambda r: (_TIER.get(r.stock, 9), r.gpu_type_id)))


def format_gpu_list(datacenter_id: str, rows: Sequence[GpuStockRow], cloud_type: CloudType, *,
                    spot: bool) -> str:
    """The original's layout: a price column only when some price is known."""
    width = max((len(r.gpu_type_id) for r in rows), default=3)
    lines = [f"datacenter: {datacenter_id}"]
    if any(r.hourly_usd is not None for r in rows):
        lines.append(f"{'gpu':<{width}}  stock     $/hr ({price_label(cloud_type, spot)})")
        lines += [f"{r.gpu_type_id:<{width}}  {r.stock.value:<8}  {_money(r.hourly_usd)}"
                  for r in rows]
    else:
        lines.append(f"{'gpu':<{width}}  stock")
        lines += [f"{r.gpu_type_id:<{width}}  {r.stock.value}" for r in rows]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# gpu-inventory


class DatacenterInventory(_Row):
    """The stack's GPUs in one datacenter, by stock, and what else is stocked there."""

    datacenter_id: str
    listed: bool
    available: tuple[str, ...] = ()
    low: tuple[str, ...] = ()
    stockout: tuple[str, ...] = ()
    not_listed: tuple[str, ...] = ()
    also_available: tuple[str, ...] = ()


class GpuInventory(_Row):
    gpu_order: tuple[str, ...]
    datacenters: tuple[DatacenterInventory, ...]

    @property
    def any_stocked(self) -> bool:
        """False means an apply right now would exhaust its failover."""
        return any(dc.available or dc.low for dc in self.datacenters)

    @property
    def widening_hint(self) -> tuple[str, ...]:
        """GPUs stocked in the stack's datacenters that its gpu_order leaves out."""
        return tuple(sorted({g for dc in self.datacenters for g in dc.also_available}))


def gpu_inventory(spec: JobSpec, catalog: Catalog) -> GpuInventory:
    """Per datacenter of the stack, its gpu_order sorted by stock (one catalog serves all)."""
    wanted = spec.pod.gpu_order
    reports = []
    for dc in spec.pod.datacenters:
        stock = {a.gpu_type_id: a.stock for a in catalog.availability if a.datacenter_id == dc}
        reports.append(DatacenterInventory(
            datacenter_id=dc, listed=dc in catalog.datacenter_ids,
            available=tuple(g for g in wanted
                            if stock.get(g) in (StockStatus.HIGH, StockStatus.MEDIUM)),
            low=tuple(g for g in wanted if stock.get(g) is StockStatus.LOW),
            stockout=tuple(g for g in wanted if stock.get(g) is StockStatus.NONE),
            not_listed=tuple(g for g in wanted if g not in stock),
            also_available=tuple(sorted(g for g, s in stock.items()
                                        if g not in wanted and s.available))))
    return GpuInventory(gpu_order=wanted, datacenters=tuple(reports))


def format_inventory(inventory: GpuInventory) -> str:
    """The original's report; the closing line says whether an apply could get a GPU now."""
    lines = [f"gpu_order: {list(inventory.gpu_order)}"]
    for dc in inventory.datacenters:
        lines.append(f"datacenter: {dc.datacenter_id}")
        if not dc.listed:
            lines.append("  (datacenter not in the catalog)")
            continue
        if not dc.available and not dc.low:
            lines.append("  no configured GPU stocked here")
        lines += [f"  {g}  available" for g in dc.available]
        lines += [f"  {g}  low" for g in dc.low]
        lines += [f"  {g}  stockout" for g in dc.stockout]
        lines += [f"  {g}  (not listed in this datacenter)" for g in dc.not_listed]
        if dc.also_available:
            lines.append(f"  also available (not in gpu_order): {list(dc.also_available)}")
    if inventory.any_stocked:
        lines.append("ok: at least one configured GPU is currently stocked")
    else:
        lines.append("stock-out: no configured GPU is currently stocked in any datacenter")
        if inventory.widening_hint:
            lines.append("  widening hint: these GPUs are stocked but not in gpu_order: "
                         f"{list(inventory.widening_hint)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# estimate


class CandidateCheck(_Row):
    """One GPU x datacenter pair of the failover walk and what the walk made of it."""

    gpu_type_id: str
    datacenter_id: str
    stock: StockStatus | None
    hourly_usd: float | None
    outcome: str
    """"selected", "would follow" (a later failover target), or why it is skipped."""


class Estimate(_Row):
    config_path: str
    job: str
    cloud_type: CloudType
    spot: bool
    gpu_count: int
    walk: tuple[CandidateCheck, ...]
    selected: CandidateCheck | None
    hourly_usd: float
    price_source: str
    cost_cap_usd: float
    assumed_hourly_rate_usd: float
    max_runtime_minutes: int | None
    timeout_sec: int
    spend_at_timeout_usd: float
    runtime_at_cap_sec: float

    @property
    def within_cap(self) -> bool:
        return self.spend_at_timeout_usd <= self.cost_cap_usd + 1e-9


def estimate(spec: JobSpec, catalog: Catalog, *, config_path: str = "") -> Estimate:
    """Walk the failover order apply uses (datacenters outer, GPUs inner) over live stock and
    prices: the first pair in stock is where a pod would land now. The forecast uses that
    pair's price (for the stack's GPU count), or the assumed rate when RunPod gives none."""
    from reconciler.placement import place

    cloud, spot, count = spec.pod.cloud_type, spec.pod.spot, spec.pod.gpu_count
    walk: list[CandidateCheck] = []
    selected: CandidateCheck | None = None
    for entry in place(spec, catalog).entries:  # the walk plan and apply use
        if entry.skipped is not None:
            outcome = f"skipped: {entry.skipped}"
        elif selected is None:
            outcome = "selected"
        else:
            outcome = "would follow"
        check = CandidateCheck(gpu_type_id=entry.gpu_type_id, datacenter_id=entry.datacenter_id,
                               stock=catalog.stock(entry.gpu_type_id, entry.datacenter_id),
                               hourly_usd=entry.hourly_usd, outcome=outcome)
        if outcome == "selected":
            selected = check
        walk.append(check)
    budget = spec.budget
    if selected is not None and selected.hourly_usd is not None:
        hourly = selected.hourly_usd
        source = f"catalog ({price_label(cloud, spot)})"
    else:
        hourly, source = budget.assumed_hourly_rate_usd, "assumed_hourly_rate_usd"
    return Estimate(
        config_path=config_path, job=spec.name, cloud_type=cloud, spot=spot, gpu_count=count,
        walk=tuple(walk), selected=selected, hourly_usd=hourly, price_source=source,
        cost_cap_usd=budget.cost_cap_usd, assumed_hourly_rate_usd=budget.assumed_hourly_rate_usd,
        max_runtime_minutes=budget.max_runtime_minutes, timeout_sec=budget.timeout_sec,
        spend_at_timeout_usd=hourly * budget.timeout_sec / 3600,
        runtime_at_cap_sec=budget.cost_cap_usd / hourly * 3600 if hourly > 0 else 0.0)


def format_estimate(est: Estimate) -> str:
    where = (f"{est.selected.gpu_type_id} in {est.selected.datacenter_id}" if est.selected
             else "nothing: no configured GPU is in stock in any datacenter")
    gpus = f" ({est.gpu_count} GPUs)" if est.gpu_count > 1 else ""
    lines = [
        f"config:         {est.config_path}",
        f"job:            {est.job}",
        f"selected:       {where}",
        f"price source:   {est.price_source}",
        f"$/hr:           ${est.hourly_usd:.2f}{gpus}",
        "budget:",
        f"  cost_cap_usd:    {est.cost_cap_usd:.2f}",
        f"  assumed_rate:    {est.assumed_hourly_rate_usd:.2f}/hr",
    ]
    if est.max_runtime_minutes is not None:
        lines.append(f"  max_runtime:     {est.max_runtime_minutes} min")
    lines += [
        f"  timeout:         {est.timeout_sec}s ({est.timeout_sec / 60:.1f} min)",
        f"forecast at ${est.hourly_usd:.2f}/hr:",
        (f"  spend at the deadline:          ${est.spend_at_timeout_usd:.2f} "
         f"({'within' if est.within_cap else 'OVER'} the cap)"),
        (f"  runtime the cost cap buys:      ~{est.runtime_at_cap_sec:.0f}s "
         f"({est.runtime_at_cap_sec / 60:.0f} min)"),
        "failover walk (datacenters outer, GPUs inner):",
    ]
    for c in est.walk:
        stock = c.stock.value if c.stock is not None else "—"
        lines.append(f"  {c.gpu_type_id} @ {c.datacenter_id}: stock {stock}, "
                     f"{_money(c.hourly_usd)}/hr; {c.outcome}")
    return "\n".join(lines) + "\n"
