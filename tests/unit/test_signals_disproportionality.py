"""PRR, chi-square, ROR, IC and EBGM on hand-computed tables and on openEBGM's published CAERS pair.

Every expected number is worked by hand from the published definition cited next to it, or is a figure
published by openEBGM (vignette, CAERS 2012; /work/shared/data/README.md).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, special, stats

from pvwatch.domain.signals.disproportionality import (
    GammaMixturePrior,
    PairCounts,
    empirical_bayes,
    frequentist,
    information_component,
    information_component_approx025,
    mixture_quantile,
)


def table(a: int, b: int, c: int, d: int) -> PairCounts:
    return PairCounts(*(np.array([x], dtype=np.int64) for x in (a, b, c, d)))


def test_prr_chi_square_and_ror_of_a_table_without_zero_cells() -> None:
    # a=3, b=7, c=2, d=88 (N=100). Evans 2001: PRR = (3/10)/(2/90) = 13.5.
    # Pearson chi2 = N(ad-bc)^2/((a+b)(c+d)(a+c)(b+d)) = 100 * 250^2 / (10*90*5*95) = 6,250,000/427,500.
    # Yates: 100 * (250 - 50)^2 / 427,500 = 4,000,000/427,500. ROR = ad/bc = 264/14 (van Puijenbroek 2002),
    # 95% CI exp(ln(264/14) -+ 1.96 sqrt(1/3 + 1/7 + 1/2 + 1/88)).
    stats_ = frequentist(table(3, 7, 2, 88))
    assert stats_.prr[0] == pytest.approx(13.5)
    assert stats_.chi2[0] == pytest.approx(14.619883040935672)
    assert stats_.chi2_yates[0] == pytest.approx(9.35672514619883)
    assert stats_.ror[0] == pytest.approx(18.857142857142858)
    half = 1.959963984540054 * math.sqrt(1 / 3 + 1 / 7 + 1 / 2 + 1 / 88)
    assert stats_.ror_lo95[0] == pytest.approx(18.857142857142858 * math.exp(-half))
    assert stats_.ror_hi95[0] == pytest.approx(18.857142857142858 * math.exp(half))
    assert table(3, 7, 2, 88).expected()[0] == pytest.approx(0.5)  # (a+b)(a+c)/N = 10*5/100


def test_single_report_product_has_prr_and_chi_square_but_no_ror() -> None:
    # a=1, b=0, c=9, d=90: PRR = 1 / (9/99) = 11; b = 0 so ROR is undefined (left empty, not +0.5 corrected).
    # chi2 = 100 * 90^2 / (1*99*10*90) = 810,000/89,100; Yates 100 * (90 - 50)^2 / 89,100 = 160,000/89,100.
    stats_ = frequentist(table(1, 0, 9, 90))
    assert stats_.prr[0] == pytest.approx(11.0)
    assert stats_.chi2[0] == pytest.approx(810_000 / 89_100)
    assert stats_.chi2_yates[0] == pytest.approx(160_000 / 89_100)
    assert np.isnan(stats_.ror[0]) and np.isnan(stats_.ror_lo95[0]) and np.isnan(stats_.ror_hi95[0])


def test_event_only_with_the_product_leaves_prr_and_ror_empty() -> None:
    # a=2, b=0, c=0, d=5: c = 0 so PRR divides by zero; chi2 = 7 * 10^2 / (2*5*2*5) = 7; Yates 7 * 6.5^2 / 100.
    stats_ = frequentist(table(2, 0, 0, 5))
    assert np.isnan(stats_.prr[0]) and np.isnan(stats_.ror[0])
    assert stats_.chi2[0] == pytest.approx(7.0)
    assert stats_.chi2_yates[0] == pytest.approx(2.9575)


def test_a_equal_to_n_leaves_every_frequentist_statistic_empty_but_ic_is_zero() -> None:
    # Every report has the product and the event: margins c+d and b+d are 0; E = 4*4/4 = 4 = a, so
    # IC = log2(4.5/4.5) = 0 (Noren 2013 shrinkage toward 0).
    counts = table(4, 0, 0, 0)
    stats_ = frequentist(counts)
    assert all(np.isnan(x[0]) for x in (stats_.prr, stats_.chi2, stats_.chi2_yates, stats_.ror))
    ic, ic025 = information_component(counts.a, counts.expected())
    assert ic[0] == pytest.approx(0.0)
    assert ic025[0] < 0


def test_yates_correction_never_overshoots_zero() -> None:
    # a=1, b=1, c=1, d=1: ad - bc = 0 < N/2, so the corrected statistic is 0, not (0 - 2)^2 ...
    assert frequentist(table(1, 1, 1, 1)).chi2_yates[0] == 0.0


def test_noren_ic_and_ic025_are_the_gamma_posterior_mean_ratio_and_quantile() -> None:
    # Noren 2013: IC = log2((a+0.5)/(E+0.5)); IC025 = log2 of the 2.5% quantile of Gamma(a+0.5, rate E+0.5).
    # a=1, E=0.1: IC = log2(1.5/0.6) = log2(2.5).
    a = np.array([1, 5, 40], dtype=np.int64)
    expected = np.array([0.1, 1.0, 10.0])
    ic, ic025 = information_component(a, expected)
    assert ic[0] == pytest.approx(math.log2(2.5))
    reference = np.log2(stats.gamma.ppf(0.025, a + 0.5, scale=1 / (expected + 0.5)))
    np.testing.assert_allclose(ic025, reference, rtol=1e-9)
    # The paper's closed form approximates the exact quantile to about 0.1 at small counts.
    np.testing.assert_allclose(information_component_approx025(a, expected), ic025, atol=0.12)


OPENEBGM_CAERS_PRIOR = GammaMixturePrior(alpha1=3.2560, beta1=0.4000, alpha2=2.0238, beta2=1.9061, p=0.0653)


def test_ebgm_of_reumofan_plus_weight_increased_matches_openebgm_published_figures() -> None:
    # openEBGM vignette (CAERS 2012, unstratified): REUMOFAN PLUS / WEIGHT INCREASED has N = 16,
    # E = 0.4064 = (16 + 28)(16 + 15)/3356, EBGM 23.26, QUANT_05 15.68, QUANT_95 33.48.
    scores = empirical_bayes(OPENEBGM_CAERS_PRIOR, np.array([16], dtype=np.int64), np.array([44 * 31 / 3356]))
    assert round(float(scores.ebgm[0]), 2) == 23.26
    assert round(float(scores.eb95[0]), 2) == 33.48
    # openEBGM's quantBisect stops within 0.5e-2 and then rounds: its 15.68 is the exact 15.6857 to that tolerance.
    assert float(scores.eb05[0]) == pytest.approx(15.68, abs=0.01)


def test_eb05_and_eb95_are_exact_quantiles_of_the_posterior_mixture() -> None:
    # DuMouchel 1999 eqs. 5-7: the posterior is Q Gamma(alpha1+a, beta1+E) + (1-Q) Gamma(alpha2+a, beta2+E).
    prior = OPENEBGM_CAERS_PRIOR
    a = np.array([1, 1, 3, 16, 200], dtype=np.int64)
    expected = np.array([0.001, 2.5, 0.4, 0.4064, 180.0])
    scores = empirical_bayes(prior, a, expected)
    for i in range(a.size):
        f1 = stats.nbinom.pmf(a[i], prior.alpha1, prior.beta1 / (prior.beta1 + expected[i]))
        f2 = stats.nbinom.pmf(a[i], prior.alpha2, prior.beta2 / (prior.beta2 + expected[i]))
        q = prior.p * f1 / (prior.p * f1 + (1 - prior.p) * f2)

        def cdf(x: float, i: int = i, q: float = q) -> float:
            return float(q * stats.gamma.cdf(x, prior.alpha1 + a[i], scale=1 / (prior.beta1 + expected[i]))
                         + (1 - q) * stats.gamma.cdf(x, prior.alpha2 + a[i], scale=1 / (prior.beta2 + expected[i])))

        assert cdf(scores.eb05[i]) == pytest.approx(0.05, abs=1e-9)
        assert cdf(scores.eb95[i]) == pytest.approx(0.95, abs=1e-9)
        mean_log = (q * (special.digamma(prior.alpha1 + a[i]) - math.log(prior.beta1 + expected[i]))
                    + (1 - q) * (special.digamma(prior.alpha2 + a[i]) - math.log(prior.beta2 + expected[i])))
        assert scores.ebgm[i] == pytest.approx(math.exp(mean_log), rel=1e-12)
        assert scores.eb05[i] < scores.ebgm[i] < scores.eb95[i]


def test_mixture_quantiles_are_roots_also_on_a_plateau_and_when_the_start_is_the_root() -> None:
    # The quantile of q Gamma(s1, r1) + (1-q) Gamma(s2, r2) is the root of its CDF minus p (DuMouchel 1999
    # eq. 7), found here by an independent bracketing root finder (Brent) on scipy's gamma CDF. Cases: q = 1
    # (the first component's own quantile is the root), components so far apart that the mixture CDF is flat
    # at q between them (the root lies under the first component), and a mixture of a wide and a narrow one.
    q = np.array([1.0, 0.2093, 0.5, 0.0, 0.172])
    shape1, rate1 = np.array([101.02, 1.1398, 0.0804, 2.0, 0.3867]), np.array([0.5997, 462.27, 665.12, 1.0, 16.92])
    shape2, rate2 = np.array([122.2, 362.12, 3.186, 30.0, 35.52]), np.array([27.23, 0.03386, 721.76, 5.0, 251.28])
    for probability in (0.05, 0.95):
        roots = mixture_quantile(probability, q, shape1, rate1, shape2, rate2)
        for i in range(q.size):
            def excess(u: float, i: int = i, probability: float = probability) -> float:
                x = math.exp(u)
                return float(q[i] * special.gammainc(shape1[i], rate1[i] * x)
                             + (1 - q[i]) * special.gammainc(shape2[i], rate2[i] * x) - probability)

            exact = math.exp(optimize.brentq(excess, -60.0, 60.0, xtol=1e-14, rtol=1e-15))
            assert roots[i] == pytest.approx(exact, rel=1e-10)
