"""The 2x2 table of every product-event pair from report-product-event rows, counted over distinct reports.

The rows come as integer codes (report, product, event: 0..n-1 each, one element per row; a repeated row is
allowed and counts once). Per pair, a = distinct reports with both; per product and per event, the distinct
reports naming it; N = distinct reports. Counting distinct reports, not rows or pair counts, is the definition
(vigipy's `convert` counts pairs and gets margins about 5x too large on CAERS: docs/signals.md).

How: each row becomes one 64-bit key (report, product, event); the sorted keys give the distinct triples, whose
prefix (report, product) is then sorted as well, and (report, event) is sorted once more. numpy's stable sort is
a timsort, which finds runs: a file that lists each report's rows together (the usual export) has its report
codes in ascending order already, and sorts in a fraction of the time a shuffled file takes (same result).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pvwatch.domain.signals.disproportionality import CountArray, FloatArray, PairCounts

CodeArray = NDArray[np.integer]

#: Largest dense (product x event) count array used instead of a sort of the pair keys (int64: 8 bytes each).
DENSE_PAIRS_MAX = 1 << 26
#: Bits of one (report, product, event) key (an int64, kept non-negative).
KEY_BITS = 63


@dataclass(frozen=True)
class PairTabulation:
    """Every product-event pair with at least one report: its codes, its 2x2 cells and its expected count."""

    product: CountArray
    event: CountArray
    counts: PairCounts
    expected: FloatArray
    reports: int


def _bits(size: int) -> int:
    return max(1, (size - 1).bit_length())


def _distinct_sorted(keys: NDArray[np.int64]) -> NDArray[np.int64]:
    """The distinct values of sorted keys (first of each run)."""
    if keys.size == 0:
        return keys
    first = np.empty(keys.size, dtype=np.bool_)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return keys[first]


def tabulate(report: CodeArray, product: CodeArray, event: CodeArray, *, reports: int, products: int,
             events: int) -> PairTabulation:
    """a, b, c, d and E = (a+b)(a+c)/N of every pair named by at least one report (Evans 2001; DuMouchel 1999).

    `reports`, `products`, `events` are the numbers of distinct codes (each code in 0..n-1 occurs in some row).
    Pairs come ordered by (product code, event code).
    """
    product_bits, event_bits = _bits(products), _bits(events)
    pair_code = None
    if _bits(reports) + product_bits + event_bits > KEY_BITS:
        # huge vocabularies: number the pairs that occur first, so (report, pair) fits in 63 bits
        pair_code = np.unique(product.astype(np.int64) * events + event, return_inverse=True)
    if pair_code is None:
        keys = report.astype(np.int64) << (product_bits + event_bits)
        keys |= product.astype(np.int64) << event_bits
        keys |= event
        keys.sort(kind="stable")
        triples = _distinct_sorted(keys)
        del keys
        pair_of_triple = ((triples >> event_bits) & ((1 << product_bits) - 1)) * events + (
            triples & ((1 << event_bits) - 1))
        report_of_triple = triples >> (product_bits + event_bits)
        product_of_pair_key = triples >> event_bits  # (report, product), ascending
    else:
        pairs, inverse = pair_code
        pair_bits = _bits(int(pairs.size))
        keys = (report.astype(np.int64) << pair_bits) | inverse
        keys.sort(kind="stable")
        triples = _distinct_sorted(keys)
        del keys
        pair_of_triple = pairs[triples & ((1 << pair_bits) - 1)]
        report_of_triple = triples >> pair_bits
        product_of_pair_key = (report_of_triple << product_bits) | (pair_of_triple // events)
        product_of_pair_key.sort(kind="stable")
    n_product = np.bincount(_distinct_sorted(product_of_pair_key) & ((1 << product_bits) - 1), minlength=products)
    del product_of_pair_key
    report_event = (report_of_triple << event_bits) | (pair_of_triple % events)
    del report_of_triple
    report_event.sort(kind="stable")
    n_event = np.bincount(_distinct_sorted(report_event) & ((1 << event_bits) - 1), minlength=events)
    del report_event
    if products * events <= DENSE_PAIRS_MAX:
        dense = np.bincount(pair_of_triple, minlength=products * events)
        pair = np.flatnonzero(dense)
        a = dense[pair]
    else:
        pair, a = np.unique(pair_of_triple, return_counts=True)
    pair_product, pair_event = pair // events, pair % events
    n_p, n_e = n_product[pair_product], n_event[pair_event]
    counts = PairCounts(a=a.astype(np.int64), b=(n_p - a).astype(np.int64), c=(n_e - a).astype(np.int64),
                        d=(reports - n_p - n_e + a).astype(np.int64))
    expected = n_p.astype(np.float64) * n_e / reports
    return PairTabulation(product=pair_product.astype(np.int64), event=pair_event.astype(np.int64),
                          counts=counts, expected=np.asarray(expected, dtype=np.float64), reports=reports)
