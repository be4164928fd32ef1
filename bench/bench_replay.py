"""`pvwatch replay` throughput in process, against a plain DuckDB scan of the same log in the same run.

Setup: the first --events events of the synthetic cohort (bench_live.py's workloads: `clinical`, every event type
in the cohort's mix, or `adverse-events` only), pseudonymised, written to a fresh DuckDB event log as the worker
stores them (no broker: replay never touches it). Then, on that file, best of --repeat runs each:
  1. plain scan: `SELECT type, payload FROM event_log ORDER BY occurred_at, event_id`, rows fetched, nothing done
     (the issue's baseline: the floor of any replay);
  2. `pvwatch replay` in one process and in two (the default: 5 patients in 8 in a forked helper): read,
     decode, every rule, alerts and expedited clocks written in one transaction;
  3. the same in two processes without the screen of quiet lab results (`--no-screen`: every rule input decoded
     and evaluated), the path before the screen, as the same run's baseline for it;
  4. two processes on a store whose alerts and expedited_reports were emptied just before (not timed): the
     replay must write every row. Runs 1-3 after the first find the tables already right and write nothing.
Wall time decides; the CPU time of each process is printed beside it (on a shared machine, a wall time far above
the larger CPU time means other work had the cores; the load average before and after is printed).
bench/bench_live.py measures the live path through the broker and Faust, and replay against it in the same run.

    .venv/bin/python bench/bench_replay.py [--events 40000] [--workload clinical|adverse-events] [--repeat 3]
                                           [--db FILE] [--profile FILE.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_live import WORKLOADS, cohort, empty_derived_tables, plain_scan  # type: ignore[import-not-found]

from pvwatch.events.codec import load_validators
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


def timed_replay(db: Path, processes: int, screen: bool = True, rewrite: bool = False,
                 ) -> tuple[float, float, float, int, int]:
    """(wall s, this process's CPU s, the helper's CPU s, events, alerts) of one `pvwatch replay`; with `rewrite`
    the derived tables are emptied first (not timed)."""
    if rewrite:
        empty_derived_tables(db)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, cpu = time.perf_counter(), time.process_time()
    report = replay(db, processes=processes, screen=screen)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    helper = max(0.0, after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime)
    assert not rewrite or report.alerts_added == report.alerts, "the emptied alerts table was written again"
    return wall, cpu, helper, report.events, report.alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--workload", choices=WORKLOADS, default="clinical")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="write a cProfile of one one-process replay to this file")
    parser.add_argument("--db", type=Path, help="keep the log in this file and reuse it when it exists (faster reruns)")
    args = parser.parse_args()
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "replay.duckdb"
        if not db.exists():
            write_log(db, cohort(args.events, seed=1, workload=args.workload))
        store = EventStore(db)
        n = store.event_count()
        store.close()
        print(f"{n} events of the {args.workload} workload in {db}", file=sys.stderr)
        load_validators()  # what a worker or the CLI loads once at its first lab result (~0.4 s), not per event
        if args.profile:
            cProfile.runctx("replay(db, processes=1)", globals(), {"replay": replay, "db": db}, str(args.profile))
        scans: list[float] = []
        runs: dict[tuple[int, bool, bool], list[tuple[float, float, float, int, int]]] = {
            (1, True, False): [], (2, True, False): [], (2, False, False): [], (2, True, True): []}
        for _ in range(args.repeat):  # interleaved, so a burst of load elsewhere hits every variant alike
            scans.append(plain_scan(db))
            for processes, screen, rewrite in runs:
                runs[(processes, screen, rewrite)].append(timed_replay(db, processes, screen, rewrite))
        scan = n / min(scans)
        print(f"events: {n} of the {args.workload} workload, best of {args.repeat} (wall), on {os.cpu_count()} cores")
        print(f"{'plain DuckDB scan of the log':<45} {scan:10,.0f} events/s")
        best = {}
        for (processes, screen, rewrite), results in runs.items():
            wall, cpu, helper, replayed, alerts = min(results)
            assert replayed == n
            best[(processes, screen, rewrite)] = n / wall
            label = f"pvwatch replay, {processes} process{'es' if processes > 1 else ''}"
            label += ("" if screen else ", no screen") + (", tables rewritten" if rewrite else "")
            print(f"{label:<45} {n / wall:10,.0f} events/s  "
                  f"({alerts} alerts; CPU s: this process {cpu:.2f}, helper {helper:.2f})")
        two = best[(2, True, False)]
        print(f"  ratio replay (2 processes) / plain scan: {two / scan:.2f}   "
              f"2 processes / 1 process: {two / best[(1, True, False)]:.2f}   "
              f"screen / no screen (2 processes): {two / best[(2, False, False)]:.2f}   "
              f"tables right / rewritten: {two / best[(2, True, True)]:.2f}")
        print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}".format(
            *load_before, *os.getloadavg()))


if __name__ == "__main__":
    main()
