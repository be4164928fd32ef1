"""`pvwatch demo` as a user runs it: a real process that starts broker and worker and exits 0 by itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import duckdb
import pytest

from pvwatch.cohort import generate_cohort

pytestmark = pytest.mark.integration


def run_demo(*arguments: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pvwatch", "demo", *arguments], cwd=cwd, capture_output=True,
                          text=True, timeout=180)


def test_demo_runs_the_cohort_and_exits_zero(tmp_path):
    db = tmp_path / "stores" / "new" / "demo.duckdb"  # a folder that does not exist yet is created
    result = run_demo("--patients", "25", "--db", str(db), "--workdir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    records = list(generate_cohort(25, 7))
    serious = len({r["case_id"] for r in records if r.get("seriousness")})  # one serious-ae alert per case
    assert f"sent {len(records)}  stored {len(records)}" in result.stdout
    assert "metrics http://127.0.0.1:" in result.stdout and str(db) in result.stdout
    assert re.search(rf"^  serious-ae +{serious} +\(critical {serious}\)$", result.stdout, re.MULTILINE), \
        "alerts by rule and severity"
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM event_log").fetchone()[0] == len(records)
    assert con.execute("SELECT count(*) FROM alerts WHERE rule_id = 'serious-ae'").fetchone()[0] == serious
    assert (tmp_path / "run" / "broker.log").stat().st_size > 0, "the broker's log is kept"


def test_demo_over_a_users_file_stops_when_every_line_is_accounted_for(tmp_path):
    records = list(generate_cohort(5, 3))
    lines = [json.dumps(r) for r in records]
    lines.insert(2, "{not json")
    lines.insert(4, json.dumps({**records[0], "event_id": "nope"}))
    lines.append(lines[0])  # the same event twice: stored once
    events = tmp_path / "mine.jsonl"
    events.write_text("\n".join(lines) + "\n")
    db = tmp_path / "mine.duckdb"
    result = run_demo("--events", str(events), "--db", str(db), "--workdir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"sent {len(lines)}  stored {len(records)}  duplicates 1  dead-lettered 2" in result.stdout
    assert "mine.jsonl:3: not_json" in result.stderr
    assert "mine.jsonl:5: schema: event_id" in result.stderr
    con = duckdb.connect(str(db), read_only=True)
    reasons = sorted(r[0] for r in con.execute("SELECT reason FROM dead_letters").fetchall())
    assert reasons == ["not_json", "schema"]
    assert "MRN-" not in db.read_bytes().decode("latin-1"), "raw patient identifiers never reach the store"
