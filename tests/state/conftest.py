"""State-backend fixtures: a real S3 endpoint on loopback (moto's ThreadedMotoServer), a bucket
per test, and a small fault-injecting HTTP proxy in front of it (5xx answers, stalls, a store
that ignores conditional headers). Nothing here mocks a client: boto3 talks HTTP to moto."""

from __future__ import annotations

import http.client
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

_buckets = itertools.count()


@dataclass(frozen=True)
class S3:
    """A moto server: its endpoint and the AWS variables a client (or a subprocess) needs."""

    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def new_bucket(self) -> str:
        name = f"team-state-{os.getpid()}-{next(_buckets)}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3(endpoint=f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_s3: S3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in moto_s3.env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(key, raising=False)
    return moto_s3.env


@pytest.fixture
def bucket(moto_s3: S3, aws_env: dict[str, str]) -> str:
    return moto_s3.new_bucket()


def s3_url(endpoint: str, bucket: str, prefix: str = "team", **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"endpoint": endpoint, "region": "us-east-1",
                                               **params}.items())
    return f"s3://{bucket}/{prefix}?{query}"


@dataclass
class Rule:
    """What the proxy does to matching requests: answer `status` instead, or stall `stall_sec`
    (before forwarding, or after: then the store applied the write and the answer is lost), or
    drop the conditional headers (a store without conditional writes)."""

    method: str
    path_contains: str
    times: int
    status: int | None = None
    stall_sec: float = 0.0
    stall_after_forward: bool = False
    strip_conditions: bool = False
    hits: int = 0


@dataclass
class FaultProxy:
    """A loopback HTTP proxy in front of moto; `rules` are applied in order, each `times` times."""

    upstream: str
    endpoint: str = ""
    rules: list[Rule] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def match(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.method == method and rule.path_contains in path and rule.hits < rule.times:
                    rule.hits += 1
                    return rule
        return None


@pytest.fixture
def fault_proxy(moto_s3: S3) -> Iterator[FaultProxy]:
    host_port = moto_s3.endpoint.removeprefix("http://")
    proxy = FaultProxy(upstream=host_port)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            rule = proxy.match(self.command, self.path)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            if rule is not None and rule.strip_conditions:
                headers = {k: v for k, v in headers.items()
                           if k.lower() not in ("if-none-match", "if-match")}
            if rule is not None and rule.status is not None:
                payload = (f"<Error><Code>{'ServiceUnavailable' if rule.status == 503 else 'InternalError'}"
                           "</Code><Message>injected</Message></Error>").encode()
                self.send_response(rule.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if rule is not None and rule.stall_sec and not rule.stall_after_forward:
                time.sleep(rule.stall_sec)
                self.close_connection = True
                return  # never forwarded: the store did not see it
            upstream = http.client.HTTPConnection(proxy.upstream, timeout=30)
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            proxy.forwarded.append(f"{self.command} {self.path}")
            if rule is not None and rule.stall_sec and rule.stall_after_forward:
                time.sleep(rule.stall_sec)
                self.close_connection = True
                return  # applied by the store, answer lost
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
