"""Signals over the event store: counting cases (latest version), the signals table, the outbox of new and
strengthened signals, and `pvwatch signals --from-store` with strata.

Expected counts are worked by hand from the reports built in each test (definitions: docs/signals.md).
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from click.testing import CliRunner

from pvwatch.cli import cli
from pvwatch.domain.signals.criteria import SignalThresholds
from pvwatch.events.adverse_event import AdverseEventReported
from pvwatch.events.codec import encode_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.infusion import MscInfusionGiven
from pvwatch.events.patient import PatientEnrolled
from pvwatch.store.eventstore import EventStore, MessageOrigin
from pvwatch.store.signals import mark_signals_published, refresh_signals, unpublished_signals

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def patient(n: int) -> str:
    return f"pt-{n:020x}"


def enrolled(n: int, birth: str, sex: str) -> PatientEnrolled:
    return PatientEnrolled(event_id=uuid4(), occurred_at=NOW - timedelta(days=400),
                           recorded_at=NOW - timedelta(days=400), source="test", patient=patient(n),
                           birth_year_month=birth, sex=sex,
                           diagnoses=[{"condition": "SLE", "icd10_code": "M32.1"}], site="clinic")


def report(case: str, n: int, term: str, products: list[tuple[str, str]], kind: str = "initial",
           days_ago: int = 10) -> AdverseEventReported:
    at = NOW - timedelta(days=days_ago)
    return AdverseEventReported(
        event_id=uuid4(), occurred_at=at, recorded_at=at, source="test", patient=patient(n), case_id=case,
        report_kind=kind, reporter_type="clinician", awareness_date=at.date(), onset_date=at.date(), term=term,
        products=[{"name": name, "role": role} for name, role in products])


def store_events(store: EventStore, events: list[EventEnvelope]) -> None:
    with store.transaction():
        store.insert_events([(e, MessageOrigin(e.topic)) for e in events], datetime.now(UTC),
                            [encode_event(e) for e in events])


def store_with_a_signal_row(tmp_path: Path, product: str, event: str) -> Path:
    """A store holding a fever cluster and background reports, and one signals row from an earlier run."""
    db = tmp_path / "pv.duckdb"
    running = EventStore(db)
    store_events(running, fever_cluster(0, 4) + background(100, 40))
    running.con.execute("INSERT INTO signals SELECT ?, ?, 1, 0, 0, 0, 1, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, "
                        "NULL, NULL, NULL, false, false, false, now()", [product, event])
    running.close()
    return db


def signals_rows(store: EventStore) -> dict[tuple[str, str], dict[str, object]]:
    cursor = store.con.execute("SELECT * FROM signals")
    names = [d[0] for d in cursor.description or []]
    return {(r[0], r[1]): dict(zip(names, r, strict=True)) for r in cursor.fetchall()}


def fever_cluster(first_case: int, cases: int) -> list[EventEnvelope]:
    """`cases` MSC-product cases with fever: the association the PRR and IC signals must find."""
    return [report(f"C{first_case + i}", first_case + i, "Pyrexia", [("MSC-UC", "suspect")])
            for i in range(cases)]


def background(first_case: int, cases: int) -> list[EventEnvelope]:
    terms = ["Nausea", "Rash", "Headache", "Fatigue"]
    return [report(f"C{first_case + i}", first_case + i, terms[i % 4], [("Methotrexate", "suspect")])
            for i in range(cases)]


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    running = EventStore(tmp_path / "pv.duckdb")
    yield running  # type: ignore[misc]
    running.close()


def test_cases_count_once_by_latest_version_and_concomitants_are_not_suspects(store: EventStore) -> None:
    events: list[EventEnvelope] = [
        report("A", 1, "Pyrexia", [("MSC-UC", "suspect")], days_ago=20),
        # follow-up of case A: the product list is corrected; only this version counts
        report("A", 1, "Pyrexia", [("MSC-UC", "suspect"), ("Prednisolone", "concomitant")], "follow-up", 5),
        report("B", 2, "Pyrexia", [("Methotrexate", "suspect")]),
        report("C", 3, "Rash", [("Methotrexate", "suspect"), ("MSC-UC", "interacting")]),
        report("D", 4, "Nausea", [("Methotrexate", "suspect")]),
    ]
    store_events(store, events)
    refresh = refresh_signals(store.con, SignalThresholds(), NOW)
    rows = signals_rows(store)
    # N = 4 cases. MSC-UC / Pyrexia: case A (a=1); MSC-UC also in C (b=1); Pyrexia also in B (c=1); D (d=1).
    assert (rows[("MSC-UC", "Pyrexia")]["a"], rows[("MSC-UC", "Pyrexia")]["b"], rows[("MSC-UC", "Pyrexia")]["c"],
            rows[("MSC-UC", "Pyrexia")]["d"]) == (1, 1, 1, 1)
    assert ("Prednisolone", "Pyrexia") not in rows  # concomitant: not suspected
    assert rows[("Methotrexate", "Nausea")]["a"] == 1 and rows[("Methotrexate", "Nausea")]["b"] == 2
    assert refresh.pairs == len(rows) == 5


def test_new_signal_is_published_once_and_again_only_when_it_strengthens(store: EventStore) -> None:
    store_events(store, fever_cluster(0, 4) + background(100, 40))
    thresholds = SignalThresholds()
    first = refresh_signals(store.con, thresholds, NOW)
    prr_news = [s for s in first.news if s.method == "prr"]
    # MSC-UC / Pyrexia: a=4, b=0, c=0, d=40: PRR undefined (c = 0), so no PRR signal; IC025 > 0 is one:
    # IC = log2(4.5 / (4*4/44 + 0.5)) = 1.97, IC025 = log2(Gamma(4.5, 0.8636).ppf(0.025)) > 0.
    assert prr_news == []
    ic_news = [s for s in first.news if s.method == "ic"]
    assert [(s.product, s.event, s.kind) for s in ic_news] == [("MSC-UC", "Pyrexia", "new")]
    assert first.active["ic"] == 1
    assert [s.signal_id for s in unpublished_signals(store.con)] == [s.signal_id for s in first.news]
    mark_signals_published(store.con, [str(s.signal_id) for s in first.news])
    assert unpublished_signals(store.con) == []

    again = refresh_signals(store.con, thresholds, NOW + timedelta(minutes=5))
    assert again.news == []  # nothing changed: nothing republished

    # Two Methotrexate/Pyrexia cases make c > 0 (PRR defined); 10 more MSC fever cases among 200 more reports
    # strengthen the IC: E = 14*16/256 = 0.875, 2^IC025 = Gamma(14.5).ppf(0.025)/1.375 = 5.8, over 1.5 x 1.79.
    store_events(store, fever_cluster(200, 10) + background(400, 200)
                 + [report("X1", 300, "Pyrexia", [("Methotrexate", "suspect")]),
                    report("X2", 301, "Pyrexia", [("Methotrexate", "suspect")])])
    later = refresh_signals(store.con, thresholds, NOW + timedelta(minutes=10))
    kinds = {(s.method, s.kind) for s in later.news if (s.product, s.event) == ("MSC-UC", "Pyrexia")}
    assert ("prr", "new") in kinds
    assert ("ic", "strengthened") in kinds
    runs = store.con.execute("SELECT count(*) FROM signal_runs").fetchone()
    assert runs == (3,)


def test_empty_store_is_not_an_error(store: EventStore) -> None:
    refresh = refresh_signals(store.con, SignalThresholds(), NOW)
    assert refresh.pairs == 0 and refresh.news == []


def test_cli_from_store_with_age_and_sex_strata(tmp_path: Path) -> None:
    db = tmp_path / "pv.duckdb"
    running = EventStore(db)
    people = [enrolled(n, "2016-03" if n % 2 else "2010-07", "female" if n % 3 else "male") for n in range(60)]
    events: list[EventEnvelope] = [*people, *fever_cluster(0, 12), *background(12, 48)]
    store_events(running, events)
    running.close()
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(cli, ["signals", "--from-store", "--db", str(db), "--out", str(out),
                                      "--stratify", "age_group,sex"])
    assert result.exit_code == 0, result.output
    with out.open(newline="") as handle:
        rows = {(r["product"], r["event"]): r for r in csv.DictReader(handle)}
    fever = rows[("MSC-UC", "Pyrexia")]
    assert (int(fever["a"]), int(fever["b"]), int(fever["c"]), int(fever["d"])) == (12, 0, 0, 48)
    # Stratified E = sum over strata of n_product,s * n_event,s / N_s: MSC-UC and Pyrexia are the same 12
    # cases, so E = sum_s 12_s^2 / N_s, not 12 * 12 / 60 = 2.4 (it is 2.4 only if strata are balanced).
    ages = {n: ("12-17" if n % 2 == 0 else "2-11") for n in range(60)}
    sexes = {n: ("male" if n % 3 == 0 else "female") for n in range(60)}
    strata: dict[tuple[str, str], list[int]] = {}
    for n in range(60):
        strata.setdefault((ages[n], sexes[n]), []).append(n)
    expected = sum(sum(1 for n in members if n < 12) ** 2 / len(members) for members in strata.values())
    assert float(fever["expected"]) == pytest.approx(expected)


def test_unknown_stratum_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["signals", "--reports", "x.csv", "--out", str(tmp_path / "o.csv"),
                                      "--stratify", "weight"])
    assert result.exit_code != 0
    assert "unknown stratum" in result.output


def infusion(n: int, days_ago: int) -> MscInfusionGiven:
    at = NOW - timedelta(days=days_ago)
    return MscInfusionGiven(event_id=uuid4(), occurred_at=at, recorded_at=at, source="test", patient=patient(n),
                            clinic="Clinic A")


def test_maxsprt_over_msc_infusions_in_the_store(tmp_path: Path) -> None:
    # 20 infusions (patients 0-19, 10 days ago); fever began the day after the infusion in 5 of them, and in
    # patient 50 who had no infusion (not counted). Background rate 0.05 per infusion: expected 20 x 0.05 = 1.
    # LLR(5, 1) = (1 - 5) + 5 ln 5 = 4.047 >= CV(T=10, M=4) = 2.921561 (R Sequential): a signal, exit status 1.
    db = tmp_path / "pv.duckdb"
    running = EventStore(db)
    events: list[EventEnvelope] = [infusion(n, 10) for n in range(20)]
    events += [report(f"F{n}", n, "Pyrexia", [("MSC-UC", "suspect")], days_ago=9) for n in range(5)]
    events += [report("F50", 50, "Pyrexia", [("Ibuprofen", "suspect")], days_ago=9)]
    store_events(running, events)
    running.close()
    result = CliRunner().invoke(cli, ["maxsprt", "--db", str(db), "--term", "pyrexia", "--rate", "0.05",
                                      "--length", "10", "--min-events", "4", "--window-days", "1"])
    assert result.exit_code == 1, result.output
    assert "20 MSC infusions" in result.output and "5 observed" in result.output
    assert "critical value 2.921561" in result.output and "SIGNAL" in result.output
    quiet = CliRunner().invoke(cli, ["maxsprt", "--db", str(db), "--term", "Rash", "--rate", "0.05",
                                     "--length", "10", "--min-events", "4"])
    assert quiet.exit_code == 0 and "no signal" in quiet.output


def test_dashboard_signals_page_reads_the_table_from_the_snapshot_strongest_first(tmp_path: Path) -> None:
    from pvwatch.dashboards.readmodel import ReadModel
    from pvwatch.dashboards.webapp import _ebgm_plot
    from pvwatch.store.snapshot import publish_snapshot

    running = EventStore(tmp_path / "pv.duckdb")
    store_events(running, fever_cluster(0, 6) + background(100, 60))
    refresh_signals(running.con, SignalThresholds(), NOW)
    info = publish_snapshot(running.con, tmp_path / "snap.duckdb")
    running.close()
    read = ReadModel(info.path)
    with read.connect() as con:
        table = read.table(con, "signals", order_by="eb05 DESC NULLS LAST, ic025 DESC, a DESC")
    assert table is not None
    assert table.rows[0][:2] == ["MSC-UC", "Pyrexia"]  # the strongest pair first (IC025 when EBGM is empty)
    assert table.rows[0][table.columns.index("eb05")] is not None  # the prior fits these 66 reports
    plot = _ebgm_plot(table)
    assert plot is not None and "MSC-UC / Pyrexia" in plot


def test_live_maxsprt_records_one_signal_when_the_boundary_is_crossed(store: EventStore) -> None:
    from pvwatch.config import Settings
    from pvwatch.store.signals import MaxSprtMonitor, check_maxsprt

    monitor = MaxSprtMonitor.from_settings(Settings(maxsprt_term="Pyrexia", maxsprt_rate=0.05, maxsprt_length=10,
                                                    maxsprt_min_events=4))
    assert monitor is not None and monitor.critical_value == pytest.approx(2.921561, abs=1e-6)  # R Sequential
    store_events(store, [infusion(n, 10) for n in range(20)]
                 + [report(f"F{n}", n, "Pyrexia", [("MSC-UC", "suspect")], days_ago=9) for n in range(3)])
    assert check_maxsprt(store.con, monitor, NOW) is None  # 3 cases: LLR(3, 1) = 1.30 < CV and M = 4 not reached
    store_events(store, [report(f"G{n}", n, "Pyrexia", [("MSC-UC", "suspect")], days_ago=9) for n in range(3, 5)])
    crossed = check_maxsprt(store.con, monitor, NOW)  # 5 cases, expected 1: LLR 4.047 >= 2.921561
    assert crossed is not None and crossed.method == "maxsprt" and crossed.a == 5
    assert crossed.llr == pytest.approx(-4 + 5 * math.log(5))
    assert [s.signal_id for s in unpublished_signals(store.con)] == [crossed.signal_id]
    assert check_maxsprt(store.con, monitor, NOW) is None  # surveillance of the term ended: never republished


def test_replay_rebuilds_the_signals_table_from_the_log(tmp_path: Path) -> None:
    """`pvwatch replay` rebuilds every derived table, the signals too (issue 5: "every derived table"), as the
    worker's timer would: a stale table is replaced, and the news waits in the outbox for the next worker."""
    db = store_with_a_signal_row(tmp_path, "Stale", "Left over")

    kept = CliRunner().invoke(cli, ["replay", "--db", str(db), "--processes", "1", "--no-signals"])
    assert kept.exit_code == 0, kept.output
    running = EventStore(db)
    try:
        assert ("Stale", "Left over") in signals_rows(running), "--no-signals leaves the signals table alone"
    finally:
        running.close()
    rebuilt = CliRunner().invoke(cli, ["replay", "--db", str(db), "--processes", "1"])
    assert rebuilt.exit_code == 0, rebuilt.output

    running = EventStore(db)
    try:
        rows = signals_rows(running)
        runs = running.con.execute("SELECT reports, pairs FROM signal_runs").fetchall()
        pending = unpublished_signals(running.con)
    finally:
        running.close()
    assert ("Stale", "Left over") not in rows
    # 44 reports: MSC-UC/Pyrexia a=4, b=0, c=0, d=40 and the 4 Methotrexate background pairs (10 reports each)
    assert len(rows) == 5 and runs == [(44, 5)]
    fever = rows[("MSC-UC", "Pyrexia")]
    assert (fever["a"], fever["b"], fever["c"], fever["d"]) == (4, 0, 0, 40) and fever["signal_ic"]
    # the IC signal worked out in test_new_signal_is_published_once... (EB05 depends on a prior fitted to 5 pairs)
    news = {(s.product, s.event, s.method, s.kind) for s in pending}
    assert ("MSC-UC", "Pyrexia", "ic", "new") in news and {(p, e, k) for p, e, _, k in news} == \
        {("MSC-UC", "Pyrexia", "new")}
    assert "signals: 5 product-event pairs" in rebuilt.output
    assert f"{len(pending)} new or strengthened (published by the next worker)" in rebuilt.output


def test_a_failing_signal_recomputation_is_reported_and_keeps_the_replayed_rule_tables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    import pvwatch.store.signals as signals_store

    def broken(*args: object) -> None:
        raise duckdb.IOException("IO Error: could not read the event log")

    db = store_with_a_signal_row(tmp_path, "Earlier", "Signal")
    monkeypatch.setattr(signals_store, "refresh_signals", broken)
    result = CliRunner().invoke(cli, ["replay", "--db", str(db), "--processes", "1"])
    assert result.exit_code == 0, result.output
    assert "replayed 44 events" in result.stdout
    assert result.stderr.splitlines()[-1] == \
        "warning: the signals table was not rebuilt: IO Error: could not read the event log"
    running = EventStore(db)
    try:
        assert ("Earlier", "Signal") in signals_rows(running)  # left as it was
    finally:
        running.close()
