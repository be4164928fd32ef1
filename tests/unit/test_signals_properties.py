"""Properties of the statistics on any 2x2 table (hypothesis): defined or empty, never Inf, ordered as their
definitions imply."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pvwatch.domain.signals.disproportionality import (
    GammaMixturePrior,
    PairCounts,
    empirical_bayes,
    frequentist,
    information_component,
    posterior_weight,
)

cells = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=300, deadline=None)
@given(a=st.integers(min_value=1, max_value=10_000), b=cells, c=cells, d=cells)
def test_every_table_gives_finite_statistics_or_empty_cells(a: int, b: int, c: int, d: int) -> None:
    counts = PairCounts(*(np.array([x], dtype=np.int64) for x in (a, b, c, d)))
    stats = frequentist(counts)
    for value in (stats.prr, stats.chi2, stats.chi2_yates, stats.ror, stats.ror_lo95, stats.ror_hi95):
        assert not np.isinf(value[0])
    assert np.isnan(stats.prr[0]) == (c == 0)
    assert np.isnan(stats.ror[0]) == (0 in (b, c, d))
    if not np.isnan(stats.chi2[0]):
        assert 0 <= stats.chi2_yates[0] <= stats.chi2[0] + 1e-9  # Yates only shrinks the statistic
    if not np.isnan(stats.ror[0]):
        assert stats.ror_lo95[0] <= stats.ror[0] <= stats.ror_hi95[0]
    ic, ic025 = information_component(counts.a, counts.expected())
    assert np.isfinite(ic[0]) and ic025[0] < ic[0]


@settings(max_examples=100, deadline=None)
@given(a=st.integers(min_value=1, max_value=5_000), expected=st.floats(min_value=1e-6, max_value=5_000))
def test_ebgm_lies_inside_its_interval(a: int, expected: float) -> None:
    prior = GammaMixturePrior(3.2560, 0.4000, 2.0238, 1.9061, 0.0653)  # openEBGM's CAERS prior
    scores = empirical_bayes(prior, np.array([a], dtype=np.int64), np.array([expected]))
    assert 0 < scores.eb05[0] < scores.ebgm[0] < scores.eb95[0] < np.inf


# The prior fitted on the 10M-report benchmark set (docs/signals.md): a very diffuse first component with a small
# weight, where the posterior mixture's CDF has a long flat stretch between the components' quantiles.
DIFFUSE_PRIOR = GammaMixturePrior(0.023660956242716732, 0.012360822978376016, 21.205494557166535,
                                  26.641542103359143, 0.05253685168739955)


@settings(max_examples=200, deadline=None)
@given(a=st.integers(min_value=1, max_value=5_000), expected=st.floats(min_value=1e-6, max_value=5_000))
def test_eb05_and_eb95_are_roots_of_the_posterior_cdf_under_a_diffuse_prior(a: int, expected: float) -> None:
    # DuMouchel 1999 eqs. 5-7, the posterior Q Gamma(alpha1+a, beta1+E) + (1-Q) Gamma(alpha2+a, beta2+E); its CDF
    # here from scipy.stats, independent of the Newton iteration under test.
    prior = DIFFUSE_PRIOR
    scores = empirical_bayes(prior, np.array([a], dtype=np.int64), np.array([expected]))
    q = posterior_weight(prior, np.array([float(a)]), np.array([expected]))[0]

    def cdf(x: float) -> float:
        return float(q * stats.gamma.cdf(x, prior.alpha1 + a, scale=1 / (prior.beta1 + expected))
                     + (1 - q) * stats.gamma.cdf(x, prior.alpha2 + a, scale=1 / (prior.beta2 + expected)))

    assert cdf(scores.eb05[0]) == pytest.approx(0.05, abs=1e-9)
    assert cdf(scores.eb95[0]) == pytest.approx(0.95, abs=1e-9)
    assert 0 < scores.eb05[0] < scores.ebgm[0] < scores.eb95[0] < np.inf
