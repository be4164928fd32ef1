-- The append-only event log: the durable source of truth (the embedded broker keeps data in memory only).
CREATE SEQUENCE IF NOT EXISTS event_log_seq;
CREATE TABLE event_log (
    event_id UUID PRIMARY KEY,
    log_seq BIGINT NOT NULL DEFAULT nextval('event_log_seq'),
    type VARCHAR NOT NULL,
    schema_version INTEGER NOT NULL,
    patient VARCHAR NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    source VARCHAR NOT NULL,
    payload JSON NOT NULL,
    kafka_topic VARCHAR,
    kafka_partition INTEGER,
    kafka_offset BIGINT,
    stored_at TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE event_log IS 'Every valid event, once per event_id, as validated (the payload keeps fields added by newer producers).';

-- Derived: alerts raised by the safety rules, one row per alert_id (deterministic from its evidence).
CREATE TABLE alerts (
    alert_id UUID PRIMARY KEY,
    rule_id VARCHAR NOT NULL,
    rule_version INTEGER NOT NULL,
    severity VARCHAR NOT NULL,
    patient VARCHAR NOT NULL,
    case_id VARCHAR,
    evidence_event_ids UUID[] NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    raised_at TIMESTAMPTZ NOT NULL,
    summary VARCHAR NOT NULL,
    details JSON NOT NULL,
    published_at TIMESTAMPTZ
);
COMMENT ON COLUMN alerts.published_at IS 'When the alert reached pv.safety.alert.v1 (outbox: NULL means not yet published).';

-- Messages that failed validation: kept durably with their reason, and published to the dead-letter topic.
CREATE TABLE dead_letters (
    dead_letter_id VARCHAR PRIMARY KEY,
    kafka_topic VARCHAR NOT NULL,
    kafka_partition INTEGER,
    kafka_offset BIGINT,
    reason VARCHAR NOT NULL,
    detail VARCHAR NOT NULL,
    payload BLOB,
    received_at TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ,
    status VARCHAR NOT NULL DEFAULT 'open'
);
COMMENT ON COLUMN dead_letters.dead_letter_id IS 'sha256 of topic, partition, offset and payload: redelivery is stored once.';
