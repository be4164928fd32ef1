"""Disproportionality statistics of product-event 2x2 tables, vectorised over every pair at once.

The table of one product-event pair, counted over distinct reports (never over rows or pair counts):

    a = reports with the product and the event     b = the product, not the event
    c = the event, not the product                 d = neither            N = a + b + c + d

and expected = (a + b)(a + c) / N, the count of a if product and event were reported independently.

Zero-cell policy (one policy, stated once): a statistic whose definition divides by zero is missing (NaN, an
empty cell in OUT.csv), never Inf and never computed on cells with a continuity correction added. So PRR is
missing when c = 0; ROR and its interval when any cell is 0 (as open-altio; vigipy adds 0.5 to every cell of
such tables instead); chi-square when a margin is 0. IC and EBGM are Bayesian shrinkage estimates and are
defined for every table.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

FloatArray = NDArray[np.float64]
CountArray = NDArray[np.int64]

#: 97.5% standard-normal quantile for two-sided 95% Wald intervals.
Z_975 = 1.959963984540054
#: Pairs (or distinct (a, E) points) scored at a time: the temporaries (~1 MB each) stay in cache, and no fresh
#: memory is faulted in per step (at 10M reports the unchunked EBGM scores spent ~2 s of system time on it).
SCORE_CHUNK = 1 << 17


@dataclass(frozen=True)
class PairCounts:
    """The 2x2 cells of every product-event pair (one element per pair), counted over distinct reports."""

    a: CountArray
    b: CountArray
    c: CountArray
    d: CountArray

    @property
    def total(self) -> CountArray:
        return self.a + self.b + self.c + self.d

    def expected(self) -> FloatArray:
        """Expected count of a under independence: (a+b)(a+c)/N (Evans 2001; DuMouchel 1999 "E")."""
        n = self.total.astype(np.float64)
        return (self.a + self.b).astype(np.float64) * (self.a + self.c).astype(np.float64) / n


@dataclass(frozen=True)
class FrequentistStatistics:
    """PRR with Pearson chi-square (with and without Yates' correction) and ROR with its 95% interval."""

    prr: FloatArray
    chi2: FloatArray
    chi2_yates: FloatArray
    ror: FloatArray
    ror_lo95: FloatArray
    ror_hi95: FloatArray


def _safe_divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def frequentist(counts: PairCounts) -> FrequentistStatistics:
    """PRR and chi-square (Evans, Waller & Davis 2001, Pharmacoepidemiol Drug Saf 10:483) and ROR with a Wald
    95% interval on the log scale (van Puijenbroek et al. 2002, Pharmacoepidemiol Drug Saf 11:3).

    PRR = [a/(a+b)] / [c/(c+d)]. Pearson chi-square of the 2x2 table N(ad-bc)^2 / ((a+b)(c+d)(a+c)(b+d)); with
    Yates' continuity correction N(max(0, |ad-bc| - N/2))^2 / (same), the usual convention of not letting the
    correction overshoot zero. ROR = ad/(bc), 95% CI exp(ln ROR +- 1.96 sqrt(1/a + 1/b + 1/c + 1/d)).
    Computed in chunks of pairs (cache-sized temporaries; each pair's values are its own).
    """
    size = counts.a.size
    if size <= SCORE_CHUNK:
        return _frequentist(counts)
    columns = {name: np.empty(size) for name in ("prr", "chi2", "chi2_yates", "ror", "ror_lo95", "ror_hi95")}
    for start in range(0, size, SCORE_CHUNK):
        part = slice(start, start + SCORE_CHUNK)
        chunk = _frequentist(PairCounts(counts.a[part], counts.b[part], counts.c[part], counts.d[part]))
        for name, values in columns.items():
            values[part] = getattr(chunk, name)
    return FrequentistStatistics(**columns)


def _frequentist(counts: PairCounts) -> FrequentistStatistics:
    a, b, c, d = (x.astype(np.float64) for x in (counts.a, counts.b, counts.c, counts.d))
    n = a + b + c + d
    prr = _safe_divide(a * (c + d), (a + b) * c)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = np.abs(a * d - b * c)
    chi2 = _safe_divide(n * cross**2, margins)
    chi2_yates = _safe_divide(n * np.maximum(0.0, cross - n / 2.0) ** 2, margins)
    has_zero_cell = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ror = np.log(a) + np.log(d) - np.log(b) - np.log(c)
        half_width = Z_975 * np.sqrt(1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d)
    log_ror = np.where(has_zero_cell, np.nan, log_ror)
    return FrequentistStatistics(
        prr=prr, chi2=chi2, chi2_yates=chi2_yates, ror=np.exp(log_ror),
        ror_lo95=np.exp(log_ror - half_width), ror_hi95=np.exp(log_ror + half_width),
    )


def information_component(a: CountArray, expected: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Norén's shrinkage IC and the lower end of its 95% credibility interval, IC025.

    Norén, Hopstadius & Bate 2013 (Stat Methods Med Res 22:57): IC = log2((a + 0.5)/(E + 0.5)), the log2 of
    the mean of a Gamma(a + 0.5, rate E + 0.5) posterior of the observed-to-expected ratio; IC025 = log2 of its
    2.5% quantile, computed here exactly (the paper's closed-form approximation
    IC - 3.3 (a+0.5)^-1/2 - 2 (a+0.5)^-3/2, used by open-altio, differs by up to ~0.1 at small a).
    This is not the BCPNN IC of Bate 1998 (vigipy, PhViD), which differs by up to 0.8.
    """
    shape = a.astype(np.float64) + 0.5
    rate = expected + 0.5
    ic = np.log2(shape / rate)
    ic025 = np.log2(_on_distinct(shape, lambda s: special.gammaincinv(s, 0.025)) / rate)
    return ic, ic025


def _on_distinct(values: FloatArray, function: Callable[[FloatArray], FloatArray]) -> FloatArray:
    """function(values) evaluated once per distinct value: gamma shapes depend on a alone, and a takes about a
    thousand values over a million pairs, so the costly inverse incomplete gamma runs a thousand times."""
    distinct, index = np.unique(values, return_inverse=True)
    return np.asarray(function(distinct), dtype=np.float64)[index]


def information_component_approx025(a: CountArray, expected: FloatArray) -> FloatArray:
    """Norén 2013's closed-form approximation of IC025 (for comparison with tools that use it)."""
    shape = a.astype(np.float64) + 0.5
    ic = np.log2(shape / (expected + 0.5))
    return np.asarray(ic - 3.3 * shape**-0.5 - 2.0 * shape**-1.5, dtype=np.float64)


@dataclass(frozen=True)
class GammaMixturePrior:
    """DuMouchel's (1999, Am Stat 53:177) prior of the relative reporting ratio lambda of a pair:
    p Gamma(alpha1, rate beta1) + (1 - p) Gamma(alpha2, rate beta2), with a ~ Poisson(lambda E)."""

    alpha1: float
    beta1: float
    alpha2: float
    beta2: float
    p: float

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        return (self.alpha1, self.beta1, self.alpha2, self.beta2, self.p)


@dataclass(frozen=True)
class EmpiricalBayesScores:
    """EBGM and the 5% and 95% quantiles of the posterior of lambda (EB05, EB95), one element per pair."""

    ebgm: FloatArray
    eb05: FloatArray
    eb95: FloatArray


def negative_binomial_logpmf(n: FloatArray, expected: FloatArray, alpha: float, beta: float) -> FloatArray:
    """log P(a = n) when lambda ~ Gamma(alpha, rate beta) and a ~ Poisson(lambda E): a negative binomial with
    size alpha and success probability beta/(beta + E) (DuMouchel 1999, eq. 2)."""
    return np.asarray(
        special.gammaln(n + alpha) - special.gammaln(alpha) - special.gammaln(n + 1.0)
        + alpha * (np.log(beta) - np.log(beta + expected)) + n * (np.log(expected) - np.log(beta + expected)),
        dtype=np.float64,
    )


def posterior_weight(prior: GammaMixturePrior, n: FloatArray, expected: FloatArray) -> FloatArray:
    """Q: posterior probability that a pair's lambda comes from the first gamma component (DuMouchel 1999 eq. 5,
    with the untruncated negative binomials, as openEBGM's Qn)."""
    log_first = np.log(prior.p) + negative_binomial_logpmf(n, expected, prior.alpha1, prior.beta1)
    log_second = np.log1p(-prior.p) + negative_binomial_logpmf(n, expected, prior.alpha2, prior.beta2)
    return np.asarray(np.exp(log_first - np.logaddexp(log_first, log_second)), dtype=np.float64)


def empirical_bayes(prior: GammaMixturePrior, a: CountArray, expected: FloatArray) -> EmpiricalBayesScores:
    """EBGM = exp(E[ln lambda | a]) and EB05/EB95 of the posterior mixture
    Q Gamma(alpha1 + a, beta1 + E) + (1 - Q) Gamma(alpha2 + a, beta2 + E) (DuMouchel 1999, eqs. 5-7).

    Quantiles are exact roots of the mixture CDF (to 1e-10 relative), not openEBGM's 2-decimal bisection.
    Chunks of points are scored on two threads (scipy's ufuncs release the GIL, so they run on two cores); each
    point's scores are its own, whatever the chunking.
    """
    n = a.astype(np.float64)
    ebgm, eb05, eb95 = np.empty(n.size), np.empty(n.size), np.empty(n.size)

    def score(start: int) -> None:
        part = slice(start, start + SCORE_CHUNK)
        ebgm[part], eb05[part], eb95[part] = _scores(prior, n[part], expected[part])

    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in pool.map(score, range(0, n.size, SCORE_CHUNK)):
            pass
    return EmpiricalBayesScores(ebgm=ebgm, eb05=eb05, eb95=eb95)


def _scores(prior: GammaMixturePrior, n: FloatArray, expected: FloatArray) -> tuple[FloatArray, FloatArray,
                                                                                     FloatArray]:
    q = posterior_weight(prior, n, expected)
    shape1, rate1 = prior.alpha1 + n, prior.beta1 + expected
    shape2, rate2 = prior.alpha2 + n, prior.beta2 + expected
    mean_log = q * (special.digamma(shape1) - np.log(rate1)) + (1.0 - q) * (special.digamma(shape2) - np.log(rate2))
    return (np.exp(mean_log), mixture_quantile(0.05, q, shape1, rate1, shape2, rate2),
            mixture_quantile(0.95, q, shape1, rate1, shape2, rate2))


def mixture_quantile(probability: float, q: FloatArray, shape1: FloatArray, rate1: FloatArray,
                     shape2: FloatArray, rate2: FloatArray, *, rtol: float = 1e-10) -> FloatArray:
    """The `probability` quantile of q Gamma(shape1, rate1) + (1 - q) Gamma(shape2, rate2), elementwise.

    The root lies between the two components' own quantiles. Halley's method on u = ln x (the CDF F is smooth
    and monotone in u, and x stays positive) starts at the quantile of the component with the larger weight;
    each step narrows that bracket, and a step that leaves it is replaced by bisection. With g_i the component
    terms of dF/du = sum q_i y_i^s_i e^-y_i / Gamma(s_i) (y_i = rate_i x), d2F/du2 = sum g_i (s_i - y_i), so
    Halley's step h_N / (1 + h_N F''/(2F')), h_N being Newton's, needs no more incomplete gammas than Newton's.
    Its error after a step h is about shape h^3 in u (the curvature of ln F grows with the shape), so a step
    below (rtol / 100 / shape)^(1/3) is the last; typically 2 steps, leaving about 1e-12 relative (inside rtol).
    The components' quantiles depend on a alone (through the shape)."""
    first = np.log(_on_distinct(shape1, lambda s: special.gammaincinv(s, probability)) / rate1)
    second = np.log(_on_distinct(shape2, lambda s: special.gammaincinv(s, probability)) / rate2)
    low, high = np.minimum(first, second), np.maximum(first, second)
    u = np.where(q >= 0.5, first, second)
    log_norm1, log_norm2 = _on_distinct(shape1, special.gammaln), _on_distinct(shape2, special.gammaln)
    last_step = np.maximum(rtol, np.cbrt(0.01 * rtol / np.maximum(shape1, shape2)))
    active = np.flatnonzero(high - low > rtol)
    for _ in range(200):
        if active.size == 0:
            break
        ua, qa, s1, s2 = u[active], q[active], shape1[active], shape2[active]
        y1, y2 = rate1[active] * np.exp(ua), rate2[active] * np.exp(ua)
        excess = qa * special.gammainc(s1, y1) + (1.0 - qa) * special.gammainc(s2, y2) - probability
        g1 = qa * np.exp(s1 * np.log(y1) - y1 - log_norm1[active])
        g2 = (1.0 - qa) * np.exp(s2 * np.log(y2) - y2 - log_norm2[active])
        slope, bend = g1 + g2, g1 * (s1 - y1) + g2 * (s2 - y2)
        below = excess < 0
        lo, hi = np.where(below, ua, low[active]), np.where(below, high[active], ua)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = -excess / slope
            halley = 1.0 + 0.5 * newton * bend / slope
            # Halley's correction only while it is moderate (near the root it tends to 1); on a plateau of F it
            # would crawl, and Newton's long step leaves the bracket for a bisection instead
            step = np.where((halley >= 0.5) & (halley <= 2.0), newton / halley, newton)
        new_u = ua + step
        # Near the root the Newton and Halley steps agree; on a plateau of F (slope ~ 0) Newton's is large while
        # Halley's may be small, so both must be small for the last step. The last step is taken even if
        # rounding puts ua + step on the bracket's end: a root found by the start was otherwise bisected away
        # from and back to (~35 steps).
        last = np.maximum(np.abs(step), np.abs(newton)) <= last_step[active]
        inside = np.isfinite(new_u) & (((new_u > lo) & (new_u < hi)) | last)
        new_u = np.where(inside, new_u, 0.5 * (lo + hi))
        u[active], low[active], high[active] = new_u, lo, hi
        active = active[~((inside & last) | (hi - lo <= rtol))]
    return np.asarray(np.exp(u), dtype=np.float64)
