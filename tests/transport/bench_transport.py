"""Figures for docs/transport.md, against a throwaway sshd on loopback (not part of the suite).

    .venv/bin/python tests/transport/bench_transport.py [--mib 64]

Prints: command round trip on the shared connection vs one `ssh` per command; log-line
latency of `follow`; rsync push throughput with and without `-z` and plain rsync for
comparison; small transfers with and without ControlMaster multiplexing.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parents[2]), str(Path(__file__).parents[2] / "src")]

from runtime.hostkeys import HostKeyPins, write_known_hosts
from runtime.rsync import Rsync
from runtime.ssh import SshSession
from tests.transport.transport_sshd import SshServer, keygen


def _timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def _payload(root: Path, mib: int, kind: str) -> Path:
    """`random`: incompressible (weights, archives); `text`: compressible (source, logs, CSV)."""
    root.mkdir(parents=True)
    per_file = mib * 1024 * 1024 // 8
    line = b"def step(batch, model, optimizer):  # loss = model(batch).mean()\n"
    for index in range(8):
        content = os.urandom(per_file) if kind == "random" else line * (per_file // len(line))
        (root / f"{kind}_{index}.bin").write_bytes(content)
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rpd-bench-"))
    key = work / "id_ed25519"
    keygen(key)
    server = SshServer(work / "sshd", key.with_suffix(".pub"))
    server.start()
    try:
        with SshSession(
            server.endpoint, key_path=key, pins=HostKeyPins(work / "pins.json"), pin_id="bench"
        ) as session:
            session.connect()
            target = session.system_ssh_target()
            known_hosts = write_known_hosts(work / "known_hosts", target.endpoint, target.host_key)
            ssh_argv = target.ssh_argv(known_hosts)

            shared = [_timed(lambda: session.run("true")) for _ in range(30)]
            fresh = [
                _timed(lambda: subprocess.run([*ssh_argv, target.login, "true"], check=True))
                for _ in range(10)
            ]
            print(f"command round trip: shared connection median {statistics.median(shared) * 1000:.0f} ms; "
                  f"new ssh per command median {statistics.median(fresh) * 1000:.0f} ms")  # fmt: skip

            log = work / "latency.log"
            log.touch()
            latencies: list[float] = []
            done = threading.Event()

            def on_line(line: str) -> None:
                latencies.append(time.monotonic() - float(line))
                if len(latencies) == 200:
                    done.set()

            follower = threading.Thread(
                target=session.follow,
                args=(str(log),),
                kwargs={"on_line": on_line, "should_stop": done.is_set},
            )
            follower.start()
            time.sleep(0.3)
            with log.open("a") as handle:
                for _ in range(200):
                    handle.write(f"{time.monotonic()}\n")
                    handle.flush()
                    time.sleep(0.01)
            follower.join()
            ordered = sorted(latencies)
            print(f"log line latency (200 lines): median {statistics.median(ordered) * 1000:.1f} ms, "
                  f"p95 {ordered[189] * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms")  # fmt: skip

        ssh_plain = (
            f"ssh -p {target.endpoint.port} -i {key} -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
        )
        for kind in ("random", "text"):
            payload = _payload(work / f"payload-{kind}", args.mib, kind)
            for compress in (False, True):
                dest = work / f"dest-{kind}-{compress}"
                with Rsync(target, compress=compress) as transfer:
                    result = transfer.push(payload, str(dest), delete=True)
                print(f"{kind} {args.mib} MiB, Rsync compress={compress}: "
                      f"{args.mib / result.duration_sec:.0f} MiB/s ({result.duration_sec:.2f} s, "
                      f"{result.bytes_sent / 2**20:.1f} MiB sent)")  # fmt: skip
            for flags in ("-a", "-az"):
                dest = work / f"plain-{kind}{flags}"
                argv = ["rsync", flags, "-e", ssh_plain, f"{payload}/", f"{target.login}:{dest}/"]
                seconds = _timed(lambda: subprocess.run(argv, check=True))  # noqa: B023
                print(
                    f"{kind} {args.mib} MiB, plain rsync {flags}: {args.mib / seconds:.0f} MiB/s ({seconds:.2f} s)"
                )

        small = work / "small"
        small.mkdir()
        (small / "config.yaml").write_text("lr: 0.001\n")
        for multiplex in (True, False):
            with Rsync(target, multiplex=multiplex) as transfer:
                push = functools.partial(
                    transfer.push, small, str(work / f"small-{multiplex}"), delete=True
                )
                times = [_timed(push) for _ in range(10)]
            print(f"small push, multiplex={multiplex}: first {times[0] * 1000:.0f} ms, "
                  f"then median {statistics.median(times[1:]) * 1000:.0f} ms")  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
