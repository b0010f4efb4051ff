"""The simulator's clock: wall time that a test may freeze and move forward.

Billing and every lifecycle timer read this clock, so freezing it makes billing exact and
advancing it fires the timers, without the test sleeping.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Wall-clock seconds since the epoch, plus a test-controlled offset; optionally frozen."""

    def __init__(self, offset: float = 0.0, frozen_at: float | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = offset
        self._frozen_at = frozen_at

    def now(self) -> float:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset

    def freeze(self) -> float:
        with self._lock:
            if self._frozen_at is None:
                self._frozen_at = time.time() + self._offset
            return self._frozen_at

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.time()
                self._frozen_at = None

    def advance(self, seconds: float) -> float:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds
        return self.now()

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def to_json(self) -> dict[str, float | None]:
        with self._lock:
            return {"offset": self._offset, "frozen_at": self._frozen_at}
