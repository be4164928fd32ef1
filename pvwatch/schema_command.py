"""`pvwatch schema [TYPE]`: print the JSON Schema of the wire contract (docs/events.md)."""

from __future__ import annotations

import json

import click

from pvwatch.events.registry import EVENT_TYPES, TOPIC_OF_TYPE


@click.command("schema")
@click.argument("type_name", metavar="[TYPE]", required=False)
@click.option("--topic-form", is_flag=True,
              help="The form found on Kafka after the ingest edge: `patient` (pseudonym) only, no `patient_ref`.")
@click.option("--list", "list_types", is_flag=True, help="List the event types and their topics.")
def schema_command(type_name: str | None, topic_form: bool, list_types: bool) -> None:
    """Print the JSON Schema (draft 2020-12) of event TYPE, or of every type as one object keyed by type.

    By default the schema is the one `pvwatch ingest` accepts: the clinic's identifier goes in `patient_ref`
    and is pseudonymised at the edge. Example: `pvwatch schema msc-infusion`.
    """
    from pvwatch.events.schema import UnknownEventType, all_schemas, event_schema

    if list_types:
        for name in sorted(EVENT_TYPES):
            click.echo(f"{name:24s} {TOPIC_OF_TYPE[name]:42s} {EVENT_TYPES[name].__name__}")
        return
    try:
        document = event_schema(type_name, ingest=not topic_form) if type_name else all_schemas(ingest=not topic_form)
    except UnknownEventType as error:
        raise click.BadParameter(str(error), param_hint="TYPE") from None
    click.echo(json.dumps(document, indent=2))
