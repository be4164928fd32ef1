"""A withdrawal `pvwatch replay` records is counted in pv_alerts_withdrawn_by_replay_total{rule} by the worker that
publishes it, once: not by replay (no worker runs), not again by a restarted worker, not in
pv_alerts_withdrawn_total (the withdrawals a later event made, counted where the engine makes them).

The story is test_replay_withdrawals.py's (FDA DILI guidance 2009: ALT 4 x ULN and total bilirubin 3 x ULN two days
apart raise a potential Hy's law case): a store derived by hys-law version 1 also holds that version's alert, which
the rules in force no longer derive; replay withdraws it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from pvwatch.cli import cli
from pvwatch.domain.engine import HYS_LAW
from pvwatch.events import ALERT_TOPIC
from pvwatch.events.alert import alert_id_for
from pvwatch.metrics_client import scrape_labelled
from pvwatch.streams.producer import EventPublisher
from tests.conftest import Workers, wait_for
from tests.integration.test_pipeline import consume_all
from tests.unit.test_rule_withdrawal import ALT, BILIRUBIN, lab

pytestmark = pytest.mark.integration

REPLAY_METRIC = "pv_alerts_withdrawn_by_replay_total"
HYS_LAW_SERIES = (("rule", HYS_LAW),)


def execute(db: Path, sql: str, parameters: dict[str, str] | None = None) -> list[tuple]:
    con = duckdb.connect(str(db))
    try:
        return con.execute(sql, parameters).fetchall()
    finally:
        con.close()


def test_a_replay_withdrawal_is_counted_once_by_the_worker_that_publishes_it(workers: Workers) -> None:
    alt, bilirubin = lab(ALT, 4.0, 1), lab(BILIRUBIN, 3.0, 3)
    first = workers.start()
    with EventPublisher(workers.broker.bootstrap) as publisher:
        publisher.publish(alt)
        publisher.publish(bilirubin)
        publisher.flush()
    wait_for(lambda: workers.metric(first, "pv_alerts_raised_total") >= 1, 30, what="Hy's law raised")
    (raised,) = consume_all(workers.broker.bootstrap, ALERT_TOPIC, 1)
    first.stop()
    # the version-1 alert a store derived before the bump to version 2 still holds, published long ago
    older = alert_id_for(HYS_LAW, 1, f"{alt.event_id}|{bilirubin.event_id}")
    execute(workers.db, "INSERT INTO alerts SELECT * REPLACE ($id::UUID AS alert_id, 1 AS rule_version) FROM alerts",
            {"id": str(older)})

    replayed = CliRunner().invoke(cli, ["replay", "--db", str(workers.db), "--no-signals"])
    assert replayed.exit_code == 0, replayed.output
    assert execute(workers.db, "SELECT alert_id::VARCHAR, withdrawn_by_event_id, published_at FROM alert_withdrawals") \
        == [(str(older), None, None)], "recorded by replay, for the next worker to publish"

    publishing = workers.start()
    wait_for(lambda: workers.metric(publishing, REPLAY_METRIC) >= 1, 30, what="replay withdrawal published")
    counted = scrape_labelled(publishing.metrics_url, REPLAY_METRIC)
    live = scrape_labelled(publishing.metrics_url, "pv_alerts_withdrawn_total")
    publishing.stop()
    assert counted[HYS_LAW_SERIES] == 1 and sum(counted.values()) == 1, counted
    assert live[HYS_LAW_SERIES] == 0, "not a late-event withdrawal"
    # the topic is keyed by alert id: the two alerts' messages may sit on two partitions, read in either order
    messages = [json.loads(record.value) for record in consume_all(workers.broker.bootstrap, ALERT_TOPIC, 2)]
    assert sorted(m["alert_id"] for m in messages) == sorted([json.loads(raised.value)["alert_id"], str(older)])
    (withdrawal,) = [m["withdrawal"] for m in messages if m["alert_id"] == str(older)]
    assert withdrawal["event_id"] is None and "pvwatch replay" in withdrawal["reason"]

    # a restart after a clean stop: the withdrawal is marked published, nothing is sent or counted again
    restarted = workers.start()
    wait_for(lambda: scrape_labelled(restarted.metrics_url, REPLAY_METRIC).get(HYS_LAW_SERIES) == 0, 10,
             what="the replay series exported at 0")
    restarted.stop()
    # a restart after a crash between the send and its mark (the state a kill -9 there leaves): the withdrawal is
    # read back from the topic (streams/alert_resend.py) and marked before the worker is up; not sent, not counted
    execute(workers.db, "UPDATE alert_withdrawals SET published_at = NULL")
    after_crash = workers.start()  # ready = the read-back done and its marks stored
    time.sleep(1.0)  # the opening's flush (nothing, if the read-back found the withdrawal) runs right after
    assert scrape_labelled(after_crash.metrics_url, REPLAY_METRIC)[HYS_LAW_SERIES] == 0
    after_crash.stop()
    assert execute(workers.db, "SELECT count(published_at) FROM alert_withdrawals") == [(1,)]
    assert len(consume_all(workers.broker.bootstrap, ALERT_TOPIC, 3, timeout_s=3)) == 2, "not sent again"
