"""Poisson MaxSPRT (Kulldorff et al. 2011, Sequential Analysis 30:58): exact critical values and the test.

Expected critical values: R package Sequential, CV.Poisson(SampleSize=T, D=0, M, alpha=0.05), as tabulated in
/work/shared/notes/pv-rules-and-standards.md (section "Disproportionality", MaxSPRT).
"""

from __future__ import annotations

import math

import pytest

from pvwatch.domain.signals.maxsprt import critical_value, log_likelihood_ratio, monitor, type_one_error

SEQUENTIAL_CV_POISSON = [
    (1, 1, 2.853937), (1, 2, 2.366638), (1, 3, 1.774218),
    (10, 1, 3.467952), (10, 2, 3.238009), (10, 3, 3.064248), (10, 4, 2.921561),
    (100, 1, 3.952321), (100, 2, 3.810141), (100, 3, 3.711993), (100, 4, 3.636508),
    (1000, 1, 4.324917), (1000, 2, 4.226412), (1000, 3, 4.160022), (1000, 4, 4.109665),
]


@pytest.mark.parametrize(("length", "min_events", "expected_cv"), SEQUENTIAL_CV_POISSON)
def test_critical_value_matches_r_sequential_cv_poisson(length: float, min_events: int, expected_cv: float) -> None:
    assert critical_value(0.05, length, min_events) == pytest.approx(expected_cv, abs=1e-6)


def test_type_one_error_at_the_published_critical_value_is_alpha() -> None:
    assert type_one_error(3.467952, 10, 1) == pytest.approx(0.05, abs=1e-6)


def test_llr_is_the_poisson_log_likelihood_ratio_and_zero_below_expectation() -> None:
    # Kulldorff 2011: LLR = (mu - c) + c ln(c/mu) when c > mu, else 0.
    assert log_likelihood_ratio(9, 2.0) == pytest.approx(-7 + 9 * math.log(4.5))
    assert log_likelihood_ratio(2, 2.0) == 0.0
    assert log_likelihood_ratio(0, 0.5) == 0.0


def test_signal_needs_the_critical_value_and_the_minimum_event_count() -> None:
    cv = 2.921561  # T = 10, M = 4
    assert monitor(9, 2.0, cv, 4).signal
    assert not monitor(3, 0.05, cv, 4).signal  # LLR 9.6 is past CV but only 3 events: M = 4 not reached
    assert not monitor(5, 3.0, cv, 4).signal


def test_impossible_level_is_refused() -> None:
    with pytest.raises(ValueError):
        critical_value(1.5, 10, 1)
