"""How many RunPod API requests an apply costs, read from the simulator's request log. Each
request is a round trip a user waits for (and a chance of a 429): the read side of a plan is
one request with the API provider, the plan's catalog serves the failover, and a resume asks
only what it must."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.observed import CloudType
from reconciler.state import StackState
from runtime.clock import SystemClock
from runtime.observe import observe
from runtime.providers.api import ApiProvider, ApiSettings

from .conftest import Project

pytestmark = pytest.mark.sim

RECYCLE = {"lifecycle": {"on_success": "recycle"}, "artifacts": []}


def roots(requests: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Each request as its GraphQL root fields (REST requests as their route)."""
    return [tuple(r["fields"]) or (r["route"],) for r in requests]


def test_a_warm_apply_reads_the_account_once_and_asks_only_resume_polls_and_stop(
        project: Project) -> None:
    config = project.stack(RECYCLE)
    first = project.apply(config)
    assert first.ok, first.detail
    project.sim.requests(clear=True)

    second = project.apply(config)
    assert second.ok and second.pod_id == first.pod_id, second.detail
    asked = roots(project.sim.requests())
    assert asked[0] == ("myself", "gpuTypes", "dataCenters"), "pods and catalog in one request"
    assert asked[1] == ("podResume",), "no second look at a pod the listing described in full"
    polls = asked[2:-1]
    assert polls and set(polls) == {("pod",)}, asked
    assert asked[-1] == ("podStop",)
    project.assert_no_leak(config)


def test_a_cold_apply_reads_the_catalog_once(project: Project) -> None:
    config = project.stack()
    project.sim.requests(clear=True)
    result = project.apply(config)
    assert result.ok, result.detail
    asked = roots(project.sim.requests())
    assert sum("gpuTypes" in fields for fields in asked) == 1, asked
    assert asked[0] == ("myself", "gpuTypes", "dataCenters")
    assert ("podFindAndDeployOnDemand",) in asked
    project.assert_no_leak(config)


def test_an_unreadable_catalog_is_still_only_a_note(project: Project) -> None:
    """The one-request read fails as a whole when its catalog part does; the pods are then
    listed on their own and the catalog failure is a note, as with separate calls."""
    settings = ApiSettings.from_env(project.sim.env)
    provider = ApiProvider(settings)
    project.sim.fault("http_error", status=502, count=100, route="gpuTypes")
    seen = observe(provider, StackState.empty(), prefix="e2e--", clock=SystemClock(),
                   cloud_type=CloudType.SECURE)
    project.sim.clear_faults()
    assert seen.complete and seen.catalog is None
    assert any(note.startswith("catalog unavailable") for note in seen.notes), seen.notes
