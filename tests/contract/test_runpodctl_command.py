"""What only the runpodctl provider has: a command whose output can be garbled, and a create
whose optional flags depend on the installed runpodctl (probed once per provider)."""

from __future__ import annotations

import logging

import pytest

from runpod_sim.testing import Simulator
from runtime.errors import ProviderProtocolError
from runtime.providers.runpodctl import RunpodctlProvider
from tests.contract.providers import build, pod_request

pytestmark = pytest.mark.sim  # every test here starts the simulator


@pytest.fixture
def runpodctl(runpod_sim: Simulator) -> RunpodctlProvider:
    provider = build("runpodctl", runpod_sim)
    assert isinstance(provider, RunpodctlProvider)
    return provider


def test_truncated_output_is_a_protocol_error_with_an_excerpt(
        runpodctl: RunpodctlProvider, runpod_sim: Simulator) -> None:
    runpodctl.create_pod(pod_request("ctr-stack--garbled-1"))
    runpod_sim.fault("runpodctl_malformed", count=1)
    with pytest.raises(ProviderProtocolError) as caught:
        runpodctl.list_pods()
    assert caught.value.excerpt.startswith("[") and caught.value.operation == "list"
    assert len(runpodctl.list_pods()) == 1, "the next answer is whole again"


def test_unsupported_create_flags_are_skipped_with_a_warning_and_probed_once(
        runpodctl: RunpodctlProvider, caplog: pytest.LogCaptureFixture) -> None:
    spot = pod_request("ctr-stack--spot-1", interruptible=True, min_vcpu_count=4)
    with caplog.at_level(logging.WARNING, logger="runtime.providers.runpodctl"):
        pod = runpodctl.create_pod(spot)
    skipped = sorted(m.split("--")[1].split()[0] for m in caplog.messages)
    assert skipped == ["min-vcpu-count", "spot"]
    assert pod.interruptible is False, "without --spot the pod is on-demand"
    assert runpodctl.calls == 2  # the --help probe, then the create

    runpodctl.create_pod(pod_request("ctr-stack--plain-1"))
    assert runpodctl.calls == 3
