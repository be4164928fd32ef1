"""pvwatch.interop: importers from the standards safety data arrives in (ICH E2B(R3), HL7 FHIR R4, CSV) and the
E2B(R3) export. Every importer maps its source to the same validated, pseudonymised pvwatch events; see
docs/interop.md for each mapping."""
