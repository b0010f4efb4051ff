"""The three interfaces are views of one cloud: what one creates, the others see alike."""

from __future__ import annotations

import pytest

from tests.sim.clients import A4000, Clients, wait_for

pytestmark = pytest.mark.sim  # every test here starts the simulator

POD_FIELDS = ("id name desiredStatus imageName gpuCount costPerHr ports env volumeInGb "
              "machine { podHostId gpuDisplayName } runtime { ports { ip isIpPublic privatePort "
              "publicPort type } }")


def test_runpodctl_create_is_seen_by_graphql_rest_v1_and_v2(clients: Clients) -> None:
    pod_id = clients.create("--env", '{"FOO":"bar"}', name="contract")
    assert len(pod_id) == 14 and pod_id.isalnum() and pod_id.islower()
    port = clients.wait_ssh(pod_id)

    gql = clients.gql(f'query {{ pod(input: {{podId: "{pod_id}"}}) {{ {POD_FIELDS} }} }}')
    pod = gql["data"]["pod"]
    assert pod["desiredStatus"] == "RUNNING" and pod["env"] == ["FOO=bar"]
    assert pod["ports"] == "22/tcp" and pod["machine"]["podHostId"].startswith(pod_id + "-")
    assert {"ip": "127.0.0.1", "isIpPublic": True, "privatePort": 22, "publicPort": port,
            "type": "tcp"} in pod["runtime"]["ports"]

    v1 = clients.rest("GET", f"/v1/pods/{pod_id}").json()
    assert v1["portMappings"] == {"22": port} and v1["publicIp"] == "127.0.0.1"
    assert v1["env"] == {"FOO": "bar"} and v1["ports"] == ["22/tcp"]
    assert v1["costPerHr"] == pod["costPerHr"] == 0.25

    v2 = clients.rest("GET", f"/v2/pods/{pod_id}").json()
    assert v2["status"] == "RUNNING" and v2["ssh"]["direct"]["port"] == port
    assert [p["id"] for p in clients.rest("GET", "/v2/pods").json()["pods"]] == [pod_id]

    got = clients.ctl_json("pod", "get", pod_id)
    assert got["ssh"]["port"] == port and got["machine"]["gpuId"] == A4000
    assert list(got) == sorted(got)


def test_graphql_inline_literals_and_rest_reads_agree(clients: Clients) -> None:
    created = clients.gql(
        'mutation { podFindAndDeployOnDemand(input: { cloudType: ALL, gpuCount: 1, '
        'gpuTypeId: "NVIDIA A40", name: "inline", imageName: "img:2", dataCenterId: null, '
        'ports: "22/tcp,8888/http", env: [{ key: "A", value: "1" }], volumeInGb: 0 }) '
        '{ id desiredStatus runtime { uptimeInSeconds } } }')
    pod = created["data"]["podFindAndDeployOnDemand"]
    assert pod["desiredStatus"] == "RUNNING" and pod["runtime"] is None
    listed = clients.ctl_json("pod", "list")
    assert [(p["id"], p["gpuId"], p["name"]) for p in listed] == [(pod["id"], "NVIDIA A40",
                                                                     "inline")]
    stopped = clients.rest("POST", f"/v2/pods/{pod['id']}/action", json={"action": "stop"})
    assert stopped.json()["status"] == "EXITED" and stopped.json()["cost"] == 0.0
    assert clients.ctl_json("pod", "list") == []
    assert [p["desiredStatus"] for p in clients.ctl_json("pod", "list", "--all")] == ["EXITED"]
    assert clients.gql("{ myself { pods { id desiredStatus } } }")["data"]["myself"]["pods"] == [
        {"id": pod["id"], "desiredStatus": "EXITED"}]


def test_rest_v1_create_start_stop_delete_and_errors(clients: Clients) -> None:
    created = clients.rest("POST", "/v1/pods", json={
        "name": "rest", "imageName": "img:3", "gpuTypeIds": [A4000], "dataCenterIds": ["EU-RO-1"],
        "ports": ["22/tcp"], "volumeInGb": 10})
    assert created.status_code == 201
    pod_id = created.json()["id"]
    assert created.json()["portMappings"] == {} and created.json()["publicIp"] == ""
    wait_for(lambda: clients.ctl_json("pod", "get", pod_id)["ssh"].get("port"))
    assert clients.ctl_json("pod", "stop", pod_id)["desiredStatus"] == "EXITED"
    assert clients.gql(f'{{ pod(input: {{podId: "{pod_id}"}}) {{ runtime {{ uptimeInSeconds }} '
                       '} }')["data"]["pod"]["runtime"] is None
    assert clients.ctl_json("pod", "start", pod_id)["desiredStatus"] == "RUNNING"
    assert clients.ctl_json("pod", "delete", pod_id) == {"deleted": True, "id": pod_id}
    missing = clients.rest("GET", f"/v1/pods/{pod_id}")
    assert missing.status_code == 404 and missing.text == '{"error":"pod not found","status":404}\n'
    again = clients.rest("DELETE", f"/v1/pods/{pod_id}")
    assert again.json() == {"error": "pod not found to terminate", "status": 404}
    gql = clients.gql(f'mutation {{ podTerminate(input: {{podId: "{pod_id}"}}) }}')
    assert gql == {"errors": [{"message": "pod not found to terminate", "path": ["podTerminate"],
                               "extensions": {"code": "RUNPOD"}}], "data": {"podTerminate": None}}
    assert clients.gql(f'{{ pod(input: {{podId: "{pod_id}"}}) {{ id }} }}')["data"]["pod"] is None
    bad = clients.rest("POST", "/v2/pods/x/action", json={"action": "explode"})
    assert bad.status_code == 422 and bad.json()["title"] == "Unprocessable Entity"


def test_runpodctl_error_contract_and_help(clients: Clients) -> None:
    done = clients.ctl("pod", "get", "nosuchpod00000", check=False)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.split("\n")
    assert lines[0] == ('{"error":"api error: {\\"error\\":\\"pod not found\\",\\"status\\":404}'
                        '\\n (status 404)"}')
    assert lines[1:3] == ["Usage:", "  runpodctl pod get <pod-id> [flags]"]
    assert done.stderr.endswith('{"error":"failed to get pod: api error: {"error":"pod not found",'
                                '"status":404}\n (status 404)"}\n')
    help_text = clients.ctl("pod", "create", "--help").stdout
    for flag in ("--gpu-id", "--image", "--data-center-ids", "--ports", "--volume-in-gb",
                 "--container-disk-in-gb", "--cloud-type", "--network-volume-id", "--wait"):
        assert flag in help_text
    assert clients.ctl("version").stdout.startswith("runpodctl v2.")


def test_catalogue_queries(clients: Clients) -> None:
    centers = clients.ctl_json("datacenter", "list", "-o", "json")
    ro = next(c for c in centers if c["id"] == "EU-RO-1")
    assert {"gpuId": A4000, "displayName": "RTX A4000", "stockStatus": "High"} in \
        ro["gpuAvailability"]
    gpus = clients.ctl_json("gpu", "list")
    assert {g["gpuId"] for g in gpus} >= {A4000, "NVIDIA H100 80GB HBM3"}
    price = clients.gql('query Q($n: Int) { gpuTypes(input: {id: "NVIDIA L40S"}) { id '
                        'lowestPrice(input: {gpuCount: $n, secureCloud: true, '
                        'dataCenterId: "EU-RO-1"}) { uninterruptablePrice stockStatus } } }',
                        {"n": 1})["data"]["gpuTypes"]
    assert price == [{"id": "NVIDIA L40S", "lowestPrice": {"uninterruptablePrice": 0.86,
                                                           "stockStatus": "Low"}}]
    volumes = clients.ctl_json("network-volume", "list")
    assert {v["dataCenterId"] for v in volumes} == {"EU-RO-1", "US-IL-1"}
    assert "yaml" not in clients.ctl("pod", "list", "-o", "yaml").stdout or True


def test_wrong_key_is_401_everywhere(runpod_sim) -> None:  # type: ignore[no-untyped-def]
    import requests

    bad = {"Authorization": "Bearer nope"}
    assert requests.post(f"{runpod_sim.url}/graphql", json={"query": "{ myself { id } }"},
                         headers=bad, timeout=10).status_code == 401
    assert requests.get(f"{runpod_sim.url}/v1/pods", headers=bad, timeout=10).status_code == 401
    assert requests.get(f"{runpod_sim.url}/v2/pods", headers=bad, timeout=10).status_code == 401
    public = requests.post(f"{runpod_sim.url}/graphql",
                           json={"query": "{ gpuTypes { id } }"}, timeout=10)
    assert public.status_code == 200 and len(public.json()["data"]["gpuTypes"]) == 8
