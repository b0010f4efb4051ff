"""The simulator's one HTTP server, loopback only: GraphQL, REST v1, REST v2 and `/_sim` control.

    POST /graphql                      RunPod GraphQL (Bearer key or ?api_key=)
    /v1/pods[...]  /v1/networkvolumes  legacy REST that runpodctl v2 calls
    /v2/pods[...]  /v2/catalog/...     REST v2 (lists wrapped, RFC 9457 errors)
    /_sim/...                          control plane: status, billing, faults, knobs, clock

Each RunPod route passes the armed HTTP faults first (delays, then injected error statuses).
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from graphql import OperationDefinitionNode, parse
from graphql.error import GraphQLSyntaxError

from runpod_sim import catalog, faults, gql
from runpod_sim.engine import CreatedButFailed, CreateRequest, Engine, RunpodError
from runpod_sim.hosts import require_loopback
from runpod_sim.shapes import rest_v1_pod, rest_v2_pod, v2_status

MALFORMED_HEADER = "X-Runpod-Sim-Malformed-Output"
"""Set on a response to runpodctl when the runpodctl_malformed fault fires."""

_V1_POD = re.compile(r"^/v1/pods/([^/]+)(?:/(start|stop|restart|reset|update))?$")
_V2_POD = re.compile(r"^/v2/pods/([^/]+)(?:/(action))?$")


class Reply(Exception):
    """Raised by a route to answer at once with a status and JSON body."""

    def __init__(self, status: int, body: Any, content_type: str = "application/json") -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type


def pod_scope_refusal(pod_id: str) -> str:
    """What a pod-scoped key is told when it reaches beyond its own pod."""
    return (f"forbidden: this API key is scoped to pod {pod_id}; it may only read, stop or "
            "terminate that pod")


def v1_error(status: int, message: str) -> Reply:
    return Reply(status, {"error": message, "status": status})


def v2_error(status: int, detail: str, errors: list[str] | None = None) -> Reply:
    titles = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 422:
              "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error"}
    body: dict[str, Any] = {"title": titles.get(status, "Error"), "status": status,
                            "detail": detail}
    if errors:
        body["errors"] = errors
    return Reply(status, body, "application/problem+json")


class SimServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 0) -> None:
        require_loopback(host)
        self.engine = engine
        self.shutdown_requested = threading.Event()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: SimServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    # ----- plumbing -----------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    @property
    def engine(self) -> Engine:
        return self.server.engine

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {k: v for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.extra_headers: dict[str, str] = {}
        try:
            try:
                self.body = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError:
                raise v1_error(400, "invalid JSON body") from None
            self._route(method, url.path.rstrip("/") or "/")
        except Reply as reply:
            self._send(reply.status, reply.body, reply.content_type)
        except Exception as exc:  # noqa: BLE001 - a bug in the simulator is a 500, not a hang
            self._send(500, {"error": f"runpod-sim internal error: {exc!r}", "status": 500})

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = b"" if body is None else (json.dumps(body, separators=(",", ":")) + "\n").encode()
        try:
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in self.extra_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The caller is gone: a pod that stopped itself took its runpodctl down with it.
            self.close_connection = True

    def _presented_key(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        key = header[len("Bearer "):] if header.startswith("Bearer ") else None
        return key or next(iter(self.query.get("api_key") or []), None)

    def _authorised(self) -> bool:
        """Whether the request carries the account's key (full access)."""
        return bool(self._presented_key() == self.engine.state.api_key)

    def _pod_scope(self) -> str | None:
        """The pod a pod-scoped key belongs to, when the request carries one."""
        pod = self.engine.pod_for_key(self._presented_key())
        return None if pod is None else pod.id

    def _require_own_pod(self, scope: str, method: str, path: str) -> None:
        """A pod-scoped key may read, stop and terminate its own pod; nothing else."""
        v1, v2 = _V1_POD.match(path), _V2_POD.match(path)
        allowed = False
        if v1 is not None and v1.group(1).lower() == scope:
            allowed = (method, v1.group(2)) in {("GET", None), ("DELETE", None), ("POST", "stop")}
        elif v2 is not None and v2.group(1).lower() == scope:
            allowed = (method in ("GET", "DELETE") and v2.group(2) is None) or (
                method == "POST" and v2.group(2) == "action"
                and self.body.get("action") in ("stop", "terminate"))
        if not allowed:
            if path.startswith("/v2/"):
                raise v2_error(403, pod_scope_refusal(scope))
            raise v1_error(403, pod_scope_refusal(scope))

    def _has_key(self) -> bool:
        return bool(self.headers.get("Authorization") or self.query.get("api_key"))

    def _pass_faults(self, route: str, fields: tuple[str, ...] = ()) -> None:
        """Log the RunPod request, then apply armed HTTP faults: delays first, then errors."""
        self.engine.request_log.append({"route": route, "method": self.command,
                                        "fields": list(fields)})
        with self.engine.store.lock:
            armed = self.engine.state.faults
            keys = (route, *fields)
            delay = next((f for k in keys if (f := faults.take(armed, "http_delay", route=k))), None)
            error = next((f for k in keys if (f := faults.take(armed, "http_error", route=k))), None)
            if (self.headers.get("User-Agent") or "").startswith("runpod-cli/") and \
                    faults.take(armed, "runpodctl_malformed") is not None:
                self.extra_headers[MALFORMED_HEADER] = "1"
            if delay or error:
                self.engine.store.save()
        if delay is not None:
            time.sleep(delay["seconds"])
        if error is not None:
            status = error["status"]
            message = "Too Many Requests" if status == 429 else "Internal Server Error"
            if route.startswith("/v2"):
                raise v2_error(status, message)
            raise v1_error(status, message)

    def _route(self, method: str, path: str) -> None:
        if path.startswith("/_sim"):
            if not self._authorised():
                raise v1_error(401, "unauthorized")
            self._control(method, path)
        elif path == "/graphql" and method == "POST":
            self._graphql()
        elif path.startswith("/v1/"):
            if not self._authorised():
                scope = self._pod_scope()
                if scope is None:
                    raise v1_error(401, "unauthorized")
                self._require_own_pod(scope, method, path)
            self._pass_faults(path)
            self._v1(method, path)
        elif path.startswith("/v2/"):
            if not self._authorised() and not path.startswith("/v2/catalog"):
                scope = self._pod_scope()
                if scope is None:
                    raise v2_error(401, "Invalid or missing API key.")
                self._require_own_pod(scope, method, path)
            self._pass_faults(path)
            self._v2(method, path)
        else:
            raise v1_error(404, "not found")

    # ----- GraphQL --------------------------------------------------------------------------
    def _graphql(self) -> None:
        query = str(self.body.get("query") or "")
        try:
            fields = _root_fields(query, self.body.get("operationName"))
        except GraphQLSyntaxError:
            fields = ()
        public = bool(fields) and set(fields) <= gql.PUBLIC_FIELDS
        scope = None
        if not self._authorised() and not (public and not self._has_key()):
            scope = self._pod_scope()
            if scope is None:
                raise Reply(401, {"errors": [{"message": "Unauthorized"}]})
            if not fields or not set(fields) <= gql.POD_SCOPED_FIELDS:
                raise Reply(403, {"errors": [{"message": pod_scope_refusal(scope)}]})
        self._pass_faults("/graphql", fields)
        status, body = gql.execute(self.engine, query, self.body.get("variables"),
                                   self.body.get("operationName"), pod_scope=scope)
        raise Reply(status, body)

    # ----- REST v1 --------------------------------------------------------------------------
    def _v1(self, method: str, path: str) -> None:
        now = self.engine.store.now()
        volumes = {v.id: {"id": v.id, "name": v.name, "size": v.size,
                          "dataCenterId": v.data_center_id} for v in self.engine.state.volumes}
        flag = {k: self.query.get(k, ["false"])[0] == "true"
                for k in ("includeMachine", "includeNetworkVolume")}
        if path == "/v1/networkvolumes" and method == "GET":
            raise Reply(200, list(volumes.values()))
        if path == "/v1/networkvolumes" and method == "POST":
            try:
                volume = self.engine.create_volume(str(self.body.get("name") or ""),
                                                   int(self.body.get("size") or 0),
                                                   str(self.body.get("dataCenterId") or ""))
            except (RunpodError, ValueError) as error:
                raise v1_error(400, getattr(error, "message", str(error))) from None
            raise Reply(201, {"id": volume.id, "name": volume.name, "size": volume.size,
                              "dataCenterId": volume.data_center_id})
        if path == "/v1/pods":
            if method == "GET":
                pods = [p for p in self.engine.listed() if _v1_filters_match(p, self.query)]
                raise Reply(200, [rest_v1_pod(p, now, include_machine=flag["includeMachine"],
                                              include_network_volume=flag["includeNetworkVolume"],
                                              volumes=volumes) for p in pods])
            if method == "POST":
                pod = self._create(_v1_create_request(self.body), prefix="create pod: ", v2=False)
                raise Reply(201, rest_v1_pod(pod, now))
        match = _V1_POD.match(path)
        if match is None:
            raise v1_error(404, "not found")
        pod_id, action = match.groups()
        try:
            if method == "GET" and action is None:
                pod = self.engine.get(pod_id)
                if pod is None:
                    raise v1_error(404, "pod not found")
                raise Reply(200, rest_v1_pod(pod, now, include_machine=flag["includeMachine"],
                                             include_network_volume=flag["includeNetworkVolume"],
                                             volumes=volumes))
            if method == "DELETE" and action is None:
                self.engine.terminate(pod_id)
                raise Reply(204, None)
            if method == "POST" and action == "stop":
                raise Reply(200, rest_v1_pod(self.engine.stop(pod_id), now))
            if method == "POST" and action == "start":
                raise Reply(200, rest_v1_pod(self.engine.start(pod_id), now))
            if method == "POST" and action in ("restart", "reset"):
                pod = self.engine.stop(pod_id, reason="Restarted by user")
                raise Reply(200, rest_v1_pod(self.engine.start(pod.id), now))
            if (method == "PATCH" and action is None) or (method == "POST" and action == "update"):
                raise Reply(200, rest_v1_pod(self._update(pod_id), now))
        except RunpodError as error:
            verb = {"DELETE": "", "GET": ""}.get(method, f"{action} pod: " if action else "")
            raise v1_error(error.status, verb + error.message) from None
        raise v1_error(405, "method not allowed")

    def _update(self, pod_id: str) -> Any:
        with self.engine.store.lock:
            pod = self.engine.get(pod_id)
            if pod is None:
                raise RunpodError("pod not found", 404)
            for key, attr in (("name", "name"), ("imageName", "image_name"),
                              ("containerDiskInGb", "container_disk_gb"),
                              ("volumeInGb", "volume_gb"), ("volumeMountPath", "volume_mount_path"),
                              ("ports", "ports"), ("env", "env")):
                if key in self.body:
                    setattr(pod, attr, self.body[key])
            self.engine.store.save()
            return pod

    def _create(self, request: CreateRequest, *, prefix: str, v2: bool) -> Any:
        try:
            return self.engine.create(request)
        except CreatedButFailed:
            if v2:
                raise v2_error(500, "Internal Server Error") from None
            raise v1_error(500, prefix + "Something went wrong. Please try again later "
                           "or contact support.") from None
        except RunpodError as error:
            if v2:
                raise v2_error(400, error.message) from None
            lines = [prefix + error.message for _ in request.gpu_type_ids or ("",)]
            raise v1_error(error.status, "\n".join(lines)) from None

    # ----- REST v2 --------------------------------------------------------------------------
    def _v2(self, method: str, path: str) -> None:
        now = self.engine.store.now()
        if path == "/v2/catalog/gpus":
            raise Reply(200, {"gpus": [
                {"id": g.id, "displayName": g.display_name, "memoryInGb": g.memory_gb,
                 "securePrice": g.secure_price, "communityPrice": g.community_price,
                 "secureSpotPrice": g.secure_spot_price,
                 "communitySpotPrice": g.community_spot_price,
                 "stockStatus": catalog.stock_status(max(
                     self.engine.free_gpus(dc.id, g.id) for dc in catalog.DATA_CENTERS))}
                for g in catalog.GPU_TYPES]})
        if path == "/v2/catalog/datacenters":
            raise Reply(200, {"dataCenters": [
                {"id": dc.id, "name": dc.name, "location": dc.location, "gpus": [
                    {"id": gpu_id, "stockStatus": catalog.stock_status(
                        self.engine.free_gpus(dc.id, gpu_id)),
                     "available": self.engine.free_gpus(dc.id, gpu_id)}
                    for gpu_id, _ in dc.initial_stock]}
                for dc in catalog.DATA_CENTERS]})
        if path == "/v2/pods":
            if method == "GET":
                wanted = self.query.get("status")
                pods = [p for p in self.engine.listed()
                        if not wanted or v2_status(p) in wanted]
                raise Reply(200, {"pods": [rest_v2_pod(p, now) for p in pods]})
            if method == "POST":
                pod = self._create(_v2_create_request(self.body), prefix="", v2=True)
                raise Reply(201, rest_v2_pod(pod, now))
        match = _V2_POD.match(path)
        if match is None:
            raise v2_error(404, "Not found.")
        pod_id, action = match.groups()
        try:
            if method == "GET" and action is None:
                pod = self.engine.get(pod_id)
                if pod is None:
                    raise v2_error(404, f"Pod {pod_id} not found.")
                raise Reply(200, rest_v2_pod(pod, now))
            if method == "DELETE" and action is None:
                self.engine.terminate(pod_id)
                raise Reply(204, None)
            if method == "POST" and action == "action":
                verb = self.body.get("action")
                if verb not in ("start", "stop", "restart", "terminate"):
                    raise v2_error(422, "Request validation failed.", [
                        "$.action: value must be one of 'start', 'stop', 'restart', 'terminate'"])
                if verb == "terminate":
                    self.engine.terminate(pod_id)
                    raise Reply(200, {"id": pod_id, "status": "TERMINATED"})
                if verb in ("stop", "restart"):
                    pod = self.engine.stop(pod_id, reason="Exited by user")
                if verb in ("start", "restart"):
                    pod = self.engine.start(pod_id)
                raise Reply(200, rest_v2_pod(pod, now))
        except RunpodError as error:
            if error.status == 404:
                raise v2_error(404, f"Pod {pod_id} not found.") from None
            raise v2_error(error.status, error.message) from None
        raise v2_error(405, "Method not allowed.")

    # ----- control plane --------------------------------------------------------------------
    def _control(self, method: str, path: str) -> None:
        engine = self.engine
        store = engine.store
        if path == "/_sim/status":
            now = store.now()
            with store.lock:
                pods = [{"id": p.id, "name": p.name, "desiredStatus": p.desired_status,
                         "status": v2_status(p), "gpuTypeId": p.gpu_type_id,
                         "gpuCount": p.gpu_count, "dataCenterId": p.data_center_id,
                         "sshPort": p.ssh_port if p.container_up_at else None,
                         "sshdPid": p.ns_pid, "costPerHr": p.cost_per_hr,
                         "uptimeSeconds": int(now - p.container_up_at) if p.container_up_at else 0,
                         "billing": p.billing.to_json()}
                        for p in sorted(engine.state.pods.values(), key=lambda p: p.created_at)]
                raise Reply(200, {"pods": pods, "billing": store.billing_report(),
                                  "knobs": _asdict(engine.state.knobs),
                                  "faults": engine.state.faults, "clock": store.clock.to_json()})
        if path == "/_sim/billing":
            raise Reply(200, store.billing_report())
        if path == "/_sim/requests":
            served = list(engine.request_log)
            if method == "DELETE":
                engine.request_log.clear()
            raise Reply(200, {"requests": served})
        if path == "/_sim/faults":
            if method == "POST":
                params = dict(self.body)
                try:
                    fault = faults.normalise(str(params.pop("name", "")), params)
                    raise Reply(200, engine.inject(fault))
                except (ValueError, RunpodError) as error:
                    raise v1_error(400, str(error)) from None
            if method == "DELETE":
                engine.clear_faults()
                raise Reply(200, {"faults": []})
            raise Reply(200, {"faults": engine.state.faults})
        if path == "/_sim/knobs":
            if method == "POST":
                with store.lock:
                    try:
                        engine.state.knobs.update(self.body)
                    except ValueError as error:
                        raise v1_error(400, str(error)) from None
                    store.save()
            raise Reply(200, _asdict(engine.state.knobs))
        if path == "/_sim/clock" and method == "POST":
            with store.lock:
                store.accrue_all()
                if self.body.get("freeze"):
                    store.clock.freeze()
                if self.body.get("advance"):
                    store.clock.advance(float(self.body["advance"]))
                if self.body.get("unfreeze"):
                    store.clock.unfreeze()
                store.save()
            raise Reply(200, {**store.clock.to_json(), "now": store.now()})
        if path == "/_sim/account" and method == "POST":
            with store.lock:
                account = engine.state.account
                if "pubKey" in self.body:
                    account.pub_key = str(self.body["pubKey"])
                if self.body.get("addPubKey"):
                    account.pub_key = "\n".join(
                        k for k in (account.pub_key.strip(), str(self.body["addPubKey"]).strip()) if k)
                store.save()
                raise Reply(200, _asdict(account))
        if path == "/_sim/stock" and method == "POST":
            with store.lock:
                dc, gpu = self.body["datacenter"], self.body["gpu"]
                engine.state.stock.setdefault(dc, {})[gpu] = int(self.body["count"])
                store.save()
            raise Reply(200, engine.state.stock)
        if path == "/_sim/shutdown" and method == "POST":
            self.server.shutdown_requested.set()
            raise Reply(200, {"stopping": True})
        raise v1_error(404, "not found")


def _asdict(value: Any) -> dict[str, Any]:
    return dataclasses.asdict(value)


def _root_fields(query: str, operation_name: str | None) -> tuple[str, ...]:
    """The root field names of the operation that will run (for auth and fault routing)."""
    document = parse(query)
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
                operation_name is None or (definition.name and
                                           definition.name.value == operation_name)):
            return tuple(sel.name.value for sel in definition.selection_set.selections
                         if hasattr(sel, "name"))
    return ()


def _v1_filters_match(pod: Any, query: dict[str, list[str]]) -> bool:
    checks = {
        "desiredStatus": pod.desired_status, "name": pod.name, "imageName": pod.image_name,
        "id": pod.id, "networkVolumeId": pod.network_volume_id or "",
        "templateId": pod.template_id or "", "computeType": "GPU",
        "gpuTypeId": pod.gpu_type_id, "dataCenterId": pod.data_center_id,
    }
    return all(checks[key] in values for key, values in query.items()
               if key in checks and values and values != [""])


def _v1_create_request(body: dict[str, Any]) -> CreateRequest:
    if not body.get("imageName") and not body.get("templateId"):
        raise v1_error(400, "imageName or templateId is required")
    return CreateRequest(
        image_name=body.get("imageName") or "", name=body.get("name") or "my pod",
        gpu_type_ids=tuple(body.get("gpuTypeIds") or ()),
        gpu_count=int(body.get("gpuCount") or 1), cloud_type=body.get("cloudType") or "SECURE",
        data_center_ids=tuple(body.get("dataCenterIds") or ()),
        container_disk_gb=int(body.get("containerDiskInGb") or 50),
        volume_gb=int(body.get("volumeInGb", 20) or 0),
        volume_mount_path=body.get("volumeMountPath") or "/workspace",
        ports=tuple(body.get("ports") or ("8888/http", "22/tcp")),
        env=dict(body.get("env") or {}), interruptible=bool(body.get("interruptible")),
        network_volume_id=body.get("networkVolumeId"),
        support_public_ip=body.get("supportPublicIp", True) is not False,
        template_id=body.get("templateId"),
    )


def _v2_create_request(body: dict[str, Any]) -> CreateRequest:
    missing = [f"$.{key}: required" for key in ("name", "image") if not body.get(key)]
    if missing:
        raise v2_error(422, "Request validation failed.", missing)
    gpu = body.get("gpu") or {}
    ids = gpu.get("ids") or ([gpu["id"]] if gpu.get("id") else [])
    return CreateRequest(
        image_name=body["image"], name=body["name"], gpu_type_ids=tuple(ids),
        gpu_count=int(gpu.get("count") or 1), cloud_type=body.get("cloud") or "SECURE",
        data_center_ids=tuple(body.get("dataCenterIds") or
                              ([body["dataCenterId"]] if body.get("dataCenterId") else [])),
        container_disk_gb=int(body.get("containerDiskInGb") or 50),
        volume_gb=int(body.get("volumeInGb") or 0),
        volume_mount_path=body.get("volumeMountPath") or "/workspace",
        ports=tuple(body.get("ports") or ()), env=dict(body.get("env") or {}),
        interruptible=bool(body.get("interruptible")),
        network_volume_id=body.get("networkVolumeId"),
    )
