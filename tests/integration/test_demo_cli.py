"""`pvwatch demo` as a user runs it: a real process that starts broker and worker and exits 0 by itself."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

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


def broker_address_then_wait_for(process: subprocess.Popen[str], line_start: str) -> str:
    """The broker's host:port the demo prints first; then read on until a line starting `line_start`."""
    assert process.stdout is not None
    broker = ""
    for line in process.stdout:
        broker = broker or re.match(r"broker +(\S+)", line).group(1)  # type: ignore[union-attr]
        if line.startswith(line_start):
            return broker
    raise AssertionError(f"the demo ended before printing {line_start!r}")


def processes_mentioning(*needles: str) -> list[str]:
    """Command lines of running processes that name any of `needles` (the broker's address, the run's folder)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        if any(needle in text for needle in needles) and cmdline.parent.name != str(os.getpid()):
            found.append(text)
    return found


def interrupt(tmp_path, *arguments: str, after_line: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Start the demo, press Ctrl-C once it printed `after_line`; how it ended, and what it had running then."""
    command = [sys.executable, "-m", "pvwatch", "demo", "--db", str(tmp_path / "demo.duckdb"),
               "--workdir", str(tmp_path / "run"), *arguments]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        broker = broker_address_then_wait_for(process, after_line)
        needles = [broker, str(tmp_path / "demo.duckdb")]
        children = [c for c in processes_mentioning(*needles) if not c.startswith(" ".join(command))]
    finally:
        process.send_signal(signal.SIGINT)  # also when the test fails first: never leave a demo running
    stdout, stderr = process.communicate(timeout=60)
    assert not processes_mentioning(*needles), "every child of the demo stopped"
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), children


def test_ctrl_c_while_events_are_still_flowing_stops_everything_cleanly(tmp_path):
    # 2,000 patients: sending takes several seconds, so the Ctrl-C lands mid-run
    ended, children = interrupt(tmp_path, "--patients", "2000", after_line="store ")
    assert any("tansu" in c for c in children) and any(" worker " in c for c in children), children
    assert ended.returncode == 130, ended.stderr[-2000:]
    assert "Traceback" not in ended.stderr
    assert "interrupted before every event was processed" in ended.stderr


def test_forever_serves_until_ctrl_c_then_stops_everything_and_exits_zero(tmp_path):
    ended, children = interrupt(tmp_path, "--patients", "10", "--forever", after_line="running until Ctrl-C")
    assert {"tansu", " worker ", " dashboard "} <= {k for k in ("tansu", " worker ", " dashboard ")
                                                    if any(k in c for c in children)}, children
    assert ended.returncode == 0, ended.stderr[-2000:]
    assert "Traceback" not in ended.stderr


def test_each_default_demo_run_starts_from_an_empty_store_and_shows_the_alerts_again(tmp_path):
    records = list(generate_cohort(5, 7))
    serious = len({r["case_id"] for r in records if r.get("seriousness")})
    assert serious, "cohort seed 7 with 5 patients holds a serious adverse event"
    for run in ("first", "second"):
        result = subprocess.run([sys.executable, "-m", "pvwatch", "demo", "--patients", "5"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"sent {len(records)}  stored {len(records)}  duplicates 0" in result.stdout, (run, result.stdout)
        assert re.search(rf"^  serious-ae +{serious} ", result.stdout, re.MULTILINE), (run, result.stdout)


def test_the_default_store_is_not_emptied_while_a_worker_holds_it(tmp_path):
    from pvwatch.store.eventstore import EventStore

    db = tmp_path / "var" / "demo" / "pvwatch.duckdb"
    db.parent.mkdir(parents=True)
    held = EventStore(db)  # as a running worker (say a `pvwatch demo --forever`) holds it
    try:
        result = subprocess.run([sys.executable, "-m", "pvwatch", "demo", "--patients", "5"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
    finally:
        held.close()
    assert result.returncode == 2 and "held by another process" in result.stderr, result.stderr[-2000:]
    assert db.exists()
