"""`pvwatch signals` on the real FDA CAERS 2012 report set against openEBGM's published figures.

Source of every expected number: /work/shared/data/README.md (openEBGM vignette, unstratified, zero-truncated
likelihood with N* = 1) and, for the chi-square counts, /work/shared/notes/pv-rules-and-standards.md
("Yates vs Pearson chi2: 318 vs 344 CAERS pairs" with PRR >= 2, chi2 >= 4, a >= 3).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

from pvwatch.cli import cli
from pvwatch.domain.signals.disproportionality import GammaMixturePrior, empirical_bayes
from pvwatch.domain.signals.ebgm_fit import WeightedPoints, negative_log_likelihood
from pvwatch.store.signals import OUTPUT_COLUMNS, count_pairs, load_reports_csv
from tests.conftest import TEST_DATA

pytestmark = pytest.mark.integration

CAERS = TEST_DATA / "caers" / "caers-2012.csv"
PUBLISHED = (3.2560, 0.4000, 2.0238, 1.9061, 0.0653)
PUBLISHED_NEG_LL = 4162.456


@pytest.fixture(scope="module")
def caers_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, str]], dict[str, object], Path]:
    out_dir = tmp_path_factory.mktemp("caers")
    result = CliRunner().invoke(cli, ["signals", "--reports", str(CAERS), "--out", str(out_dir / "out.csv"),
                                      "--hyperparameters-out", str(out_dir / "hyper.json"),
                                      "--plot", str(out_dir / "top.svg")])
    assert result.exit_code == 0, result.output
    with (out_dir / "out.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows, json.loads((out_dir / "hyper.json").read_text()), out_dir


def test_out_csv_has_one_row_per_pair_counted_over_distinct_reports(caers_run) -> None:  # type: ignore[no-untyped-def]
    rows, _, _ = caers_run
    assert tuple(rows[0].keys()) == OUTPUT_COLUMNS
    assert len(rows) == 17_189  # README: 17,189 product-event pairs
    assert {int(r["a"]) + int(r["b"]) + int(r["c"]) + int(r["d"]) for r in rows} == {3_356}  # N = distinct reports
    pair = next(r for r in rows if r["product"] == "REUMOFAN PLUS" and r["event"] == "WEIGHT INCREASED")
    assert int(pair["a"]) == 16
    assert float(pair["expected"]) == pytest.approx(0.4064, abs=5e-5)


def test_fit_is_at_least_as_likely_as_openebgm_published_fit(caers_run) -> None:  # type: ignore[no-untyped-def]
    _, hyper, _ = caers_run
    assert hyper["converged"] is True
    assert hyper["negative_log_likelihood"] <= PUBLISHED_NEG_LL + 1e-3
    assert hyper["agreeing_starts"] >= 2
    assert set(hyper) >= {"alpha1", "beta1", "alpha2", "beta2", "p", "log_likelihood"}


def test_published_prior_reproduces_openebgm_likelihood_and_131_pairs_with_eb05_at_least_2() -> None:
    con = duckdb.connect()
    table = count_pairs(con, load_reports_csv(con, CAERS))
    points = WeightedPoints(table.counts.a.astype(float), table.expected, np.ones(len(table)))
    assert negative_log_likelihood(PUBLISHED, points) == pytest.approx(PUBLISHED_NEG_LL, abs=1e-3)
    scores = empirical_bayes(GammaMixturePrior(*PUBLISHED), table.counts.a, table.expected)
    assert int((scores.eb05 >= 2).sum()) == 131


def test_prr_signals_with_yates_and_pearson_chi_square(caers_run) -> None:  # type: ignore[no-untyped-def]
    rows, _, _ = caers_run

    def signals(chi2_column: str) -> int:
        return sum(1 for r in rows if r["prr"] and float(r["prr"]) >= 2 and r[chi2_column]
                   and float(r[chi2_column]) >= 4 and int(r["a"]) >= 3)

    assert signals("chi2_yates") == 318
    assert signals("chi2") == 344


def test_undefined_statistics_are_empty_cells_never_inf(caers_run) -> None:  # type: ignore[no-untyped-def]
    rows, _, _ = caers_run
    zero_cell = [r for r in rows if "0" in (r["b"], r["c"])]
    assert zero_cell and all(r["ror"] == "" for r in zero_cell)
    numeric = OUTPUT_COLUMNS[2:]
    assert all(np.isfinite(float(r[c])) for r in rows for c in numeric if r[c])


def test_plot_is_written(caers_run) -> None:  # type: ignore[no-untyped-def]
    _, _, out_dir = caers_run
    assert (out_dir / "top.svg").read_text().lstrip().startswith("<?xml")


def test_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("report,product,event\n1,A,B\n")
    result = CliRunner().invoke(cli, ["signals", "--reports", str(bad), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code != 0
    assert "report_id" in str(result.exception) + result.output


def test_malformed_line_is_an_error_naming_the_line_not_skipped(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"report_id,product,event\n1,A,B\n2,\xff\xfe,C\n")
    result = CliRunner().invoke(cli, ["signals", "--reports", str(bad), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code != 0
    assert "Line: 3" in str(result.exception) and "utf-8" in str(result.exception)
    assert not (tmp_path / "o.csv").exists()


def test_configured_thresholds_decide_which_pairs_are_signals(tmp_path: Path) -> None:
    """PVWATCH_SIGNAL_* reach the flags: the counts printed are those of OUT.csv's statistics at the configured
    thresholds, not the defaults (318 PRR, 257 IC on CAERS above)."""
    env = {"PVWATCH_SIGNAL_PRR_MIN": "3", "PVWATCH_SIGNAL_CHI2_MIN": "10", "PVWATCH_SIGNAL_A_MIN": "5",
           "PVWATCH_SIGNAL_EB05_MIN": "4", "PVWATCH_SIGNAL_IC025_MIN": "1"}
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(cli, ["signals", "--reports", str(CAERS), "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))

    def number(row: dict[str, str], column: str) -> float:
        return float(row[column]) if row[column] else float("nan")

    prr = sum(1 for r in rows if number(r, "prr") >= 3 and number(r, "chi2_yates") >= 10 and int(r["a"]) >= 5)
    ebgm = sum(1 for r in rows if number(r, "eb05") >= 4)
    ic = sum(1 for r in rows if number(r, "ic025") > 1)
    assert f"signals: prr {prr}  ebgm {ebgm}  ic {ic}" in result.output
    assert prr < 318 and ic < 257  # stricter than the defaults


def test_a_prior_fit_that_does_not_converge_fails_the_command_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue: "an error, not a silent answer, when it does not converge" (the CLI's --help says so too)."""
    import pvwatch.store.signals as signals_store
    from pvwatch.domain.signals.ebgm_fit import PriorFitFailed

    def no_convergence(points: object) -> None:
        raise PriorFitFailed("the EBGM prior fit did not converge from any of 6 starts: ABNORMAL")

    monkeypatch.setattr(signals_store, "fit_prior", no_convergence)
    out, hyper = tmp_path / "out.csv", tmp_path / "hyper.json"
    result = CliRunner().invoke(cli, ["signals", "--reports", str(CAERS), "--out", str(out),
                                      "--hyperparameters-out", str(hyper)])
    assert result.exit_code != 0
    assert "did not converge" in result.output + str(result.exception)
    assert not out.exists() and not hyper.exists()
