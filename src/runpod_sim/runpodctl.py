"""A `runpodctl` v2 (noun-verb) work-alike: a thin HTTP client of the simulator's REST v1 and
GraphQL, exactly as the real Go binary is of RunPod's, so API faults reach it too.

Output contract (v2.7.2): JSON with sorted keys and 2-space indent (`-o yaml` for YAML),
`gpuTypeId` renamed `gpuId` everywhere; on failure stdout stays empty and stderr gets a JSON
error line, the command's usage and a blank line, then an unescaped `{"error":"failed to ..."}`
line; exit 1. Run as `python -m runpod_sim.runpodctl` (the simulator's `bin/runpodctl` shim).
Every pod gets a copy of this file as its own `runpodctl`, run by the pod's python3: keep it
standard-library only (yaml is imported only for `-o yaml`).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

VERSION = "2.7.2"
USER_AGENT = f"runpod-cli/{VERSION} (linux; amd64)"
MALFORMED_HEADER = "X-Runpod-Sim-Malformed-Output"
SSH_KEY_PATH = Path.home() / ".runpod" / "ssh" / "runpodctl-ssh-key"
NO_KEY = ("api key not configured. get your key at https://www.runpod.io/console/user/settings "
          "then: export RUNPOD_API_KEY=your-key OR run: runpodctl doctor")
_CREATE_SELECTION = ("id name imageName desiredStatus costPerHr containerDiskInGb volumeInGb "
                     "volumeMountPath gpuCount memoryInGb vcpuCount ports lastStatusChange env "
                     "machine { gpuDisplayName location }")
_POD_STRUCT_FIELDS = ("id", "name", "desiredStatus", "createdAt", "lastStatusChange",
                      "uptimeSeconds", "imageName", "gpuTypeId", "gpuCount", "volumeInGb",
                      "containerDiskInGb", "memoryInGb", "vcpuCount", "volumeMountPath", "ports",
                      "costPerHr", "machine", "runtime", "env")
_ALWAYS_PRINTED = {"uptimeSeconds", "volumeInGb", "gpuCount", "containerDiskInGb"}


@dataclass(frozen=True, slots=True)
class Flag:
    name: str
    kind: str  # "bool", "string", "int", "float"
    default: str = ""
    help: str = ""
    short: str = ""


@dataclass(frozen=True, slots=True)
class Command:
    path: str
    use: str
    flags: tuple[Flag, ...] = ()
    args: int = 0


COMMANDS: dict[str, Command] = {c.path: c for c in (
    Command("pod list", "runpodctl pod list [flags]", (
        Flag("all", "bool", help="show all pods (default shows only running)", short="a"),
        Flag("compute-type", "string", help="filter by compute type (GPU, CPU)"),
        Flag("created-after", "string", help="show pods created after date (YYYY-MM-DD)"),
        Flag("name", "string", help="filter by name"),
        Flag("since", "string", help="show pods created within duration (e.g. 1h, 7d)"),
        Flag("status", "string", help="filter by status (RUNNING, EXITED, ...)"))),
    Command("pod get", "runpodctl pod get <pod-id> [flags]", (
        Flag("include-machine", "bool", help="include machine info"),
        Flag("include-network-volume", "bool", help="include network volume info")), args=1),
    Command("pod create", "runpodctl pod create [flags]", (
        Flag("cloud-type", "string", "SECURE", "cloud type (SECURE, COMMUNITY)"),
        Flag("compliance", "string", help="compliance requirements (comma-separated)"),
        Flag("compute-type", "string", "GPU", "compute type (GPU, CPU)"),
        Flag("container-disk-in-gb", "int", "20", "container disk size in GB"),
        Flag("country-code", "string", help="country code"),
        Flag("data-center-ids", "string", help="comma-separated list of data center ids"),
        Flag("docker-args", "string", help="docker arguments"),
        Flag("env", "string", help="environment variables as JSON object"),
        Flag("global-networking", "bool", help="enable global networking (secure cloud gpu only)"),
        Flag("gpu-count", "int", "1", "number of gpus"),
        Flag("gpu-id", "string", help="gpu id (from 'runpodctl gpu list')"),
        Flag("image", "string", help="docker image name"),
        Flag("min-cuda-version", "string", help="minimum cuda version"),
        Flag("name", "string", help="pod name"),
        Flag("network-volume-id", "string", help="network volume id"),
        Flag("ports", "string", help="comma-separated list of ports (e.g. 8888/http,22/tcp)"),
        Flag("public-ip", "bool", help="require public ip (community cloud only)"),
        Flag("registry-auth-id", "string", help="container registry auth id"),
        Flag("ssh", "bool", "true", "enable ssh"),
        Flag("stop-after", "string", help="stop the pod after this time (RFC3339)"),
        Flag("template-id", "string", help="template id"),
        Flag("terminate-after", "string", help="terminate the pod after this time (RFC3339)"),
        Flag("volume-in-gb", "int", "0", "volume size in GB"),
        Flag("volume-mount-path", "string", "/workspace", "volume mount path"),
        Flag("wait", "bool", help="wait until the pod answers ssh on port 22"),
        Flag("wait-timeout", "int", "600", "seconds to wait with --wait"))),
    Command("pod start", "runpodctl pod start <pod-id> [flags]", args=1),
    Command("pod stop", "runpodctl pod stop <pod-id> [flags]", args=1),
    Command("pod restart", "runpodctl pod restart <pod-id> [flags]", args=1),
    Command("pod reset", "runpodctl pod reset <pod-id> [flags]", args=1),
    Command("pod delete", "runpodctl pod delete <pod-id> [flags]", args=1),
    Command("datacenter list", "runpodctl datacenter list [flags]"),
    Command("gpu list", "runpodctl gpu list [flags]", (
        Flag("include-unavailable", "bool", help="include unavailable gpus"),)),
    Command("network-volume list", "runpodctl network-volume list [flags]"),
)}
_ALIASES = {"pods": "pod", "rm": "delete", "remove": "delete", "volume": "network-volume",
            "datacenters": "datacenter", "dc": "datacenter", "gpus": "gpu", "ls": "list",
            "nv": "network-volume"}


class Failure(Exception):
    """A command failed: `inner` is the first stderr line's message, `outer` the last one's."""

    def __init__(self, outer: str, inner: str | None = None) -> None:
        super().__init__(outer)
        self.outer = outer
        self.inner = inner


def _usage(command: Command, name: str) -> str:
    rows = [("-h, --help", f"help for {name}")]
    for flag in command.flags:
        left = (f"-{flag.short}, " if flag.short else "    ") + f"--{flag.name}"
        if flag.kind != "bool":
            left += f" {flag.kind}"
        default = flag.default
        if default and not (flag.kind == "bool" and default == "false"):
            shown = f'"{default}"' if flag.kind == "string" else default
            right = f"{flag.help} (default {shown})"
        else:
            right = flag.help
        rows.append((left, right))
    width = max(len(left) for left, _ in rows) + 3
    lines = ["Usage:", f"  {command.use}", "", "Flags:"]
    lines += [f"  {left:<{width}}{right}".rstrip() for left, right in rows]
    lines += ["", "Global Flags:",
              '  -o, --output string   output format (json, yaml) (default "json")', ""]
    return "\n".join(lines)


def _parse(command: Command, words: list[str]) -> tuple[dict[str, Any], list[str], str]:
    values: dict[str, Any] = {f.name: f.default for f in command.flags}
    multi: dict[str, list[str]] = {}
    positional: list[str] = []
    output = "json"
    by_name = {f.name: f for f in command.flags}
    by_short = {f.short: f for f in command.flags if f.short}
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or word == "-":
            positional.append(word)
            continue
        name, eq, inline = word.lstrip("-").partition("=")
        if name in ("o", "output"):
            output = inline if eq else (words[i] if i < len(words) else "json")
            i += 0 if eq else 1
            continue
        flag = by_short.get(name) if not word.startswith("--") else by_name.get(name)
        if flag is None:
            raise Failure(f"unknown flag: {word.split('=')[0]}" if word.startswith("--")
                          else f"unknown shorthand flag: '{name}' in {word}")
        if flag.kind == "bool":
            values[flag.name] = inline if eq else "true"
            continue
        if not eq:
            if i >= len(words):
                raise Failure(f"flag needs an argument: --{flag.name}")
            inline = words[i]
            i += 1
        multi.setdefault(flag.name, []).append(inline)
        values[flag.name] = inline
    if "ports" in multi:
        values["ports"] = ",".join(multi["ports"])
    return values, positional, output


class Client:
    """REST v1 and GraphQL calls, authenticated like runpodctl v2.7.2."""

    def __init__(self) -> None:
        self.key = os.environ.get("RUNPOD_API_KEY") or _config_value("apikey")
        self.rest = (os.environ.get("RUNPOD_API_URL") or _config_value("restapiurl")
                     or "https://rest.runpod.io/v1").rstrip("/")
        self.graphql_url = (os.environ.get("RUNPOD_GRAPHQL_URL") or _config_value("apiurl")
                            or "https://api.runpod.io/graphql")
        self.malformed = False

    def _call(self, method: str, url: str, body: Any = None) -> tuple[int, bytes]:
        if not self.key:
            raise Failure(NO_KEY, NO_KEY)
        request = urllib.request.Request(
            url, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json",
                     "User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                self.malformed |= bool(response.headers.get(MALFORMED_HEADER))
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            self.malformed |= bool(error.headers.get(MALFORMED_HEADER))
            return error.code, error.read()
        except (urllib.error.URLError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise Failure(f"{method} {url}: {reason}", f"{method} {url}: {reason}") from None

    def rest_call(self, method: str, path: str, body: Any = None) -> Any:
        status, raw = self._call(method, self.rest + path, body)
        if status >= 300:
            message = f"api error: {raw.decode(errors='replace')} (status {status})"
            raise Failure(message, message)
        return json.loads(raw) if raw.strip() else None

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        status, raw = self._call("POST", self.graphql_url,
                                 {"query": query, "variables": variables or {}})
        if status != 200:
            message = f"graphql error: status {status}: {raw.decode(errors='replace')}"
            raise Failure(message, message)
        body = json.loads(raw)
        if body.get("errors"):
            message = body["errors"][0].get("message", "unknown error")
            raise Failure(message, message)
        return body.get("data") or {}


def _config_value(key: str) -> str | None:
    path = Path.home() / ".runpod" / "config.toml"
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    lowered = {k.lower(): v for k, v in config.items() if isinstance(v, str)}
    return lowered.get(key)


def _renamed(value: Any) -> Any:
    """runpodctl re-marshals everything through maps, renaming gpuTypeId(s) to gpuId(s)."""
    names = {"gpuTypeId": "gpuId", "gpuTypeIds": "gpuIds"}
    if isinstance(value, dict):
        return {names.get(k, k): _renamed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    return value


def _render(value: Any, output: str) -> str:
    value = _renamed(value)
    if output == "yaml":
        import yaml

        return str(yaml.safe_dump(value, sort_keys=True, default_flow_style=False)).rstrip("\n")
    return json.dumps(value, indent=2, sort_keys=True)


def _ssh_block(client: Client, pod_id: str) -> dict[str, Any]:
    try:
        data = client.graphql("query { myself { pods { id name desiredStatus runtime { ports "
                              "{ ip isIpPublic privatePort publicPort type } } } } }")
    except Failure:
        return {"error": "ssh info unavailable"}
    pod = next((p for p in (data.get("myself") or {}).get("pods") or [] if p["id"] == pod_id), None)
    if pod is None:
        return {"error": "ssh info unavailable"}
    ports = ((pod.get("runtime") or {}).get("ports")) or []
    public = next((p for p in ports if p.get("isIpPublic") and p.get("privatePort") == 22), None)
    if public is None:
        return {"error": "pod not ready", "id": pod["id"], "name": pod["name"],
                "status": pod["desiredStatus"]}
    ip, port = public["ip"], public["publicPort"]
    exists = SSH_KEY_PATH.exists()
    block: dict[str, Any] = {
        "id": pod["id"], "name": pod["name"], "ip": ip, "port": port,
        "ssh_command": (f"ssh -i {SSH_KEY_PATH} root@{ip} -p {port}" if exists
                        else f"ssh root@{ip} -p {port}"),
        "ssh_key": {"path": str(SSH_KEY_PATH), "exists": exists, "source": "runpodctl doctor"},
    }
    if not exists:
        block["setup"] = "runpodctl doctor"
    return block


def _pod_struct(pod: dict[str, Any]) -> dict[str, Any]:
    """What survives runpodctl's api.Pod struct (omitempty for all but a few numbers)."""
    return {k: pod[k] for k in _POD_STRUCT_FIELDS
            if k in pod and (pod[k] not in (None, "", [], {}, 0) or k in _ALWAYS_PRINTED)}


def _wait_for_ssh(client: Client, pod_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = client.rest_call("GET", f"/pods/{pod_id}")
        port = (pod.get("portMappings") or {}).get("22")
        if pod.get("publicIp") and port:
            try:
                with socket.create_connection((pod["publicIp"], int(port)), timeout=2) as sock:
                    if sock.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                pass
        time.sleep(0.2)
    raise Failure(f"timed out after {int(timeout)}s waiting for ssh on pod {pod_id}")


def _run(path: str, flags: dict[str, Any], args: list[str], client: Client) -> Any:
    if path == "pod list":
        if flags["all"] == "true" and flags["status"]:
            raise Failure("--all and --status cannot be used together")
        if flags["since"] and flags["created-after"]:
            raise Failure("--since and --created-after cannot be used together")
        query = urllib.parse.urlencode({k: v for k, v in (
            ("computeType", flags["compute-type"]), ("name", flags["name"])) if v})
        pods = client.rest_call("GET", "/pods" + (f"?{query}" if query else "")) or []
        wanted = flags["status"] or ("" if flags["all"] == "true" else "RUNNING")
        if flags["since"] or flags["created-after"]:
            pods = []  # the live createdAt is neither RFC 3339 nor unix seconds: nothing matches
        return [{k: v for k, v in {
            "id": p["id"], "name": p["name"], "desiredStatus": p["desiredStatus"],
            "imageName": p.get("imageName"), "gpuTypeId": p.get("gpuTypeId"),
            "gpuCount": p.get("gpuCount"), "volumeInGb": p.get("volumeInGb"),
            "costPerHr": p.get("costPerHr")}.items() if v not in (None, "") and
            not (k == "costPerHr" and not v)}
            for p in pods if not wanted or p["desiredStatus"].upper() == wanted.upper()]
    if path == "pod get":
        query = "&".join(q for q, on in (("includeMachine=true", flags["include-machine"]),
                                         ("includeNetworkVolume=true",
                                          flags["include-network-volume"])) if on == "true")
        pod = client.rest_call("GET", f"/pods/{args[0]}" + (f"?{query}" if query else ""))
        pod.setdefault("uptimeSeconds", 0)
        return {**_pod_struct(pod), "ssh": _ssh_block(client, pod["id"])}
    if path == "pod create":
        return _create(flags, client)
    if path in ("pod start", "pod stop", "pod restart", "pod reset"):
        verb = path.split()[1]
        return _pod_struct(client.rest_call("POST", f"/pods/{args[0]}/{verb}"))
    if path == "pod delete":
        client.rest_call("DELETE", f"/pods/{args[0]}")
        return {"deleted": True, "id": args[0]}
    if path == "network-volume list":
        return client.rest_call("GET", "/networkvolumes")
    centers = client.graphql("query { dataCenters { id name location gpuAvailability "
                             "{ gpuTypeId displayName stockStatus } } }")["dataCenters"]
    if path == "datacenter list":
        return centers
    types = client.graphql("query { gpuTypes { id displayName memoryInGb secureCloud "
                           "communityCloud } }")["gpuTypes"]
    rank = {"High": 3, "Medium": 2, "Low": 1}
    best: dict[str, str] = {}
    for center in centers:
        for item in center["gpuAvailability"]:
            status = item.get("stockStatus") or ""
            if rank.get(status, 0) > rank.get(best.get(item["gpuTypeId"], ""), 0):
                best[item["gpuTypeId"]] = status
    listed = []
    for gpu in types:
        status = best.get(gpu["id"], "")
        if status or flags["include-unavailable"] == "true":
            listed.append({"gpuTypeId": gpu["id"], "displayName": gpu["displayName"],
                           "memoryInGb": gpu["memoryInGb"], "secureCloud": gpu["secureCloud"],
                           "communityCloud": gpu["communityCloud"], "stockStatus": status,
                           "available": bool(status)})
    return listed


def _create(flags: dict[str, Any], client: Client) -> Any:
    if not flags["image"] and not flags["template-id"]:
        raise Failure("either --template-id or --image is required\n\nuse 'runpodctl template "
                      "search <term>' to find templates")
    if "," in flags["gpu-id"]:
        raise Failure("only one gpu id is supported; use --gpu-count for multiple gpus of the "
                      "same type")
    try:
        env = json.loads(flags["env"]) if flags["env"] else {}
    except ValueError as error:
        raise Failure(f"invalid env json: {error}") from None
    if not isinstance(env, dict):
        raise Failure("invalid env json: not an object")
    centers = [c for c in flags["data-center-ids"].split(",") if c]
    ports = [p for p in flags["ports"].split(",") if p]
    if flags["compute-type"].upper() == "CPU":
        if flags["gpu-id"]:
            raise Failure("--gpu-id is not supported for compute type CPU")
        raise Failure("compute type CPU is not supported by runpod-sim")
    if len(centers) > 1:
        print(f"note: gpu pods use only the first data center id ({centers[0]})", file=sys.stderr)
    given: dict[str, Any] = {
        "cloudType": flags["cloud-type"].upper(), "gpuTypeId": flags["gpu-id"],
        "gpuCount": int(flags["gpu-count"]), "imageName": flags["image"],
        "name": flags["name"], "containerDiskInGb": int(flags["container-disk-in-gb"]),
        "volumeInGb": int(flags["volume-in-gb"]), "volumeMountPath": flags["volume-mount-path"],
        "ports": ",".join(ports), "env": [{"key": k, "value": str(v)} for k, v in env.items()],
        "startSsh": flags["ssh"] == "true", "dataCenterId": centers[0] if centers else None,
        "networkVolumeId": flags["network-volume-id"] or None,
        "templateId": flags["template-id"] or None, "dockerArgs": flags["docker-args"] or None,
        "minCudaVersion": flags["min-cuda-version"] or None,
        "countryCode": flags["country-code"] or None,
        "stopAfter": flags["stop-after"] or None,
        "terminateAfter": flags["terminate-after"] or None,
    }
    data = client.graphql(
        "mutation createPod($input: PodFindAndDeployOnDemandInput!) { "
        f"podFindAndDeployOnDemand(input: $input) {{ {_CREATE_SELECTION} }} }}",
        {"input": {k: v for k, v in given.items() if v is not None}})
    pod = data["podFindAndDeployOnDemand"]
    if flags["wait"] == "true":
        _wait_for_ssh(client, pod["id"], float(flags["wait-timeout"]))
    return pod


def _fail(command: Command | None, name: str, failure: Failure) -> NoReturn:
    if failure.inner is not None:
        sys.stderr.write(json.dumps({"error": failure.inner}, separators=(",", ":")) + "\n")
    if command is not None:
        sys.stderr.write(_usage(command, name) + "\n")
    sys.stderr.write('{"error":"' + failure.outer + '"}\n')
    sys.exit(1)


_FAILURE_VERB = {"pod list": "list pods", "pod get": "get pod", "pod create": "create pod",
                 "pod start": "start pod", "pod stop": "stop pod", "pod restart": "restart pod",
                 "pod reset": "reset pod", "pod delete": "delete pod",
                 "datacenter list": "list datacenters", "gpu list": "list gpus",
                 "network-volume list": "list network volumes"}


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] in ("-h", "--help", "help"):
        print("runpodctl is a cli for runpod.io (runpod-sim work-alike)\n\nUsage:\n  runpodctl "
              "[command]\n\nAvailable Commands:\n" + "\n".join(f"  {p}" for p in COMMANDS))
        return 0
    if words[0] in ("version", "--version", "-v"):
        print(f"runpodctl v{VERSION}")
        return 0
    noun = _ALIASES.get(words[0], words[0])
    verb = _ALIASES.get(words[1], words[1]) if len(words) > 1 else ""
    path = f"{noun} {verb}"
    command = COMMANDS.get(path)
    if command is None:
        _fail(None, noun, Failure(f'unknown command "{" ".join(words[:2])}" for "runpodctl"'))
    rest = words[2:]
    if "-h" in rest or "--help" in rest:
        print(_usage(command, verb).rstrip("\n"))
        return 0
    try:
        flags, args, output = _parse(command, rest)
        if len(args) != command.args:
            raise Failure(f"accepts {command.args} arg(s), received {len(args)}")
        client = Client()
        result = _run(path, flags, args, client)
    except Failure as failure:
        if failure.inner is not None:
            failure.outer = f"failed to {_FAILURE_VERB[path]}: {failure.outer}"
        _fail(command, verb, failure)
    text = _render(result, output)
    if client.malformed:
        text = text[: max(1, len(text) // 2)]
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
