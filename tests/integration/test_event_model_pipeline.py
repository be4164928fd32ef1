"""The clinical event model end to end: JSON Lines -> ingest edge -> real broker -> real worker -> DuckDB views.

Every event type round-trips into its typed view; bad input of every kind ends in `dead_letters` with its reason
and is counted, without stopping the worker; resends and out-of-order arrival are stored once; and no raw patient
identifier reaches Kafka, the store, the worker's log or /metrics.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import pytest
from kafka import KafkaConsumer

from pvwatch.cohort import generate_cohort
from pvwatch.events.codec import MAX_MESSAGE_BYTES
from pvwatch.events.registry import ALL_TOPICS, DEAD_LETTER_TOPIC
from pvwatch.metrics_client import processed, scrape, scrape_labelled
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.streams.ingest import IngestReport, prepare, read_lines, send_prepared
from pvwatch.streams.producer import EventPublisher
from tests.conftest import Workers, wait_for
from tests.unit.test_events_models import EXAMPLES, example

pytestmark = pytest.mark.integration

#: type -> its typed view (docs/analysts.md)
VIEW_OF_TYPE = {
    "patient-enrolled": "patients", "patient-updated": "patients", "treatment-started": "treatments",
    "treatment-dose-changed": "treatments", "treatment-tapered": "treatments", "treatment-stopped": "treatments",
    "msc-infusion": "infusions", "adverse-event": "adverse_events", "lab-result": "labs",
    "disease-activity": "disease_activity", "outcome-claim": "outcomes",
}


def ingest(lines: list[bytes], workers: Workers, pseudonymiser: Pseudonymiser, label: str = "events.jsonl"
           ) -> IngestReport:
    """What `pvwatch ingest FILE` does: prepare every line at the edge, then publish events and dead letters."""
    prepared = [prepare(where, line, pseudonymiser) for where, line in read_lines(lines, label)]
    with EventPublisher(workers.broker.bootstrap) as publisher:
        return send_prepared(prepared, publisher)


def wait_processed(workers: Workers, worker: Any, expected: int) -> dict[str, float]:
    wait_for(lambda: processed(scrape(worker.metrics_url)) >= expected, 60, what=f"{expected} messages processed")
    time.sleep(0.5)  # nothing beyond the expected count may arrive
    return scrape(worker.metrics_url)


def same(stored: Any, sent: Any) -> bool:
    """A view's typed value equals the JSON value sent (instants compared as instants, dates as dates)."""
    if isinstance(stored, datetime):
        return stored == datetime.fromisoformat(sent)
    if isinstance(stored, date):
        return stored == date.fromisoformat(sent)
    if isinstance(stored, UUID):
        return str(stored) == sent
    if isinstance(stored, float):
        return stored == pytest.approx(float(sent))
    return bool(stored == sent)


def view_row(con: duckdb.DuckDBPyConnection, view: str, event_id: str) -> dict[str, Any]:
    cursor = con.execute(f"SELECT * FROM {view} WHERE event_id = ?", [event_id])
    names = [d[0] for d in cursor.description or []]
    rows = cursor.fetchall()
    assert len(rows) == 1, f"{view} has {len(rows)} rows for {event_id}"
    return dict(zip(names, rows[0], strict=True))


def test_every_type_round_trips_into_its_view_once_whatever_the_order(workers: Workers, demo_pseudonymiser):
    examples = [example(name) for name in EXAMPLES]
    cohort = list(generate_cohort(6, seed=5))
    records = examples + cohort
    resent = [records[1], records[7], records[len(records) - 2]]
    lines = [json.dumps(r).encode() for r in records + resent]
    random.Random(3).shuffle(lines)  # late and out-of-order arrival
    worker = workers.start()
    report = ingest(lines, workers, demo_pseudonymiser)
    assert (report.accepted, report.rejected) == (len(lines), [])
    totals = wait_processed(workers, worker, len(lines))
    assert totals["pv_events_ingested_total"] == len(records)
    assert totals["pv_events_duplicate_total"] == len(resent)
    assert totals.get("pv_events_rejected_total", 0) == 0
    worker.stop()

    con = duckdb.connect(str(workers.db), read_only=True)
    stored_types = Counter(dict(con.execute("SELECT type, count(*) FROM event_log GROUP BY type").fetchall()))
    assert stored_types == Counter(r["type"] for r in records)
    for view in set(VIEW_OF_TYPE.values()) - {"patients"}:
        wanted = sum(1 for r in records if VIEW_OF_TYPE[r["type"]] == view)
        assert con.execute(f"SELECT count(*) FROM {view}").fetchone()[0] == wanted, view
    assert con.execute("SELECT count(*) FROM patients").fetchone()[0] == len({r["patient_ref"] for r in records})

    for record in examples:
        view = VIEW_OF_TYPE[record["type"]]
        if view == "patients":
            row = con.execute("SELECT * FROM patients WHERE patient = ?",
                              [demo_pseudonymiser.pseudonym(record["patient_ref"])]).fetchone()
            assert row is not None
            continue
        row = view_row(con, view, record["event_id"])
        compared = 0
        for column, value in row.items():
            sent = record.get(column, record.get("seriousness", {}).get(column) if view == "adverse_events" else None)
            if sent is None or isinstance(sent, dict):
                continue
            if isinstance(sent, list) and sent and isinstance(sent[0], dict):
                continue
            assert same(value, sent), f"{view}.{column}: stored {value!r}, sent {sent!r}"
            compared += 1
        assert compared >= 5, f"{view}: only {compared} columns compared"
    con.close()


def bad_lines() -> list[tuple[str, bytes]]:
    """(reason expected, line) for every kind of bad input an edge can meet."""
    def line(record: dict[str, Any]) -> bytes:
        return json.dumps(record).encode()

    return [
        ("schema", line(example("lab-result", value="low"))),  # wrong type
        ("schema", line(example("msc-infusion", clinic=None))),  # missing field
        ("schema", line(example("lab-result", loinc_code="751-9"))),  # unknown code: bad check digit
        ("schema", line(example("patient-enrolled", diagnoses=[{"condition": "SLE", "icd10_code": "LUPUS"}]))),
        ("schema", line(example("disease-activity", instrument="DAS28"))),  # unknown instrument
        ("unknown_type", line({**example("lab-result"), "type": "horoscope"})),
        ("schema", line(example("adverse-event", resolution_date="2026-02-01"))),  # resolved before onset
        ("schema", line(example("patient-enrolled", birth_year_month="2027-05"))),  # born in the future
        ("schema", line(example("outcome-claim", occurred_at="2026-03-22T19:00:00+01:00"))),  # after recorded_at
        ("schema", line(example("treatment-started", dose=-15))),  # negative dose
        ("invalid_unit", line(example("lab-result", unit="mcg/L"))),  # not UCUM (ug/L)
        ("oversize", line(example("adverse-event", narrative="x" * MAX_MESSAGE_BYTES))),
        ("not_utf8", b'{"type": "lab-result", "test_name": "Neutrophils \xff\xfe"}'),
        ("not_json", b'{"type": "lab-result", '),
        ("not_json", b"[" * 50_000 + b"]" * 50_000),
    ]


def test_bad_input_of_every_kind_is_dead_lettered_with_its_reason_and_counted(workers: Workers, demo_pseudonymiser):
    worker = workers.start()
    at_the_edge = bad_lines()
    report = ingest([raw for _, raw in at_the_edge] + [json.dumps(example("lab-result")).encode()], workers,
                    demo_pseudonymiser, "bad.jsonl")
    assert report.accepted == 1
    assert Counter(r.reason for r in report.rejected) == Counter(reason for reason, _ in at_the_edge)
    assert any("loinc_code" in r.detail and "check digit" in r.detail for r in report.rejected)
    assert any(r.detail.startswith("unit: 'mcg/L' is not a UCUM unit") for r in report.rejected)

    # A producer writing straight to the topics, past the edge: the worker's own validation.
    # pydantic bounds the nesting itself; the edge's lines carry `patient_ref`, not `patient`, so past the edge the
    # missing pseudonym is the first problem of the bad-unit line and its reason is `schema`.
    direct = [("schema" if reason == "invalid_unit" else reason, raw) for reason, raw in at_the_edge
              if raw[:1] != b"["]
    lab_on_its_topic = demo_pseudonymiser.pseudonymise_record(
        example("lab-result", event_id="0b7c4a3e-1f6d-4c1e-8a52-3d1f0e9c2c01"))
    direct += [("empty", b""), ("wrong_topic", json.dumps(lab_on_its_topic).encode())]
    bad_unit_on_its_topic = demo_pseudonymiser.pseudonymise_record(
        example("lab-result", event_id="0b7c4a3e-1f6d-4c1e-8a52-3d1f0e9c2c02", unit="mcg/L"))
    with EventPublisher(workers.broker.bootstrap) as publisher:
        for _, raw in direct:
            publisher.publish_raw("pv.clinical.msc-infusion.v1", raw, key=b"pt-bad")
        publisher.publish_raw("pv.clinical.lab-result.v1", json.dumps(lab_on_its_topic).encode())
        publisher.publish_raw("pv.clinical.lab-result.v1", json.dumps(bad_unit_on_its_topic).encode())
    expected = len(at_the_edge) + 1 + len(direct) + 2
    totals = wait_processed(workers, worker, expected)
    assert worker.process.poll() is None, "the worker survives every kind of bad input"
    assert totals["pv_events_ingested_total"] == 2
    rejected = scrape_labelled(worker.metrics_url, "pv_events_rejected_total")
    counted: Counter[tuple[str, str]] = Counter()
    for labels, value in rejected.items():
        counted[(dict(labels)["topic"], dict(labels)["reason"])] += int(value)
    wanted = Counter((DEAD_LETTER_TOPIC, reason) for reason, _ in at_the_edge)
    wanted.update(("pv.clinical.msc-infusion.v1", reason) for reason, _ in direct)
    wanted[("pv.clinical.lab-result.v1", "invalid_unit")] += 1  # a pseudonymised line whose unit is not UCUM
    assert counted == wanted
    worker.stop()

    con = duckdb.connect(str(workers.db), read_only=True)
    letters = con.execute("SELECT kafka_topic, reason, detail FROM dead_letters").fetchall()
    assert Counter((topic, reason) for topic, reason, _ in letters) == wanted
    assert all(detail for _, _, detail in letters), "every dead letter says why"
    details = " ".join(detail for _, reason, detail in letters if reason == "schema")
    for field in ("value", "clinic", "loinc_code", "icd10_code", "instrument", "resolution_date",
                  "birth_year_month", "occurred_at", "dose"):
        assert field in details, f"no rejection names {field}"
    assert con.execute("SELECT count(*) FROM labs").fetchone()[0] == 2
    con.close()


def identifying(index: int) -> dict[str, str]:
    """Raw identifiers a hospital extract may carry: an MRN, a name, a full birth date (never a cohort date)."""
    return {"mrn": f"MRN-PII-{index:04d}", "patient_name": f"Zoé Kowalczyk-{index:02d}",
            "birth_date": f"2012-02-{10 + index:02d}"}


def test_no_raw_identifier_reaches_kafka_the_store_the_log_or_metrics(workers: Workers, demo_pseudonymiser,
                                                                     tmp_path: Path):
    records = list(generate_cohort(4, seed=11))
    refs = sorted({r["patient_ref"] for r in records})
    secrets = set(refs)
    for record in records:
        raw = identifying(refs.index(record["patient_ref"]))
        secrets.update(raw.values())
        if record["type"] in ("patient-enrolled", "adverse-event", "lab-result"):
            record.update(raw)
    raw0 = identifying(0)
    lines = [json.dumps(r).encode() for r in records] + [
        json.dumps({**example("lab-result", value="low"), "patient_ref": refs[0], **raw0}).encode(),  # invalid
        json.dumps({**example("lab-result"), "patient_ref": None, "patient": refs[1]}).encode(),  # MRN misplaced
        f'{{"patient_ref": "{refs[2]}", "name": "{raw0["patient_name"]}", '.encode(),  # not JSON
        json.dumps({**example("adverse-event", narrative="x" * MAX_MESSAGE_BYTES), "patient_ref": refs[3]}).encode(),
    ]
    worker = workers.start()
    report = ingest(lines, workers, demo_pseudonymiser)
    assert report.accepted == len(records) and len(report.rejected) == 4
    wait_processed(workers, worker, len(lines))
    metrics_text = urlopen_text(worker.metrics_url)
    kafka_text = everything_on_kafka(workers.broker.bootstrap)
    worker.stop()

    store_text = everything_in_duckdb(workers.db)
    files = [p for p in workers.db.parent.iterdir() if p.name.startswith(workers.db.name)]
    file_bytes = b"".join(p.read_bytes() for p in files)
    log_text = "".join(w.log_path.read_text(errors="replace") for w in workers.started)
    pseudonyms = {demo_pseudonymiser.pseudonym(ref) for ref in refs}
    assert all(p in store_text for p in pseudonyms) and all(p in kafka_text for p in pseudonyms), \
        "the search must see the data (positive control)"
    assert "pv_events_ingested_total" in metrics_text and log_text
    for secret in sorted(secrets):
        assert secret not in store_text, f"{secret!r} in a DuckDB table"
        assert secret.encode() not in file_bytes, f"{secret!r} in the DuckDB files"
        assert secret not in kafka_text, f"{secret!r} on a Kafka topic"
        assert secret not in log_text, f"{secret!r} in the worker log"
        assert secret not in metrics_text, f"{secret!r} in /metrics"


def urlopen_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def everything_on_kafka(bootstrap: str) -> str:
    """Keys, values and headers of every message on every pvwatch topic, as text."""
    consumer = KafkaConsumer(*ALL_TOPICS, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=2000)
    parts: list[str] = []
    for message in consumer:
        parts.append((message.key or b"").decode(errors="replace"))
        parts.append((message.value or b"").decode(errors="replace"))
        parts.extend(f"{k}={v.decode(errors='replace')}" for k, v in message.headers or [])
    consumer.close()
    assert parts, "topics were read"
    return "\n".join(parts)


def everything_in_duckdb(path: Path) -> str:
    """Every cell of every table of the store, as text (BLOBs decoded)."""
    con = duckdb.connect(str(path), read_only=True)
    parts: list[str] = []
    tables = [row[0] for row in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall()]
    assert "event_log" in tables and "dead_letters" in tables
    for table in tables:
        for row in con.execute(f'SELECT * FROM "{table}"').fetchall():
            for cell in row:
                parts.append(cell.decode(errors="replace") if isinstance(cell, bytes) else str(cell))
    con.close()
    return "\n".join(parts)
