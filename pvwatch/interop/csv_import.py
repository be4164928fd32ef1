"""CSV import: one row per event of one type (`--kind`), columns named after the event's fields.

Columns (docs/interop.md): the JSON field names of the type as `pvwatch schema TYPE` prints them; a nested
object's fields with a dot (`seriousness.death`); a list field (`products`, `diagnoses`, `premedication`) as a
JSON array in its cell; `patient_ref` for the raw patient identifier (pseudonymised here, never sent);
`type` is implied by --kind; patient types also accept `birth_date`, of which the edge keeps the year and
month only; adverse events accept `reporter_ref`, pseudonymised to `reporter` here. An empty cell is an absent
field. A column that is not a field of the type stops the whole import before anything is sent: an unexpected
column may hold identifying data pvwatch must not carry.
Without an `event_id` column each row gets uuid5 of its content, so importing a file twice stores it once.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pvwatch.errors import InvalidEvent
from pvwatch.events.registry import EVENT_TYPES
from pvwatch.interop.common import ImportFileError, ImportResult, content_digest, import_event_id, read_limited
from pvwatch.pseudonym import Pseudonymiser

SOURCE = "csv-import"
MAX_FILE_BYTES = 256 * 1024 * 1024
PATIENT_REF = "patient_ref"
#: Kinds `import csv` accepts: the clinical facts (pv.clinical.* topics); the officer's own actions on pv.safety.*
#: (alert actions, report submissions) are made in the dashboard, not imported.
CSV_KINDS = tuple(name for name, model in EVENT_TYPES.items() if model.topic.startswith("pv.clinical."))


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def allowed_columns(kind: str) -> set[str]:
    """Field names of the type (nested objects' fields with a dot) plus patient_ref; computed fields excluded."""
    model = EVENT_TYPES[kind]
    columns = {PATIENT_REF}
    for name, info in model.model_fields.items():
        nested = _nested_model(info.annotation)
        is_list = "list" in str(info.annotation)
        if nested is not None and not is_list:
            columns |= {f"{name}.{inner}" for inner in nested.model_fields}
        columns.add(name)
    if kind in ("patient-enrolled", "patient-updated"):
        columns.add("birth_date")  # YYYY-MM-DD, cut to birth_year_month by the edge (pvwatch.pseudonym)
    if "reporter" in model.model_fields:
        columns.add("reporter_ref")  # the reporter's own identifier, pseudonymised to `reporter` by the edge
    return columns - {"type"}


def _cell(column: str, value: str, list_fields: set[str]) -> Any:
    if column in list_fields:
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise InvalidEvent("schema", f"{column}: not a JSON array ({error.msg})") from None
        except RecursionError:
            raise InvalidEvent("schema", f"{column}: JSON nested too deeply") from None
    return value


def _row_record(row: dict[str, str], kind: str, list_fields: set[str]) -> dict[str, Any]:
    record: dict[str, Any] = {"type": kind}
    for column, raw in row.items():
        value = (raw or "").strip()
        if not value:
            continue
        parsed = _cell(column, value, list_fields)
        if "." in column:
            outer, inner = column.split(".", 1)
            record.setdefault(outer, {})[inner] = parsed
        else:
            record[column] = parsed
    record.setdefault("source", SOURCE)
    return record


def import_csv(path: Path, kind: str, pseudonymiser: Pseudonymiser) -> ImportResult:
    if kind not in CSV_KINDS:
        raise ImportFileError(f"--kind {kind!r}: expected one of {', '.join(CSV_KINDS)}")
    data = read_limited(path, MAX_FILE_BYTES)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path.name}: byte {error.start} is not valid UTF-8 (save the file as UTF-8)") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    unknown = [column for column in header if column not in allowed_columns(kind)]
    if unknown or not header:
        raise ImportFileError(f"{path.name}: column(s) {unknown or '(none)'} are not fields of {kind!r} "
                              "(see docs/interop.md); nothing imported")
    if len(set(header)) != len(header):
        raise ImportFileError(f"{path.name}: a column name is repeated in the header")
    model = EVENT_TYPES[kind]
    list_fields = {name for name, info in model.model_fields.items() if "list" in str(info.annotation)}
    result = ImportResult()
    rows = iter(reader)
    number = 1
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as error:  # e.g. a cell above the csv module's field limit: the file cannot be read on
            raise ImportFileError(f"{path.name}: after line {reader.line_num}: {error}; nothing imported") from None
        number += 1
        where = f"{path.name}:row {number}"
        if None in row:
            result.reject(where, "schema", f"{len(header)} columns expected, the row has more")
            continue
        try:
            record = pseudonymiser.pseudonymise_record(_row_record(row, kind, list_fields))
        except InvalidEvent as error:
            result.reject(where, error.reason, error.detail)
            continue
        record.setdefault("event_id", import_event_id(f"csv:{kind}", content_digest(record)))
        result.add(where, record)
    return result
