"""JSON Schema of each event type: the public wire contract, printed by `pvwatch schema [TYPE]`.

Two forms of one contract. The ingest form (default) is what a hospital system writes for `pvwatch ingest`: the
clinic's own identifier in `patient_ref` (pseudonymised at the edge) or an already-pseudonymised `patient`. The
topic form is what travels on Kafka after the edge: `patient` only. Both are generated from the pydantic models,
so the schema cannot drift from the validation that really runs.
"""

from __future__ import annotations

from typing import Any

from pvwatch.errors import PvwatchError
from pvwatch.events.envelope import EventEnvelope
from pvwatch.events.registry import EVENT_TYPES, TOPIC_OF_TYPE

DRAFT = "https://json-schema.org/draft/2020-12/schema"


class UnknownEventType(PvwatchError):
    """A type name that is not in the registry."""


def model_of(type_name: str) -> type[EventEnvelope]:
    try:
        return EVENT_TYPES[type_name]
    except KeyError:
        raise UnknownEventType(f"no event type {type_name!r}; known types: {', '.join(sorted(EVENT_TYPES))}") from None


def event_schema(type_name: str, *, ingest: bool = True) -> dict[str, Any]:
    """The JSON Schema of one event type, as accepted at the ingest edge (default) or as found on its topic."""
    model = model_of(type_name)
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = DRAFT
    schema["$id"] = f"urn:pvwatch:event:{type_name}:v{model.model_fields['schema_version'].default}"
    schema["x-pvwatch-topic"] = TOPIC_OF_TYPE[type_name]
    schema["properties"]["type"].setdefault("description", f"Always {type_name!r}: selects this schema and topic.")
    required = [name for name in schema.get("required", []) if name != "patient"]
    schema["required"] = ["type", *(name for name in required if name != "type")]  # the union's discriminator
    if ingest:
        schema["properties"]["patient_ref"] = {
            "type": ["string", "integer"], "minLength": 1, "title": "Patient Ref",
            "description": "The clinic's own patient identifier (e.g. the MRN). Replaced at the ingest edge by "
            "`patient`, a keyed-hash pseudonym; it never reaches Kafka, the store, logs or metrics.",
        }
        schema["oneOf"] = [{"required": ["patient_ref"]}, {"required": ["patient"]}]
        if "reporter" in schema["properties"]:
            schema["properties"]["reporter_ref"] = {
                "type": ["string", "integer"], "minLength": 1, "title": "Reporter Ref",
                "description": "The reporter's own identifier (name, e-mail or registration number). Replaced at "
                "the ingest edge by `reporter`, a keyed-hash pseudonym; it never reaches Kafka or the store.",
            }
    else:
        schema["required"].append("patient")
    return schema


def all_schemas(*, ingest: bool = True) -> dict[str, dict[str, Any]]:
    return {name: event_schema(name, ingest=ingest) for name in sorted(EVENT_TYPES)}
