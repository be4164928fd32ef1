"""Counting 2x2 tables over distinct reports from coded report-product-event rows (issue 6 definitions)."""

from __future__ import annotations

import numpy as np
import pytest

from pvwatch.domain.signals import counting
from pvwatch.domain.signals.counting import tabulate

# Rows (report, product, event): R0 names P0 with E0 twice (a repeated row) and E1; R1 P0/E0; R2 P1/E0;
# R3 P1/E1. Worked by hand from the definitions (a = reports with both, b = the product without the
# event, c = the event without the product, d = neither, E = (a+b)(a+c)/N, N = 4 distinct reports):
ROWS = [(0, 0, 0), (0, 0, 0), (0, 0, 1), (1, 0, 0), (2, 1, 0), (3, 1, 1)]
BY_HAND = {  # (product, event): (a, b, c, d, expected)
    (0, 0): (2, 0, 1, 1, 2 * 3 / 4),
    (0, 1): (1, 1, 1, 1, 2 * 2 / 4),
    (1, 0): (1, 1, 2, 0, 2 * 3 / 4),
    (1, 1): (1, 1, 1, 1, 2 * 2 / 4),
}


def _table(rows: list[tuple[int, int, int]], reports: int, products: int, events: int) -> dict[tuple[int, int], tuple]:
    report, product, event = (np.array(column, dtype=np.int32) for column in zip(*rows, strict=True))
    counted = tabulate(report, product, event, reports=reports, products=products, events=events)
    c = counted.counts
    return {(int(p), int(e)): (int(a), int(b), int(cc), int(d), float(x)) for p, e, a, b, cc, d, x in zip(
        counted.product, counted.event, c.a, c.b, c.c, c.d, counted.expected, strict=True)}


def test_repeated_rows_count_once_per_report_and_margins_count_reports() -> None:
    assert _table(ROWS, 4, 2, 2) == BY_HAND


def test_row_order_does_not_change_the_tables() -> None:
    rng = np.random.default_rng(6)
    for _ in range(5):
        shuffled = [ROWS[i] for i in rng.permutation(len(ROWS))]
        assert _table(shuffled, 4, 2, 2) == BY_HAND


def test_pair_named_by_every_report_has_a_equal_to_n_and_empty_b_c_d() -> None:
    rows = [(r, 0, 0) for r in range(3)] + [(0, 0, 1)]
    assert _table(rows, 3, 1, 2) == {(0, 0): (3, 0, 0, 0, 3.0), (0, 1): (1, 2, 0, 0, 1.0)}


def _by_sets(rows: list[tuple[int, int, int]]) -> dict[tuple[int, int], tuple]:
    """The definitions applied literally: sets of report ids per pair, product and event."""
    reports = {r for r, _, _ in rows}
    with_pair: dict[tuple[int, int], set[int]] = {}
    with_product: dict[int, set[int]] = {}
    with_event: dict[int, set[int]] = {}
    for r, p, e in rows:
        with_pair.setdefault((p, e), set()).add(r)
        with_product.setdefault(p, set()).add(r)
        with_event.setdefault(e, set()).add(r)
    n = len(reports)
    table = {}
    for (p, e), both in with_pair.items():
        a, n_p, n_e = len(both), len(with_product[p]), len(with_event[e])
        table[(p, e)] = (a, n_p - a, n_e - a, n - n_p - n_e + a, n_p * n_e / n)
    return table


@pytest.mark.parametrize("key_bits, dense_max, block", [(63, counting.DENSE_PAIRS_MAX, counting.BLOCK),
                                                        (63, counting.DENSE_PAIRS_MAX, 7), (3, counting.BLOCK, 7),
                                                        (63, 0, 7), (3, 0, counting.BLOCK)])
def test_random_rows_match_the_definitions_on_every_path(monkeypatch: pytest.MonkeyPatch, key_bits: int,
                                                         dense_max: int, block: int) -> None:
    monkeypatch.setattr(counting, "KEY_BITS", key_bits)  # (report, pair) keys instead of (report, product, event)
    monkeypatch.setattr(counting, "DENSE_PAIRS_MAX", dense_max)  # pairs by np.unique instead of a dense count
    monkeypatch.setattr(counting, "BLOCK", block)  # passes over the keys cross block boundaries mid-report
    assert _table(ROWS, 4, 2, 2) == BY_HAND
    rng = np.random.default_rng(7)
    rows = [(int(r), int(p), int(e)) for r, p, e in zip(rng.permutation(np.arange(400) % 50),
                                                        rng.integers(0, 9, 400), rng.integers(0, 13, 400),
                                                        strict=True)]
    products, events = len({p for _, p, _ in rows}), len({e for _, _, e in rows})
    assert (products, events) == (9, 13)  # every code occurs, as tabulate requires
    assert _table(rows, 50, 9, 13) == _by_sets(rows)


@pytest.mark.parametrize("huge", [False, True])
def test_a_whole_block_of_one_repeated_row_counts_once(monkeypatch: pytest.MonkeyPatch, huge: bool) -> None:
    """A block holding only repeats of the key before it has no distinct key: it raised IndexError (review)."""
    monkeypatch.setattr(counting, "BLOCK", 2)
    if huge:
        monkeypatch.setattr(counting, "KEY_BITS", 2)  # the path for vocabularies too large for one 63-bit key
    rows = [(0, 0, 0)] * 5 + [(1, 1, 1)]
    assert _table(rows, 2, 2, 2) == {(0, 0): (1, 0, 0, 1, 0.5), (1, 1): (1, 0, 0, 1, 0.5)}
