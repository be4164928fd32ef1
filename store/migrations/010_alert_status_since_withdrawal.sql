-- An alert raised again after its withdrawal (same alert_id: same rule, version and subject, true again on new
-- evidence) is new information to review: its status counts only the actions taken on the life that stands now,
-- so it comes back 'open' to the queue even if an officer had closed it before it was withdrawn. Before, the status
-- was built from every action on the id, and a re-raised alert closed in its first life stayed hidden as 'closed'.
-- Every action stays in alert_actions (the audit trail); only the status changes.
-- An action is on the standing life when it was taken after the alert's latest withdrawal (alert_withdrawals keeps
-- every one, live and replay) and not before the alert was raised again (an action sent from a snapshot that still
-- showed the withdrawn alert, landing between the withdrawal and the raise, is on the withdrawn life), as the case
-- page labels each action (dashboards/webapp.py, _actions_labelled). An alert never withdrawn counts every action.
CREATE OR REPLACE VIEW alert_status AS
WITH last_withdrawal AS (
    SELECT alert_id, max(withdrawn_at) AS withdrawn_at FROM alert_withdrawals GROUP BY alert_id
),
standing_actions AS (
    SELECT x.*
    FROM alert_actions x
    JOIN alerts a ON a.alert_id = x.alert_id
    LEFT JOIN last_withdrawal w ON w.alert_id = x.alert_id
    WHERE w.withdrawn_at IS NULL OR (x.acted_at > w.withdrawn_at AND x.acted_at >= a.raised_at)
),
ordered AS (
    SELECT *, row_number() OVER (PARTITION BY alert_id ORDER BY acted_at DESC, log_seq DESC) AS recency
    FROM standing_actions
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
    FROM standing_actions
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
COMMENT ON VIEW alert_status IS 'Each alert with its current status (open, acknowledged, assigned, closed) derived from alert_actions: the actions on its standing life only (after its latest withdrawal, if any: an alert raised again starts open).';
