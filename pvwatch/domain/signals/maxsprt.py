"""Poisson maximised sequential probability ratio test (MaxSPRT) with continuous monitoring.

Kulldorff, Davis, Kolczak, Lewis, Lieu & Platt 2011, "A Maximized Sequential Probability Ratio Test for Drug and
Vaccine Safety Surveillance", Sequential Analysis 30:58-78. Under H0 the adverse-event count c after exposure
with expected count mu (background rate x exposure) is Poisson(mu); the test statistic is

    LLR(c, mu) = (mu - c) + c ln(c / mu)   if c > mu,   else 0,

and a signal is raised at the first time LLR >= CV with at least M events. CV is the exact critical value for the
level alpha, the surveillance length T (the expected count at which surveillance ends) and M, as computed by
R Sequential's CV.Poisson: between events LLR falls, so the test can only reject at the arrival of the c-th event,
and it does so if that arrival comes before mu_c, the expected count at which LLR(c, mu_c) = CV. The type I error
is therefore 1 - P(N(min(mu_c, T)) < c for every c >= M), a finite sum computed by dynamic programming over the
Poisson process, and CV is the root of alpha(CV) = alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from pvwatch.domain.signals.disproportionality import FloatArray


@dataclass(frozen=True)
class MaxSprtDecision:
    """One look at the accumulated data: the statistic, the boundary and whether it is crossed."""

    observed: int
    expected: float
    llr: float
    critical_value: float
    min_events: int
    signal: bool


def log_likelihood_ratio(observed: int, expected: float) -> float:
    """Kulldorff 2011 eq. (1) for the Poisson model: one-sided, zero unless more events than expected."""
    if expected <= 0:
        raise ValueError("expected count must be positive")
    if observed <= expected:
        return 0.0
    return (expected - observed) + observed * math.log(observed / expected)


def _boundary_times(critical_value: float, counts: FloatArray) -> FloatArray:
    """mu_c < c solving (mu - c) + c ln(c/mu) = CV, for each count c: mu_c = c x with x - ln x = 1 + CV/c,
    x = -W0(-exp(-(1 + CV/c))) (Lambert W, principal branch, which gives the root below 1)."""
    x = -special.lambertw(-np.exp(-(1.0 + critical_value / counts)), 0).real
    return np.asarray(counts * x, dtype=np.float64)


def type_one_error(critical_value: float, surveillance_length: float, min_events: int = 1) -> float:
    """Exact probability under H0 of a signal before the expected count reaches `surveillance_length`."""
    if surveillance_length <= 0 or min_events < 1:
        raise ValueError("surveillance length must be positive and the minimum event count at least 1")
    # Last count that can still be reached inside the boundary: beyond it mu_c > T and the boundary is at T.
    last = int(max(min_events, math.ceil(surveillance_length))) + 1
    while _boundary_times(critical_value, np.array([float(last)]))[0] < surveillance_length:
        last *= 2
    counts = np.arange(min_events, last + 1, dtype=np.float64)
    times = np.minimum(_boundary_times(critical_value, counts), surveillance_length)
    # survive[k] = P(N(t) = k and no signal so far), for k below the current boundary count c.
    survive = _poisson_pmf(min_events, float(times[0]))
    previous = times[0]
    for c, t in zip(counts[1:], times[1:], strict=True):
        mean = float(t - previous)
        # the increment's pmf beyond mean + 12 sd is below 1e-30: no need to convolve with it
        width = min(int(c), int(mean + 12.0 * math.sqrt(mean) + 30.0))
        survive = np.convolve(survive, _poisson_pmf(width, mean))[: int(c)]
        previous = t
        if t >= surveillance_length:
            break
    return float(1.0 - survive.sum())


def _poisson_pmf(size: int, mean: float) -> FloatArray:
    """P(X = k) for k = 0 .. size-1, X ~ Poisson(mean)."""
    k = np.arange(size, dtype=np.float64)
    if mean == 0.0:
        return np.asarray(k == 0, dtype=np.float64)
    return np.asarray(np.exp(k * math.log(mean) - mean - special.gammaln(k + 1.0)), dtype=np.float64)


def critical_value(alpha: float, surveillance_length: float, min_events: int = 1) -> float:
    """Exact CV for level alpha, surveillance length T (expected events under H0) and minimum count M
    (Kulldorff 2011 section 3; equals R Sequential::CV.Poisson with D = 0 to its printed digits)."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be between 0 and 1")

    def excess(cv: float) -> float:
        return type_one_error(cv, surveillance_length, min_events) - alpha

    if excess(1e-9) < 0:
        raise ValueError(f"with T={surveillance_length} and M={min_events} even CV=0 has type I error below "
                         f"{alpha}: no critical value exists")
    return float(optimize.brentq(excess, 1e-9, 50.0, xtol=1e-10, rtol=1e-12))


def monitor(observed: int, expected: float, critical: float, min_events: int = 1) -> MaxSprtDecision:
    """The decision at one look: signal when LLR >= CV and at least `min_events` events have occurred."""
    llr = log_likelihood_ratio(observed, expected)
    return MaxSprtDecision(observed, expected, llr, critical, min_events,
                           signal=observed >= min_events and llr >= critical)
