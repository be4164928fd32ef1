"""`pvwatch replay`: rebuild every derived table from the stored event log, without the broker.

The bulk path: the log is read in large ordered batches straight from DuckDB and run through the same
SafetyEngine as the live worker, then the derived tables are replaced in one transaction. Run it with the
worker stopped (DuckDB allows one writer).
"""

from __future__ import annotations

import gc
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

from tqdm import tqdm

from pvwatch.domain.engine import LOT_CLUSTER, RULE_IDS, ClockRow, SafetyEngine
from pvwatch.domain.parameters import RuleParameters
from pvwatch.events.alert import SafetyAlert
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import EVENT_TYPES
from pvwatch.rulebook import load_rule_parameters
from pvwatch.store.eventstore import EventStore, connect
from pvwatch.store.expedited import replace_clocks


@dataclass(frozen=True)
class ReplayReport:
    events: int
    alerts: int
    alerts_added: int
    alerts_removed: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else float("inf")


@contextmanager
def paused_gc() -> Iterator[None]:
    """The bulk path allocates millions of long-lived objects and makes no reference cycles worth collecting:
    the cyclic collector would rescan them over and over (measured: 20k -> 46k events/s with it paused)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class Derived:
    events: int
    alerts: list[SafetyAlert]
    clocks: list[ClockRow]


#: Rows fetched from the log per step.
CHUNK = 20_000


def derive(store: EventStore, *, progress: bool = False, parameters: RuleParameters | None = None) -> Derived:
    """Every alert and expedited clock the log implies, computed as the live path would, in occurred_at order;
    time-driven alerts (due-soon, overdue) as of now. One process; `derive_in_two` gives the same in two."""
    parameters = parameters or load_rule_parameters()  # the packaged rules.yaml by default
    now = datetime.now(UTC)
    engine = SafetyEngine(parameters)
    alerts: list[SafetyAlert] = []
    events = 0
    with paused_gc(), tqdm(total=store.event_count(), unit="ev", desc="replay", disable=not progress) as bar:
        for batch in store.iter_events():
            alerts.extend(engine.apply(batch, now).alerts)
            events += len(batch)
            bar.update(len(batch))
        alerts.extend(engine.clock_alerts(now))
        return _derived(events, alerts, list(engine.clocks.values()))


def _derived(events: int, alerts: list[SafetyAlert], clocks: list[ClockRow]) -> Derived:
    unique = {alert.alert_id: alert for alert in alerts}  # the last derivation of an id wins, as in the live store
    ordered = sorted(unique.values(), key=lambda a: (a.occurred_at, str(a.alert_id)))
    return Derived(events, ordered, sorted(clocks, key=lambda r: (r.clock.case_id, r.clock.category)))


# --- two processes -------------------------------------------------------------------------------------------
#
# Every rule but one reads only the patient's own history (SafetyEngine._evaluate: serious-ae, duplicate-case,
# expedited-clock, infusion-temporal, ctcae-lab, hys-law, flare-after-taper, undocumented-benefit), so patients
# can be split between two engines and their alerts and clocks are the same as one engine's. The exception,
# lot-cluster, counts adverse events across the patients infused from one lot or clinic: a third engine, with
# only that rule enabled, gets every infusion and adverse event of the patients with an infusion on record (an
# adverse event of a patient never infused cannot be attributed to a lot or clinic), in the same order as the
# single engine would, so it derives the same lot-cluster alerts. Each process reads its own share of the log
# through its own read-only connection (DuckDB allows several readers); the writes come after, in one.

#: One process's share of the log, in replay order: its patients (DuckDB's hash of the pseudonym, the same in
#: both processes), and with $with_lots the evidence of the lot-cluster engine.
_SHARE = """
    WITH infused AS (SELECT DISTINCT patient FROM event_log WHERE type = 'msc-infusion'),
    log AS (
        SELECT type, payload, occurred_at, event_id, hash(patient) % 2 = $share AS own,
               type IN ('adverse-event', 'msc-infusion') AND patient IN (SELECT patient FROM infused) AS lot_evidence
        FROM event_log)
    SELECT own, lot_evidence, type, payload FROM log WHERE own OR ($with_lots AND lot_evidence)
    ORDER BY occurred_at, event_id"""


def _without(parameters: RuleParameters, rule_ids: Iterable[str]) -> RuleParameters:
    return replace(parameters, disabled=parameters.disabled | frozenset(rule_ids))


def _decode(row_type: str, payload: str) -> EventEnvelope:
    """A stored payload, validated again exactly as EventStore.iter_events does."""
    return EVENT_TYPES[row_type].model_validate_json(payload)


@dataclass(frozen=True)
class _ShareDerived:
    events: int
    alerts: list[SafetyAlert]
    clocks: list[ClockRow]


def _derive_share(path: Path, share: int, with_lots: bool, parameters: RuleParameters, now: datetime,
                  progress: Callable[[int], object]) -> _ShareDerived:
    """Alerts and clocks of one share of the patients (and with `with_lots`, every lot-cluster alert)."""
    patients = SafetyEngine(_without(parameters, [LOT_CLUSTER]))
    lots = SafetyEngine(_without(parameters, [rule for rule in RULE_IDS if rule != LOT_CLUSTER]))
    with_lots = with_lots and parameters.enabled(LOT_CLUSTER)
    alerts: list[SafetyAlert] = []
    events = 0
    con = connect(path, read_only=True)
    try:
        con.execute("SET enable_progress_bar = false")
        cursor = con.execute(_SHARE, {"share": share, "with_lots": with_lots})
        while rows := cursor.fetchmany(CHUNK):
            own: list[EventEnvelope] = []
            lot_evidence: list[EventEnvelope] = []
            for mine, for_lots, row_type, payload in rows:
                event = _decode(row_type, payload)
                if mine:
                    own.append(event)
                if for_lots and with_lots:
                    lot_evidence.append(event)
            alerts.extend(patients.apply(own, now).alerts)
            if lot_evidence:
                alerts.extend(lots.apply(lot_evidence, now).alerts)
            events += len(own)
            progress(len(own))
    finally:
        con.close()
    alerts.extend(patients.clock_alerts(now))
    return _ShareDerived(events, alerts, list(patients.clocks.values()))


def _helper_main(connection: Connection, path: Path, parameters: RuleParameters, now: datetime) -> None:
    """The helper process: on the go-ahead, derive share 1 and send back its alerts and clocks."""
    gc.disable()
    if connection.recv() is not None:
        connection.send(("done", _derive_share(path, 1, False, parameters, now,
                                               lambda n: connection.send(("progress", n)))))
    connection.close()


class ReplayHelper:
    """The second replay process. Forked before the parent opens the store (a fork after DuckDB has started its
    threads could inherit a held lock); it waits for `start` (the store migrated and closed) before reading."""

    def __init__(self, path: Path, parameters: RuleParameters, now: datetime) -> None:
        context = multiprocessing.get_context("fork")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_helper_main, args=(child, path, parameters, now),
                                        name="pvwatch-replay-helper", daemon=True)
        self._process.start()
        child.close()
        self._result: _ShareDerived | None = None

    def start(self) -> None:
        self._connection.send("start")

    def progress(self) -> int:
        """Events the helper has derived since the last call (without waiting)."""
        done = 0
        while self._result is None and self._connection.poll():
            try:
                kind, value = self._connection.recv()
            except EOFError:
                self._process.join(10)
                raise RuntimeError(f"the replay helper exited (code {self._process.exitcode}) without its "
                                   "share; its error is above") from None
            if kind == "done":
                self._result = value
            else:
                done += value
        return done

    def result(self, progress: Callable[[int], object]) -> _ShareDerived:
        while self._result is None:
            self._connection.poll(1.0)
            progress(self.progress())
        return self._result

    def close(self) -> None:
        if self._process.is_alive() and self._result is None:
            self._connection.send(None)
        self._connection.close()
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)


def derive_in_two(path: Path, helper: ReplayHelper, parameters: RuleParameters, now: datetime, total: int,
                  progress: bool = False) -> Derived:
    """What `derive` gives, with half of the patients derived by `helper` at the same time (see above)."""
    with paused_gc(), tqdm(total=total, unit="ev", desc="replay", disable=not progress) as bar:
        helper.start()
        mine = _derive_share(path, 0, True, parameters, now, lambda n: bar.update(n + helper.progress()))
        theirs = helper.result(bar.update)
        return _derived(mine.events + theirs.events, mine.alerts + theirs.alerts, mine.clocks + theirs.clocks)


def replay(path: Path, *, progress: bool = False, parameters: RuleParameters | None = None,
           processes: int = 2) -> ReplayReport:
    """Rebuild the derived tables of the store at `path`; with `processes=2` half of the patients are derived in a
    second process (the same tables, see derive_in_two). Nothing else may hold the store (DuckDB: one writer)."""
    started = time.perf_counter()
    parameters = parameters or load_rule_parameters()
    now = datetime.now(UTC)
    helper = ReplayHelper(path, parameters, now) if processes > 1 else None
    try:
        store = EventStore(path)  # migrates an older store before anything reads it
        try:
            if helper is not None:
                total = store.event_count()
                store.close()
                derived = derive_in_two(path, helper, parameters, now, total, progress)
                store = EventStore(path)
            else:
                derived = derive(store, progress=progress, parameters=parameters)
            alerts = derived.alerts
            with store.transaction():
                added, removed = store.replace_alerts(alerts)
                if added < len(alerts):  # alerts that existed keep their raised_at; bring what they say up to date
                    store.revise_alerts(alerts)
                replace_clocks(store.con, derived.clocks)
        finally:
            store.close()
    finally:
        if helper is not None:
            helper.close()
    return ReplayReport(derived.events, len(alerts), added, removed, time.perf_counter() - started)
