-- The alerts table's description since alerts can be withdrawn (008) and raised again (010): 007 said an alert is
-- raised once per alert_id and raised_at never changes. Comments only: no data changes.
COMMENT ON TABLE alerts IS 'One row per standing safety alert (rules and their sources: docs/rules.md). An alert a later event made untrue is deleted here and kept in alert_withdrawals; new evidence may raise it again under the same alert_id. Its status lives in alert_status.';
COMMENT ON COLUMN alerts.raised_at IS 'When pvwatch raised the alert: kept when a later report revises it or a replay derives it again, new when it is raised again after a withdrawal.';
