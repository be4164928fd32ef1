"""What a published snapshot costs the worker: the appended (incremental) publish against a full copy of the same
store in the same run.

Setup: the synthetic cohort of --patients children (about 52 events each), pseudonymised, stored in a fresh
DuckDB file in batches of 5,000; a first publish (full copy, officer and analyst files); then --new-patients more
children's events are stored and the snapshot is published again, appended to the previous one; finally a full
copy of the same store to another path. Wall time of each publish (best of --runs, each from a fresh first
publish), both files included.

    .venv/bin/python bench/bench_snapshot.py [--patients 4000] [--new-patients 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pvwatch.cohort import generate_cohort
from pvwatch.events.codec import parse_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.store.eventstore import EventStore, MessageOrigin
from pvwatch.store.snapshot import publish_snapshot

ORIGIN = MessageOrigin("bench", 0, None)


def events(patients: int, seed: int) -> list[EventEnvelope]:
    pseudonymiser = Pseudonymiser.from_secret(None, demo_mode=True)
    return [parse_event(pseudonymiser.pseudonymise_record(r)) for r in generate_cohort(patients, seed)]


def store_events(store: EventStore, batch: list[EventEnvelope]) -> None:
    for start in range(0, len(batch), 5000):
        with store.transaction():
            store.insert_events([(e, ORIGIN) for e in batch[start:start + 5000]], datetime.now(UTC))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=4000)
    parser.add_argument("--new-patients", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base, new = events(args.patients, 1), events(args.new_patients, 2)
    appended: list[float] = []
    full: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            store = EventStore(Path(tmp) / f"store-{run}.duckdb")
            store_events(store, base)
            target = Path(tmp) / f"store-{run}.snapshot.duckdb"
            first = publish_snapshot(store.con, target)
            store_events(store, new)
            again = publish_snapshot(store.con, target)
            assert again.incremental and not first.incremental
            copy = publish_snapshot(store.con, Path(tmp) / f"full-{run}.duckdb")
            appended.append(again.seconds)
            full.append(copy.seconds)
            size_mb = copy.size_bytes / 2**20
            store.close()
    print(f"store: {len(base) + len(new):,} events ({size_mb:.0f} MB snapshot), "
          f"{len(new):,} new since the last publish")
    print(f"full copy (officer + analyst files): best {min(full):.2f} s")
    print(f"appended publish:                    best {min(appended):.2f} s = {min(full) / min(appended):.1f}x faster")


if __name__ == "__main__":
    main()
