"""The soak's judgement of the stream backlog (bench/soak/checking.py): a drain that keeps up
leaves a sawtooth, one that falls behind leaves a trend or growing teeth.

Series below: 120 s (unless said) at 1,000 events/s, a drain every 5 s, so the allowance is
5,000.
"""

from __future__ import annotations

import pytest

from bench.soak.checking import backlog_trend

RATE, FLUSH, DURATION = 1000, 5, 120


def sawtooth(t: int, period: int = 5, height: int = RATE * FLUSH) -> int:
    # /\/\/\ up to `height` and back to zero every `period` seconds
    return height * (t % period) // period


def series(at, duration: int = DURATION) -> list[tuple[float, int]]:
    return [(float(t), at(t)) for t in range(duration + 1)]


CASES = {
    # the drain keeps up: teeth of one interval's arrivals, back to zero each time
    "sawtooth": (lambda t: sawtooth(t), True),
    # teeth four intervals tall (a drain pass of 20 s), not growing: three teeth in the last
    # half of 120 s slope like a trend, too short a run to tell; fifteen in 600 s do not
    "slow teeth, 120 s": (lambda t: sawtooth(t, period=20, height=20_000), False),
    "slow teeth, 600 s": (lambda t: sawtooth(t, period=20, height=20_000), True, 600),
    # the drain is short by 10% of the arrivals: 100/s more each second
    "steady deficit": (lambda t: sawtooth(t) + 100 * t, False),
    # growing by 50/s: 6,000 over the run, under one tooth, so only the trend sees it
    "deficit under a tooth": (lambda t: sawtooth(t, height=20_000) + 50 * t, False),
    # a spike in the middle third hides the last half's growth from the peaks, not the trend
    "growth after a spike": (
        lambda t: 60_000 if t == 50 else sawtooth(t) + (200 * (t - 60) if t > 60 else 0),
        False),
    # one tooth far above the rest in the last third, at the middle of the last half (where
    # it does not tilt the slope): the peaks see it
    "taller tooth": (lambda t: 30_000 if t == 90 else sawtooth(t), False),
}


@pytest.mark.parametrize("name", CASES)
def test_bounded_means_no_trend_and_no_growing_teeth(name):
    at, bounded, *duration = CASES[name]
    duration = duration[0] if duration else DURATION
    judged = backlog_trend(series(at, duration), duration, RATE, FLUSH)
    assert judged["allowance"] == RATE * FLUSH
    assert judged["bounded"] is bounded, judged


def test_each_condition_alone_fails_a_growing_backlog():
    trend_only = backlog_trend(series(CASES["growth after a spike"][0]), DURATION, RATE, FLUSH)
    assert (trend_only["trend_ok"], trend_only["peaks_ok"]) == (False, True)
    peaks_only = backlog_trend(series(CASES["taller tooth"][0]), DURATION, RATE, FLUSH)
    assert (peaks_only["trend_ok"], peaks_only["peaks_ok"]) == (True, False)


def test_the_figures_of_a_steady_deficit():
    judged = backlog_trend(series(lambda t: 100 * t), DURATION, RATE, FLUSH)
    assert judged["slope_last_half_per_s"] == pytest.approx(100)
    assert judged["trend_over_run"] == 12_000
    assert (judged["max_middle_third"], judged["max_last_third"]) == (7_900, 12_000)


def test_too_few_samples_judge_nothing():
    judged = backlog_trend([(0.0, 0), (60.0, 10), (120.0, 0)], DURATION, RATE, FLUSH)
    assert judged["bounded"] is None
