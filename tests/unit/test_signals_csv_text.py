"""OUT.csv's numbers: each double in its shortest round-trip spelling, as Python's repr writes it (issue 6).

repr gives the shortest digit string that reads back as the same double (Python's float_repr_style 'short',
David Gay's algorithm), positional from 1e-4 up to 1e16 with a trailing ".0" on integral values, otherwise
exponential with at least two exponent digits. It is the spelling DuckDB's CSV writer used for OUT.csv before.
"""

from __future__ import annotations

import math

import numpy as np

from pvwatch.store.signals import csv_double_rows, double_text

BOUNDARIES = [0.0, -0.0, 5.0, -5.0, 100.0, 1234567.0, 1e-4, 9.999999999999999e-05, 1.5e-05, 5.9e-07, 1e-300,
              5e-324, 999999999.9999999, 1e9, 1e9 + 0.5, 1e15, 1e16, 1.5e16, 1.7976931348623157e308, 0.1 + 0.2,
              2.5, math.inf, -math.inf]


def test_boundaries_of_the_arrow_range_are_spelt_as_repr() -> None:
    values = np.array(BOUNDARIES)
    assert double_text(values).to_pylist() == [repr(value) for value in BOUNDARIES]


def _random_doubles() -> np.ndarray:
    rng = np.random.default_rng(20261130)
    magnitudes = 10.0 ** rng.uniform(-8, 18, 20_000)
    digits = rng.integers(1, 18, magnitudes.size)
    return np.array([float(f"{m:.{d}g}") for m, d in zip(magnitudes.tolist(), digits.tolist(), strict=True)]
                    + rng.normal(0, 3, 5_000).tolist() + np.arange(-50, 50, 0.5).tolist())


def test_random_doubles_of_every_magnitude_and_length_are_spelt_as_repr() -> None:
    values = _random_doubles()
    texts = double_text(values).to_pylist()
    assert texts == [repr(value) for value in values.tolist()]
    assert [float(text) for text in texts] == values.tolist()  # every text reads back as the same double


def test_nan_an_undefined_statistic_is_an_empty_cell() -> None:
    assert double_text(np.array([math.nan, 1.5])).to_pylist() == [None, "1.5"]


def test_rows_of_doubles_are_csv_cells_spelt_as_repr_with_nan_empty() -> None:
    # OUT.csv's twelve statistics per pair: rows mixing every magnitude, the boundaries, NaN and infinities
    values = np.concatenate([_random_doubles(), BOUNDARIES, [math.nan] * 30])
    np.random.default_rng(7).shuffle(values)
    matrix = values[: values.size // 12 * 12].reshape(-1, 12)
    expected = [",".join("" if math.isnan(v) else repr(v) for v in row) for row in matrix.tolist()]
    assert csv_double_rows(matrix).to_pylist() == expected
    assert csv_double_rows(np.empty((0, 12))).to_pylist() == []
