"""`pvwatch replay` throughput in process, against a plain DuckDB scan of the same log in the same run.

Setup: the first --events events of the synthetic cohort (bench_live.py's workloads: `clinical`, every event type
in the cohort's mix, or `adverse-events` only), pseudonymised, written to a fresh DuckDB event log as the worker
stores them (no broker: replay never touches it). Then, on that file, best of --repeat runs each:
  1. plain scan: `SELECT type, payload FROM event_log ORDER BY occurred_at, event_id`, rows fetched, nothing done
     (the issue's baseline: the floor of any replay);
  2. `pvwatch replay`: read, decode, every rule, alerts and expedited clocks written in one transaction.
Wall and process CPU time are both printed (on a shared machine the CPU ratio is the steadier one).
bench/bench_live.py measures the live path through the broker and Faust, and replay against it in the same run.

    .venv/bin/python bench/bench_replay.py [--events 40000] [--workload clinical|adverse-events] [--repeat 2]
                                           [--profile FILE.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_live import WORKLOADS, cohort, plain_scan  # type: ignore[import-not-found]

from pvwatch.store.eventstore import EventStore
from pvwatch.store.replay import replay


def write_log(db: Path, events: list) -> None:
    store = EventStore(db)
    try:
        now = datetime.now(UTC)
        for start in range(0, len(events), 5000):
            with store.transaction():
                store.insert_events([(e, None) for e in events[start:start + 5000]], now)
    finally:
        store.close()


def timed_replay(db: Path) -> tuple[float, float, int, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    report = replay(db)
    return time.perf_counter() - wall, time.process_time() - cpu, report.events, report.alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--workload", choices=WORKLOADS, default="clinical")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--profile", type=Path, help="write a cProfile of one replay to this file")
    parser.add_argument("--db", type=Path, help="keep the log in this file and reuse it when it exists (faster reruns)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "replay.duckdb"
        if not db.exists():
            write_log(db, cohort(args.events, seed=1, workload=args.workload))
        store = EventStore(db)
        n = store.event_count()
        store.close()
        print(f"{n} events of the {args.workload} workload in {db}", file=sys.stderr)
        if args.profile:
            cProfile.runctx("replay(db)", globals(), {"replay": replay, "db": db}, str(args.profile))
        scans, replays = [], []
        for _ in range(args.repeat):
            scans.append(plain_scan(db))
            replays.append(timed_replay(db))
        scan = n / min(scans)
        wall, cpu, replayed, alerts = min(replays)
        assert replayed == n
        print(f"events: {n} of the {args.workload} workload, best of {args.repeat}")
        print(f"plain DuckDB scan of the log     {scan:10,.0f} events/s")
        print(f"pvwatch replay (wall)            {n / wall:10,.0f} events/s  ({alerts} alerts)")
        print(f"pvwatch replay (process CPU)     {n / cpu:10,.0f} events/s")
        print(f"  ratio replay / plain scan: {n / wall / scan:.2f}")


if __name__ == "__main__":
    main()
