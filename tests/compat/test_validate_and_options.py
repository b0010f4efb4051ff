"""`validate`'s checks (a loopback registry stands in for Docker Hub, with its anonymous-token
challenge), and the original's options that are not in a recipe: -v/-q on every command,
`estimate CONFIG`, `gpu-prices --no-price-cache`, `ls-runs --limit 0`, `run --dry-run
--print-run-dir`."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.compat.compat_machine import UserMachine

pytestmark = pytest.mark.sim

STACK = """\
    schema_version: 2
    name: checked
    local:
      project_root: .
      required_paths: [pyproject.toml]
    pod:
      image: {image}
      datacenters: [EU-RO-1, US-IL-1]
      gpu_order: [{gpu}]
    storage:
      mode: ephemeral
      volume_gb: 5
    budget:
      poll_interval_sec: 1
    setup:
      - command: "cd /workspace/app && uv sync --extra train"
    staging:
      - label: app
        source: app/
        destination: /workspace/app/
    run:
      script_path: /workspace/job.sh
      log_path: /workspace/job.log
      success_marker: DONE
      body: echo DONE
"""


class Registry:
    """A Docker-registry v2 endpoint with a token service, on loopback: knows some tags."""

    def __init__(self, tags: dict[str, set[str]]) -> None:
        self.tags = tags
        self.requests: list[str] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _manifest(self, body: bool) -> None:
                registry.requests.append(self.path)
                if self.path.startswith("/token"):
                    payload = json.dumps({"token": "anon"}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if self.headers.get("Authorization") != "Bearer anon":
                    self.send_response(401)
                    realm = f"{registry.url}/token"
                    self.send_header("WWW-Authenticate",
                                     f'Bearer realm="{realm}",service="loopback"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                match = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", self.path)
                found = match is not None and match.group(2) in registry.tags.get(match.group(1), set())
                self.send_response(200 if found else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self) -> None:
                self._manifest(False)

            def do_GET(self) -> None:
                self._manifest(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry() -> Iterator[Registry]:
    served = Registry({"runpod/pytorch": {"2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"},
                       "library/ubuntu": {"latest"}})
    try:
        yield served
    finally:
        served.close()


def _project(machine: UserMachine, *, image: str, gpu: str = "NVIDIA RTX A4000") -> None:
    machine.write("stack.yaml", STACK.format(image=image, gpu=gpu))
    machine.write("pyproject.toml", "[project]\nname = 'app'\nversion = '0'\n"
                  "dependencies = ['torch>=2']\n")
    machine.write("app/train.py", "DATA = '/home/alice/data/train.csv'\n")


def test_validate_all_fails_naming_a_tag_the_registry_lacks(
        machine: UserMachine, registry: Registry) -> None:
    _project(machine, image="runpod/pytorch:2.9.9-no-such-tag")
    machine.env["RUNPOD_DEPLOY_REGISTRY_URL"] = registry.url
    done = machine.sh("runpod-deploy validate --config stack.yaml --all")
    assert done.returncode == 1
    assert "'2.9.9-no-such-tag'" in done.stderr and "does NOT exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert "/token" in "".join(registry.requests)  # the anonymous token was asked for

    machine.write("stack.yaml", STACK.format(
        image="runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04", gpu="NVIDIA RTX A4000"))
    good = machine.ok("runpod-deploy validate --config stack.yaml --all")
    assert "ok: [registry]" in good.stdout and good.stdout.rstrip().endswith("job=checked")
    # The scan's warnings never fail: torch unpinned, uv on /workspace, a home path staged.
    assert "torch reaches the pod" in good.stderr and "UV_LINK_MODE" in good.stderr
    assert "/home/alice/" in good.stderr and "app/train.py:1" in good.stderr

    requests = len(registry.requests)
    machine.write("stack.yaml", STACK.format(image="runpod/pytorch:2.9.9-no-such-tag",
                                             gpu="NVIDIA RTX A4000"))
    machine.ok("runpod-deploy validate --config stack.yaml --all --skip-registry-check")
    assert len(registry.requests) == requests


def test_validate_all_warns_and_passes_when_the_registry_is_unreachable(
        machine: UserMachine) -> None:
    _project(machine, image="runpod/pytorch:2.9.9-no-such-tag")
    done = machine.ok("runpod-deploy validate --config stack.yaml --all")  # registry: port 9
    assert "warning: [registry] cannot reach the registry" in done.stderr


def test_validate_local_and_availability_checks(machine: UserMachine) -> None:
    _project(machine, image="ubuntu", gpu="NVIDIA RTX A400")
    (machine.project / "pyproject.toml").unlink()
    local = machine.sh("runpod-deploy validate --config stack.yaml --check-local")
    assert local.returncode == 1 and "pyproject.toml" in local.stderr
    stock = machine.sh("runpod-deploy validate --config stack.yaml --check-availability")
    assert stock.returncode == 1
    assert "did you mean 'NVIDIA RTX A4000'?" in stock.stderr
    _project(machine, image="ubuntu")
    ok = machine.ok("runpod-deploy validate --config stack.yaml --check-local "
                    "--check-availability")
    assert "ok: [availability] EU-RO-1: NVIDIA RTX A4000" in ok.stdout


COMMANDS = ["validate", "run", "cleanup", "ls-stale", "logs", "gpu-list", "gpu-inventory",
            "gpu-prices", "estimate", "ls-runs", "compare-runs", "events", "events-query",
            "capture-env", "manifest-summary", "apply", "plan", "drift", "schema", "version"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_verbose_and_quiet(machine: UserMachine, command: str) -> None:
    text = machine.ok(f"runpod-deploy {command} --help").stdout
    assert "-v, --verbose" in text and "-q, --quiet" in text


def test_the_original_options_outside_the_recipes(machine: UserMachine) -> None:
    _project(machine, image="ubuntu")
    assert machine.sh("runpod-deploy capture-env -v -q").returncode == 2
    machine.ok("runpod-deploy capture-env -q --project-root .")
    positional = machine.ok("runpod-deploy estimate stack.yaml")
    assert positional.stdout == machine.ok("runpod-deploy estimate --config stack.yaml").stdout
    prices = machine.ok("runpod-deploy gpu-prices --no-price-cache")
    assert "NVIDIA RTX A4000" in prices.stdout
    dry = machine.ok("runpod-deploy run --config stack.yaml --dry-run --print-run-dir")
    [run_dir] = re.findall(r"^RUN_DIR=(.+)$", dry.stdout, re.MULTILINE)
    assert run_dir.startswith(str(machine.project / "artifacts" / "runpod"))
    assert not (machine.project / "artifacts").exists()  # a dry run writes nothing
    assert machine.live_pods_named("checked") == []
    assert machine.ok("runpod-deploy ls-runs --limit 0 --json").stdout == "[]\n"


def test_fallback_cloud_type_retries_on_the_other_type_after_a_stock_out(
        machine: UserMachine) -> None:
    _project(machine, image="ubuntu")
    for datacenter in ("EU-RO-1", "US-IL-1"):
        machine.sim.fault("stockout", gpu="NVIDIA RTX A4000", datacenter=datacenter)
    try:
        done = machine.sh("runpod-deploy run --config stack.yaml --fallback-cloud-type COMMUNITY "
                          "--print-run-dir")
        plain = machine.sh("runpod-deploy run --config stack.yaml --print-run-dir")
    finally:
        machine.sim.clear_faults()
    assert done.returncode == 3 and plain.returncode == 3  # the simulator is out on both types
    assert "on COMMUNITY" in done.stderr  # the plan says what the fallback will do

    def fallbacks(output: str) -> list[dict[str, str]]:
        [run_dir] = re.findall(r"^RUN_DIR=(.+)$", output, re.MULTILINE)
        events = (machine.project / run_dir / "events.jsonl").read_text().splitlines()
        return [e for e in map(json.loads, events) if e["event"] == "cloud_type_fallback"]

    tried = fallbacks(done.stdout)
    assert len(tried) == 2  # each GPU x datacenter pair once more, on the other type
    assert {(e["from_cloud_type"], e["to_cloud_type"]) for e in tried} == {("SECURE", "COMMUNITY")}
    assert fallbacks(plain.stdout) == []
    same = machine.sh("runpod-deploy run --config stack.yaml --fallback-cloud-type SECURE "
                      "--offline-dry-run")
    assert same.returncode == 0 and "retry once with cloud type" not in same.stdout
