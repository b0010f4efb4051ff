"""RunPod's GraphQL API: a real schema (graphql-core) whose resolvers call the engine.

Clients send both styles, variables (runpodctl) and inline literals with bare enums
(runpod-python, SkyPilot, dstack); a parsed schema serves both and honours selection sets.
Business errors become `errors[]` with `extensions.code = "RUNPOD"` beside `data.<field>: null`.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo, build_schema, graphql_sync

from runpod_sim import catalog
from runpod_sim.engine import SOMETHING_WRONG, CreatedButFailed, CreateRequest, Engine, RunpodError
from runpod_sim.shapes import graphql_pod

SDL = """
enum CloudTypeEnum { ALL SECURE COMMUNITY }
enum PodStatus { CREATED RUNNING RESTARTING EXITED PAUSED DEAD TERMINATED }

input PodFilter { podId: String! }
input GpuTypeFilter { id: String ids: [String] }
input EnvironmentVariableInput { key: String! value: String }
input GpuLowestPriceInput {
  gpuCount: Int, minMemoryInGb: Int, minVcpuCount: Int, secureCloud: Boolean, totalDisk: Int,
  minDisk: Int, dataCenterId: String, countryCode: String, compliance: [String],
  minDownload: Int, minUpload: Int, supportPublicIp: Boolean, includeAiApi: Boolean
}
input PodFindAndDeployOnDemandInput {
  cloudType: CloudTypeEnum, gpuTypeId: String, gpuTypeIdList: [String], gpuCount: Int,
  name: String, imageName: String, templateId: String, containerDiskInGb: Int, volumeInGb: Int,
  volumeMountPath: String, ports: String, env: [EnvironmentVariableInput], dockerArgs: String,
  minVcpuCount: Int, minMemoryInGb: Int, startSsh: Boolean, startJupyter: Boolean,
  supportPublicIp: Boolean, dataCenterId: String, countryCode: String, networkVolumeId: String,
  allowedCudaVersions: [String], minCudaVersion: String, cudaVersion: String, deployCost: Float,
  minDownload: Int, minUpload: Int, minDisk: Int, containerRegistryAuthId: String,
  stopAfter: String, terminateAfter: String, compliance: [String], volumeKey: String,
  globalNetwork: Boolean, bidPerGpu: Float
}
input PodRentInterruptableInput {
  bidPerGpu: Float!, cloudType: CloudTypeEnum, gpuTypeId: String, gpuCount: Int, name: String,
  imageName: String, templateId: String, containerDiskInGb: Int, volumeInGb: Int,
  volumeMountPath: String, ports: String, env: [EnvironmentVariableInput], dockerArgs: String,
  minVcpuCount: Int, minMemoryInGb: Int, startSsh: Boolean, startJupyter: Boolean,
  supportPublicIp: Boolean, dataCenterId: String, countryCode: String, networkVolumeId: String,
  allowedCudaVersions: [String], minCudaVersion: String, cudaVersion: String, minDownload: Int,
  minUpload: Int, minDisk: Int, containerRegistryAuthId: String, stopAfter: String,
  terminateAfter: String, volumeKey: String
}
input PodResumeInput { podId: String!, gpuCount: Int, allowedCudaVersions: [String] }
input PodBidResumeInput { podId: String!, bidPerGpu: Float!, gpuCount: Int }
input PodStopInput { podId: String!, incrementVersion: Boolean }
input PodTerminateInput { podId: String! }
input UpdateUserSettingsInput { pubKey: String }

type Port { ip: String, isIpPublic: Boolean, privatePort: Int, publicPort: Int, type: String }
type GpuTelemetry { id: String, gpuUtilPercent: Float, memoryUtilPercent: Float }
type ContainerTelemetry { cpuPercent: Float, memoryPercent: Float }
type PodRuntime {
  uptimeInSeconds: Int, ports: [Port], gpus: [GpuTelemetry], container: ContainerTelemetry
}
type PodMachine {
  gpuDisplayName: String, location: String, podHostId: String, gpuTypeId: String,
  dataCenterId: String, secureCloud: Boolean
}
type Pod {
  id: String!, name: String, desiredStatus: PodStatus, imageName: String, costPerHr: Float,
  adjustedCostPerHr: Float, gpuCount: Int, vcpuCount: Int, memoryInGb: Int,
  containerDiskInGb: Int, volumeInGb: Int, volumeMountPath: String, dockerArgs: String,
  dockerId: String, env: [String], machineId: String, podType: String, port: Int,
  ports: String, lastStatusChange: String, uptimeSeconds: Int, createdAt: String,
  lastStartedAt: String, templateId: String, networkVolumeId: String,
  machine: PodMachine, runtime: PodRuntime
}
type NetworkVolume { id: String!, name: String, size: Int, dataCenterId: String }
type User {
  id: String!, email: String, pubKey: String, clientBalance: Float, currentSpendPerHr: Float,
  spendLimit: Float, pods: [Pod], networkVolumes: [NetworkVolume]
}
type LowestPrice {
  gpuName: String, gpuTypeId: String, minimumBidPrice: Float, uninterruptablePrice: Float,
  minMemory: Int, minVcpu: Int, stockStatus: String, availableGpuCounts: [Int],
  compliance: [String], countryCode: String, rentalPercentage: Float
}
type GpuType {
  id: String!, displayName: String, manufacturer: String, memoryInGb: Int, cudaCores: Int,
  maxGpuCount: Int, secureCloud: Boolean, communityCloud: Boolean, securePrice: Float,
  communityPrice: Float, secureSpotPrice: Float, communitySpotPrice: Float,
  oneWeekPrice: Float, oneMonthPrice: Float, threeMonthPrice: Float, sixMonthPrice: Float,
  lowestPrice(input: GpuLowestPriceInput): LowestPrice
}
type GpuAvailability { gpuTypeId: String, displayName: String, stockStatus: String, available: Boolean }
type DataCenter {
  id: String!, name: String, location: String, listed: Boolean,
  gpuAvailability: [GpuAvailability]
}
type Query {
  myself: User
  pod(input: PodFilter): Pod
  gpuTypes(input: GpuTypeFilter): [GpuType]
  dataCenters: [DataCenter]
  countryCodes: [String]
}
type Mutation {
  podFindAndDeployOnDemand(input: PodFindAndDeployOnDemandInput): Pod
  podRentInterruptable(input: PodRentInterruptableInput!): Pod
  podResume(input: PodResumeInput!): Pod
  podBidResume(input: PodBidResumeInput!): Pod
  podStop(input: PodStopInput!): Pod
  podTerminate(input: PodTerminateInput!): Boolean
  updateUserSettings(input: UpdateUserSettingsInput!): User
}
"""

SCHEMA = build_schema(SDL)
PUBLIC_FIELDS = frozenset({"gpuTypes", "dataCenters", "countryCodes"})
"""Root fields RunPod answers without an API key (gpuhunt relies on it)."""
POD_SCOPED_FIELDS = frozenset({"pod", "podStop", "podTerminate"})
"""Root fields a pod-scoped key may use, and then only on its own pod."""


def _business(error: RunpodError) -> GraphQLError:
    return GraphQLError(error.message, extensions={"code": "RUNPOD"})


class Resolvers:
    """The root value: graphql-core calls these by field name (the default resolver)."""

    def __init__(self, engine: Engine, pod_scope: str | None = None) -> None:
        self.engine = engine
        self.pod_scope = pod_scope

    def _check_scope(self, pod_id: str) -> None:
        """A pod-scoped key acts on its own pod only (the account key on any)."""
        if self.pod_scope is not None and pod_id.lower() != self.pod_scope:
            raise GraphQLError(f"forbidden: this API key is scoped to pod {self.pod_scope}; "
                               "it may only read, stop or terminate that pod",
                               extensions={"code": "FORBIDDEN"})

    def _now(self) -> float:
        return self.engine.store.now()

    # --- queries ---
    def myself(self, _info: GraphQLResolveInfo) -> dict[str, Any]:
        state = self.engine.state
        now = self._now()
        pods = self.engine.listed()
        return {
            "id": state.account.id, "email": state.account.email,
            "pubKey": state.account.pub_key, "clientBalance": state.account.client_balance,
            "currentSpendPerHr": round(sum(p.cost_per_hr for p in pods), 4),
            "spendLimit": state.account.spend_limit,
            "pods": [graphql_pod(p, now) for p in pods],
            "networkVolumes": [{"id": v.id, "name": v.name, "size": v.size,
                                "dataCenterId": v.data_center_id} for v in state.volumes],
        }

    def pod(self, _info: GraphQLResolveInfo, input: dict[str, Any] | None = None) -> Any:
        self._check_scope((input or {}).get("podId", ""))
        pod = self.engine.get((input or {}).get("podId", ""))
        return None if pod is None else graphql_pod(pod, self._now())

    def gpuTypes(self, _info: GraphQLResolveInfo,
                 input: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        wanted = {(input or {}).get("id")} | set((input or {}).get("ids") or [])
        wanted.discard(None)
        return [self._gpu_type(g) for g in catalog.GPU_TYPES if not wanted or g.id in wanted]

    def _gpu_type(self, gpu: catalog.GpuType) -> dict[str, Any]:
        def lowest_price(_info: GraphQLResolveInfo, input: dict[str, Any] | None = None) -> Any:
            return self._lowest_price(gpu, input or {})

        return {
            "id": gpu.id, "displayName": gpu.display_name, "manufacturer": gpu.manufacturer,
            "memoryInGb": gpu.memory_gb, "cudaCores": gpu.cuda_cores,
            "maxGpuCount": gpu.max_gpu_count, "secureCloud": True, "communityCloud": True,
            "securePrice": gpu.secure_price, "communityPrice": gpu.community_price,
            "secureSpotPrice": gpu.secure_spot_price,
            "communitySpotPrice": gpu.community_spot_price,
            "oneWeekPrice": round(gpu.secure_price * 0.95, 2),
            "oneMonthPrice": round(gpu.secure_price * 0.9, 2),
            "threeMonthPrice": round(gpu.secure_price * 0.85, 2),
            "sixMonthPrice": round(gpu.secure_price * 0.8, 2),
            "lowestPrice": lowest_price,
        }

    def _lowest_price(self, gpu: catalog.GpuType, query: dict[str, Any]) -> dict[str, Any]:
        count = int(query.get("gpuCount") or 1)
        centers = ([query["dataCenterId"]] if query.get("dataCenterId")
                   else [dc.id for dc in catalog.DATA_CENTERS])
        free = max((self.engine.free_gpus(dc, gpu.id) for dc in centers), default=0)
        available = free >= count
        secure = query.get("secureCloud")
        return {
            "gpuName": gpu.display_name, "gpuTypeId": gpu.id,
            "uninterruptablePrice": (gpu.price(secure=secure is not False, spot=False)
                                     if available else None),
            "minimumBidPrice": (gpu.price(secure=secure is not False, spot=True)
                                if available else None),
            "minMemory": max(gpu.memory_gb, 31) * count, "minVcpu": 8 * count,
            "stockStatus": catalog.stock_status(free) if available else None,
            "availableGpuCounts": [n for n in (1, 2, 4, 8) if n <= min(free, gpu.max_gpu_count)],
            "compliance": [], "countryCode": None, "rentalPercentage": 0.5,
        }

    def dataCenters(self, _info: GraphQLResolveInfo) -> list[dict[str, Any]]:
        return [{
            "id": dc.id, "name": dc.name, "location": dc.location, "listed": True,
            "gpuAvailability": [
                {"gpuTypeId": gpu_id, "displayName": catalog.GPU_BY_ID[gpu_id].display_name,
                 "stockStatus": catalog.stock_status(self.engine.free_gpus(dc.id, gpu_id)),
                 "available": self.engine.free_gpus(dc.id, gpu_id) > 0}
                for gpu_id, _ in dc.initial_stock],
        } for dc in catalog.DATA_CENTERS]

    def countryCodes(self, _info: GraphQLResolveInfo) -> list[str]:
        return sorted({"RO", "US", "CA", "SE", "IS", "CZ"})

    # --- mutations ---
    def podFindAndDeployOnDemand(self, _info: GraphQLResolveInfo,
                                 input: dict[str, Any] | None = None) -> Any:
        return self._create(input or {}, interruptible=False)

    def podRentInterruptable(self, _info: GraphQLResolveInfo,
                             input: dict[str, Any]) -> Any:
        return self._create(input, interruptible=True)

    def _create(self, given: dict[str, Any], *, interruptible: bool) -> Any:
        gpu_ids = tuple(given.get("gpuTypeIdList") or ([given["gpuTypeId"]]
                                                        if given.get("gpuTypeId") else ()))
        request = CreateRequest(
            image_name=given.get("imageName") or "", gpu_type_ids=gpu_ids,
            name=given.get("name") or "", gpu_count=int(given.get("gpuCount") or 1),
            cloud_type=given.get("cloudType") or "ALL",
            data_center_ids=(given["dataCenterId"],) if given.get("dataCenterId") else (),
            container_disk_gb=int(given.get("containerDiskInGb") or 20),
            volume_gb=int(given.get("volumeInGb") or 0),
            volume_mount_path=given.get("volumeMountPath") or "/workspace",
            ports=tuple(p.strip() for p in (given.get("ports") or "").split(",") if p.strip()),
            env={e["key"]: e.get("value") or "" for e in given.get("env") or []},
            interruptible=interruptible, network_volume_id=given.get("networkVolumeId"),
            docker_args=given.get("dockerArgs") or "",
            support_public_ip=given.get("supportPublicIp") is not False,
            template_id=given.get("templateId"), stop_after=given.get("stopAfter"),
            terminate_after=given.get("terminateAfter"),
        )
        try:
            pod = self.engine.create(request)
        except CreatedButFailed:
            raise  # not a business error: `execute` turns it into an HTTP 500
        except RunpodError as error:
            raise _business(error) from error
        return graphql_pod(pod, self._now())

    def podResume(self, _info: GraphQLResolveInfo, input: dict[str, Any]) -> Any:
        return self._resume(input)

    def podBidResume(self, _info: GraphQLResolveInfo, input: dict[str, Any]) -> Any:
        return self._resume(input)

    def _resume(self, given: dict[str, Any]) -> Any:
        try:
            pod = self.engine.start(given["podId"], given.get("gpuCount"))
        except RunpodError as error:
            if error.status == 404:
                raise _business(RunpodError(
                    "Something went wrong. Please try again later or contact support.")) from error
            raise _business(error) from error
        return graphql_pod(pod, self._now())

    def podStop(self, _info: GraphQLResolveInfo, input: dict[str, Any]) -> Any:
        self._check_scope(input["podId"])
        try:
            pod = self.engine.stop(input["podId"])
        except RunpodError as error:
            raise _business(error) from error
        return graphql_pod(pod, self._now())

    def podTerminate(self, _info: GraphQLResolveInfo, input: dict[str, Any]) -> None:
        self._check_scope(input["podId"])
        try:
            self.engine.terminate(input["podId"])
        except RunpodError as error:
            raise _business(error) from error

    def updateUserSettings(self, info: GraphQLResolveInfo,
                           input: dict[str, Any]) -> Any:
        with self.engine.store.lock:
            if input.get("pubKey") is not None:
                self.engine.state.account.pub_key = input["pubKey"]
            self.engine.store.save()
        return self.myself(info)


def execute(engine: Engine, query: str, variables: dict[str, Any] | None,
            operation_name: str | None, *, pod_scope: str | None = None) -> tuple[int, dict[str, Any]]:
    """Run one GraphQL request; returns the HTTP status and body RunPod would send.
    `pod_scope`: the request carries that pod's pod-scoped key."""
    result = graphql_sync(SCHEMA, query, root_value=Resolvers(engine, pod_scope),
                          variable_values=variables, operation_name=operation_name)
    errors = result.errors or []
    if any(isinstance(error.original_error, CreatedButFailed) for error in errors):
        return 500, {"errors": [{"message": SOMETHING_WRONG}]}
    body: dict[str, Any] = {}
    if errors:
        body["errors"] = [
            {key: value for key, value in error.formatted.items() if key != "locations"}
            for error in errors
        ]
    body["data"] = result.data
    return 200, body
