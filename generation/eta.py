"""An honest "time left" for a render: from the measured time per step of this run on this backend,
smoothed, and nothing until a step has finished (issue 17 item 8).

The mean over all steps so far (what the backends used before) keeps the slow first step (warm-up,
thread start, compilation) in every later estimate, so the ETA started high and then fell faster than
time ("about 38 s left", done in 13 s). Here the first step only gives the first estimate; from the
second step on, an exponential moving average of the per-step time starts afresh without it, and
follows a machine that speeds up or slows down under load.
"""

from __future__ import annotations

import time
from collections.abc import Callable

ALPHA = 0.3  # weight of the newest step: steady against bursty steps, follows a slowdown within ~5 steps


class StepTimer:
    """Per-step timing of one run: `step(done)` after each step returns the seconds left, or None.

    `tail_s` is added to every estimate (work after the last step, e.g. decode and export, when the
    backend knows it from an earlier run). `clock` is injectable for tests.
    """

    def __init__(self, total: int, *, alpha: float = ALPHA, tail_s: float = 0.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if total < 1:
            raise ValueError(f"total must be at least 1 step, got {total}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.total = total
        self.alpha = alpha
        self.tail_s = max(0.0, tail_s)
        self._clock = clock
        self._last_t = clock()
        self._last_done = 0
        self._first_done: int | None = None  # how many steps the first measurement covered
        self.per_step_s: float | None = None  # the smoothed seconds per step

    def restart(self) -> None:
        """Start timing now (e.g. when the first step really begins, after loading)."""
        self._last_t = self._clock()

    def step(self, done: int) -> float | None:
        """`done` steps have finished (1-based): fold the time since the last call into the average and
        return the estimated seconds left (None before the first step has finished)."""
        now = self._clock()
        advanced = done - self._last_done
        if advanced > 0:
            dt = (now - self._last_t) / advanced
            if self.per_step_s is None or self._last_done == self._first_done:  # the first step carries the warm-up
                self.per_step_s = dt
            else:
                self.per_step_s = self.alpha * dt + (1 - self.alpha) * self.per_step_s
            if self._first_done is None:
                self._first_done = done
            self._last_t, self._last_done = now, done
        return self.eta_s(done)

    def eta_s(self, done: int) -> float | None:
        if self.per_step_s is None:
            return None
        return max(0, self.total - done) * self.per_step_s + self.tail_s
