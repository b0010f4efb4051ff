"""Fixtures of the provider contract suite: each provider kind built the way the CLI builds it
(`make_provider(kind, env)`) against a fresh simulator, plus the other kind on the same cloud."""

from __future__ import annotations

import pytest

from runpod_sim.testing import Simulator
from runtime.providers import PROVIDER_KINDS
from tests.contract.providers import Provider, build


@pytest.fixture(params=PROVIDER_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def provider(kind: str, runpod_sim: Simulator) -> Provider:
    return build(kind, runpod_sim)


@pytest.fixture
def other(kind: str, runpod_sim: Simulator) -> Provider:
    """The other provider kind on the same simulator: both must see the same pods."""
    (other_kind,) = (k for k in PROVIDER_KINDS if k != kind)
    return build(other_kind, runpod_sim)
