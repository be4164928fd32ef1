"""What the safety rules cost, in process (no broker): the worker's batch step with every rule against the same
step with every rule disabled, on the same events in the same run; then `pvwatch replay` of the store it wrote.

Setup: the synthetic cohort (every event type, or adverse events only with --ae-only), pseudonymised, decoded
once; `BatchProcessor.process` (decode, DuckDB batch write, rules, alerts, clocks) over batches of --batch events
into a fresh DuckDB file per run, twice each, alternating, with the worker's GC thresholds; best of the runs
reported. Wall time and process CPU
time are both printed: on a shared machine the CPU-time ratio is the steadier one. bench/bench_live.py measures
the whole live path through the broker and Faust.

    .venv/bin/python bench/bench_rules.py [--patients 400] [--ae-only] [--batch 2000]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from pvwatch.cohort import generate_cohort
from pvwatch.domain.parameters import RuleParameters
from pvwatch.events.codec import parse_event
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.rulebook import load_rule_parameters
from pvwatch.store.eventstore import EventStore, MessageOrigin
from pvwatch.store.replay import replay
from pvwatch.streams.pipeline import BatchProcessor, IncomingMessage


def messages(patients: int, ae_only: bool) -> list[IncomingMessage]:
    pseudonymiser = Pseudonymiser.from_secret(None, demo_mode=True)
    events = [parse_event(pseudonymiser.pseudonymise_record(r)) for r in generate_cohort(patients, 5)]
    if ae_only:
        events = [e for e in events if e.type == "adverse-event"]
    return [IncomingMessage(MessageOrigin(e.topic, 0, i), e.model_dump_json().encode()) for i, e in enumerate(events)]


def run(batch: list[IncomingMessage], size: int, parameters: RuleParameters, db: Path) -> tuple[float, float, int]:
    processor = BatchProcessor(EventStore(db), parameters)
    wall, cpu = time.perf_counter(), time.process_time()
    alerts = 0
    for start in range(0, len(batch), size):
        alerts += len(processor.process(batch[start:start + size]).new_alerts)
    result = (len(batch) / (time.perf_counter() - wall), len(batch) / (time.process_time() - cpu), alerts)
    processor.store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--ae-only", action="store_true")
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    gc.set_threshold(100_000, 50, 100)  # as the worker does (streams/worker.py)
    batch = messages(args.patients, args.ae_only)
    every = load_rule_parameters()
    none = RuleParameters(disabled=frozenset(every.versions), rsi=every.rsi)
    results: dict[str, list[tuple[float, float, int]]] = {"no rules": [], "every rule": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(2):
            for name, parameters in (("no rules", none), ("every rule", every)):
                results[name].append(run(batch, args.batch, parameters, Path(folder) / f"{name}-{repeat}.duckdb"))
        started = time.process_time()
        report = replay(Path(folder) / "every rule-1.duckdb")
        replay_cpu = report.events / (time.process_time() - started)
    best = {name: (max(r[0] for r in runs), max(r[1] for r in runs), runs[-1][2]) for name, runs in results.items()}
    kind = "adverse events only" if args.ae_only else "every event type"
    print(f"events: {len(batch)} ({kind}, {args.patients} patients), batches of {args.batch}")
    for name, (wall, cpu, alerts) in best.items():
        print(f"batch step, {name:<11} {wall:10,.0f} events/s wall {cpu:10,.0f} events/s cpu   {alerts} alerts")
    print(f"  ratio every rule / no rules: wall {best['every rule'][0] / best['no rules'][0]:.2f}   "
          f"cpu {best['every rule'][1] / best['no rules'][1]:.2f}")
    print(f"pvwatch replay of that store {report.events_per_second:10,.0f} events/s wall {replay_cpu:10,.0f} "
          f"events/s cpu   ({report.alerts} alerts)")


if __name__ == "__main__":
    main()
