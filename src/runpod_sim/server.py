"""Running the simulator in the foreground: the engine, its ticker and the HTTP server.

`serve` is what `runpod-sim serve` and the detached `runpod-sim up` run. It recovers pods left by
a previous run, publishes `<home>/sim.json`, and on SIGTERM/SIGINT or `/_sim/shutdown` kills
every pod process before it exits (pod statuses stay, so the next run brings them back).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
from pathlib import Path
from typing import Any

from runpod_sim.api import SimServer
from runpod_sim.control import SimInfo, write_runpodctl_shim
from runpod_sim.engine import Engine


def serve(home: Path, *, host: str = "127.0.0.1", port: int = 0,
          knobs: dict[str, Any] | None = None, ready: threading.Event | None = None) -> None:
    home.mkdir(parents=True, exist_ok=True)
    engine = Engine(home)
    if knobs:
        with engine.store.lock:
            engine.state.knobs.update(knobs)
            engine.store.save()
    engine.recover()
    server = SimServer(engine, host, port)
    engine.api_url = server.url
    write_runpodctl_shim(home / "bin")
    info = SimInfo(home=home, url=server.url, port=server.server_address[1], pid=os.getpid(),
                   api_key=engine.state.api_key)
    ticker = threading.Thread(target=engine.run_ticker, name="runpod-sim-ticker", daemon=True)
    http = threading.Thread(target=server.serve_forever, name="runpod-sim-http", daemon=True)
    ticker.start()
    http.start()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: server.shutdown_requested.set())
    info.write()
    print(f"runpod-sim listening on {server.url} (home {home}, pid {os.getpid()})", flush=True)
    if ready is not None:
        ready.set()
    try:
        server.shutdown_requested.wait()
    finally:
        # A shutdown should take well under a second; if one hangs, say where (in sim.log).
        faulthandler.dump_traceback_later(5, exit=False)
        engine.stop_ticker()
        ticker.join(timeout=5)
        server.shutdown()
        engine.shutdown()
        server.server_close()
        (home / "sim.json").unlink(missing_ok=True)
        faulthandler.cancel_dump_traceback_later()
