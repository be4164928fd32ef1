"""pvwatch against vigipy (a peer on PyPI, in the `test` extra so `make test` runs it) on the real CAERS 2012 set.

The differences asserted here are the documented ones (docs/signals.md, /work/shared/notes/signal-peers.md):
vigipy counts pairs, not reports, and fits another truncated likelihood from one start; scored on openEBGM's
likelihood over distinct reports, its prior must not beat pvwatch's fit.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
import vigipy

from pvwatch.domain.signals.ebgm_fit import WeightedPoints, fit_prior, negative_log_likelihood
from pvwatch.store.signals import count_pairs, load_reports_csv
from tests.conftest import TEST_DATA

pytestmark = pytest.mark.integration
CAERS = TEST_DATA / "caers" / "caers-2012.csv"


def test_vigipy_counts_pairs_not_reports_and_its_gps_prior_is_less_likely() -> None:
    rows = pd.read_csv(CAERS).drop_duplicates(["report_id", "product", "event"])
    pairs = rows.groupby(["product", "event"]).size().reset_index(name="count")
    container = vigipy.convert(pairs, product_label="product", ae_label="event", count_label="count")
    assert container.N == 19_917  # the sum of pair counts (signal-peers.md), not the 3,356 reports
    result = vigipy.gps(container, min_events=1, decision_metric="signals", decision_thres=2.0)
    vigipy_prior = tuple(float(x) for x in result.params["prior_param"])

    con = duckdb.connect()
    table = count_pairs(con, load_reports_csv(con, CAERS))
    assert table.reports == 3_356
    points = WeightedPoints(table.counts.a.astype(float), table.expected, np.ones(len(table)))
    ours = fit_prior(points)
    assert ours.negative_log_likelihood < negative_log_likelihood(vigipy_prior, points)  # type: ignore[arg-type]
