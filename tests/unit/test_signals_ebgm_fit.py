"""The EBGM prior fit: openEBGM's zero-truncated likelihood, its gradient, several starts, and refusal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from pvwatch.domain.signals import ebgm_fit
from pvwatch.domain.signals.ebgm_fit import (
    PriorFitFailed,
    WeightedPoints,
    distinct_points,
    fit_prior,
    negative_log_likelihood,
    squash,
)

TRUE_PRIOR = (4.0, 0.5, 2.0, 2.0, 0.08)


def simulated_points(seed: int = 11, pairs: int = 6000) -> WeightedPoints:
    """Pairs drawn from DuMouchel's model: lambda from the gamma mixture, a ~ Poisson(lambda E), a >= 1 kept."""
    rng = np.random.default_rng(seed)
    a1, b1, a2, b2, p = TRUE_PRIOR
    expected = rng.lognormal(mean=-1.0, sigma=1.2, size=pairs)
    first = rng.random(pairs) < p
    lam = np.where(first, rng.gamma(a1, 1 / b1, pairs), rng.gamma(a2, 1 / b2, pairs))
    n = rng.poisson(lam * expected)
    keep = n >= 1
    return WeightedPoints(n[keep].astype(float), expected[keep], np.ones(int(keep.sum())))


def test_likelihood_is_openebgm_separately_truncated_mixture() -> None:
    # P f1/(1-f1(0)) + (1-P) f2/(1-f2(0)) with f_i negative binomial(size alpha_i, prob beta_i/(beta_i+E)).
    a1, b1, a2, b2, p = TRUE_PRIOR
    n, e = np.array([1.0, 3.0]), np.array([0.2, 1.5])
    f1 = stats.nbinom.pmf(n, a1, b1 / (b1 + e)) / (1 - stats.nbinom.pmf(0, a1, b1 / (b1 + e)))
    f2 = stats.nbinom.pmf(n, a2, b2 / (b2 + e)) / (1 - stats.nbinom.pmf(0, a2, b2 / (b2 + e)))
    expected = -np.sum(np.log(p * f1 + (1 - p) * f2))
    points = WeightedPoints(n, e, np.ones(2))
    assert negative_log_likelihood(TRUE_PRIOR, points) == pytest.approx(expected, rel=1e-12)


def test_analytic_gradient_agrees_with_finite_differences() -> None:
    points = simulated_points(pairs=500)
    u = ebgm_fit._to_free(TRUE_PRIOR)
    error = optimize.check_grad(lambda x: ebgm_fit._objective(x, points)[0],
                                lambda x: ebgm_fit._objective(x, points)[1], u)
    assert error < 1e-4 * np.linalg.norm(ebgm_fit._objective(u, points)[1]) + 1e-4


def test_fit_is_at_least_as_likely_as_the_prior_that_generated_the_data() -> None:
    points = simulated_points()
    fit = fit_prior(points)
    assert fit.negative_log_likelihood <= negative_log_likelihood(TRUE_PRIOR, points) + 1e-6
    assert fit.agreeing_starts >= 2
    assert fit.gradient_norm < 1e-2
    assert fit.as_json()["converged"] is True


def test_fit_that_does_not_converge_is_an_error_not_an_answer() -> None:
    with pytest.raises(PriorFitFailed, match="did not converge"):
        fit_prior(simulated_points(pairs=800), max_iterations=1)


def test_squashing_keeps_every_pair_and_each_count() -> None:
    points = simulated_points()
    squashed = squash(points, relative_width=0.05)
    assert squashed.n.size < points.n.size
    assert squashed.weight.sum() == pytest.approx(points.weight.sum())
    assert set(squashed.n.tolist()) == set(points.n.tolist())
    # the likelihood barely moves: bins 5% wide in E
    full = negative_log_likelihood(TRUE_PRIOR, points)
    assert negative_log_likelihood(TRUE_PRIOR, squashed) == pytest.approx(full, rel=2e-3)


def test_no_pair_is_an_error() -> None:
    with pytest.raises(PriorFitFailed):
        WeightedPoints(np.array([]), np.array([]), np.array([]))


def test_large_sets_fit_on_squashed_points_and_report_the_exact_likelihood() -> None:
    points = simulated_points(seed=5, pairs=120_000)
    assert points.n.size > ebgm_fit.SQUASH_ABOVE  # the squashed path
    fit = fit_prior(points)
    assert fit.squashed_points < fit.points == points.n.size
    assert fit.negative_log_likelihood == pytest.approx(negative_log_likelihood(fit.prior.as_tuple(), points))
    # squashing may cost at most a hair of likelihood against the generating prior
    assert fit.negative_log_likelihood <= negative_log_likelihood(TRUE_PRIOR, points) + 0.05


def test_pairs_with_the_same_a_and_expected_count_are_one_weighted_point() -> None:
    # Exact squashing (DuMouchel & Pregibon 2001): IC and EBGM depend on a pair only through (a, E).
    a = np.array([3, 1, 3, 1, 3, 2], dtype=np.int64)
    expected = np.array([0.5, 0.5, 0.5, 0.25, 0.75, 0.5])
    points, point_of_pair = distinct_points(a, expected)
    assert points.n.size == 5
    assert points.weight.sum() == a.size
    np.testing.assert_array_equal(points.n[point_of_pair], a.astype(float))
    np.testing.assert_array_equal(points.expected[point_of_pair], expected)
    assert point_of_pair[0] == point_of_pair[2]  # (3, 0.5) twice: one point of weight 2
    assert points.weight[point_of_pair[0]] == 2
