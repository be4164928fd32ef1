"""Reporter identity end to end: JSON Lines with raw reporter identifiers -> ingest edge -> real broker -> real
worker -> DuckDB. The raw identifier (a name, an e-mail, a registration number) is replaced at the edge by its
`rp-` pseudonym and found nowhere after it (Kafka, the store's tables and files, the worker log, /metrics); the
worker's duplicate-case rule compares the pseudonyms: two clinicians reporting one episode are different
reporters, one parent sending the episode again under a new case id is the same reporter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pvwatch.pseudonym import Pseudonymiser
from tests.conftest import Workers
from tests.integration.test_event_model_pipeline import (
    everything_in_duckdb,
    everything_on_kafka,
    ingest,
    urlopen_text,
    wait_processed,
)
from tests.unit.test_events_models import example

pytestmark = pytest.mark.integration

DR_MOREAU = "Dr Inès Moreau (RPPS 10101234567)"
DR_SILVA = "joao.silva@hospital-porto.example"
MOTHER = "maria.kowalczyk@parents.example"


def adverse_event(number: int, case_id: str, reporter_type: str, reporter_ref: str | None, onset: str,
                  term: str) -> dict[str, Any]:
    record = example("adverse-event", event_id=f"7d0e4c1a-0000-4000-8000-{number:012d}", case_id=case_id,
                     reporter_type=reporter_type, occurred_at=f"{onset}T15:30:00+01:00",
                     recorded_at=f"{onset}T20:00:00+01:00", awareness_date=onset, onset_date=onset,
                     resolution_date=None, term=term, meddra_pt_code=None, meddra_version=None, ctcae_term=None,
                     ctcae_grade=None, seriousness={}, products=[], narrative=None, reporter_ref=reporter_ref)
    return record


def test_reporters_are_pseudonymised_at_the_edge_and_compared_by_the_worker(workers: Workers,
                                                                           demo_pseudonymiser: Pseudonymiser,
                                                                           tmp_path: Path):
    records = [
        adverse_event(1, "C-LYON-FEV-1", "clinician", DR_MOREAU, "2026-03-02", "Pyrexia"),
        adverse_event(2, "C-LYON-FEV-2", "clinician", DR_SILVA, "2026-03-03", "Pyrexia"),
        adverse_event(3, "C-APP-RASH-1", "parent", MOTHER, "2026-04-10", "Rash"),
        adverse_event(4, "C-APP-RASH-2", "parent", MOTHER, "2026-04-11", "Rash"),
        adverse_event(5, "C-LYON-URT-1", "clinician", DR_MOREAU, "2026-05-20", "Urticaria"),
        adverse_event(6, "C-LYON-URT-2", "clinician", None, "2026-05-21", "Urticaria"),  # no reporter: by types
    ]
    misplaced = {**adverse_event(7, "C-BAD-1", "parent", None, "2026-04-12", "Rash"), "reporter": MOTHER}
    lines = [json.dumps(r).encode() for r in [*records, misplaced]]
    worker = workers.start()
    report = ingest(lines, workers, demo_pseudonymiser)
    assert report.accepted == len(records)
    assert [(r.reason, r.detail.split(":")[0]) for r in report.rejected] == [("schema", "reporter")]
    wait_processed(workers, worker, len(lines))
    metrics_text = urlopen_text(worker.metrics_url)
    kafka_text = everything_on_kafka(workers.broker.bootstrap)
    worker.stop()

    con = duckdb.connect(str(workers.db), read_only=True)
    try:
        stored = dict(con.execute("SELECT payload->>'case_id', payload->>'reporter' FROM event_log").fetchall())
        alerts = con.execute("SELECT details->>'cases', details->>'reporter_match' FROM alerts "
                             "WHERE rule_id = 'duplicate-case' ORDER BY 1").fetchall()
    finally:
        con.close()
    moreau, silva, mother = (demo_pseudonymiser.reporter_pseudonym(raw) for raw in (DR_MOREAU, DR_SILVA, MOTHER))
    assert stored == {"C-LYON-FEV-1": moreau, "C-LYON-FEV-2": silva, "C-APP-RASH-1": mother,
                      "C-APP-RASH-2": mother, "C-LYON-URT-1": moreau, "C-LYON-URT-2": None}
    assert [(json.loads(cases), match) for cases, match in alerts] == [
        (["C-APP-RASH-1", "C-APP-RASH-2"], "same-reporter"),
        (["C-LYON-FEV-1", "C-LYON-FEV-2"], "different-reporters"),
    ]  # the urticaria pair has one reporter unknown and one reporter type: not flagged

    store_text = everything_in_duckdb(workers.db)
    files = [p for p in workers.db.parent.iterdir() if p.name.startswith(workers.db.name)]
    file_bytes = b"".join(p.read_bytes() for p in files)
    log_text = "".join(w.log_path.read_text(errors="replace") for w in workers.started)
    assert all(p in store_text and p in kafka_text for p in (moreau, silva, mother)), "positive control"
    for raw in (DR_MOREAU, DR_SILVA, MOTHER, "Moreau", "10101234567", "kowalczyk"):
        assert raw not in store_text, f"{raw!r} in a DuckDB table"
        assert raw.encode() not in file_bytes, f"{raw!r} in the DuckDB files"
        assert raw not in kafka_text, f"{raw!r} on a Kafka topic"
        assert raw not in log_text, f"{raw!r} in the worker log"
        assert raw not in metrics_text, f"{raw!r} in /metrics"
