-- Alerts withdrawn because an event that arrived later made them untrue (docs/rules.md, "Late and out-of-order
-- events"). The alert leaves `alerts` in the batch's transaction; its withdrawal message (the alert with
-- `withdrawal`: reason, event, time) waits here for pv.safety.alert.v1 like any alert (outbox: published_at NULL).
CREATE TABLE alert_withdrawals (
    withdrawal_id UUID PRIMARY KEY,
    alert_id UUID NOT NULL,
    rule_id VARCHAR NOT NULL,
    patient VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    withdrawn_by_event_id UUID NOT NULL,
    withdrawn_at TIMESTAMPTZ NOT NULL,
    message JSON NOT NULL,
    published_at TIMESTAMPTZ
);
COMMENT ON TABLE alert_withdrawals IS 'Alerts withdrawn because a later event made them untrue; the message published on pv.safety.alert.v1.';
COMMENT ON COLUMN alert_withdrawals.withdrawal_id IS 'uuid5 of the alert id and the withdrawing event: a redelivered batch stores it once.';
COMMENT ON COLUMN alert_withdrawals.published_at IS 'When the withdrawal reached pv.safety.alert.v1 (outbox: NULL means not yet published).';
