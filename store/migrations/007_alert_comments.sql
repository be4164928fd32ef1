-- Column descriptions of the alerts table (issue 8: every documented relation an analyst queries says what each
-- column means; 001 created the table with only published_at described). Comments only: no data changes.
COMMENT ON TABLE alerts IS 'One row per safety alert raised by a rule (rules and their sources: docs/rules.md); an alert is raised once per alert_id, and its status lives in alert_status.';
COMMENT ON COLUMN alerts.alert_id IS 'Deterministic id from the rule, its version and what the alert is about: redelivery and replay never raise it twice.';
COMMENT ON COLUMN alerts.rule_id IS 'The rule that raised it (serious-ae, expedited-clock, ctcae-lab, hys-law, lot-cluster, ...; pvwatch/rules.yaml).';
COMMENT ON COLUMN alerts.rule_version IS 'Version of the rule''s parameters in rules.yaml when the alert was raised.';
COMMENT ON COLUMN alerts.severity IS 'critical, warning or info (critical alerts page the safety officer through Alertmanager).';
COMMENT ON COLUMN alerts.patient IS 'Pseudonym of the child (HMAC-SHA256 at the ingest edge), never a raw identifier.';
COMMENT ON COLUMN alerts.case_id IS 'The adverse-event case the alert is about, NULL when it is not about one case (e.g. a lab value or a benefit claim).';
COMMENT ON COLUMN alerts.evidence_event_ids IS 'event_id of each event_log row the rule based the alert on.';
COMMENT ON COLUMN alerts.occurred_at IS 'Clinical time of the latest evidence event (when it happened, not when it was reported).';
COMMENT ON COLUMN alerts.raised_at IS 'When pvwatch raised the alert (never changes, also when a later report revises it).';
COMMENT ON COLUMN alerts.summary IS 'One line for the safety officer: what happened and why the rule fired.';
COMMENT ON COLUMN alerts.details IS 'The rule''s findings as JSON (e.g. CTCAE grade, due date, lot, counts); keys per rule in docs/rules.md.';
