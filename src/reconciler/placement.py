"""Where a new pod may land: the one failover walk that plan, apply and estimate share.

The walk is the original's order, datacenters outer and GPU types inner (or the one pinned
pair). Every pair is either a candidate, in the order apply will try it, or skipped with the
reason, decided from the catalog the plan observed:

- the catalog lists stock for the datacenter but not this GPU there: "not listed in this
  datacenter" (a create there would be refused; a catalog with no stock data at all skips
  nothing, since then nothing is known);
- the catalog says it is out of stock: "out of stock";
- its price per GPU is over `--max-gpu-price`: "price $x/hr > $y/hr cap".

With `--fallback-cloud-type`, the pairs that are candidates follow again on the other cloud
type (`reconciler.fallback`): every pair of the walk, skipping none, since the catalog's stock
is read for the stack's own type.

A network volume leaves one datacenter, its own: a pod elsewhere could not mount it.

Pure: the catalog and the volume are values the shell observed.
"""

from __future__ import annotations

from reconciler.fallback import effective_fallback, with_fallback
from reconciler.observed import Catalog, CloudType, StockStatus
from reconciler.plan import NetworkVolumeMount, Placement, PlacementEntry, PlacementOptions
from reconciler.spec import JobSpec

__all__ = ["NOT_LISTED", "OUT_OF_STOCK", "place", "planned_hourly_usd"]

NOT_LISTED = "not listed in this datacenter"
OUT_OF_STOCK = "out of stock"


def planned_hourly_usd(spec: JobSpec, gpu_type_id: str, catalog: Catalog | None) -> float | None:
    """The catalog's $/hr for the stack's pod on this GPU type (all its GPUs), if it has one."""
    entry = catalog.price(gpu_type_id) if catalog is not None else None
    per_gpu = entry.price_for(spec.pod.cloud_type, spot=spec.pod.spot) if entry is not None else None
    return per_gpu * spec.pod.gpu_count if per_gpu is not None else None


def place(
    spec: JobSpec,
    catalog: Catalog | None,
    options: PlacementOptions | None = None,
    volume: NetworkVolumeMount | None = None,
) -> Placement:
    """The failover walk for `spec` over `catalog`; see the module doc for the rules."""
    options = options or PlacementOptions()
    datacenters = tuple(spec.pod.datacenters)
    if volume is not None and volume.datacenter_id:
        datacenters = (volume.datacenter_id,)
    if options.gpu_id and options.datacenter_id:
        if volume is not None and volume.datacenter_id not in (None, options.datacenter_id):
            return Placement(
                options=options,
                error=f"--datacenter-id {options.datacenter_id} cannot mount network volume "
                f"'{volume.name}', which is in {volume.datacenter_id}",
            )
        pinned = PlacementEntry(
            gpu_type_id=options.gpu_id,
            datacenter_id=options.datacenter_id,
            hourly_usd=planned_hourly_usd(spec, options.gpu_id, catalog),
            stock=_stock(catalog, options.gpu_id, options.datacenter_id),
        )
        return _with_fallback(spec, Placement(options=options, entries=(pinned,)), catalog)
    has_stock_data = catalog is not None and bool(catalog.availability)
    entries: list[PlacementEntry] = []
    for datacenter in datacenters:
        for gpu in spec.pod.gpu_order:
            hourly = planned_hourly_usd(spec, gpu, catalog)
            stock = catalog.stock(gpu, datacenter) if catalog is not None else None
            skipped: str | None = None
            if has_stock_data and stock is None:
                skipped = NOT_LISTED
            elif stock is not None and not stock.available:
                skipped = OUT_OF_STOCK
            else:
                per_gpu = hourly / spec.pod.gpu_count if hourly is not None else None
                cap = options.max_gpu_price
                if cap is not None and per_gpu is not None and per_gpu > cap:
                    skipped = f"price ${per_gpu:.3f}/hr > ${cap:.3f}/hr cap"
            entries.append(PlacementEntry(
                gpu_type_id=gpu, datacenter_id=datacenter, hourly_usd=hourly,
                stock=stock.value if stock is not None else None, skipped=skipped,
            ))
    placement = _with_fallback(spec, Placement(options=options, entries=tuple(entries)), catalog)
    if not placement.candidates:
        return placement.model_copy(update={"error": (
            f"no configured GPU is in stock (or under the price cap) in {list(datacenters)} "
            f"for gpu_order {list(spec.pod.gpu_order)}"
        )})
    return placement


def _with_fallback(spec: JobSpec, placement: Placement, catalog: Catalog | None) -> Placement:
    requested = placement.options.fallback_cloud_type
    decision = effective_fallback(spec, CloudType(requested) if requested else None)
    if decision.cloud_type is None:
        return placement.model_copy(update={"note": decision.warning}) if decision.warning else placement
    other = decision.cloud_type
    pairs = list(dict.fromkeys((e.gpu_type_id, e.datacenter_id) for e in placement.entries))
    retries = tuple(
        PlacementEntry(gpu_type_id=c.gpu_type_id, datacenter_id=c.datacenter_id,
                       hourly_usd=_hourly_on(spec, c.gpu_type_id, catalog, other),
                       cloud_type=other.value)
        for c in with_fallback(pairs, other) if c.cloud_type is not None
    )
    return placement.model_copy(update={"entries": placement.entries + retries})


def _hourly_on(spec: JobSpec, gpu_type_id: str, catalog: Catalog | None,
               cloud_type: CloudType) -> float | None:
    entry = catalog.price(gpu_type_id) if catalog is not None else None
    per_gpu = entry.price_for(cloud_type, spot=spec.pod.spot) if entry is not None else None
    return per_gpu * spec.pod.gpu_count if per_gpu is not None else None


def _stock(catalog: Catalog | None, gpu: str, datacenter: str) -> str | None:
    stock: StockStatus | None = catalog.stock(gpu, datacenter) if catalog is not None else None
    return stock.value if stock is not None else None
