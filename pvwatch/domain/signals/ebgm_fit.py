"""Fitting DuMouchel's gamma-mixture prior by maximum likelihood, as openEBGM does, and refusing a bad fit.

Likelihood (openEBGM's `negLLzero`, the form the reference figures come from): only pairs with a >= 1 are
observed, so each negative-binomial component is truncated at zero on its own,

    L(theta) = prod_pairs  P f1(a) / (1 - f1(0)) + (1 - P) f2(a) / (1 - f2(0)),

with f_i the negative binomial of size alpha_i and probability beta_i/(beta_i + E) (DuMouchel 1999 eq. 2).
The other published form, (P f1 + (1-P) f2) / (1 - P f1(0) - (1-P) f2(0)) (vigipy; PhViD before 1.0.8), gives
materially different fits (CAERS: 80 instead of 131 pairs with EB05 >= 2): see docs/signals.md.

The fit is trusted only if it converged from several starts to the same optimum: L-BFGS-B with the exact
gradient in log/logit coordinates, within bounds, from every start in `STARTS`; the best converged optimum must
be confirmed by a second start within `agreement` of its negative log-likelihood (the surface is flat, so starts
are compared by likelihood, not by parameter values), or, if only one start found it, by a restart from around
it. Otherwise `PriorFitFailed` is raised: EBGM is not
published from an unconverged prior.

Data squashing (DuMouchel & Pregibon 2001; openEBGM's squashData): pairs with the same a and E are one point
with a weight (exact); when still many, points with the same a and E within 2% are merged for the starts, and
the best start is then polished on a 50x finer squash (E within 0.04%); the reported likelihood is the exact one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray
from scipy import optimize, special
from threadpoolctl import threadpool_limits

from pvwatch.domain.signals.disproportionality import FloatArray, GammaMixturePrior
from pvwatch.errors import PvwatchError

#: Starting priors (alpha1, beta1, alpha2, beta2, p): DuMouchel 1999's, openEBGM's documented pair,
#: PhViD/vigipy's, and three spread over plausible signal/null splits.
STARTS: tuple[tuple[float, float, float, float, float], ...] = (
    (0.2, 0.1, 2.0, 4.0, 1 / 3),
    (0.1, 0.1, 10.0, 10.0, 0.2),
    (0.2041, 0.05816, 1.415, 1.838, 0.0969),
    (3.0, 0.5, 2.0, 2.0, 0.1),
    (1.0, 0.2, 1.0, 1.0, 0.3),
    (5.0, 1.0, 1.0, 1.0, 0.05),
)
ALPHA_BETA_BOUNDS = (1e-5, 1e3)
P_BOUNDS = (1e-6, 1.0 - 1e-6)
#: Points beyond which the starts run on squashed data.
SQUASH_ABOVE = 20_000
SQUASH_RELATIVE_WIDTH = 0.02
#: Largest gradient component (in log/logit coordinates) accepted as an optimum when L-BFGS-B ends abnormally.
GRADIENT_TOL = 1e-3
#: Restarts around an optimum reached from one start only (shifts in log alpha, log beta, logit p).
CONFIRMATION_SHIFTS: tuple[tuple[float, float, float, float, float], ...] = (
    (0.3, 0.3, -0.3, -0.3, 0.3),
    (-0.3, -0.3, 0.3, 0.3, -0.3),
    (0.3, -0.3, 0.3, -0.3, 0.0),
)


class PriorFitFailed(PvwatchError):
    """No start converged, or the best optimum was not reached from a second start."""


@dataclass(frozen=True)
class WeightedPoints:
    """Distinct (a, E) values of the pairs with a >= 1 and how many pairs share each."""

    n: FloatArray
    expected: FloatArray
    weight: FloatArray

    def __post_init__(self) -> None:
        if not (self.n.shape == self.expected.shape == self.weight.shape):
            raise ValueError("n, expected and weight must have one element per point")
        if self.n.size == 0:
            raise PriorFitFailed("no product-event pair with a >= 1: nothing to fit")
        if np.any(self.n < 1) or np.any(self.expected <= 0) or np.any(self.weight <= 0):
            raise ValueError("points need a >= 1, E > 0 and a positive weight")

    @cached_property
    def distinct_n(self) -> tuple[FloatArray, NDArray[np.intp]]:
        """The distinct counts and each point's: the likelihood's gamma functions depend on n alone, and n takes
        about a thousand values over 10^5-10^6 points, so they are evaluated once per distinct n."""
        distinct, index = np.unique(self.n, return_inverse=True)
        return distinct, index

    @cached_property
    def log_expected(self) -> FloatArray:
        return np.log(self.expected)


def distinct_points(a: NDArray[np.int64], expected: FloatArray) -> tuple[WeightedPoints, NDArray[np.int64]]:
    """The distinct (a, E) of the pairs with how many pairs share each, and each pair's point: IC and EBGM depend
    on a pair only through a and E, so they are computed once per point (exact squashing, DuMouchel 2001)."""
    order = np.lexsort((expected, a))
    sorted_a, sorted_e = a[order], expected[order]
    starts = np.empty(a.size, dtype=np.bool_)
    starts[:1] = True
    starts[1:] = (sorted_a[1:] != sorted_a[:-1]) | (sorted_e[1:] != sorted_e[:-1])
    point_of_sorted = np.cumsum(starts) - 1
    point_of_pair = np.empty(a.size, dtype=np.int64)
    point_of_pair[order] = point_of_sorted
    weight = np.bincount(point_of_sorted).astype(np.float64)
    return WeightedPoints(sorted_a[starts].astype(np.float64), sorted_e[starts], weight), point_of_pair


@dataclass(frozen=True)
class StartOutcome:
    start: tuple[float, float, float, float, float]
    prior: GammaMixturePrior
    negative_log_likelihood: float
    converged: bool
    message: str
    iterations: int


@dataclass(frozen=True)
class PriorFit:
    """The accepted prior and the facts that justify trusting it (written to HYPER.json)."""

    prior: GammaMixturePrior
    negative_log_likelihood: float
    starts: tuple[StartOutcome, ...]
    agreeing_starts: int
    gradient_norm: float
    at_bound: tuple[str, ...]
    points: int
    squashed_points: int
    likelihood: str = "openEBGM zero-truncated: P f1/(1-f1(0)) + (1-P) f2/(1-f2(0)), pairs with a >= 1"
    notes: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, object]:
        p = self.prior
        return {
            "alpha1": p.alpha1, "beta1": p.beta1, "alpha2": p.alpha2, "beta2": p.beta2, "p": p.p,
            "log_likelihood": -self.negative_log_likelihood,
            "negative_log_likelihood": self.negative_log_likelihood,
            "converged": True,
            "likelihood": self.likelihood,
            "agreeing_starts": self.agreeing_starts,
            "gradient_norm": self.gradient_norm,
            "at_bound": list(self.at_bound),
            "points": self.points,
            "squashed_points": self.squashed_points,
            "starts": [
                {"start": list(s.start), "estimate": list(s.prior.as_tuple()),
                 "negative_log_likelihood": s.negative_log_likelihood, "converged": s.converged,
                 "iterations": s.iterations, "message": s.message}
                for s in self.starts
            ],
        }


def _to_free(theta: tuple[float, float, float, float, float]) -> FloatArray:
    a1, b1, a2, b2, p = theta
    return np.array([np.log(a1), np.log(b1), np.log(a2), np.log(b2), np.log(p) - np.log1p(-p)])


def _from_free(u: FloatArray) -> tuple[float, float, float, float, float]:
    return (float(np.exp(u[0])), float(np.exp(u[1])), float(np.exp(u[2])), float(np.exp(u[3])),
            float(special.expit(u[4])))


def _component(points: WeightedPoints, alpha: float, beta: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Zero-truncated NB log density and its derivatives in alpha and beta."""
    n, e = points.n, points.expected
    distinct_n, index = points.distinct_n
    log_b = np.log(beta)
    log_be = np.log(beta + e)
    r = log_b - log_be  # log of the NB success probability
    log_coefficient = special.gammaln(distinct_n + alpha) - special.gammaln(alpha) - special.gammaln(distinct_n + 1.0)
    log_pmf = log_coefficient[index] + alpha * r + n * (points.log_expected - log_be)
    one_minus_f0 = -np.expm1(alpha * r)
    log_trunc = log_pmf - np.log(one_minus_f0)
    d_alpha = (special.digamma(distinct_n + alpha) - special.digamma(alpha))[index] + r / one_minus_f0
    d_beta = alpha * e / (beta * (beta + e) * one_minus_f0) - n / (beta + e)
    return np.asarray(log_trunc), np.asarray(d_alpha), np.asarray(d_beta)


def negative_log_likelihood(theta: tuple[float, float, float, float, float], points: WeightedPoints) -> float:
    """openEBGM's zero-truncated negative log-likelihood at theta = (alpha1, beta1, alpha2, beta2, p)."""
    return _objective(_to_free(theta), points)[0]


def _objective(u: FloatArray, points: WeightedPoints) -> tuple[float, FloatArray]:
    a1, b1, a2, b2, p = _from_free(u)
    l1, da1, db1 = _component(points, a1, b1)
    l2, da2, db2 = _component(points, a2, b2)
    first = np.log(p) + l1
    second = np.log1p(-p) + l2
    log_mix = np.logaddexp(first, second)
    q = np.exp(first - log_mix)  # share of the first component in each point's likelihood
    w = points.weight
    # weighted sums as (w * x).sum(), not np.dot: BLAS threads spinning on a busy machine made each dot 40x slower
    gradient = -np.array([
        a1 * (w * q * da1).sum(), b1 * (w * q * db1).sum(),
        a2 * (w * (1 - q) * da2).sum(), b2 * (w * (1 - q) * db2).sum(),
        p * (1 - p) * (w * (q / p - (1 - q) / (1 - p))).sum(),
    ])
    value = -float((w * log_mix).sum())
    if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
        return np.inf, np.zeros(5)
    return value, gradient


def squash(points: WeightedPoints, relative_width: float = SQUASH_RELATIVE_WIDTH) -> WeightedPoints:
    """Merge points with the same a whose E fall in the same bin of log E of the given width (weighted mean E)."""
    bins = np.floor(np.log(points.expected) / np.log1p(relative_width)).astype(np.int64)
    keys = (points.n.astype(np.int64) << 32) | (bins - bins.min())  # one int64 key: a, then the bin of log E
    _, inverse = np.unique(keys, return_inverse=True)
    weight = np.asarray(np.bincount(inverse, weights=points.weight), dtype=np.float64)
    return WeightedPoints(
        n=np.bincount(inverse, weights=points.n * points.weight) / weight,
        expected=np.bincount(inverse, weights=points.expected * points.weight) / weight,
        weight=weight,
    )


def _bounds() -> list[tuple[float, float]]:
    lo, hi = np.log(ALPHA_BETA_BOUNDS[0]), np.log(ALPHA_BETA_BOUNDS[1])
    plo, phi = special.logit(P_BOUNDS[0]), special.logit(P_BOUNDS[1])
    return [(lo, hi)] * 4 + [(float(plo), float(phi))]


def _minimise(start: FloatArray, points: WeightedPoints, max_iterations: int,
              ftol: float = 1e-13) -> optimize.OptimizeResult:
    return optimize.minimize(_objective, start, args=(points,), jac=True, method="L-BFGS-B", bounds=_bounds(),
                             options={"maxiter": max_iterations, "ftol": ftol, "gtol": 1e-7})


def _canonical(theta: tuple[float, float, float, float, float]) -> GammaMixturePrior:
    """Component 1 is the one with the larger prior mean (the 'signal' component, as openEBGM's CAERS fit)."""
    a1, b1, a2, b2, p = theta
    if a1 / b1 < a2 / b2:
        a1, b1, a2, b2, p = a2, b2, a1, b1, 1 - p
    return GammaMixturePrior(a1, b1, a2, b2, p)


def _run_start(start: tuple[float, float, float, float, float], points: WeightedPoints,
               max_iterations: int, ftol: float = 1e-13) -> StartOutcome:
    result = _minimise(_to_free(start), points, max_iterations, ftol)
    value = float(result.fun)
    # L-BFGS-B may stop on a line search that cannot improve in floating point at the optimum itself: accept
    # that only with a vanishing gradient.
    converged = np.isfinite(value) and (bool(result.success) or float(np.max(np.abs(result.jac))) < GRADIENT_TOL)
    return StartOutcome(start, _canonical(_from_free(result.x)), value, converged, str(result.message),
                        int(result.nit))


def fit_prior(points: WeightedPoints, *, starts: tuple[tuple[float, float, float, float, float], ...] = STARTS,
              agreement: float = 0.01, max_iterations: int = 2000) -> PriorFit:
    """Maximum-likelihood gamma-mixture prior from several starts, polished on the exact points.

    Raises PriorFitFailed if no start converges or if the best optimum is not confirmed by another start.
    L-BFGS-B works on 5-vectors through BLAS: with BLAS threads each call cost ~6 ms on a busy 2-core machine
    (threads spinning) instead of microseconds, so the fit runs with one BLAS thread.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_prior(points, starts, agreement, max_iterations)


def _fit_prior(points: WeightedPoints, starts: tuple[tuple[float, float, float, float, float], ...],
               agreement: float, max_iterations: int) -> PriorFit:
    working = squash(points) if points.n.size > SQUASH_ABOVE else points
    # On squashed data the starts stop at a relative improvement of 1e-10 (below 0.01 in the negative
    # log-likelihood for up to 10^8 pairs), and only the best is polished to 1e-13.
    start_ftol = 1e-13 if working is points else 1e-10
    # The starts are independent: two threads (numpy and scipy.special release the GIL in their loops) use both
    # cores; the outcomes are the same as one after the other, in the order of `starts`.
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda start: _run_start(start, working, max_iterations, start_ftol), starts))
    converged = sorted((o for o in outcomes if o.converged), key=lambda o: o.negative_log_likelihood)
    if not converged:
        raise PriorFitFailed("the EBGM prior fit did not converge from any of "
                             f"{len(starts)} starts: {outcomes[0].message}")
    best = converged[0]
    agreeing = sum(1 for o in converged if o.negative_log_likelihood - best.negative_log_likelihood <= agreement)
    if agreeing < 2:
        # Reached from one start only: restart from around it; a true local optimum pulls them back.
        free = _to_free(best.prior.as_tuple())
        for shift in CONFIRMATION_SHIFTS:
            confirmation = _run_start(_from_free(free + np.asarray(shift)), working, max_iterations, start_ftol)
            outcomes.append(confirmation)
            if confirmation.converged and abs(confirmation.negative_log_likelihood
                                              - best.negative_log_likelihood) <= agreement:
                agreeing += 1
    if agreeing < 2:
        runner_up = f"{converged[1].negative_log_likelihood:.3f}" if len(converged) > 1 else "nothing"
        raise PriorFitFailed(
            f"the best EBGM prior fit (negative log-likelihood {best.negative_log_likelihood:.3f}) was reached from "
            f"one start only; the next converged start reached {runner_up}")
    prior = best.prior
    if working is not points:
        # Polish on a 50x finer squash (its likelihood is within ~0.01 of the exact one on 10^5-10^6 pairs);
        # the likelihood reported below is the exact one.
        fine = squash(points, SQUASH_RELATIVE_WIDTH / 50)
        polished = _minimise(_to_free(prior.as_tuple()), fine, max_iterations)
        if polished.success or polished.fun <= _objective(_to_free(prior.as_tuple()), fine)[0]:
            prior = _canonical(_from_free(polished.x))
        else:
            raise PriorFitFailed(f"the EBGM prior fit did not converge on the finely squashed data: "
                                 f"{polished.message}")
    value, gradient = _objective(_to_free(prior.as_tuple()), points)
    lo, hi = ALPHA_BETA_BOUNDS
    names = ("alpha1", "beta1", "alpha2", "beta2")
    at_bound = tuple(name for name, v in zip(names, prior.as_tuple()[:4], strict=True)
                     if np.isclose(v, lo, rtol=1e-3) or np.isclose(v, hi, rtol=1e-3))
    if np.isclose(prior.p, P_BOUNDS[0], atol=1e-5) or np.isclose(prior.p, P_BOUNDS[1], atol=1e-5):
        at_bound += ("p",)
    return PriorFit(
        prior=prior, negative_log_likelihood=value, starts=tuple(outcomes), agreeing_starts=agreeing,
        gradient_norm=float(np.linalg.norm(gradient)), at_bound=at_bound, points=int(points.n.size),
        squashed_points=int(working.n.size),
    )
