"""The RunPod API provider: GraphQL over one HTTP session, the interface RunPod's SDK uses.

GraphQL covers everything the reconciler needs (pods with their SSH ports, create with GPU and
datacenter, resume, stop, terminate, prices and stock), so one protocol serves all calls; REST v1
was retired by RunPod on 2026-11-15 and REST v2 adds nothing here that GraphQL lacks.

Retries: reads and idempotent mutations (stop, terminate, resume) are retried with exponential
backoff on 429, 5xx and timeouts (tenacity). A create is never retried here: RunPod can answer
5xx after the pod exists and bills, so the executor looks for the attempt's pod name first.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from reconciler.desired import PodRequest
from reconciler.observed import Catalog, CloudType, NetworkVolume, ObservedPod
from runtime.errors import (
    CapacityError,
    HostFullError,
    PodNotFoundError,
    ProviderAuthError,
    ProviderError,
    ProviderProtocolError,
    ProviderUnavailableError,
)
from runtime.providers import graphql as gql
from runtime.providers.protocol import AccountSnapshot

DEFAULT_GRAPHQL_URL = "https://api.runpod.io/graphql"
_CAPACITY = re.compile(
    r"no longer any instances available|no instances available|does not have the resources",
    re.IGNORECASE,
)
_HOST_FULL = re.compile(r"not enough free GPUs on the host", re.IGNORECASE)
_NOT_FOUND = re.compile(r"pod not found|could not find pod|no pod with", re.IGNORECASE)

_NO_MYSELF = "answer has no 'myself' (is the key valid?)"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Where and how to reach RunPod. `repr` hides the key so it never reaches a log."""

    graphql_url: str
    api_key: str
    connect_timeout_sec: float = 5.0
    read_timeout_sec: float = 30.0
    attempts: int = 5
    backoff_max_sec: float = 8.0

    def __repr__(self) -> str:
        return f"ApiSettings(graphql_url={self.graphql_url!r}, api_key=<redacted>)"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiSettings:
        """Read the variables RunPod's own clients read: RUNPOD_GRAPHQL_URL, else
        RUNPOD_API_BASE_URL + /graphql (runpod-python), and RUNPOD_API_KEY."""
        key = env.get("RUNPOD_API_KEY", "")
        if not key:
            raise ProviderAuthError(
                "RUNPOD_API_KEY is not set; create a key at "
                "https://www.runpod.io/console/user/settings and export it",
                provider="api",
            )
        url = env.get("RUNPOD_GRAPHQL_URL") or (
            env["RUNPOD_API_BASE_URL"].rstrip("/") + "/graphql"
            if env.get("RUNPOD_API_BASE_URL")
            else DEFAULT_GRAPHQL_URL
        )
        return cls(graphql_url=url, api_key=key)


class _Transient(Exception):
    """A failure worth another try (429, 5xx, timeout, connection reset)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiProvider:
    """PodProvider over RunPod's GraphQL API (see `runtime.providers.protocol` for the contract)."""

    name = "api"

    def __init__(self, settings: ApiSettings, *, session: requests.Session | None = None) -> None:
        self._settings = settings
        self._session = session or requests.Session()
        self._session.headers.update(
            {
                "Authorization": f"Bearer {settings.api_key}",
                "Content-Type": "application/json",
                "User-Agent": "runpod-deploy",
            }
        )
        self.calls = 0
        """Requests sent, retries included: the benchmarks count round trips with it."""

    # -- PodProvider ------------------------------------------------------------------------

    def list_pods(self, *, name_prefix: str | None = None) -> tuple[ObservedPod, ...]:
        data = self._query("list_pods", gql.LIST_PODS, {}, retry_transient=True)
        return self._pods(data, name_prefix, operation="list_pods")

    def snapshot(self, *, name_prefix: str | None = None, with_catalog: bool = False,
                 with_network_volumes: bool = False) -> AccountSnapshot:
        """Pods, catalog and volumes in one request (`SnapshotReader`)."""
        document = gql.snapshot_document(with_catalog=with_catalog,
                                         with_network_volumes=with_network_volumes)
        data = self._query("snapshot", document, {}, retry_transient=True)
        pods = self._pods(data, name_prefix, operation="snapshot")
        return AccountSnapshot(
            pods=pods,
            catalog=gql.parse_catalog(data) if with_catalog else None,
            network_volumes=gql.parse_network_volumes(data) if with_network_volumes else None,
        )

    def _pods(self, data: Mapping[str, Any], name_prefix: str | None, *,
              operation: str) -> tuple[ObservedPod, ...]:
        myself = self._object(data, "myself", operation, _NO_MYSELF)
        pods = tuple(
            gql.parse_pod(raw)
            for raw in myself.get("pods") or ()
            if isinstance(raw, Mapping) and raw.get("id")
        )
        if name_prefix:
            pods = tuple(pod for pod in pods if pod.name.startswith(name_prefix))
        return pods

    def get_pod(self, pod_id: str) -> ObservedPod | None:
        try:
            data = self._query(
                "get_pod", gql.GET_POD, {"input": {"podId": pod_id}}, retry_transient=True
            )
        except PodNotFoundError:
            return None
        raw = data.get("pod")
        return gql.parse_pod(raw) if isinstance(raw, Mapping) and raw.get("id") else None

    def create_pod(self, request: PodRequest) -> ObservedPod:
        spot = request.interruptible
        if spot and request.bid_per_gpu is None:
            request = dataclasses.replace(request, bid_per_gpu=self._spot_price(request))
        document = gql.CREATE_SPOT if spot else gql.CREATE_ON_DEMAND
        field = "podRentInterruptable" if spot else "podFindAndDeployOnDemand"
        data = self._query(
            "create", document, {"input": gql.create_input(request)}, retry_transient=False
        )
        return gql.parse_pod(self._object(data, field, "create", "create answered without a pod id",
                                          needs_id=True))

    def start_pod(self, pod_id: str, *, gpu_count: int) -> ObservedPod:
        data = self._query(
            "start",
            gql.RESUME_POD,
            {"input": {"podId": pod_id, "gpuCount": gpu_count}},
            retry_transient=True,
        )
        return gql.parse_pod(self._object(data, "podResume", "start", "resume answered without a pod",
                                          needs_id=True))

    def stop_pod(self, pod_id: str) -> None:
        self._query("stop", gql.STOP_POD, {"input": {"podId": pod_id}}, retry_transient=True)

    def terminate_pod(self, pod_id: str) -> None:
        try:
            self._query(
                "terminate", gql.TERMINATE_POD, {"input": {"podId": pod_id}}, retry_transient=True
            )
        except PodNotFoundError:
            return

    def catalog(self, *, cloud_type: CloudType | None = None) -> Catalog:
        return gql.parse_catalog(self._query("catalog", gql.CATALOG, {}, retry_transient=True))

    def list_network_volumes(self) -> tuple[NetworkVolume, ...]:
        data = self._query("network_volumes", gql.NETWORK_VOLUMES, {}, retry_transient=True)
        self._object(data, "myself", "network_volumes", _NO_MYSELF)
        return gql.parse_network_volumes(data)

    def _object(self, data: Mapping[str, Any], key: str, operation: str, problem: str, *,
                needs_id: bool = False) -> Mapping[str, Any]:
        """`data[key]` when it is an object (with an `id`, if `needs_id`); else the answer is
        not what RunPod sends, and that is a protocol error quoting it."""
        value = data.get(key)
        if not isinstance(value, Mapping) or (needs_id and not value.get("id")):
            raise ProviderProtocolError(problem, excerpt=json.dumps(data)[:300],
                                        provider=self.name, operation=operation)
        return value

    def _spot_price(self, request: PodRequest) -> float:
        """RunPod requires a bid for a spot pod; without one from the stack, bid the GPU's
        current spot price. No spot price means no spot offer: a stock-out for this candidate."""
        data = self._query(
            "create", gql.SPOT_PRICE, {"input": {"id": request.gpu_type_id}}, retry_transient=True
        )
        price = gql.parse_spot_price(data, request.gpu_type_id, request.cloud_type)
        if price is None:
            raise CapacityError(
                f"no spot price for {request.gpu_type_id} in {request.cloud_type.value} cloud",
                gpu_type_id=request.gpu_type_id,
                datacenter_id=request.datacenter_id,
                provider=self.name,
            )
        return price

    # -- HTTP -------------------------------------------------------------------------------

    def _query(
        self, operation: str, document: str, variables: Mapping[str, Any], *, retry_transient: bool
    ) -> Mapping[str, Any]:
        send: Callable[[], Mapping[str, Any]] = lambda: self._post(operation, document, variables)
        if retry_transient:
            send = retry(
                retry=retry_if_exception_type(_Transient),
                stop=stop_after_attempt(self._settings.attempts),
                wait=wait_exponential(multiplier=0.25, max=self._settings.backoff_max_sec),
                reraise=True,
            )(send)
        try:
            return send()
        except _Transient as error:
            raise ProviderUnavailableError(
                error.message, provider=self.name, operation=operation
            ) from None

    def _post(
        self, operation: str, document: str, variables: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        self.calls += 1
        try:
            response = self._session.post(
                self._settings.graphql_url,
                json={"query": document, "variables": dict(variables)},
                timeout=(self._settings.connect_timeout_sec, self._settings.read_timeout_sec),
            )
        except (requests.Timeout, requests.ConnectionError) as error:
            raise _Transient(f"{type(error).__name__} talking to RunPod") from None
        status = response.status_code
        if status in (401, 403):
            raise ProviderAuthError(
                f"RunPod refused the API key (HTTP {status})", provider=self.name, operation=operation
            )
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}: {response.text[:200]}")
        try:
            body = response.json()
        except ValueError:
            raise ProviderProtocolError(
                f"HTTP {status} with a body that is not JSON",
                excerpt=response.text,
                provider=self.name,
                operation=operation,
            ) from None
        if not isinstance(body, Mapping):
            raise ProviderProtocolError(
                "answer is not a JSON object", excerpt=response.text, provider=self.name, operation=operation
            )
        errors = body.get("errors")
        if errors:
            message = _first_message(errors)
            inputs = variables.get("input")
            raise _business_error(
                message,
                provider=self.name,
                operation=operation,
                inputs=inputs if isinstance(inputs, Mapping) else {},
            )
        if status >= 400:
            raise ProviderError(f"HTTP {status}: {response.text[:200]}", provider=self.name, operation=operation)
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise ProviderProtocolError(
                "answer has no 'data'", excerpt=response.text, provider=self.name, operation=operation
            )
        return data


def _first_message(errors: object) -> str:
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        return str(errors[0].get("message") or "unknown error")
    return str(errors)[:300]


def _business_error(
    message: str, *, provider: str, operation: str, inputs: Mapping[str, Any]
) -> ProviderError:
    """RunPod answers business errors as HTTP 200 with `errors[]`; the message says which, and
    the request's `input` variable names the pod or the create's candidate."""
    if _CAPACITY.search(message):
        return CapacityError(
            message,
            gpu_type_id=str(inputs.get("gpuTypeId") or ""),
            datacenter_id=str(inputs.get("dataCenterId") or ""),
            provider=provider,
        )
    if _HOST_FULL.search(message):
        return HostFullError(message, provider=provider, operation=operation)
    if _NOT_FOUND.search(message):
        pod_id = str(inputs.get("podId") or "(unknown id)")
        return PodNotFoundError(pod_id, provider=provider, operation=operation)
    return ProviderError(message, provider=provider, operation=operation)
