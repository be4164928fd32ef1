"""Hy's law's cholestasis exclusion at its boundaries, in every arrival order (docs/rules.md, "Hy's law semantics"):
a pair is a case when no ALP >= 2 x ULN was taken within the pairing window (30 days) of both of its results,
before, between or after them.

Sources: FDA Guidance for Industry, Drug-Induced Liver Injury (July 2009) III.A: ALT or AST "3-fold or greater"
above ULN, total bilirubin ">2xULN", "no initial findings of cholestasis (elevated serum ALP)"; the ALP multiple
(2 x ULN, an ALP at 2 x ULN is elevated) and the 30-day window are the analysis-plan conventions of
pvwatch/rules.yaml.
"""

from __future__ import annotations

import pytest

from pvwatch.domain.engine import HYS_LAW
from tests.unit.test_rule_withdrawal import ALP, ALT, BILIRUBIN, assert_every_arrival_order_agrees, lab

MINUTE = 1 / 1440


@pytest.mark.parametrize(("alp_day", "what"), [
    (31, "after the pair, 30 days after the ALT"),
    (3 - 30, "before the pair, 30 days before the bilirubin"),
    (2, "between the results"),
])
def test_a_cholestatic_alp_within_the_window_of_both_results_excludes_the_pair_wherever_it_lies(alp_day, what):
    alt, bilirubin, alp = lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3), lab(ALP, 2.5, alp_day)
    assert assert_every_arrival_order_agrees([alt, bilirubin, alp], HYS_LAW, set()) > 0, what


@pytest.mark.parametrize(("alp_day", "what"), [
    (31 + MINUTE, "a minute past 30 days after the ALT"),
    (3 - 30 - MINUTE, "a minute before 30 days before the bilirubin"),
])
def test_an_alp_just_outside_the_window_of_one_result_leaves_the_pair(alp_day, what):
    alt, bilirubin, alp = lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3), lab(ALP, 2.5, alp_day)
    assert assert_every_arrival_order_agrees([alt, bilirubin, alp], HYS_LAW,
                                             {(alt.event_id, bilirubin.event_id)}) == 0, what


def test_an_alp_of_exactly_2x_uln_is_cholestatic_and_one_just_below_is_not():
    alt, bilirubin = lab(ALT, 3.0, 1), lab(BILIRUBIN, 2.01, 3)
    assert assert_every_arrival_order_agrees([alt, bilirubin, lab(ALP, 2.0, 20)], HYS_LAW, set()) > 0
    assert assert_every_arrival_order_agrees([alt, bilirubin, lab(ALP, 1.99, 20)], HYS_LAW,
                                             {(alt.event_id, bilirubin.event_id)}) == 0
