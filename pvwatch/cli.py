"""`pvwatch`: the one command-line front door (demo, broker, worker, ingest, sql, ...)."""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from pvwatch.config import Settings
from pvwatch.errors import ConfigError, PvwatchError

BOOTSTRAP_HELP = "Kafka bootstrap servers (host:port[,host:port]); default from PVWATCH_KAFKA_BOOTSTRAP."


def _settings(**overrides: object) -> Settings:
    """Environment first (PVWATCH_*), then any flag the user gave; a bad value is a clear error, not a trace."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = "; ".join(f"PVWATCH_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"invalid settings: {problems}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pvwatch")
def cli() -> None:
    """pvwatch: an event-sourced pharmacovigilance monitor.

    Treatment, infusion, lab, disease-activity and adverse-event messages stream through Kafka; a Faust
    worker validates them, stores every event once in DuckDB and applies safety rules; Prometheus metrics
    drive alerts. Start with `pvwatch demo`.
    """


@cli.command()
@click.option("--events", "events_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run over your own JSON Lines file instead of the synthetic cohort.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="DuckDB store to write, created if missing and kept. Default: var/demo/pvwatch.duckdb, emptied "
                   "at the start of each run.")
@click.option("--patients", type=click.IntRange(1, 100_000), default=60, show_default=True,
              help="Size of the synthetic cohort.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the synthetic cohort.")
@click.option("--forever", is_flag=True,
              help="Keep broker and worker running after the run, and serve the dashboard, until Ctrl-C.")
@click.option("--dashboard-port", type=int, default=0, help="Dashboard port with --forever (default: a free port).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("var/demo"),
              show_default=True, help="Where the broker and worker logs go.")
@click.option("--metrics-port", type=int, default=0, help="Worker metrics port (default: a free port).")
@click.option("--timeout", "timeout_s", type=float, default=300.0, show_default=True,
              help="Give up if the events are not all processed in this many seconds.")
def demo(events_file: Path | None, db: Path | None, patients: int, seed: int, forever: bool, dashboard_port: int,
         workdir: Path, metrics_port: int, timeout_s: float) -> None:
    """Run the whole pipeline locally: embedded broker, worker, a cohort (or --events FILE) -> DuckDB.

    Exits 0 once every event is stored, recognised as a duplicate or dead-lettered. Ctrl-C stops dashboard,
    worker and broker at any moment: it ends a --forever run with 0, an unfinished run with 130.
    """
    from pvwatch.demo import DemoInterrupted, DemoOptions, run_demo

    try:
        run_demo(DemoOptions(db=db or Path("var/demo/pvwatch.duckdb"), workdir=workdir, events_file=events_file,
                             patients=patients, seed=seed, forever=forever, dashboard_port=dashboard_port,
                             metrics_port=metrics_port, timeout_s=timeout_s, fresh_store=db is None))
    except DemoInterrupted as interrupted:
        click.echo(str(interrupted), err=True)
        sys.exit(130)  # the shell's code for a run ended by Ctrl-C


@cli.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Loopback port to listen on.")
@click.option("--partitions", type=int, default=4, show_default=True, help="Partitions of the topics it creates.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append the broker's log here.")
def broker(port: int, partitions: int, log_path: Path | None) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, in memory) alone, with pvwatch's topics, until Ctrl-C."""
    from pvwatch.errors import BrokerError
    from pvwatch.stop import StopRequests
    from pvwatch.streams.broker import EmbeddedBroker
    from pvwatch.streams.topics import ensure_topics

    stop = StopRequests()  # a Ctrl-C while kafka-python creates the topics would be swallowed there (pvwatch/stop.py)
    stop.install()
    with EmbeddedBroker(port=port, log_path=log_path) as running:
        exit_code: int | None = None
        try:
            ensure_topics(running.bootstrap, partitions)
            stop.check()
            click.echo(f"broker listening on {running.bootstrap} (data in memory only); Ctrl-C to stop")
            while running.process is not None and (exit_code := running.process.poll()) is None:
                stop.wait(0.5)
        except KeyboardInterrupt:
            return
    raise BrokerError(f"the broker stopped by itself with exit code {exit_code}"
                      + (f"; its log: {log_path}" if log_path else "; run with --log FILE to keep its output"))


@cli.command()
@click.option("--bootstrap-servers", help=BOOTSTRAP_HELP)
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help="DuckDB store (PVWATCH_DB).")
@click.option("--metrics-port", type=int, help="Port of /metrics (PVWATCH_METRICS_PORT, default 9464).")
@click.option("--metrics-host", help="Address of /metrics (PVWATCH_METRICS_HOST, default 127.0.0.1).")
@click.option("--session-timeout", "session_timeout_s", type=float,
              help="Consumer group session timeout in seconds (default 10; the demo and tests use 4).")
@click.option("--alertmanager-url", metavar="URL",
              help="Alertmanager to post critical alerts to at once, e.g. http://alertmanager:9093 "
                   "(PVWATCH_ALERTMANAGER_URL). Unset: people are paged only through the Prometheus rules, "
                   "about 10 s later (docs/operations.md).")
@click.option("--loglevel", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def worker(bootstrap_servers: str | None, db: Path | None, metrics_port: int | None, metrics_host: str | None,
           session_timeout_s: float | None, alertmanager_url: str | None, loglevel: str) -> None:
    """Run the Faust worker: validate, store, evaluate rules, publish alerts, serve /metrics."""
    from pvwatch.streams.worker import run_worker

    settings = _settings(kafka_bootstrap=bootstrap_servers, db=db, metrics_port=metrics_port,
                         metrics_host=metrics_host, session_timeout_s=session_timeout_s,
                         alertmanager_url=alertmanager_url)
    _owner_only_files()
    sys.argv = [sys.argv[0]]  # Faust's worker parses argv itself; our flags are already applied
    run_worker(settings, loglevel=loglevel)


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--bootstrap-servers", help=BOOTSTRAP_HELP)
@click.option("--strict", is_flag=True, help="Send nothing unless every line is valid.")
def ingest(file: Path, bootstrap_servers: str | None, strict: bool) -> None:
    """Publish the events of a JSON Lines FILE, pseudonymising patient identifiers first.

    Invalid lines are listed with the field at fault and sent to the dead-letter topic with their reason
    (with --strict, nothing is sent). Exits 1 if any line was rejected.
    """
    from tqdm import tqdm

    from pvwatch.pseudonym import Pseudonymiser
    from pvwatch.stop import StopRequests
    from pvwatch.streams.ingest import Rejection, prepare, read_lines, send_prepared
    from pvwatch.streams.producer import publishing

    settings = _settings(kafka_bootstrap=bootstrap_servers)
    pseudonymiser = Pseudonymiser.from_settings(settings)
    with file.open("rb") as handle:
        items = [prepare(where, line, pseudonymiser) for where, line in read_lines(handle, file.name)]
    rejected = [item for item in items if isinstance(item, Rejection)]
    for rejection in rejected:
        click.echo(f"rejected {rejection.message()}", err=True)
    if strict and rejected:
        raise click.ClickException(f"{len(rejected)} of {len(items)} lines invalid; nothing sent (--strict)")
    stop = StopRequests()  # Ctrl-C is read between lines, never raised inside the Kafka client
    stop.install()
    progress = tqdm(stop.until_requested(items), desc="sent", unit="ev", total=len(items))  # on stderr
    try:
        with publishing(settings.kafka_bootstrap) as publisher:
            report = send_prepared(progress, publisher)
    except KeyboardInterrupt:
        progress.close()
        click.echo(f"interrupted after handing {progress.n} of {len(items)} lines to Kafka (the last ones perhaps "
                   "undelivered): run the same command again; events keep their ids, so nothing is stored twice",
                   err=True)
        sys.exit(130)
    click.echo(f"accepted {report.accepted}  rejected {len(report.rejected)} (sent to the dead-letter topic)")
    if report.rejected:
        sys.exit(1)


@cli.command()
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="DuckDB store to query (opened read-only).")
@click.argument("query")
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV instead of a table.")
def sql(db: Path, query: str, as_csv: bool) -> None:
    """Run a read-only SQL QUERY against the store; print a table, or CSV.

    Example: pvwatch sql --db var/demo/pvwatch.duckdb "SELECT rule_id, count(*) FROM alerts GROUP BY 1"
    """
    import duckdb

    from pvwatch.store.eventstore import connect_sealed

    con = connect_sealed(db)  # read-only, and no query reads or writes other files (COPY ... TO, read_csv)
    try:
        cursor = con.execute(query)
    except duckdb.Error as error:
        raise click.ClickException(str(error).splitlines()[0]) from None
    print_rows([d[0] for d in cursor.description or []], cursor.fetchall(), as_csv=as_csv)


def print_rows(columns: list[str], rows: list[tuple[object, ...]], *, as_csv: bool = False) -> None:
    """Query results as an aligned table with a row count, or as CSV."""
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
        return
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    click.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def _owner_only_files() -> None:
    """The store, its WAL and the worker's files hold children's data: none readable by group or others.

    Added to the operator's umask (never loosening it); the analyst snapshot is opened to its group explicitly
    (store/snapshot.py).
    """
    os.umask(os.umask(0o077) | 0o077)


@cli.command()
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="DuckDB store to rebuild (the worker must be stopped: one writer).")
@click.option("--rules", "rules_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="PVWATCH_RULES_FILE", help="Rules file (default: the packaged rules.yaml; docs/rules.md).")
@click.option("--rsi", "rsi_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="PVWATCH_RSI_FILE", help="Reference safety information (default: the packaged rsi.yaml).")
@click.option("--processes", type=click.IntRange(1, 2), default=2, show_default=True,
              help="2: a second process derives 5 patients in 8 (the same tables; use 1 on a busy single core).")
@click.option("--signals/--no-signals", "with_signals", default=True, show_default=True,
              help="Also recompute the signals table (PVWATCH_SIGNAL_* thresholds), as the worker's signal timer does.")
@click.option("--screen/--no-screen", default=True, show_default=True,
              help="Leave out the lab results, disease-activity scores and outcome claims no rule can use (the "
                   "same tables, faster); --no-screen reads and validates every stored event again.")
def replay(db: Path, rules_file: Path | None, rsi_file: Path | None, processes: int, with_signals: bool,
           screen: bool) -> None:
    """Rebuild every derived table (alerts, expedited_reports, signals) from the stored event log, without the broker.

    Deterministic: the same log always gives the same derived tables, equal to what the live worker derived
    (due-soon and overdue alerts as of now). Use the same rules file as the worker.
    """
    from pvwatch.rulebook import load_rule_parameters
    from pvwatch.store.replay import replay as run_replay

    _owner_only_files()
    report = run_replay(db, progress=True, parameters=load_rule_parameters(rules_file, rsi_file),
                        processes=processes, screen=screen)
    click.echo(f"replayed {report.events} events in {report.seconds:.2f} s ({report.events_per_second:,.0f}/s): "
               f"{report.alerts} alerts ({report.alerts_added} added, {report.alerts_removed} removed)")
    if with_signals:
        from pvwatch.signals_command import rebuild_signals

        rebuild_signals(_settings(), db)


@cli.command()
@click.option("--patients", type=click.IntRange(1, 1_000_000), default=60, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--out", type=click.File("w"), default="-", help="Output JSON Lines file (default stdout).")
@click.option("--stories", is_flag=True,
              help="Write the planted safety stories (kind, patient_refs, event_ids) as JSON instead of the events.")
def generate(patients: int, seed: int, out: click.utils.LazyFile, stories: bool) -> None:
    """Write a deterministic synthetic cohort of children with SLE, MCTD or JIA as JSON Lines (docs/events.md).

    Every event type, raw-looking patient_ref (pseudonymised on ingest), and planted safety stories for the rules:
    infusion reaction, neutropenia, flare after taper, death, Hy's law, duplicate report, lot cluster.
    """
    from dataclasses import asdict

    from pvwatch.cohort import generate_cohort, planted_stories

    if stories:
        found = {kind: asdict(story) for kind, story in planted_stories(patients, seed).items()}
        out.write(json.dumps(found, indent=2) + "\n")
        return
    for record in generate_cohort(patients, seed):
        out.write(json.dumps(record) + "\n")


@cli.command()
@click.option("--snapshot", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The worker's published snapshot (PVWATCH_SNAPSHOT_PATH, default <db>.snapshot.duckdb).")
@click.option("--users", "users_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="User file (YAML or TOML) written by `pvwatch user add`.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--audit-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Hash-chained audit log (default: audit.jsonl next to the users file).")
@click.option("--bootstrap-servers", help="Kafka for alert actions (PVWATCH_KAFKA_BOOTSTRAP); --read-only to disable.")
@click.option("--read-only", is_flag=True, help="Disable alert actions (no Kafka needed).")
@click.option("--metrics-url", help="The worker's /metrics URL, for the pipeline health page.")
@click.option("--grafana-url", envvar="PVWATCH_GRAFANA_URL", show_envvar=True,
              help="Grafana base URL: the pipeline health page links to each shipped dashboard there.")
@click.option("--secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Session-signing secret (32+ bytes); default: random at each start (sessions end on restart).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Serve HTTPS.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--secure-cookies", is_flag=True, help="Mark cookies Secure (automatic with --tls-cert; use behind a "
              "TLS-terminating proxy).")
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path), envvar="PVWATCH_RULES_FILE",
              show_envvar=True, help="The worker's rules file, edited by admins on /admin/rules (default: the packaged "
              "rules.yaml, shown read-only).")
@click.option("--rsi", "rsi_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="PVWATCH_RSI_FILE", show_envvar=True,
              help="Reference safety information (default: the packaged rsi.yaml), as the worker's.")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDRESS",
              help="Reverse proxy (IP address or network, repeatable) whose X-Forwarded-For names the client, for "
              "the login rate limit and the audit log; from any other peer the header is ignored.")
def dashboard(snapshot: Path, users_file: Path, host: str, port: int, audit_log: Path | None,
              bootstrap_servers: str | None, read_only: bool, metrics_url: str | None, grafana_url: str | None,
              secret_file: Path | None, tls_cert: Path | None, tls_key: Path | None, secure_cookies: bool,
              rules_file: Path | None, rsi_file: Path | None, trusted_proxies: tuple[str, ...]) -> None:
    """Serve the safety officer's web dashboard and the analyst's SQL page from the published snapshot."""
    from pvwatch.dashboards.serve import read_secret, serve
    from pvwatch.dashboards.webapp import DashboardConfig

    bootstrap = None if read_only else _settings(kafka_bootstrap=bootstrap_servers).kafka_bootstrap
    config = DashboardConfig(
        snapshot=snapshot, users_file=users_file, audit_log=audit_log or users_file.with_name("audit.jsonl"),
        bootstrap=bootstrap, metrics_url=metrics_url, grafana_url=grafana_url, secret=read_secret(secret_file),
        secure_cookies=secure_cookies or tls_cert is not None, rules_file=rules_file, rsi_file=rsi_file,
        trusted_proxies=trusted_proxies)
    serve(config, host, port, tls_cert, tls_key)


@cli.group()
def user() -> None:
    """Dashboard users (roles: officer, analyst, admin)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["officer", "analyst", "admin"]), required=True)
@click.option("--users", "users_file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("var/dashboard/users.yaml"), show_default=True, help="User file (YAML) to update.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
def user_add(name: str, role: str, users_file: Path, password_stdin: bool) -> None:
    """Add a user, or set an existing user's role and password (hashed with Argon2id)."""
    from pvwatch.dashboards.users import Role, UserStore

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    UserStore(users_file).add(name, Role(role), password)
    click.echo(f"user {name} ({role}) saved in {users_file}")


@cli.group()
def audit() -> None:
    """The dashboard's tamper-evident audit log."""


@audit.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--expect-head", help="Head hash recorded earlier: also proves no entry was cut from the end.")
def audit_verify(file: Path, expect_head: str | None) -> None:
    """Check the hash chain of an audit log; exits 1 and names each broken entry if any was edited."""
    from pvwatch.dashboards.audit import verify_audit_log

    result = verify_audit_log(file, expect_head)
    for problem in result.problems:
        click.echo(f"BROKEN {problem}", err=True)
    if not result.intact:
        sys.exit(1)
    click.echo(f"intact: {result.entries} entries, head {result.head}")


@cli.group()
def dlq() -> None:
    """Dead letters: messages rejected by validation, kept with their reason until a person resolves them."""


@dlq.command("list")
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Store or its published snapshot (opened read-only; use the snapshot while a worker runs).")
@click.option("--all", "show_all", is_flag=True, help="Also list resolved dead letters.")
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV instead of a table.")
def dlq_list(db: Path, show_all: bool, as_csv: bool) -> None:
    """List dead letters, oldest first, with the reason and the field at fault (payloads are not printed)."""
    from pvwatch.store.eventstore import connect

    con = connect(db, read_only=True)
    cursor = con.execute(
        "SELECT dead_letter_id, received_at, kafka_topic, reason, detail, status, resolved_by, resolution "
        "FROM dead_letters WHERE $all OR status = 'open' ORDER BY received_at, dead_letter_id", {"all": show_all})
    print_rows([d[0] for d in cursor.description or []], cursor.fetchall(), as_csv=as_csv)


@dlq.command("resolve")
@click.argument("dead_letter_ids", nargs=-1, required=True)
@click.option("--actor", required=True, help="Who resolves them (recorded with the resolution).")
@click.option("--reason", required=True, help='Why, e.g. "fixed and resent" or "test message, discarded".')
@click.option("--bootstrap-servers", help=BOOTSTRAP_HELP)
def dlq_resolve(dead_letter_ids: tuple[str, ...], actor: str, reason: str, bootstrap_servers: str | None) -> None:
    """Close DEAD_LETTER_IDS (from `pvwatch dlq list`): the worker records who closed them and why.

    Fix the record and send it again first (`pvwatch ingest`), or judge it worthless. The resolution travels
    through Kafka because the running worker owns the store; unknown or already closed ids are ignored.
    """
    from pvwatch.streams.dead_letters import publish_resolutions
    from pvwatch.streams.producer import publishing

    malformed = [value for value in dead_letter_ids if not re.fullmatch(r"[0-9a-f]{64}", value)]
    if malformed:
        raise click.BadParameter(f"not a dead-letter id (64 hex digits): {', '.join(malformed)}")
    settings = _settings(kafka_bootstrap=bootstrap_servers)
    with publishing(settings.kafka_bootstrap) as publisher:
        publish_resolutions(publisher, list(dead_letter_ids), actor, reason)
    click.echo(f"sent {len(dead_letter_ids)} resolution(s); the worker closes them within seconds")


from pvwatch.interop.cli import export_group, import_group  # noqa: E402  (bodies in pvwatch/interop)

cli.add_command(import_group)
cli.add_command(export_group)

from pvwatch.schema_command import schema_command  # noqa: E402  (body in pvwatch/schema_command.py)

cli.add_command(schema_command)


@cli.command()
@click.option("--reports", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with a header naming at least report_id,product,event (one row per report-product-event).")
@click.option("--from-store", is_flag=True, help="Count the adverse events of the event store instead (see --db).")
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Store for --from-store (opened read-only; PVWATCH_DB). Use the snapshot while a worker runs.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="OUT.csv: one row per product-event pair with a,b,c,d, expected, PRR, chi2, ROR, IC, EBGM.")
@click.option("--hyperparameters-out", type=click.Path(dir_okay=False, path_type=Path),
              help="HYPER.json: the fitted EBGM prior, its log-likelihood and convergence facts.")
@click.option("--stratify", help="Expected counts summed over strata: age_group, sex, or age_group,sex.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="FILE.png or FILE.svg: EBGM with its EB05-EB95 interval for the top pairs by EB05.")
@click.option("--top", type=click.IntRange(1, 200), default=30, show_default=True, help="Pairs in --plot.")
def signals(reports: Path | None, from_store: bool, db: Path | None, out: Path, hyperparameters_out: Path | None,
            stratify: str | None, plot: Path | None, top: int) -> None:
    """Disproportionality statistics of every product-event pair: PRR with chi-square, ROR with 95% CI,
    Norén's IC with IC025, and EBGM with EB05/EB95 from a fitted gamma-mixture prior (docs/signals.md).

    Counts distinct reports. Fails with an error, writing nothing, if the EBGM prior fit does not converge.
    """
    from pvwatch.signals_command import parse_strata, run_signals

    run_signals(_settings(), reports=reports, from_store=from_store, db=db, out=out,
                hyperparameters_out=hyperparameters_out, stratify=parse_strata(stratify), plot=plot, top=top)


@cli.command()
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Type I error of the whole surveillance.")
@click.option("--length", type=click.FloatRange(0, min_open=True), required=True,
              help="Surveillance length T: the expected event count under the background rate at its end.")
@click.option("--min-events", type=click.IntRange(1), default=4, show_default=True,
              help="Events needed before a signal may be raised (Kulldorff & Silva 2015 recommend 4).")
@click.option("--observed", type=click.IntRange(0), help="Events observed so far (with --expected: test now).")
@click.option("--expected", type=click.FloatRange(0, min_open=True),
              help="Events expected so far under the background rate (exposure x rate).")
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Take both from the store instead: MSC infusions x --rate, and --term cases after infusions.")
@click.option("--term", help="With --db: the adverse event term monitored (e.g. Pyrexia).")
@click.option("--rate", type=click.FloatRange(0, min_open=True),
              help="With --db: background cases of --term per infusion (from the literature or a reference cohort).")
@click.option("--window-days", type=click.IntRange(0), default=1, show_default=True,
              help="With --db: a case counts when it began this many days after an infusion at most.")
def maxsprt(alpha: float, length: float, min_events: int, observed: int | None, expected: float | None,
            db: Path | None, term: str | None, rate: float | None, window_days: int) -> None:
    """Poisson MaxSPRT (Kulldorff 2011): the exact critical value for continuous monitoring, and the test at
    one look, from --observed/--expected or from the store's MSC infusions (--db). Exits 1 on a signal."""
    from pvwatch.signals_command import run_maxsprt

    run_maxsprt(alpha=alpha, length=length, min_events=min_events, observed=observed, expected=expected, db=db,
                term=term, rate=rate, window_days=window_days)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except PvwatchError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
