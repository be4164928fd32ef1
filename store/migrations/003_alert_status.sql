-- Alert actions are events (type 'alert-action', pv.safety.alert-action.v1) stored in event_log like any other:
-- the log is the audit trail of who acknowledged, assigned, closed or reopened which alert, and when.
CREATE VIEW alert_actions AS
SELECT
    event_id,
    log_seq,
    (payload->>'alert_id')::UUID AS alert_id,
    payload->>'action' AS action,
    payload->>'actor' AS actor,
    payload->>'assignee' AS assignee,
    payload->>'reason' AS reason,
    patient,
    occurred_at AS acted_at,
    stored_at
FROM event_log
WHERE type = 'alert-action';
COMMENT ON VIEW alert_actions IS 'Every action taken on an alert in the dashboard, one row per alert-action event.';

-- The current status of every alert: the status set by its latest action (by acted_at, then log order);
-- 'open' when nobody has acted. The assignee is the latest assign's, cleared by a later close or reopen.
CREATE VIEW alert_status AS
WITH ordered AS (
    SELECT *, row_number() OVER (PARTITION BY alert_id ORDER BY acted_at DESC, log_seq DESC) AS recency
    FROM alert_actions
),
latest AS (
    SELECT alert_id, action, actor, acted_at, reason FROM ordered WHERE recency = 1
),
summary AS (
    SELECT
        alert_id,
        count(*) AS action_count,
        min(acted_at) FILTER (WHERE action = 'acknowledge') AS first_acknowledged_at,
        arg_max(assignee, (acted_at, log_seq)) FILTER (WHERE action = 'assign') AS last_assignee,
        max(acted_at) FILTER (WHERE action = 'assign') AS last_assigned_at,
        max(acted_at) FILTER (WHERE action IN ('close', 'reopen')) AS last_closed_or_reopened_at
    FROM alert_actions
    GROUP BY alert_id
)
SELECT
    a.alert_id,
    a.rule_id,
    a.severity,
    a.patient,
    a.case_id,
    a.occurred_at,
    a.raised_at,
    a.summary,
    CASE latest.action
        WHEN 'acknowledge' THEN 'acknowledged'
        WHEN 'assign' THEN 'assigned'
        WHEN 'close' THEN 'closed'
        ELSE 'open'
    END AS status,
    CASE WHEN s.last_assigned_at IS NOT NULL
              AND (s.last_closed_or_reopened_at IS NULL OR s.last_assigned_at > s.last_closed_or_reopened_at)
         THEN s.last_assignee END AS assignee,
    s.first_acknowledged_at AS acknowledged_at,
    CASE WHEN latest.action = 'close' THEN latest.acted_at END AS closed_at,
    CASE WHEN latest.action = 'close' THEN latest.reason END AS close_reason,
    latest.actor AS last_actor,
    latest.acted_at AS last_action_at,
    coalesce(s.action_count, 0) AS action_count
FROM alerts a
LEFT JOIN latest ON latest.alert_id = a.alert_id
LEFT JOIN summary s ON s.alert_id = a.alert_id;
COMMENT ON VIEW alert_status IS 'Each alert with its current status (open, acknowledged, assigned, closed) derived from alert_actions.';
