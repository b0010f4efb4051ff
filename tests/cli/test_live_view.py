"""The live view of `apply` (runpod_deploy.live.RichReporter), driven through the executor's
hooks on a rich Console that writes to a string as a 100-column terminal would: the checks read
what a user would see, the final frame that stays on the screen and the lines above it."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from reconciler.load import load_spec
from reconciler.observed import CloudType, Observation, ObservedPod, PodStatus
from reconciler.plan import Plan
from reconciler.planner import plan
from reconciler.state import PodRecord, StackIdentity, StackState
from runpod_deploy.live import RichReporter, use_live_view
from runtime.reporter import PodSelected

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
IDENT = StackIdentity(name="trainer", config_hash="c" * 16, key="abc123")
SPEC = load_spec("""name: trainer
pod:
  image: img:1
  datacenters: [EU-RO-1]
  gpu_order: [NVIDIA RTX A4000]
storage: {mode: ephemeral, volume_gb: 10}
budget: {cost_cap_usd: 2.5}
setup: [{command: pip install -r requirements.txt}]
run: {script_path: /w/r.sh, log_path: /w/r.log, success_marker: DONE, body: echo DONE}
lifecycle: {on_success: recycle}
""", source="trainer.yaml")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def terminal(height: int = 40) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=100, height=height), out


def text(raw: str) -> str:
    return _ESCAPE.sub("", raw).replace("\r", "")


def final_frame(raw: str) -> str:
    """What stays on the screen: the last frame, drawn after the cursor went back over the
    previous one (each redraw erases the old lines with ESC[2K)."""
    return text(raw.rsplit("\x1b[2K", 1)[-1])


def a_plan(*, reuse: bool = False) -> Plan:
    if not reuse:
        return plan(SPEC, StackState(identity=IDENT), Observation(observed_at=NOW, provider="test"))
    record = PodRecord(pod_id="pod42", name="trainer--abc123--n1", image="img:1",
                       gpu_type_id="NVIDIA RTX A4000", datacenter_id="EU-RO-1", cloud_type=CloudType.SECURE)
    stopped = ObservedPod(pod_id="pod42", name="trainer--abc123--n1", status=PodStatus.EXITED, image="img:1",
                          gpu_type_id="NVIDIA RTX A4000", gpu_count=1, datacenter_id="EU-RO-1",
                          cloud_type=CloudType.SECURE, volume_gb=10, cost_per_hr=0.17)
    return plan(SPEC, StackState(identity=IDENT, lineage="L", serial=3, pod=record),
                Observation(observed_at=NOW, pods=(stopped,), provider="test"))


def test_a_whole_run_leaves_its_checklist_cost_and_log_tail_on_the_screen(tmp_path: Path) -> None:
    console, out = terminal()
    clock = FakeClock()
    view = RichReporter(console, monotonic=clock)
    view.show_plan(a_plan())
    with view:
        view.phase_started("provision", "+ create")
        assert "pod new, being created" in text(out.getvalue())
        view.warning("[failover] NVIDIA RTX A4000@EU-RO-1 -> US-IL-1: stock-out")
        view.pod_selected(PodSelected("p7x", "NVIDIA RTX A4000", "US-IL-1"))
        view.phase_started("wait_ssh", "127.0.0.1:2222")
        view.waiting("SSH", 30, "banner: connection refused")
        view.refresh()
        clock.now += 4.2
        view.phase_finished("wait_ssh", 4.2)
        view.phase_finished("provision", 6.0)
        view.info("[setup] pip install -r requirements.txt")
        view.phase_started("setup")
        view.log_line("Successfully installed x")
        view.phase_finished("setup", 11.0)
        view.phase_started("launch")
        view.phase_finished("launch", 0.4)
        view.phase_started("monitor")
        for step in range(1, 31):
            view.log_line(f"epoch {step} loss=[bold]{1 / step:.3f}[/bold]")
        view.cost(0.0123, 0.25)
        clock.now += 75
        view.phase_finished("monitor", 75.0)
        view.phase_started("pull")
        view.phase_finished("pull", 1.25)
        view.phase_started("lifecycle", "stop pod p7x")
        view.phase_finished("lifecycle", 0.5)
    raw = out.getvalue()
    final = final_frame(raw)

    assert "stack trainer  pod p7x  NVIDIA RTX A4000 @ US-IL-1  ssh 127.0.0.1:2222" in final
    rows = [line.rstrip() for line in final.splitlines()]
    assert rows[1:8] == [
        "✓ provision   6.0s + create",
        "✓   wait_ssh  4.2s 127.0.0.1:2222",
        "✓ setup      11.0s",
        "✓ launch      0.4s",
        "✓ monitor    1m15s",
        "✓ pull        1.2s",
        "✓ lifecycle   0.5s stop pod p7x",
    ]
    assert "$0.0123 spent of a $2.50 cap · $0.25/hr · elapsed 0:01:19 · 1 warning" in final
    assert "job log: last 10 of 31 lines" in final
    tail = rows[rows.index(next(r for r in rows if r.startswith("job log"))) + 1:]
    assert tail[:10] == [f"epoch {n} loss=[bold]{1 / n:.3f}[/bold]" for n in range(21, 31)], "no markup"
    assert "epoch 20 " not in final

    # warnings and notes are printed once, above the live area, and stay in the scrollback
    before = text(raw[: raw.rindex("\x1b[2K")])
    assert before.count("warning: [failover] NVIDIA RTX A4000@EU-RO-1 -> US-IL-1: stock-out") == 1
    assert before.count("[setup] pip install -r requirements.txt") == 1
    assert "warning:" not in final
    # while it ran: a spinner on the running phase, the heartbeat as its detail
    assert "waiting for SSH (30s) - banner: connection refused" in text(raw)
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] +wait_ssh", text(raw))


def test_phases_the_plan_announces_show_pending_then_skipped_failed_or_interrupted() -> None:
    console, out = terminal()
    view = RichReporter(console, monotonic=FakeClock())
    view.show_plan(a_plan(reuse=True))
    view.start()
    first = text(out.getvalue())
    assert "stack trainer  pod pod42" in first
    for phase in ("provision", "wait_ssh", "setup", "launch", "monitor", "pull", "lifecycle"):
        assert re.search(rf"· +{phase}\b", first), phase
    assert "stage" not in first and "preflight" not in first, "phases with nothing to do are not listed"
    assert "cost not measured yet (cap $2.50)" in first

    view.phase_started("provision", "> resume")
    view.phase_finished("provision", 2.0)
    view.phase_started("setup")
    view.phase_finished("setup", 3.5, ok=False)
    view.phase_started("lifecycle", "stop pod pod42")
    view.stop()
    final = final_frame(out.getvalue())
    assert re.search(r"✓ provision +2\.0s > resume", final)
    assert re.search(r"- +  wait_ssh +skipped", final)
    assert re.search(r"✗ setup +3\.5s", final)
    assert re.search(r"- +launch +skipped", final)
    assert re.search(r"! lifecycle +interrupted +stop pod pod42", final)


def test_warnings_before_the_run_are_plain_lines_and_do_not_start_the_view() -> None:
    """`apply_stack` reports the stack's load warnings before the plan is shown and confirmed:
    a live area (and its refresh thread) must not be on the screen during the prompt."""
    console, out = terminal()
    view = RichReporter(console, monotonic=FakeClock())
    view.warning("variable 'sede' is set but nothing in the stack uses it")
    assert text(out.getvalue()).endswith("warning: variable 'sede' is set but nothing in the stack uses it\n")
    assert "\x1b[?25l" not in out.getvalue(), "the cursor is hidden only once the view starts"
    view.phase_started("provision", "+ create")
    assert "\x1b[?25l" in out.getvalue()
    view.phase_finished("provision", 1.0)
    view.stop()
    assert "1 warning" in final_frame(out.getvalue())


def test_a_phase_run_again_counts_its_attempts_and_their_time() -> None:
    console, out = terminal()
    view = RichReporter(console, monotonic=FakeClock())
    with view:
        view.phase_started("provision", "+ create")
        view.phase_started("wait_ssh", "10.0.0.1:22")
        view.phase_finished("wait_ssh", 30.0, ok=False)
        view.phase_started("wait_ssh", "10.0.0.2:22")
        view.phase_finished("wait_ssh", 5.0)
        view.phase_finished("provision", 40.0)
    final = final_frame(out.getvalue())
    assert re.search(r"✓   wait_ssh +35\.0s x2 10\.0\.0\.2:22", final)
    assert "ssh 10.0.0.2:22" in final


def test_the_log_tail_shrinks_to_fit_a_short_terminal() -> None:
    console, out = terminal(height=12)
    view = RichReporter(console, monotonic=FakeClock())
    with view:
        view.phase_started("monitor")
        for n in range(50):
            view.log_line(f"line {n}")
        view.phase_finished("monitor", 1.0)
    final = final_frame(out.getvalue())
    assert "job log: last 7 of 50 lines" in final
    assert "line 49" in final and "line 42" not in final


def test_hooks_from_two_threads_at_once() -> None:
    """The log streams on its own thread while the main thread reports phases and cost."""
    console, out = terminal()
    view = RichReporter(console, refresh_per_second=50)
    errors: list[BaseException] = []
    go = threading.Barrier(2)

    def streamer() -> None:
        try:
            go.wait()
            for n in range(600):
                view.log_line(f"stream {n}")
                if n % 100 == 0:
                    view.cost(n / 10000, 0.44)
                if n % 250 == 0:
                    view.warning(f"from the stream {n}")
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    def phases() -> None:
        try:
            go.wait()
            for index in range(40):
                name = f"phase{index:02d}"
                view.phase_started(name, f"detail {index}")
                view.waiting("something", index)
                view.log_line(f"main {index}")
                view.phase_finished(name, 0.01 * index)
            view.warning("from the main thread")
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=streamer), threading.Thread(target=phases)]
    with view:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    raw = out.getvalue()
    final = final_frame(raw)
    assert "job log: last" in final and "of 640 lines" in final
    for index in (0, 17, 39):
        assert re.search(rf"✓ phase{index:02d} +\d+\.\ds detail {index}", final), index
    assert "$0.0500 spent · $0.44/hr" in final
    assert "4 warnings" in final
    before = text(raw[: raw.rindex("\x1b[2K")])
    for message in ("from the stream 0", "from the stream 250", "from the stream 500", "from the main thread"):
        assert before.count(f"warning: {message}") == 1, message


def test_the_final_cost_comes_from_the_run_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "runpod_deploy_pull_manifest.json"
    manifest.write_text('{"estimated_cost_usd": 0.0042, "gpu_price_per_hour_usd": 0.17}')
    console, out = terminal()
    view = RichReporter(console, monotonic=FakeClock())
    view.start()
    view.phase_started("monitor")
    view.phase_finished("monitor", 3.0)
    view.stop(manifest=manifest)
    assert "$0.0042 spent (estimate) · $0.17/hr" in final_frame(out.getvalue())


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize(("tty", "env", "live"), [
    (True, {"TERM": "xterm-256color"}, True),
    (True, {}, True),
    (False, {"TERM": "xterm-256color"}, False),
    (True, {"TERM": "xterm", "CI": "true"}, False),
    (True, {"TERM": "xterm", "CI": "1"}, False),
    (True, {"TERM": "xterm", "CI": ""}, True),
    (True, {"TERM": "xterm", "CI": "false"}, True),
    (True, {"TERM": "dumb"}, False),
])
def test_the_live_view_is_for_terminals_only(tty: bool, env: dict[str, str], live: bool) -> None:
    assert use_live_view(_Stream(tty), env) is live


def test_choosing_a_view_and_showing_help_do_not_import_rich_s_live_view() -> None:
    """`--help` renders with typer's rich help (some of rich is loaded for that already); the
    live view adds nothing to it, and the module that decides whether to use it imports no rich."""
    help_probe = (
        "import sys\n"
        "from runpod_deploy.cli import main\n"
        "for argv in (['--help'], ['apply', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('runpod_deploy.live', 'rich.live', 'rich.spinner') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", help_probe], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"

    import_probe = (
        "import sys, os\n"
        "from runpod_deploy.live import use_live_view\n"
        "use_live_view(sys.stderr, os.environ)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n"
    )
    done = subprocess.run([sys.executable, "-c", import_probe], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
