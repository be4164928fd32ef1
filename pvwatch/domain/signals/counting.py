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

from concurrent.futures import ThreadPoolExecutor
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


#: Rows handled at a time by the passes over the keys (8 MB of int64): small temporaries, no fresh gigabytes.
BLOCK = 1 << 20


def _bits(size: int) -> int:
    return max(1, (size - 1).bit_length())


def _firsts(keys: NDArray[np.int64], previous: int) -> NDArray[np.bool_]:
    """Which of these sorted keys differ from the key before them (`previous` before the first)."""
    first = np.empty(keys.size, dtype=np.bool_)
    if keys.size == 0:  # a block of repeats of the key before it leaves no distinct keys to look at
        return first
    first[0] = keys[0] != previous
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    return first


def _pack(out: NDArray[np.int64], *fields: tuple[CodeArray, int]) -> NDArray[np.int64]:
    """out = the fields shifted into one key per row (block by block: no temporaries of the full size), sorted.
    The sort is stable, a timsort, which finds runs: rows already in report order cost a fraction of a shuffle."""
    for start in range(0, out.size, BLOCK):
        block = out[start:start + BLOCK]
        (values, shift), rest = fields[0], fields[1:]
        np.left_shift(values[start:start + BLOCK], shift, out=block, dtype=np.int64)
        for values, shift in rest:
            block |= np.left_shift(values[start:start + BLOCK], shift, dtype=np.int64)
    out.sort(kind="stable")
    return out


def _distinct_counts(keys: NDArray[np.int64], low_bits: int, size: int) -> CountArray:
    """For sorted keys (high, low): per low value, how many distinct keys (distinct reports, high being the
    report)."""
    counts = np.zeros(size, dtype=np.int64)
    previous = -1
    for start in range(0, keys.size, BLOCK):
        block = keys[start:start + BLOCK]
        counts += np.bincount(block[_firsts(block, previous)] & ((1 << low_bits) - 1), minlength=size)
        previous = int(block[-1])
    return counts


def _pair_reports(pair_of_triple: NDArray[np.int64], pairs: int) -> tuple[CountArray, CountArray]:
    """The pairs that occur and their report counts, from one element per distinct (report, pair)."""
    if pairs <= DENSE_PAIRS_MAX:
        dense = np.bincount(pair_of_triple, minlength=pairs)
        pair = np.flatnonzero(dense)
        return pair, dense[pair]
    pair, a = np.unique(pair_of_triple, return_counts=True)
    return pair, a


def _pairs_and_products(report: CodeArray, product: CodeArray, event: CodeArray, reports: int, products: int,
                        events: int) -> tuple[CountArray, CountArray, CountArray]:
    """The pairs that occur (product code x events + event code), their report counts a, and every product's
    report count."""
    n = int(report.size)
    report_bits, product_bits, event_bits = _bits(reports), _bits(products), _bits(events)
    keys = np.empty(n, dtype=np.int64)  # the buffer of every sort here
    if report_bits + product_bits + event_bits > KEY_BITS:
        # huge vocabularies: number the pairs that occur so that (report, pair) keys fit in 63 bits
        pair_values, pair_code = np.unique(product.astype(np.int64) * events + event, return_inverse=True)
        pair_bits = _bits(int(pair_values.size))
        a = _distinct_counts(_pack(keys, (report, pair_bits), (pair_code, 0)), pair_bits, int(pair_values.size))
        n_product = _distinct_counts(_pack(keys, (report, product_bits), (product, 0)), product_bits, products)
        return pair_values, a, n_product
    # one pass over the sorted (report, product, event) keys: each distinct triple's pair, and each distinct
    # (report, product)'s product (that prefix is sorted too)
    _pack(keys, (report, product_bits + event_bits), (product, event_bits), (event, 0))
    # the distinct triples' pairs go to the front of the same buffer: they never overtake the block being read
    pair_of_triple = keys
    triples = 0
    n_product = np.zeros(products, dtype=np.int64)
    product_mask, event_mask = (1 << product_bits) - 1, (1 << event_bits) - 1
    previous = -1
    for start in range(0, n, BLOCK):
        block = keys[start:start + BLOCK]
        distinct = block[_firsts(block, previous)]  # a copy
        report_product = distinct >> event_bits
        n_product += np.bincount(report_product[_firsts(report_product, previous >> event_bits)] & product_mask,
                                 minlength=products)
        previous = int(block[-1])
        pair_of_triple[triples:triples + distinct.size] = (
            ((distinct >> event_bits) & product_mask) * events + (distinct & event_mask))
        triples += distinct.size
    pair, a = _pair_reports(pair_of_triple[:triples], products * events)
    return pair, a, n_product


def tabulate(report: CodeArray, product: CodeArray, event: CodeArray, *, reports: int, products: int,
             events: int) -> PairTabulation:
    """a, b, c, d and E = (a+b)(a+c)/N of every pair named by at least one report (Evans 2001; DuMouchel 1999).

    `reports`, `products`, `events` are the numbers of distinct codes (each code in 0..n-1 occurs in some row).
    Pairs come ordered by (product code, event code).
    """
    event_bits = _bits(events)
    with ThreadPoolExecutor(max_workers=1) as pool:  # the events' sort in a second thread (numpy drops the GIL)
        n_event_pending = pool.submit(lambda: _distinct_counts(
            _pack(np.empty(report.size, dtype=np.int64), (report, event_bits), (event, 0)), event_bits, events))
        pair, a, n_product = _pairs_and_products(report, product, event, reports, products, events)
        n_event = n_event_pending.result()
    pair_product, pair_event = pair // events, pair % events
    n_p, n_e = n_product[pair_product], n_event[pair_event]
    counts = PairCounts(a=a.astype(np.int64), b=(n_p - a).astype(np.int64), c=(n_e - a).astype(np.int64),
                        d=(reports - n_p - n_e + a).astype(np.int64))
    expected = n_p.astype(np.float64) * n_e / reports
    return PairTabulation(product=pair_product.astype(np.int64), event=pair_event.astype(np.int64),
                          counts=counts, expected=np.asarray(expected, dtype=np.float64), reports=reports)
