-- A person closes a dead letter once it is dealt with (the record fixed and sent again, or judged worthless):
-- `pvwatch dlq resolve` publishes the resolution on the dead-letter topic and the worker records it here.
ALTER TABLE dead_letters ADD COLUMN resolved_at TIMESTAMPTZ;
ALTER TABLE dead_letters ADD COLUMN resolved_by VARCHAR;
ALTER TABLE dead_letters ADD COLUMN resolution VARCHAR;
COMMENT ON COLUMN dead_letters.status IS 'open until a person resolves it (pvwatch dlq resolve), then resolved.';
COMMENT ON COLUMN dead_letters.resolution IS 'Why it was closed, e.g. "fixed and resent" or "test message, discarded".';
