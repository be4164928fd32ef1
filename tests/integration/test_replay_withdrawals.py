"""An alert `pvwatch replay` removes (the rules in force no longer derive it from the complete log: a store derived
by an older rule version, a changed parameter, a disabled rule) is withdrawn like a live withdrawal: kept in
alert_withdrawals for the outbox, so the next worker publishes it on pv.safety.alert.v1 under the alert's id and
resolves it in Alertmanager. Before, replay deleted the row and said nothing: the topic's last message for the id
still said it stood, and the inserted replacement (another id) was published beside it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from pvwatch.domain.engine import HYS_LAW
from pvwatch.events.alert import alert_id_for
from pvwatch.rulebook import load_rule_parameters
from pvwatch.store.eventstore import EventStore
from pvwatch.store.replay import replay
from pvwatch.streams.alertmanager import alertmanager_alert, load_direct_routes
from tests.unit.test_rule_withdrawal import ALT, BILIRUBIN, lab

pytestmark = pytest.mark.integration

PARAMETERS = load_rule_parameters()


def store_with_a_hys_law_pair(path: Path) -> str:
    """ALT 4 x ULN and bilirubin 3 x ULN two days apart (FDA DILI guidance 2009: a potential Hy's law case),
    replayed and published; returns the pair's dedupe key."""
    alt, bilirubin = lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3)
    store = EventStore(path)
    with store.transaction():
        store.insert_events([(alt, None), (bilirubin, None)], datetime.now(UTC))
    store.close()
    replay(path, processes=1)
    con = duckdb.connect(str(path))
    con.execute("UPDATE alerts SET published_at = now()")
    con.close()
    return f"{alt.event_id}|{bilirubin.event_id}"


def pending(path: Path) -> list:
    store = EventStore(path)
    try:
        return store.unpublished_alerts()
    finally:
        store.close()


def test_replay_withdraws_the_alerts_of_an_older_rule_version_it_removes(tmp_path):
    path = tmp_path / "store.duckdb"
    pair = store_with_a_hys_law_pair(path)
    current = alert_id_for(HYS_LAW, PARAMETERS.version(HYS_LAW), pair)
    older = alert_id_for(HYS_LAW, 1, pair)  # what a store derived by hys-law version 1 holds
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO alerts SELECT * REPLACE ($id::UUID AS alert_id, 1 AS rule_version) FROM alerts",
                {"id": str(older)})
    con.close()

    report = replay(path, processes=1)

    assert (report.alerts_added, report.alerts_removed) == (0, 1)
    (message,) = pending(path)
    assert message.alert_id == older and message.rule_version == 1 and message.withdrawal is not None
    assert message.withdrawal.event_id is None and "pvwatch replay" in message.withdrawal.reason
    assert current not in {m.alert_id for m in pending(path)}, "the current version's alert stands, published"
    body = alertmanager_alert(message, _route(), posted_at=message.withdrawal.withdrawn_at)
    assert body["endsAt"] == max(message.raised_at, message.withdrawal.withdrawn_at).isoformat(), "resolved"


def test_replay_with_the_rule_disabled_withdraws_its_alerts_and_the_next_replay_says_nothing_more(tmp_path):
    path = tmp_path / "store.duckdb"
    pair = store_with_a_hys_law_pair(path)
    disabled = replace(PARAMETERS, disabled=frozenset(PARAMETERS.disabled | {HYS_LAW}))

    assert replay(path, processes=1, parameters=disabled).alerts_removed == 1
    (message,) = pending(path)
    assert message.alert_id == alert_id_for(HYS_LAW, PARAMETERS.version(HYS_LAW), pair) and message.withdrawn
    assert b'"withdrawal"' in message.wire_json(), "sent as a withdrawal"

    assert replay(path, processes=2, parameters=disabled).alerts_removed == 0
    assert len(pending(path)) == 1


def _route():
    route = load_direct_routes().route_for(HYS_LAW)
    assert route is not None, "hys-law pages directly (dashboards' alerting rules)"
    return route
