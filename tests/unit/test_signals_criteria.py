"""Signal thresholds (Evans 2001; FDA EB05 >= 2, Szarfman 2002; Norén 2013 IC025 > 0) and 'strengthened'."""

from __future__ import annotations

import math

import numpy as np

from pvwatch.domain.signals.criteria import SignalMethod, SignalThresholds, is_news, signal_flags, strength

NAN = math.nan


def test_evans_prr_signal_needs_prr_2_yates_chi2_4_and_3_reports() -> None:
    a = np.array([3, 2, 3, 3, 3])
    prr = np.array([2.0, 5.0, 1.99, 2.5, NAN])
    chi2_yates = np.array([4.0, 9.0, 9.0, 3.99, 9.0])
    flags = signal_flags(SignalThresholds(), a, prr, chi2_yates, np.full(5, NAN), np.full(5, -1.0))
    assert flags[SignalMethod.PRR].tolist() == [True, False, False, False, False]


def test_ebgm_and_ic_thresholds_and_missing_values_never_signal() -> None:
    flags = signal_flags(SignalThresholds(), np.array([1, 1, 1]), np.full(3, NAN), np.full(3, NAN),
                         np.array([2.0, 1.99, NAN]), np.array([0.0, 0.01, -0.5]))
    assert flags[SignalMethod.EBGM].tolist() == [True, False, False]
    assert flags[SignalMethod.IC].tolist() == [False, True, False]  # IC025 strictly above 0


def test_new_then_strengthened_only_past_the_ratio() -> None:
    thresholds = SignalThresholds(strengthen_ratio=1.5)
    assert is_news(thresholds, 3.0, None) == "new"
    assert is_news(thresholds, 4.4, 3.0) is None
    assert is_news(thresholds, 4.5, 3.0) == "strengthened"
    assert strength(SignalMethod.IC, NAN, NAN, 1.0) == 2.0  # 2^IC025: the ratio scale of the other two


def test_each_method_names_its_threshold_for_the_metric_label() -> None:
    # the defaults: Evans 2001 (PRR >= 2, chi-square >= 4, a >= 3), FDA's EB05 >= 2, Noren 2013's IC025 > 0
    thresholds = SignalThresholds()
    assert thresholds.criterion(SignalMethod.PRR) == "prr>=2,chi2_yates>=4,a>=3"
    assert thresholds.criterion(SignalMethod.EBGM) == "eb05>=2"
    assert thresholds.criterion(SignalMethod.IC) == "ic025>0"
    assert SignalThresholds(eb05_min=2.5).criterion(SignalMethod.EBGM) == "eb05>=2.5"
