"""`pvwatch replay`: rebuild every derived table from the stored event log, without the broker.

The bulk path: the log is read in large ordered chunks straight from DuckDB, validated again and run through the
same SafetyEngine as the live worker, in two processes by default (patients split between them, see
derive_in_two); then the derived tables are replaced in one transaction (pvwatch.store.replay_tables). The events no
rule can use (lab results inside the domain's quiet bands, scores far from any taper: see "the screen" below) are
left out by the query itself. Run it with the worker stopped (DuckDB allows one writer).
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

import duckdb
from pydantic import ValidationError
from tqdm import tqdm

from pvwatch.domain.ctcae import CANONICAL_UNITS, LOINC_ANALYTES, Ceiling, QuietBand
from pvwatch.domain.engine import (
    LOT_CLUSTER,
    RULE_IDS,
    RULE_INPUT_TYPES,
    UNDOCUMENTED_BENEFIT,
    ClockRow,
    FlareScoreUse,
    SafetyEngine,
    flare_score_use,
    quiet_lab_bands,
)
from pvwatch.domain.parameters import RuleParameters
from pvwatch.errors import PvwatchError
from pvwatch.events.alert import SafetyAlert
from pvwatch.events.codec import describe_validation_error
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.outcome_claim import Direction
from pvwatch.events.registry import EVENT_TYPES
from pvwatch.events.vocabulary import FROM_LOG, LOINC_CODE_PATTERN, UCUM_UNIT_PATTERN
from pvwatch.rulebook import load_rule_parameters
from pvwatch.store.eventstore import EventStore, attach, detach, transaction
from pvwatch.store.expedited import replace_clocks
from pvwatch.store.migrations import is_current
from pvwatch.store.replay_tables import Derived, StoredTables, alert_columns, merged_alerts, replace_alerts


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


#: Rows fetched from the log per step.
CHUNK = 20_000


def derive(store: EventStore, *, progress: bool = False, parameters: RuleParameters | None = None,
           screen: bool = True) -> Derived:
    """Every alert and expedited clock the log implies, computed as the live path would, in occurred_at order;
    time-driven alerts (due-soon, overdue) as of now. One process; `derive_in_two` gives the same in two.
    `screen`: quiet lab results and unusable scores are left in the log (quiet_labs_sql, quiet_scores_sql), the
    same tables."""
    parameters = parameters or load_rule_parameters()  # the packaged rules.yaml by default
    now = datetime.now(UTC)
    engine = SafetyEngine(parameters)
    alerts: list[SafetyAlert] = []
    events = store.event_count()
    with paused_gc(), tqdm(total=events, unit="ev", desc="replay", disable=not progress) as bar:
        # the connection's one open result until it is read
        cursor = store.con.execute(_screened(_LOG_FROM, parameters, screen), _RULE_INPUTS)
        while rows := cursor.fetchmany(CHUNK):
            alerts.extend(engine.apply([_decode(*row) for row in rows], now, in_order=True).alerts)
            bar.update(len(rows))
        bar.update(events - bar.n)  # the events no rule reads (never decoded)
        alerts.extend(engine.clock_alerts(now))
        derived = _derived(events, alert_columns(engine.standing(alerts)), list(engine.clocks.values()))
        return replace(derived, stored=StoredTables.read(store.con).hold(derived))


def _derived(events: int, alerts: dict[str, list[object]], clocks: list[ClockRow]) -> Derived:
    return Derived(events, alerts, sorted(clocks, key=lambda r: (r.clock.case_id, r.clock.category)))


# --- two processes -------------------------------------------------------------------------------------------
#
# Every rule but one reads only the patient's own history (SafetyEngine._evaluate: serious-ae, duplicate-case,
# expedited-clock, infusion-temporal, ctcae-lab, hys-law, flare-after-taper, undocumented-benefit), so patients
# can be split between two engines and their alerts and clocks are the same as one engine's. The exception,
# lot-cluster, counts adverse events across the patients infused from one lot or clinic: a third engine, with
# only that rule enabled, gets every infusion and adverse event of the patients with both an infusion and an
# adverse event on record (an adverse event of a patient never infused cannot be attributed to a lot or clinic,
# and an infusion attributes nothing to its lot or clinic but its patient's adverse events: lot_cluster.
# AttributedEvent), in the same order as the single engine would, so it derives the same lot-cluster alerts (on
# the 40k clinical log 618 infusions of the 1,196). Each process reads its own share of the log through its own
# read-only attach of the store (DuckDB allows several readers); the helper lets go of it once read, so that the
# parent can attach it read-write while the helper still derives; the writes come after, in one.

#: The helper's patients (DuckDB's hash of the pseudonym: the same in both processes). It takes 5 patients in 8:
#: the parent also runs the lot-cluster engine and writes the tables (measured: 1 in 2 left the parent last; with
#: the screen, 3 in 5 still did and 2 in 3 left the helper last, by 70-90 ms of a ~400 ms replay).
HELPER_PATIENTS = "hash(patient) % 8 >= 3"
#: One process's share of the log in replay order: its patients, and with $with_lots the lot-cluster evidence;
#: {quiet}: the screen (lab results are never lot-cluster evidence, so its own patients' are enough).
_SHARE_FROM = """
    WITH exposed AS (SELECT patient FROM event_log WHERE type = 'msc-infusion'
                     INTERSECT SELECT patient FROM event_log WHERE type = 'adverse-event'),
    log AS (
        SELECT type, payload, occurred_at, event_id, (""" + HELPER_PATIENTS + """) = $helper AS own,
               type IN ('adverse-event', 'msc-infusion') AND patient IN (SELECT patient FROM exposed) AS lot_evidence
        FROM event_log {quiet} WHERE list_contains($types, type))
    SELECT own, lot_evidence, type, payload FROM log WHERE own OR ($with_lots AND lot_evidence)
    ORDER BY occurred_at, event_id"""
#: The whole log in replay order (one process).
_LOG_FROM = """SELECT type, payload FROM event_log {quiet} WHERE list_contains($types, type)
               ORDER BY occurred_at, event_id"""


def _screened(query: str, parameters: RuleParameters, screen: bool, patients: str = "true") -> str:
    """`query` with the quiet lab results and scores of `patients` (an SQL condition) left out, if `screen`."""
    if not screen:
        return query.format(quiet="")
    labs = quiet_labs_sql(quiet_lab_bands(parameters), patients)
    undocumented_benefit = parameters.enabled(UNDOCUMENTED_BENEFIT)
    quiet = " UNION ALL ".join([
        quiet_scores_sql(flare_score_use(parameters), patients), quiet_claims_sql(undocumented_benefit, patients),
        quiet_infusions_sql(undocumented_benefit, patients),
        *([] if labs is None else [f"SELECT event_id FROM ({labs})"])])
    return query.format(quiet=f"ANTI JOIN ({quiet}) quiet USING (event_id)")


#: Only the events some rule reads are read and decoded (the others feed projections, not rules: the same
#: alerts and clocks, tests/unit/test_rule_engine_inputs.py); 7% of the clinical mix (treatment starts, dose
#: changes). Neither query fetches event_id: a Python UUID per row cost ~1 us (the payload carries the id).
_RULE_INPUTS = {"types": sorted(RULE_INPUT_TYPES)}


class StoredEventInvalid(PvwatchError):
    """A stored event that this pvwatch's validation rejects (a validator tightened since it was stored). Replay
    stops rather than derive tables without it: the log is the truth."""


def _without(parameters: RuleParameters, rule_ids: Iterable[str]) -> RuleParameters:
    return replace(parameters, disabled=parameters.disabled | frozenset(rule_ids))


#: Each event type's validator as `Model.model_validate_json` calls it (with its defaults), without the Python
#: frame around it: the same validation, ~9% faster decoding (measured on the clinical log).
_VALIDATE_JSON = {name: model.__pydantic_validator__.validate_json for name, model in EVENT_TYPES.items()}


def _stored_id(payload: str) -> str:
    """The event id a stored payload carries (the log's event_id column is the same), for an error message."""
    with suppress(ValueError, AttributeError):
        return str(json.loads(payload).get("event_id", "(no event_id)"))
    return "(unreadable payload)"


def _decode(row_type: str, payload: str) -> EventEnvelope:
    """A stored payload, validated again exactly as EventStore.iter_events does (as stored: FROM_LOG)."""
    try:
        event: EventEnvelope = _VALIDATE_JSON[row_type](payload, context=FROM_LOG)
    except ValidationError as error:
        raise StoredEventInvalid(
            f"stored event {_stored_id(payload)} ({row_type}) does not pass this pvwatch's validation: "
            f"{describe_validation_error(error)}. Nothing was written; correct the record (a new event) or the "
            "validator, then replay again") from None
    return event


@dataclass(frozen=True)
class _ShareDerived:
    alerts: dict[str, list[object]]  # columns: plain values cross the pipe far faster than pydantic models
    clocks: list[ClockRow]


def _instance() -> duckdb.DuckDBPyConnection:
    """One process's in-memory DuckDB, to which the store is attached (eventstore.attach): one DuckDB thread each
    (two processes on two cores)."""
    con = duckdb.connect(config={"threads": 1})
    con.execute("SET enable_progress_bar = false")
    return con


def _attach_current(con: duckdb.DuckDBPyConnection, path: Path) -> bool:
    """Attach the store at `path` read-only when it needs no migration; else attach nothing and say so (migrating
    needs a read-write open: ~50 ms with its checkpoint, a tenth of a 40,000-event replay, so only if needed)."""
    if not path.exists():
        return False
    attach(con, path, read_only=True)
    if is_current(con):
        return True
    detach(con)
    return False


def _share_rows(con: duckdb.DuckDBPyConnection, helper: bool, with_lots: bool, parameters: RuleParameters,
                screen: bool) -> Iterator[list[tuple[bool, bool, str, str]]]:
    """One share of the log in replay order, in chunks of CHUNK rows (own, lot_evidence, type, payload), read through
    `con` (the store attached) while it is iterated."""
    own_patients = f"({HELPER_PATIENTS}) = {'true' if helper else 'false'}"
    cursor = con.execute(_screened(_SHARE_FROM, parameters, screen, own_patients),
                         {"helper": helper, "with_lots": with_lots, **_RULE_INPUTS})
    return iter(lambda: cursor.fetchmany(CHUNK), [])


def _derive_share(chunks: Iterable[list[tuple[bool, bool, str, str]]], with_lots: bool, parameters: RuleParameters,
                  now: datetime, progress: Callable[[int], object],
                  retain: list[object] | None = None) -> _ShareDerived:
    """Alerts and clocks of one share of the patients (and with `with_lots`, every lot-cluster alert) from its rows
    (_share_rows). The engines (every event of the share) are appended to `retain`, so the caller decides when
    they are freed."""
    patients = SafetyEngine(_without(parameters, [LOT_CLUSTER]))
    lots = SafetyEngine(_without(parameters, [rule for rule in RULE_IDS if rule != LOT_CLUSTER]))
    if retain is not None:
        retain += [patients, lots]
    alerts: list[SafetyAlert] = []
    for rows in chunks:
        own: list[EventEnvelope] = []
        lot_evidence: list[EventEnvelope] = []
        for mine, for_lots, row_type, payload in rows:
            event = _decode(row_type, payload)
            if mine:
                own.append(event)
            if for_lots and with_lots:
                lot_evidence.append(event)
        alerts.extend(patients.apply(own, now, in_order=True).alerts)
        if lot_evidence:
            alerts.extend(lots.apply(lot_evidence, now, in_order=True).alerts)
        progress(len(own))
    alerts.extend(patients.clock_alerts(now))
    return _ShareDerived(alert_columns(patients.standing(alerts)), list(patients.clocks.values()))


def _helper_main(connection: Connection, parents_end: Connection, path: Path, parameters: RuleParameters,
                 now: datetime, screen: bool) -> None:
    """The helper process: read its share of the log, let go of the store (the parent can then open it read-write
    while this derives), derive its share and send back its alerts and clocks. It reads at once when the store
    needs no migration (the parent finds the same, and both only read); otherwise it says it holds nothing open and
    waits for the go-ahead (the parent migrates the store meanwhile)."""
    parents_end.close()  # forked with it: kept open here, a parent killed outright would never end the pipe
    gc.disable()
    retained: list[object] = []
    try:
        con = _instance()
        if not _attach_current(con, path):
            connection.send(("waiting", 0))
            try:
                if connection.recv() is None:
                    return
            except EOFError:  # the parent is gone (killed): nothing to read for
                return
            attach(con, path, read_only=True)
        try:
            chunks = list(_share_rows(con, True, False, parameters, screen))
        finally:
            detach(con)
        connection.send(("released", 0))
        share = _derive_share(chunks, False, parameters, now, lambda n: connection.send(("progress", n)), retained)
    except PvwatchError as error:  # raised by the parent, as if it were its own (a one-message error pickles)
        with suppress(BrokenPipeError):
            connection.send(("error", error if isinstance(error, StoredEventInvalid) else PvwatchError(str(error))))
        return
    except (BrokenPipeError, KeyboardInterrupt):  # the parent is gone (its own error) or Ctrl-C reached both: the
        return  # parent says why; a second traceback from here would only hide it
    with suppress(BrokenPipeError):
        connection.send(("done", share))
    connection.close()
    # The share's events go back to the system with the process: freeing them object by object would keep the
    # parent waiting ~10% longer (measured on the clinical log). The parent joins this process last.
    os._exit(0)


class ReplayHelper:
    """The second replay process. Forked before the parent opens the store (a fork after DuckDB has started its
    threads could inherit a held lock). It reads at once a store that needs no migration; else it waits, holding
    nothing, for `start` (the store migrated and closed). Nothing is loaded for it first: the stored events are
    read as stored (FROM_LOG), which never consults the UCUM grammar (~0.4 s to load, once every CLI run paid)."""

    def __init__(self, path: Path, parameters: RuleParameters, now: datetime, screen: bool = True) -> None:
        context = multiprocessing.get_context("fork")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_helper_main,
                                        args=(child, self._connection, path, parameters, now, screen),
                                        name="pvwatch-replay-helper", daemon=True)
        self._process.start()
        child.close()
        self._result: _ShareDerived | None = None
        self._waiting = self._started = self._released = False

    def start(self) -> None:
        """Let a waiting helper read (see wait_until_idle)."""
        self._started = True
        if self._result is None:  # else it found the store current after all, derived and left
            self._connection.send("start")

    def wait_until_idle(self) -> None:
        """Wait until the helper has found that the store needs migrating and holds nothing open (or, if the store
        changed between its check and this process's, has derived its share already)."""
        while not self._waiting and self._result is None:
            self._connection.poll(1.0)
            self.progress()

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
            elif kind == "error":
                raise value
            elif kind == "waiting":
                self._waiting = True
            elif kind == "released":
                self._released = True
            else:
                done += value
        return done

    def wait_until_released(self, progress: Callable[[int], object]) -> None:
        """Wait until the helper has read its share and closed the store (it has, if it has derived it). A helper
        that found the store needing migration when this process found it current (migrated by another process
        between the two checks) waits for the go-ahead: it is let go, as `result` does, not waited for forever."""
        while not self._released and self._result is None:
            if self._waiting and not self._started:
                self.start()
            self._connection.poll(1.0)
            progress(self.progress())

    def result(self, progress: Callable[[int], object]) -> _ShareDerived:
        """The helper's share (the store is current by now: a helper still waiting is let go, not left hanging)."""
        while self._result is None:
            if self._waiting and not self._started:
                self.start()
            self._connection.poll(1.0)
            progress(self.progress())
        return self._result

    def close(self) -> None:
        if self._process.is_alive() and self._result is None:
            with suppress(OSError):  # it may have finished and closed its end meanwhile (the parent failed first)
                self._connection.send(None)
        self._connection.close()
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)


def derive_in_two(con: duckdb.DuckDBPyConnection, path: Path, helper: ReplayHelper, parameters: RuleParameters,
                  now: datetime, progress: bool = False, screen: bool = True) -> tuple[Derived, bool]:
    """What `derive` gives, with 5 patients in 8 derived by `helper` at the same time (see above), read through `con`
    (an _instance), and whether `con` has the store attached read-write: it does when this process's own share
    already shows the store must be written (attached while the helper still derives, once it has let go of the
    store), else nothing is attached. The store is migrated first if it needs it."""
    if not _attach_current(con, path):  # the helper, forked before, checks the same and reads at once when it may
        helper.wait_until_idle()
        EventStore(path).close()  # creates or migrates the store
        attach(con, path, read_only=True)
        helper.start()
    lots = parameters.enabled(LOT_CLUSTER)
    with paused_gc():
        row = con.execute("SELECT count(*) FROM event_log").fetchone()
        total = int(row[0]) if row else 0
        with tqdm(total=total, unit="ev", desc="replay", disable=not progress) as bar:
            mine = _derive_share(_share_rows(con, False, lots, parameters, screen), lots, parameters, now,
                                 lambda n: bar.update(n + helper.progress()))
            found = StoredTables.read(con)
            detach(con)
            writable = _must_write(found, mine)
            if writable:
                helper.wait_until_released(bar.update)
                attach(con, path, read_only=False)
            theirs = helper.result(bar.update)
            bar.update(total - bar.n)  # the events no rule reads (never decoded)
        clocks = {(row.clock.case_id, row.clock.category): row for row in theirs.clocks}
        clocks.update({(row.clock.case_id, row.clock.category): row for row in mine.clocks})  # the first's
        derived = _derived(total, merged_alerts(mine.alerts, theirs.alerts), list(clocks.values()))
        return replace(derived, stored=found.hold(derived)), writable


def _must_write(found: StoredTables, mine: _ShareDerived) -> bool:
    """Whether one share already shows that the store must be written: an alert it lacks, or clocks where it holds
    none (a rebuild). Otherwise the whole comparison waits for both shares (StoredTables.hold)."""
    lacking = any(alert_id not in found.alerts for alert_id in mine.alerts["ids"])
    return lacking or bool(mine.clocks and not found.clocks)


def replay(path: Path, *, progress: bool = False, parameters: RuleParameters | None = None,
           processes: int = 2, screen: bool = True) -> ReplayReport:
    """Rebuild the derived tables of the store at `path`; with `processes=2` 5 patients in 8 are derived in a second
    process (the same tables, see derive_in_two); `screen`: quiet lab results and unusable scores are not read (the
    same tables, see quiet_labs_sql and quiet_scores_sql; False validates every stored event again). Nothing else
    may hold the store (one writer)."""
    started = time.perf_counter()
    parameters = parameters or load_rule_parameters()
    now = datetime.now(UTC)
    if processes < 2 or "fork" not in multiprocessing.get_all_start_methods():  # one process (no fork)
        store = EventStore(path)  # migrates an older store before anything reads it
        try:
            derived = derive(store, progress=progress, parameters=parameters, screen=screen)
            added, removed = (0, 0) if derived.stored else _write(store.con, derived, now)
        finally:
            store.close()
    else:
        helper = ReplayHelper(path, parameters, now, screen)  # forked before this process starts DuckDB
        con = _instance()
        try:
            derived, writable = derive_in_two(con, path, helper, parameters, now, progress, screen)
            added = removed = 0
            if not derived.stored:  # else the tables are right already: nothing is attached read-write
                if not writable:
                    attach(con, path, read_only=False)
                added, removed = _write(con, derived, now)
        finally:
            con.close()  # with a checkpoint of what was written, as the worker's close does
            helper.close()
    return ReplayReport(derived.events, derived.alert_count, added, removed, time.perf_counter() - started)


def _write(con: duckdb.DuckDBPyConnection, derived: Derived, now: datetime) -> tuple[int, int]:
    """Replace the derived tables in one transaction; (alerts added, removed)."""
    with transaction(con):
        added, removed = replace_alerts(con, derived.alerts, now)
        replace_clocks(con, derived.clocks)
    return added, removed


# --- the screen ----------------------------------------------------------------------------------------------
#
# Most of a clinical log is lab results, nearly all inside their reference range. A result that no rule can use
# (pvwatch.domain.engine.quiet_lab_bands: below the CTCAE alert grade whatever the baseline, never half of a Hy's
# law pair nor its exclusion, and not the first of its kind for the patient where that is the CTCAE baseline)
# changes no derived table, so replay leaves it in the log: one vectorised query instead of ~12 us of Python per event.
# The bands come from the domain (the rule parameters in force); this only writes them as SQL, comparing as
# QuietBand.admits does (the same IEEE divisions and products), plus: the baseline must be known and positive.
# Screened results are not validated again (the rest of the log is); `pvwatch replay --no-screen` validates all.
# Likewise the disease-activity scores flare-after-taper cannot use (engine.flare_score_use): a third of the mix;
# the outcome claims undocumented-benefit cannot alert on (quiet_claims_sql); and the infusions of patients with no
# adverse event that undocumented-benefit cannot alert on (quiet_infusions_sql). (The diagnoses of patients who never
# taper, which only flare-after-taper reads, are read all the same: 172 of 1,157 on the 40k clinical log cost less
# to decode than to find.)

_LAB_FIELDS = "['$.loinc_code', '$.unit', '$.value', '$.comparator', '$.reference_low', '$.reference_high']"


def _string(json: str) -> str:
    """The text of a JSON value that is a string, else NULL (an array or a number is no LOINC code or unit)."""
    return f"CASE WHEN starts_with({json}, '\"') THEN {json}->>'$' END"


def _double(json: str) -> str:
    """A JSON number as a double, else NULL (a string or a boolean is no lab value)."""
    return f"TRY_CAST({json}::VARCHAR AS DOUBLE)"


def _number(x: float) -> str:
    return f"CAST('{x!r}' AS DOUBLE)"  # the exact double (a bare 0.001 would be a DECIMAL literal)


def _text(x: str) -> str:
    return "'" + x.replace("'", "''") + "'"


def _ceiling(ratio: str, ceiling: Ceiling) -> str:
    return f"{ratio} {'<=' if ceiling.inclusive else '<'} {_number(ceiling.limit)}"


def _band_sql(codes: list[str], band: QuietBand) -> str:
    conditions = [f"loinc IN ({', '.join(map(_text, codes))})"]
    if band.at_least is not None or band.at_least_lln:
        units = []
        for unit, factor in CANONICAL_UNITS[LOINC_ANALYTES[codes[0]]].items():
            checks = [f"unit = {_text(unit)}"]
            if band.at_least is not None:
                checks.append(f"value * {_number(factor)} >= {_number(band.at_least)}")
            if band.at_least_lln:
                checks.append(f"value * {_number(factor)} >= low * {_number(factor)}")
            units.append("(" + " AND ".join(checks) + ")")
        conditions.append("(" + " OR ".join(units) + ")")
    if band.uln is not None:
        conditions.append(_ceiling("value / high", band.uln))
    if band.baseline is not None:
        conditions += ["isfinite(baseline)", "baseline > 0", _ceiling("value / baseline", band.baseline)]
    return "(" + " AND ".join(conditions) + ")"


def quiet_labs_sql(bands: dict[str, QuietBand], patients: str = "true") -> str | None:
    """A query of the event ids of the quiet lab results of `patients` (an SQL condition on event_log), or None
    when no result can be quiet. Never quiet: a comparator, a missing reference limit, a value that is not a finite
    JSON number, a LOINC code without a band, and every result of a patient with a LOINC code or unit that is not a
    JSON string in its canonical form: validation strips whitespace (" 2160-0"), so the engine's kind and first
    result could differ from the raw strings this query groups by. Where the first result of each (patient, LOINC
    code, unit) in replay order is the CTCAE baseline of the later ones (QuietBand.first_is_baseline), it is quiet
    only when it lies in the band itself and so does every later result of its kind: the engine reads a first
    result only to grade the later ones (`_first_labs`), and those are all left out then. (It is tested against
    itself as baseline: narrower than the engine, which grades a first result without one.)"""
    if not bands:
        return None
    by_band: dict[tuple[object, QuietBand], list[str]] = {}  # per analyte too: _band_sql reads its units
    for code, band in bands.items():
        by_band.setdefault((LOINC_ANALYTES[code], band), []).append(code)
    in_a_band = " OR ".join(_band_sql(codes, band) for (_, band), codes in by_band.items())
    baselines = [code for code, band in bands.items() if band.first_is_baseline]
    no_baseline = f"loinc NOT IN ({', '.join(map(_text, sorted(baselines)))})" if baselines else "true"
    # Each step once: the results, the patients with a code or unit in another form, the first result of each kind
    # (an aggregate: a window over the kinds cost ~4 ms more per 15,000 results, measured), whether each result lies
    # in a band, the kinds with a result that does not (an anti-join each: windows over the patient and over the
    # kind's whole partition cost ~20 ms more per 15,000 results, measured). arg_min_null keeps a first value that
    # is not a number (no baseline), where arg_min would skip to the next.
    return f"""
        WITH lab AS (
            SELECT event_id, patient, occurred_at, {_string("j[1]")} AS loinc, {_string("j[2]")} AS unit,
                   {_double("j[3]")} AS value, nullif(j[4], 'null') AS comparator, {_double("j[5]")} AS low,
                   {_double("j[6]")} AS high
            FROM (SELECT event_id, patient, occurred_at, json_extract(payload, {_LAB_FIELDS}) AS j
                  FROM event_log WHERE type = 'lab-result' AND ({patients}))),
        usual AS (
            SELECT * FROM lab ANTI JOIN (
                SELECT patient FROM lab
                WHERE NOT coalesce(regexp_matches(loinc, {_text(LOINC_CODE_PATTERN)})
                                   AND regexp_matches(unit, {_text(UCUM_UNIT_PATTERN)}), false)
            ) odd USING (patient)),
        kind AS (
            SELECT patient, loinc, unit, arg_min(event_id, (occurred_at, event_id)) AS first_id,
                   arg_min_null(value, (occurred_at, event_id)) AS baseline
            FROM usual GROUP BY patient, loinc, unit),
        placed AS (
            SELECT event_id, patient, loinc, unit, event_id = first_id AS first,
                   coalesce(comparator IS NULL AND unit IS NOT NULL AND isfinite(value) AND isfinite(low)
                            AND isfinite(high) AND high > 0 AND ({in_a_band}), false) AS in_band
            FROM usual JOIN kind USING (patient, loinc, unit))
        SELECT event_id FROM placed WHERE in_band AND (NOT first OR {no_baseline})
        UNION ALL
        SELECT event_id FROM placed ANTI JOIN (SELECT patient, loinc, unit FROM placed WHERE NOT in_band) heard
            USING (patient, loinc, unit)
        WHERE in_band AND first AND NOT ({no_baseline})"""


def quiet_scores_sql(use: FlareScoreUse, patients: str = "true") -> str:
    """A query of the event ids of the disease-activity scores of `patients` that flare-after-taper cannot use
    (FlareScoreUse): a known instrument it does not read, or one it reads that is neither the latest of its kind
    at or before any taper or stop of the patient nor within the window after one. Wider than the rule, never
    narrower: every taper and stop counts whatever its drug class, and the window gets one day more (an SQL day
    interval follows the calendar; the rule's window is an exact number of days)."""
    other = ", ".join(map(_text, sorted(use.other_instruments))) or "NULL"
    read = ", ".join(map(_text, sorted(use.instruments))) or "NULL"
    return f"""
        SELECT event_id FROM (
            SELECT event_id, patient, occurred_at AS at, j[1] AS instrument, j[2] AS assessed_by,
                   lead(occurred_at) OVER (PARTITION BY patient, j[1], j[2] ORDER BY occurred_at, event_id) AS next_at
            FROM (SELECT event_id, patient, occurred_at,
                         json_extract_string(payload, ['$.instrument', '$.assessed_by']) AS j
                  FROM event_log WHERE type = 'disease-activity' AND ({patients}))) score
        WHERE assessed_by IS NOT NULL AND (instrument IN ({other}) OR (instrument IN ({read}) AND NOT EXISTS (
            SELECT 1 FROM event_log taper
            WHERE taper.type IN ('treatment-tapered', 'treatment-stopped') AND taper.patient = score.patient
              AND ((score.at <= taper.occurred_at AND (score.next_at IS NULL OR taper.occurred_at < score.next_at))
                   OR (taper.occurred_at < score.at
                       AND score.at - INTERVAL {use.window.days + 1} DAY <= taper.occurred_at)))))"""


#: A JSON string holding a UUID in its usual form (what validation reads as an event id).
_QUOTED_UUID = '^"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"$'


def quiet_claims_sql(undocumented_benefit: bool, patients: str = "true") -> str:
    """A query of the event ids of the outcome claims of `patients` on which undocumented-benefit cannot alert,
    every claim when the rule is off (no other rule reads claims, and the rule reads each claim alone:
    SafetyEngine._evaluate). It alerts on a claim that something improved (the default) when
    undocumented_benefit.benefit_is_undocumented: its documented measure has neither a name nor an event. Quiet
    here: a claim that something worsened or did not change, or whose measure names an event id or has a name with
    a letter or a digit, each a JSON string (narrower than the rule, which takes any name that is not blank)."""
    if not undocumented_benefit:
        return f"SELECT event_id FROM event_log WHERE type = 'outcome-claim' AND ({patients})"
    other = ", ".join(_text(json.dumps(d.value)) for d in sorted(Direction) if d is not Direction.IMPROVED)
    return f"""
        SELECT event_id FROM (
            SELECT event_id, json_extract(payload, ['$.direction', '$.documented_measure.evidence_event_id',
                                                   '$.documented_measure.name']) AS j
            FROM event_log WHERE type = 'outcome-claim' AND ({patients}))
        WHERE j[1] IN ({other}) OR regexp_matches(j[2], {_text(_QUOTED_UUID)})
           OR (starts_with(j[3], '"') AND regexp_matches(j[3], '[A-Za-z0-9]'))"""


def quiet_infusions_sql(undocumented_benefit: bool, patients: str = "true") -> str:
    """A query of the event ids of the MSC infusions of `patients` that no rule can use: the patient has no adverse
    event on record (infusion-temporal links, and lot-cluster attributes, only the patient's own adverse events to
    an infusion: SafetyEngine._evaluate, lot_cluster.AttributedEvent), and undocumented-benefit cannot alert on it:
    the rule is off, or the infusion records its lot and a cell dose (MscInfusionGiven.missing_documentation), the
    lot as a JSON string and the dose as a JSON number (a stored lot or dose passed validation). On the 40k clinical
    log 437 of the 1,196 infusions."""
    documented = "true" if not undocumented_benefit else (
        "j[1] = 'VARCHAR' AND (j[2] IN ('DOUBLE', 'UBIGINT', 'BIGINT') OR j[3] IN ('DOUBLE', 'UBIGINT', 'BIGINT'))")
    return f"""
        SELECT event_id FROM (
            SELECT event_id, patient, json_type(payload, ['$.lot_id', '$.cells_per_kg', '$.total_cells']) AS j
            FROM event_log WHERE type = 'msc-infusion' AND ({patients}))
        WHERE {documented} AND patient NOT IN (SELECT patient FROM event_log WHERE type = 'adverse-event')"""

