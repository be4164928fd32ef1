"""Flare after taper.

Sources: SELENA flare index (Petri 2005; Buyon 2005): SLEDAI-2K rise >= 3, severe when > 12; ACR 2021 JADAS10 /
cJADAS10 cut-offs (Trincianti 2021): oligoarticular JADAS10 ID <= 1.4, MiDA <= 4, MoDA <= 13, HDA > 13;
polyarticular JADAS10 2.7 / 6 / 17; cJADAS10 oligo 1.1 / 4 / 12, poly 2.5 / 5 / 16.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pvwatch.domain.flare import (
    ActivityLevel,
    ActivityScore,
    Disease,
    FlareIndex,
    FlareParameters,
    JiaCategory,
    Taper,
    flares,
    jadas_level,
)

T0 = datetime(2026, 1, 10, 9, tzinfo=UTC)
P = FlareParameters()
TAPER = Taper(uuid4(), "mycophenolate", T0, stopped=False)


def score(value: float, days: float, instrument: str = "SLEDAI-2K", by: str = "clinician") -> ActivityScore:
    return ActivityScore(uuid4(), instrument, value, T0 + timedelta(days=days), by)


def sle(*scores: ActivityScore, disease: Disease = Disease.SLE):
    return flares([TAPER], scores, disease, JiaCategory.OLIGOARTICULAR, P)


def test_sledai_rise_of_3_is_a_mild_moderate_flare():
    (flare,) = sle(score(4, -7), score(7, 20))
    assert flare.severity == "mild/moderate" and not flare.proxy


def test_sledai_rise_of_2_is_not_a_flare():
    assert sle(score(4, -7), score(6, 20)) == []


def test_sledai_above_12_is_severe_and_exactly_12_is_not():
    assert sle(score(9, -7), score(12, 20))[0].severity == "mild/moderate"
    assert sle(score(9, -7), score(13, 20))[0].severity == "severe"


def test_rise_outside_the_window_or_before_the_taper_is_not_after_taper():
    assert sle(score(4, -7), score(8, P.window_days + 0.01)) == []
    assert sle(score(4, -7), score(8, -1)) == []


def test_parent_reported_rise_is_not_compared_with_clinician_baseline():
    assert sle(score(4, -7, by="clinician"), score(9, 20, by="parent")) == []
    (flare,) = sle(score(4, -7, by="parent"), score(9, 20, by="parent"))
    assert flare.after.assessed_by == "parent"


def test_mctd_uses_the_sledai_rule_as_a_labelled_proxy():
    (flare,) = sle(score(2, -3), score(6, 10), disease=Disease.MCTD)
    assert flare.proxy


@pytest.mark.parametrize(
    ("instrument", "category", "bounds"),
    [("JADAS10", JiaCategory.OLIGOARTICULAR, (1.4, 4.0, 13.0)), ("JADAS10", JiaCategory.POLYARTICULAR, (2.7, 6, 17)),
     ("cJADAS10", JiaCategory.OLIGOARTICULAR, (1.1, 4.0, 12.0)), ("cJADAS10", JiaCategory.POLYARTICULAR, (2.5, 5, 16))],
)
def test_jadas_levels_at_acr_2021_cutoffs(instrument, category, bounds):
    inactive, minimal, moderate = bounds
    assert jadas_level(instrument, inactive, category) is ActivityLevel.INACTIVE
    assert jadas_level(instrument, inactive + 0.01, category) is ActivityLevel.MINIMAL
    assert jadas_level(instrument, minimal, category) is ActivityLevel.MINIMAL
    assert jadas_level(instrument, minimal + 0.01, category) is ActivityLevel.MODERATE
    assert jadas_level(instrument, moderate, category) is ActivityLevel.MODERATE
    assert jadas_level(instrument, moderate + 0.01, category) is ActivityLevel.HIGH


def test_jia_minimal_to_moderate_after_taper_is_a_flare_by_category():
    before, after = score(3.5, -5, "JADAS10"), score(5.0, 30, "JADAS10")
    (flare,) = flares([TAPER], [before, after], Disease.JIA, JiaCategory.OLIGOARTICULAR, P)
    assert (flare.from_level, flare.to_level) == ("minimal", "moderate")
    # 5.0 is still minimal activity in polyarticular JIA (MiDA <= 6)
    assert flares([TAPER], [before, after], Disease.JIA, JiaCategory.POLYARTICULAR, P) == []


# --- the incremental index the engine keeps per patient ------------------------------------------------------------

moment = st.integers(min_value=-200, max_value=200).map(lambda hours: T0 + timedelta(days=hours / 2))
taper_strategy = st.builds(lambda at, stopped: Taper(uuid4(), "mycophenolate", at, stopped), moment, st.booleans())
score_strategy = st.builds(lambda value, at, instrument, by: ActivityScore(uuid4(), instrument, value, at, by),
                           st.integers(0, 20).map(float), moment, st.sampled_from(["SLEDAI-2K", "JADAS10"]),
                           st.sampled_from(["clinician", "parent"]))


def defined_triples(tapers, scores, window):
    """The definition, scanned: each score of a kind within (taper, taper + window], with the latest score of its
    kind (instrument and assessor) at or before the taper as its baseline."""
    found = set()
    for taper in tapers:
        for after in scores:
            if not taper.at < after.at <= taper.at + window:
                continue
            same = [s for s in scores if (s.instrument, s.assessed_by) == (after.instrument, after.assessed_by)
                    and s.at <= taper.at]
            if same:
                found.add((taper, max(same, key=lambda s: (s.at, s.event_id.int)), after))
    return found


@settings(max_examples=200, deadline=None)
@given(st.lists(taper_strategy, max_size=4), st.lists(score_strategy, max_size=12), st.randoms())
def test_index_finds_what_the_definition_pairs_whatever_the_arrival_order(tapers, scores, random):
    """The engine asks the index, per arriving event, for the triples the event is in: as the taper, or a score as
    the later one or the baseline. Whatever order the events arrived in, the answers are the definition's."""
    window = timedelta(days=P.window_days)
    index = FlareIndex(window)
    arrivals = [*tapers, *scores]
    random.shuffle(arrivals)
    for fact in arrivals + arrivals:  # each again: a set, no change
        if isinstance(fact, Taper):
            index.add_taper(fact)
        else:
            index.add_score(fact)
    defined = defined_triples(tapers, scores, window)
    for taper in tapers:
        found = index.after_taper(taper)
        assert len(found) == len(set(found)) and set(found) == {t for t in defined if t[0] == taper}
    for score in scores:
        found = index.around_score(score)
        assert len(found) == len(set(found)) and set(found) == {t for t in defined if score in (t[1], t[2])}
