"""Pod providers: the runpodctl command and the RunPod API, behind one protocol."""

from __future__ import annotations

import shutil
from collections.abc import Mapping

from runtime.providers.protocol import PodProvider

__all__ = ["PROVIDER_KINDS", "make_provider"]

PROVIDER_KINDS = ("runpodctl", "api")


def make_provider(kind: str, env: Mapping[str, str]) -> PodProvider | None:
    """The provider of that kind, or None when it cannot be used here (runpodctl not on PATH):
    the caller then plans with an incomplete observation. The API provider needs
    RUNPOD_API_KEY and raises ProviderAuthError without it."""
    if kind == "runpodctl":
        executable = env.get("RUNPOD_DEPLOY_RUNPODCTL", "runpodctl")
        found = shutil.which(executable, path=env.get("PATH"))
        if found is None:
            return None  # a plan with no provider: no need to import it (tenacity, subprocess)
        from runtime.providers.runpodctl import RunpodctlProvider

        return RunpodctlProvider(found, env=dict(env))
    if kind == "api":
        from runtime.providers.api import ApiProvider, ApiSettings

        return ApiProvider(ApiSettings.from_env(env))
    raise ValueError(f"unknown provider {kind!r}; expected one of {', '.join(PROVIDER_KINDS)}")
