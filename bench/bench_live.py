"""Live path throughput and alert latency, as ratios against baselines measured in the same run.

Setup: one embedded broker (Tansu, in memory), N messages of the synthetic clinical cohort (every event type in
its natural mix: labs, scores, treatments, infusions, adverse events, claims; `--workload adverse-events` keeps
only the adverse events, a worst case where most messages raise alerts) pre-produced to 4 partitions per topic;
each consumer reads them all from the earliest offset:
  1. raw broker consume rate: an aiokafka consumer doing nothing (the ceiling);
  2. a no-op Faust agent with the worker's batching settings (the framework's own cost);
  3. the pvwatch worker: validation, idempotent DuckDB batch writes, every rule, outbox, metrics, with its batch
     step in the writer process (the default; streams/writer.py);
  4. the same worker with the batch step inside the worker process (PVWATCH_WRITER_PROCESS=false; the earlier
     design), in its own consumer group and store (skip with --no-in-process); its alert latency is measured after the
     default worker's, on the next events of the cohort.
Rates are events / (time of last event - time of first event). Then alert latency: events produced at a
fixed rate; for every alert whose evidence was sent in that phase, the time from sending its last evidence event
to the alert arriving on pv.safety.alert.v1 (stored first: the outbox publishes after the commit).
The events are sent by the project's own producer (streams/producer.py EventPublisher) with its default 5 ms linger,
as `pvwatch ingest` sends them; the latency counts from the send call, so the linger is inside it. With
`--producer-linger-ms 0` every event is a request of its own: that producer then costs ~0.65 of a core at 1k
events/s and the broker ~0.25 more (measured, docs/rules.md), on the 2 cores the worker needs.
Alerts are reported in two groups, each rule separately too:
  - event-driven: raised by the batch that stores their last evidence event; the issue's measure (event produced
    to alert stored) is the pipeline's latency;
  - clock rules (expedited-due-soon, expedited-overdue): functions of time, raised either by the batch of a report
    that arrives already due (every one in these workloads: the cohort's reports are dated in the past) or by the
    worker's clock tick every PVWATCH_CLOCK_INTERVAL_S (60 s) when a deadline passes with no new event. For the
    tick's alerts the time from the last evidence is the deadline and the tick's period, not the pipeline's, so
    they are kept apart (a tick-raised one would show here as seconds), not hidden.
The CPU seconds each process used during the latency phase (from the first send to the reader's last alert; not
the 5 s of quiet it then waits for stragglers, in which its polling alone cost more CPU than a 1 s phase's) are
printed: the bench's own producer and reader share the 2 cores with the broker, the worker and its writer.
Last, on the store the worker wrote: `pvwatch replay` (rebuild every derived table from the log) against a
plain DuckDB scan of the same log (the floor of any replay) and against the live path's rate, the median of 3
runs each: a rebuild (alerts and expedited_reports emptied first, untimed: every row written again), the headline,
and on the tables as the worker left them (already right: replay writes nothing).

    .venv/bin/python bench/bench_live.py [--events 40000] [--latency-rate 1000] [--latency-seconds 10]
                                         [--workload clinical|adverse-events] [--no-in-process]
                                         [--producer-linger-ms 5]

The machine is shared: the load average before and after is printed; quote ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer

from pvwatch.cohort import generate_cohort
from pvwatch.demo import WorkerProcess
from pvwatch.domain.engine import EXPEDITED_DUE_SOON, EXPEDITED_OVERDUE
from pvwatch.events import ALERT_TOPIC, SOURCE_TOPICS, encode_event
from pvwatch.events.codec import parse_event
from pvwatch.events.envelope import EventEnvelope
from pvwatch.metrics_client import scrape
from pvwatch.pseudonym import Pseudonymiser
from pvwatch.store.replay import replay
from pvwatch.streams.broker import EmbeddedBroker, free_port
from pvwatch.streams.producer import EventPublisher
from pvwatch.streams.topics import ensure_topics

WORKLOADS = ("clinical", "adverse-events")
#: Each replay takes a fraction of a second: the median of a few runs, not one
REPLAY_RUNS = 3
#: The worker with its batch step inside its own process (the earlier design), in a consumer group and store of
#: its own
IN_PROCESS = {"PVWATCH_WRITER_PROCESS": "false", "PVWATCH_GROUP_ID": "bench-in-process"}
#: Rules that are functions of time: raised by a batch when a report arrives already due, else by the clock tick
CLOCK_RULES = frozenset({EXPEDITED_DUE_SOON, EXPEDITED_OVERDUE})


def cohort(n: int, seed: int, workload: str) -> list[EventEnvelope]:
    """The first n events of a cohort large enough to hold them (patients' events in the generator's order)."""
    p = Pseudonymiser.from_secret(None, demo_mode=True)
    events: list[EventEnvelope] = []
    patients = max(10, n // 50) if workload == "clinical" else n
    for record in generate_cohort(patients, seed):
        if workload == "adverse-events" and record["type"] != "adverse-event":
            continue
        events.append(parse_event(p.pseudonymise_record(record)))
        if len(events) == n:
            break
    return events


async def raw_consume(bootstrap: str, expect: int) -> float:
    consumer = AIOKafkaConsumer(*SOURCE_TOPICS, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False, max_poll_records=2000)
    await consumer.start()
    seen, first = 0, 0.0
    try:
        while seen < expect:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batches.values():
                if seen == 0 and records:
                    first = time.perf_counter()
                seen += len(records)
    finally:
        await consumer.stop()
    return time.perf_counter() - first


def noop_faust(bootstrap: str, expect: int, log: Path) -> float:
    command = [sys.executable, str(Path(__file__).with_name("noop_faust.py")), "--bootstrap", bootstrap,
               "--topics", ",".join(SOURCE_TOPICS), "--expect", str(expect)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log.open("wb"), text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("first_last_seconds="):
                return float(line.split("=", 1)[1])
        raise RuntimeError(f"no-op Faust agent exited early; see {log}")
    finally:
        process.terminate()
        process.wait(20)


def pvwatch_worker(bootstrap: str, expect: int, workdir: Path, name: str = "bench",
                   env: dict[str, str] | None = None) -> tuple[float, WorkerProcess]:
    worker = WorkerProcess(bootstrap, workdir / f"{name}.duckdb", free_port(), workdir / f"{name}.log", 4.0, env=env)
    first = None
    while True:
        worker.check_alive()
        try:
            stored = scrape(worker.metrics_url).get("pv_events_ingested_total", 0)
        except OSError:
            stored = 0
        now = time.perf_counter()
        if stored and first is None:
            first = now
        if stored >= expect:
            assert first is not None
            return now - first, worker
        time.sleep(0.1)


def ready_worker(bootstrap: str, workdir: Path, name: str = "bench",
                 env: dict[str, str] | None = None) -> WorkerProcess:
    """A worker started again on the store it wrote, once it is up."""
    worker = WorkerProcess(bootstrap, workdir / f"{name}.duckdb", free_port(), workdir / f"{name}.log", 4.0, env=env)
    worker.wait_ready()
    return worker


@dataclass
class LatencyPhase:
    latencies: dict[str, list[float]]  # by rule
    #: CPU seconds by role (phase_processes) from the first send to the last alert read, and that time
    cpu: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    reader_cpu: float = 0.0  # of the bench's: its reader thread (the consumer fetches and decodes in it)


def alert_latency(bootstrap: str, rate: int, seconds: float, seed: int, workload: str, linger_ms: int = 5,
                  processes: dict[str, list[int]] | None = None) -> LatencyPhase:
    """Send at `rate`/s; each alert's latency = its arrival - the send time of its last evidence event, by rule."""
    events = cohort(int(rate * seconds), seed, workload)
    sent_at: dict[str, float] = {}
    latencies: dict[str, list[float]] = {}
    sending_done = threading.Event()
    ready = threading.Event()
    reader_cpu = [0.0, 0.0]
    #: the processes' CPU seconds and the time when the reader last went quiet after the sends (its last alert read,
    #: within one 200 ms poll); the 5 s it then waits for stragglers are not part of the phase
    last_read: list[tuple[dict[str, float], float]] = []

    def listen() -> None:
        # a short fetch wait, so the measurement is of pvwatch and not of this reader's long poll
        consumer = KafkaConsumer(ALERT_TOPIC, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                 enable_auto_commit=False, consumer_timeout_ms=200, fetch_max_wait_ms=10)
        consumer.poll(timeout_ms=500)  # join the partitions before sending begins
        reader_cpu[0] = time.thread_time()
        ready.set()
        quiet_since = None
        while quiet_since is None or time.monotonic() - quiet_since < 5:
            got = False
            for message in consumer:
                arrived = time.perf_counter()
                got = True
                alert = json.loads(message.value)
                evidence = [sent_at.get(event_id) for event_id in alert["evidence_event_ids"]]
                sent = [at for at in evidence if at is not None]
                if sent and len(sent) == len(evidence):
                    latencies.setdefault(alert["rule_id"], []).append(arrived - max(sent))
            if sending_done.is_set() and not got and quiet_since is None:
                quiet_since = time.monotonic()
                last_read[:] = [(cpu_by_role(processes or {}), time.perf_counter())]
                reader_cpu[1] = time.thread_time()  # the initial poll's share left out (at the start of the sends)
            elif got:
                quiet_since = None
        consumer.close()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(10)
    with EventPublisher(bootstrap, linger_ms=linger_ms) as publisher:
        cpu_before = cpu_by_role(processes or {})
        start = time.perf_counter()
        for index, event in enumerate(events):
            target = start + index / rate
            pause = target - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            sent_at[str(event.event_id)] = time.perf_counter()
            publisher.publish(event)
    sending_done.set()
    thread.join(seconds + 60)
    cpu_after, ended = last_read[0] if last_read else (cpu_by_role(processes or {}), time.perf_counter())
    return LatencyPhase(latencies, {role: cpu_after[role] - cpu_before[role] for role in cpu_after},
                        ended - start, reader_cpu[1] - reader_cpu[0])


def _quantiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"n={len(values)}"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"n={len(values)} p50={q[49] * 1000:.0f} ms p99={q[98] * 1000:.0f} ms max={max(values) * 1000:.0f} ms"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, all its threads (Linux /proc; nan elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase_processes(broker: EmbeddedBroker, worker: WorkerProcess) -> dict[str, list[int]]:
    """The processes sharing the machine in the latency phase, by role (the writer: the worker's children)."""
    pid = worker.process.pid
    try:
        children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        children = []
    assert broker.process is not None
    return {"bench (producer, reader)": [os.getpid()], "broker": [broker.process.pid], "worker": [pid],
            "writer": children}


def cpu_by_role(processes: dict[str, list[int]]) -> dict[str, float]:
    return {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in processes.items()}


def plain_scan(db: Path) -> float:
    """Seconds to read the whole log in replay order, doing nothing with it."""
    con = duckdb.connect(str(db), read_only=True)
    started = time.perf_counter()
    cursor = con.execute("SELECT type, payload FROM event_log ORDER BY occurred_at, event_id")
    while cursor.fetchmany(50_000):
        pass
    seconds = time.perf_counter() - started
    con.close()
    return seconds


def empty_derived_tables(db: Path) -> None:
    """Delete the alerts and expedited clocks, so that the next replay must write every row again."""
    con = duckdb.connect(str(db))
    try:
        con.execute("DELETE FROM alerts")
        con.execute("DELETE FROM expedited_reports")
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--latency-rate", type=int, default=1000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--workload", choices=WORKLOADS, default="clinical")
    parser.add_argument("--no-in-process", dest="in_process", action="store_false",
                        help="Skip the worker with its batch step in-process (PVWATCH_WRITER_PROCESS=false).")
    parser.add_argument("--producer-linger-ms", type=int, default=5,
                        help="The latency phase's producer linger (default 5, EventPublisher's and pvwatch ingest's; "
                             "0 sends every event as a request of its own).")
    args = parser.parse_args()
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker:
        workdir = Path(tmp)
        ensure_topics(broker.bootstrap, 4)
        events = cohort(args.events, seed=1, workload=args.workload)
        with EventPublisher(broker.bootstrap) as publisher:
            for event in events:
                publisher.publish(event)
        n = len(events)
        print(f"produced {n} events; measuring the raw consumer", file=sys.stderr)
        raw = n / asyncio.run(raw_consume(broker.bootstrap, n))
        print("measuring the no-op Faust agent", file=sys.stderr)
        noop = n / noop_faust(broker.bootstrap, n, workdir / "noop.log")
        print("measuring the pvwatch worker", file=sys.stderr)
        seconds, worker = pvwatch_worker(broker.bootstrap, n, workdir)
        live = n / seconds
        in_process = None
        if args.in_process:
            worker.stop()
            print("measuring the pvwatch worker with its batch step in-process", file=sys.stderr)
            seconds, other = pvwatch_worker(broker.bootstrap, n, workdir, "in-process", IN_PROCESS)
            other.stop()
            in_process = n / seconds
            worker = ready_worker(broker.bootstrap, workdir)  # the default worker again, caught up
        print("measuring alert latency", file=sys.stderr)
        phase = alert_latency(broker.bootstrap, args.latency_rate, args.latency_seconds, seed=2,
                              workload=args.workload, linger_ms=args.producer_linger_ms,
                              processes=phase_processes(broker, worker))
        latencies = phase.latencies
        worker.stop()
        in_process_latencies = None
        if args.in_process:
            print("measuring alert latency with the batch step in-process", file=sys.stderr)
            other = ready_worker(broker.bootstrap, workdir, "in-process", IN_PROCESS)
            backlog = len(cohort(int(args.latency_rate * args.latency_seconds), 2, args.workload))
            while scrape(other.metrics_url).get("pv_events_ingested_total", 0) < backlog:
                other.check_alive()  # first the events of the latency phase above, then its own
                time.sleep(0.1)
            in_process_latencies = alert_latency(broker.bootstrap, args.latency_rate, args.latency_seconds, seed=3,
                                                 workload=args.workload, linger_ms=args.producer_linger_ms).latencies
            other.stop()
        print("measuring replay", file=sys.stderr)
        db = workdir / "bench.duckdb"
        scan_seconds = plain_scan(db)
        # The headline is a rebuild: the derived tables emptied first (not timed), so every row is written again.
        # On the store as the worker left it, replay finds the tables already right and writes nothing.
        rebuilds = []
        for _ in range(REPLAY_RUNS):
            empty_derived_tables(db)
            rebuilds.append(replay(db))
        current = [replay(db) for _ in range(REPLAY_RUNS)]

    size = sum(len(encode_event(event)) for event in events) / n
    print(f"events: {n} of the {args.workload} workload, {size:.0f} bytes on average, 4 partitions per topic, "
          "one process each")
    print(f"raw broker consume (aiokafka, no work)  {raw:10,.0f} events/s")
    print(f"no-op Faust agent (take_events batches) {noop:10,.0f} events/s")
    print(f"pvwatch worker (all rules, DuckDB)      {live:10,.0f} events/s   (batch step in the writer process)")
    print(f"  ratio pvwatch / no-op Faust: {live / noop:.2f}   pvwatch / raw broker: {live / raw:.3f}")
    if in_process is not None:
        print(f"same, batch step in-process             {in_process:10,.0f} events/s")
        print(f"  ratio in-process / no-op Faust: {in_process / noop:.2f}   writer process / in-process: "
              f"{live / in_process:.2f}")
    event_driven = [value for rule, values in latencies.items() if rule not in CLOCK_RULES for value in values]
    clock_rules = [value for rule, values in latencies.items() if rule in CLOCK_RULES for value in values]
    print(f"alert latency at {args.latency_rate}/s for {args.latency_seconds:.0f} s (producer linger "
          f"{args.producer_linger_ms} ms), last evidence sent -> alert on topic:")
    print(f"  event-driven alerts    {_quantiles(event_driven)}")
    print(f"  clock rules            {_quantiles(clock_rules)}   (due-soon, overdue: see the docstring)")
    print(f"  all alerts             {_quantiles(event_driven + clock_rules)}")
    for rule, values in sorted(latencies.items()):
        print(f"    {rule:<22} {_quantiles(values)}")
    used = ", ".join(f"{role} {seconds:.1f}" for role, seconds in phase.cpu.items())
    print(f"  CPU seconds from the first send to the last alert read ({phase.seconds:.1f} s, 2 cores): {used} "
          f"(of the bench's, its reader {phase.reader_cpu:.1f})")
    if in_process_latencies is not None:
        every = [value for values in in_process_latencies.values() for value in values]
        print(f"same, batch step in-process (next {args.latency_seconds:.0f} s, other events): {_quantiles(every)}")
    rebuild = statistics.median(r.events_per_second for r in rebuilds)
    verify = statistics.median(r.events_per_second for r in current)
    scan = rebuilds[0].events / scan_seconds
    print(f"plain DuckDB scan of the log                {scan:10,.0f} events/s")
    print(f"pvwatch replay, rebuild (tables emptied)    {rebuild:10,.0f} events/s "
          f"({rebuilds[0].events} events, {rebuilds[0].alerts} alerts; median of {REPLAY_RUNS})")
    print(f"  ratio replay / plain scan: {rebuild / scan:.2f}   replay / live path: {rebuild / live:.1f}")
    print(f"pvwatch replay, tables already right        {verify:10,.0f} events/s "
          f"(nothing written; median of {REPLAY_RUNS})   replay / live path: {verify / live:.1f}")
    load_after = os.getloadavg()
    print(f"load average (1, 5, 15 min) before {', '.join(f'{x:.1f}' for x in load_before)}; "
          f"after {', '.join(f'{x:.1f}' for x in load_after)} (2 cores, shared with other work)")


if __name__ == "__main__":
    main()
