"""generation.eta.StepTimer under a fake clock: no estimate before a step, exact for steady steps, and a
slow first step forgotten within a few steps (the mean kept it, so the ETA ran ahead of time)."""

from __future__ import annotations

import pytest

from generation.eta import StepTimer


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def test_no_estimate_until_a_step_has_finished():
    clock = FakeClock()
    timer = StepTimer(10, clock=clock)
    assert timer.eta_s(0) is None
    clock.advance(5.0)
    assert timer.step(0) is None  # nothing finished yet, however long it took
    clock.advance(1.0)
    assert timer.step(1) == pytest.approx(9 * 6.0)


def test_steady_steps_give_the_exact_time_left_plus_the_tail():
    clock = FakeClock()
    timer = StepTimer(8, tail_s=3.0, clock=clock)
    for done in range(1, 9):
        clock.advance(2.0)
        assert timer.step(done) == pytest.approx((8 - done) * 2.0 + 3.0)


def test_a_slow_first_step_is_forgotten_and_the_estimate_tracks_real_time():
    """First step 10 s (warm-up), then 1 s steps: the mean still says ~2.5 s/step at step 5; the
    smoothed estimate is within 20 % of the truth by step 8 and never below it by more than a step."""
    clock = FakeClock()
    total = 20
    timer = StepTimer(total, clock=clock)
    clock.advance(10.0)
    timer.step(1)
    errors = []
    for done in range(2, total + 1):
        clock.advance(1.0)
        eta = timer.step(done)
        truth = (total - done) * 1.0
        mean_eta = (10.0 + (done - 1)) / done * (total - done)  # the former estimate
        errors.append((done, eta, truth, mean_eta))
        assert eta >= truth - 1e-9  # it never promises less time than is left
    at8 = next(e for e in errors if e[0] == 8)
    assert at8[1] <= at8[2] * 1.2 + 1.0 < at8[3]  # smoothed: close to the truth; the mean: far above it


def test_several_steps_at_once_and_a_slowdown():
    clock = FakeClock()
    timer = StepTimer(10, alpha=0.5, clock=clock)
    clock.advance(4.0)
    assert timer.step(2) == pytest.approx(8 * 2.0)  # two steps in 4 s: 2 s each
    clock.advance(3.0)
    assert timer.step(3) == pytest.approx(7 * 3.0)  # the average starts afresh after the first measurement
    clock.advance(7.0)  # the machine slows down: 7 s for one step
    assert timer.step(4) == pytest.approx(6 * (0.5 * 7.0 + 0.5 * 3.0))
    assert timer.step(4) == pytest.approx(6 * 5.0)  # no new step: the same estimate


@pytest.mark.parametrize("kwargs", [{"total": 0}, {"total": 5, "alpha": 0.0}, {"total": 5, "alpha": 1.5}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        StepTimer(**kwargs)
