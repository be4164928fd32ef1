"""`pvwatch import e2b|fhir|csv` and `pvwatch export e2b`: the command bodies (registered in pvwatch.cli)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from pvwatch.interop.common import ImportResult
from pvwatch.interop.csv_import import CSV_KINDS
from pvwatch.pseudonym import Pseudonymiser

BOOTSTRAP_HELP = "Kafka bootstrap servers (host:port[,host:port]); default from PVWATCH_KAFKA_BOOTSTRAP."


def _pseudonymiser_and_bootstrap(bootstrap_servers: str | None) -> tuple[Pseudonymiser, str]:
    from pvwatch.cli import _settings

    settings = _settings(kafka_bootstrap=bootstrap_servers)
    return Pseudonymiser.from_settings(settings), settings.kafka_bootstrap


def _run_import(read: Callable[[Pseudonymiser], ImportResult], out: Path | None, bootstrap_servers: str | None,
                strict: bool) -> None:
    """Report every rejection, then write (--out) or publish; exit 1 if anything was rejected."""
    pseudonymiser, bootstrap = _pseudonymiser_and_bootstrap(bootstrap_servers)
    result = read(pseudonymiser)
    for note in result.notes:
        click.echo(f"note {note}", err=True)
    for rejection in result.rejections:
        click.echo(f"rejected {rejection.message()}", err=True)
    accepted, rejected = len(result.events), len(result.rejections)
    if strict and rejected:
        raise click.ClickException(f"{rejected} of {accepted + rejected} records invalid; nothing written or "
                                   "sent (--strict)")
    if out is not None:
        from pvwatch.interop.common import write_jsonl

        with out.open("wb") as handle:
            write_jsonl(result.events, handle)
        click.echo(f"accepted {accepted}  rejected {rejected} (events written to {out}; nothing sent)")
    else:
        from pvwatch.interop.common import publish
        from pvwatch.streams.producer import publishing

        with publishing(bootstrap) as publisher:
            report = publish(result, publisher, progress=True)
        click.echo(f"accepted {report.accepted}  rejected {len(report.rejected)} (sent to the dead-letter topic)")
    if rejected:
        sys.exit(1)


def import_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option("--strict", is_flag=True, help="Write or send nothing unless every record is valid.")(
        command)
    command = click.option("--bootstrap-servers", help=BOOTSTRAP_HELP)(command)
    command = click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
                           help="Write the events as JSON Lines to this file instead of publishing them.")(command)
    return command


@click.group("import")
def import_group() -> None:
    """Map records from a safety-data standard to pvwatch events, then publish them (or --out FILE.jsonl).

    Patient identifiers are pseudonymised first (PVWATCH_PSEUDONYM_KEY). Each rejected record is listed with
    the field at fault and sent to the dead-letter topic with its reason; the counts accepted / rejected are
    printed and the exit status is 1 if any record was rejected. See docs/interop.md for each mapping.
    """


@import_group.command("e2b")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@import_options
def import_e2b_command(file: Path, out: Path | None, bootstrap_servers: str | None, strict: bool) -> None:
    """Import an ICH E2B(R3) ICSR file (HL7 v3 XML): one adverse-event per reaction of each ICSR."""
    from pvwatch.interop.e2b_import import import_e2b

    _run_import(lambda pseudonymiser: import_e2b(file, pseudonymiser), out, bootstrap_servers, strict)


@import_group.command("fhir")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@import_options
def import_fhir_command(bundle: Path, out: Path | None, bootstrap_servers: str | None, strict: bool) -> None:
    """Import a FHIR R4 Bundle (JSON) of Patient, Condition, MedicationStatement, MedicationRequest,
    MedicationAdministration, Procedure, Observation and AdverseEvent resources.

    Statements and requests of one drug are read as one course: a lower dose is a taper, the end a stop, each
    with its statusReason. An Observation whose value says something improved, worsened or did not change is a
    benefit claim, by its performer (clinician, parent, patient), documented only by the scores it is
    derivedFrom. Resources pvwatch does not model are listed as skipped (stderr), never dropped silently.
    """
    from pvwatch.interop.fhir_import import import_fhir

    _run_import(lambda pseudonymiser: import_fhir(bundle, pseudonymiser), out, bootstrap_servers, strict)


@import_group.command("csv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", required=True, type=click.Choice(CSV_KINDS),
              help="Event type of every row; the columns are its fields (docs/interop.md).")
@import_options
def import_csv_command(file: Path, kind: str, out: Path | None, bootstrap_servers: str | None, strict: bool) -> None:
    """Import a CSV FILE (UTF-8, header row) of one event type: one row per event, raw `patient_ref` pseudonymised.

    Columns are the type's JSON field names (`pvwatch schema TYPE`), nested fields with a dot
    (seriousness.death), list fields as a JSON array; an unknown column stops the import before anything is sent.
    """
    from pvwatch.interop.csv_import import import_csv

    _run_import(lambda pseudonymiser: import_csv(file, kind, pseudonymiser), out, bootstrap_servers, strict)


@click.group("export")
def export_group() -> None:
    """Write pvwatch data in a safety-data standard."""


@export_group.command("e2b")
@click.argument("case_id")
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="DuckDB store (or its read-only snapshot) holding the case.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the ICSR here (default: standard output).")
@click.option("--sender", default="PVWATCH", show_default=True,
              help="Sender identifier (N.1.3, N.2.r.2) and prefix of the batch number.")
@click.option("--receiver", default="ZZFDA", show_default=True,
              help="Receiver identifier (N.1.4, N.2.r.3), e.g. ZZFDA or EVHUMAN.")
@click.option("--sender-type", type=click.Choice(["1", "2", "3", "4", "5", "6", "7"]), default="6", show_default=True,
              help="C.3.1: 1 pharmaceutical company, 2 regulatory authority, 3 health professional, 4 regional "
              "pharmacovigilance centre, 5 WHO collaborating centre, 6 other, 7 patient / consumer.")
def export_e2b_command(case_id: str, db: Path, out: Path | None, sender: str, receiver: str,
                       sender_type: str) -> None:
    """Write the latest version of case CASE_ID as an E2B(R3) ICSR (HL7 v3 XML).

    All six seriousness criteria E.i.3.2a-f are sent for every reaction, false included; outcomes use the
    E2B(R3) codes (0 unknown). The patient is masked (D.1): only sex and birth year-month are sent, never the
    pseudonym. docs/interop.md lists what E2B(R3) cannot carry.
    """
    from pvwatch.interop.e2b_export import export_case

    document = export_case(db, case_id, sender=sender, receiver=receiver, sender_type=sender_type)
    if out is None:
        sys.stdout.buffer.write(document)
    else:
        out.write_bytes(document)
        click.echo(f"case {case_id} written to {out}", err=True)
