-- A withdrawal may have no withdrawing event: `pvwatch replay` removes the stored alerts the rules in force no
-- longer derive from the complete log (a new rule version, a changed parameter, a disabled rule) and keeps their
-- withdrawal here too, so the outbox tells pv.safety.alert.v1 and Alertmanager (docs/rules.md, Replay).
ALTER TABLE alert_withdrawals ALTER COLUMN withdrawn_by_event_id DROP NOT NULL;
COMMENT ON COLUMN alert_withdrawals.withdrawn_by_event_id IS 'The event whose arrival made the alert untrue; NULL when pvwatch replay removed it.';
