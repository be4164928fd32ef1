-- Derived: expedited-report clocks (ICH E2A III.A; ICH E2D 3.2), one row per case and category, written by the
-- worker in the same transaction as the events that start or stop them, rebuilt by `pvwatch replay`.
CREATE TABLE expedited_reports (
    case_id VARCHAR NOT NULL,
    category VARCHAR NOT NULL,
    patient VARCHAR NOT NULL,
    day0 DATE NOT NULL,
    due_date DATE NOT NULL,
    due_at TIMESTAMPTZ NOT NULL,
    rsi_version VARCHAR,
    evidence_event_ids UUID[] NOT NULL,
    submitted_at TIMESTAMPTZ,
    submission_event_id UUID,
    status VARCHAR NOT NULL,
    PRIMARY KEY (case_id, category)
);
COMMENT ON TABLE expedited_reports IS 'Expedited-report clocks of SUSAR cases (serious, unexpected against the RSI in force at day 0, suspect product).';
COMMENT ON COLUMN expedited_reports.case_id IS 'Adverse event case id (initial and follow-ups share it).';
COMMENT ON COLUMN expedited_reports.category IS '7-day (fatal or life-threatening), 7-day-follow-up (complete report by day 15) or 15-day (other SUSAR), ICH E2A III.A.';
COMMENT ON COLUMN expedited_reports.patient IS 'Patient pseudonym.';
COMMENT ON COLUMN expedited_reports.day0 IS 'ICH E2D day 0: awareness date of the first version that qualified for this category.';
COMMENT ON COLUMN expedited_reports.due_date IS 'Last calendar day to submit (day 0 + 7, 15 or 15).';
COMMENT ON COLUMN expedited_reports.due_at IS 'The instant the clock runs out: the end of due_date, UTC.';
COMMENT ON COLUMN expedited_reports.rsi_version IS 'Reference safety information version in force at day 0, per suspect product ("no RSI" for clinic MSC products).';
COMMENT ON COLUMN expedited_reports.evidence_event_ids IS 'The case versions (adverse-event events) behind the clock.';
COMMENT ON COLUMN expedited_reports.submitted_at IS 'When the report was submitted (report-submitted event); NULL while the clock runs.';
COMMENT ON COLUMN expedited_reports.submission_event_id IS 'The report-submitted event that stopped the clock.';
COMMENT ON COLUMN expedited_reports.status IS 'From the log: open, submitted or submitted-late. See expedited_report_status for due-soon and overdue now.';

-- The clocks as of now: open clocks become due-soon 48 h before due_at (the rules.yaml default) and overdue at it.
CREATE VIEW expedited_report_status AS
SELECT
    *,
    CASE
        WHEN submitted_at IS NOT NULL THEN status
        WHEN now() >= due_at THEN 'overdue'
        WHEN now() >= due_at - INTERVAL 48 HOUR THEN 'due-soon'
        ELSE 'open'
    END AS status_now,
    epoch(due_at) - epoch(now()) AS seconds_until_due
FROM expedited_reports;
COMMENT ON VIEW expedited_report_status IS 'expedited_reports with status_now (open, due-soon, overdue, submitted, submitted-late) and seconds_until_due, evaluated when queried.';

-- Derived adverse events from CTCAE grading (rule ctcae-lab, grade >= 3): they live in the alerts that raised
-- them, so a replay rebuilds them with the alerts.
CREATE VIEW derived_adverse_events AS
SELECT
    alert_id,
    patient,
    evidence_event_ids[1] AS lab_event_id,
    occurred_at AS onset_at,
    details->>'derived_ae_term' AS ctcae_term,
    (details->>'derived_ae_grade')::INTEGER AS ctcae_grade,
    details->>'criterion' AS ctcae_criterion,
    details->>'loinc_code' AS loinc_code,
    (details->>'value')::DOUBLE AS value,
    details->>'unit' AS unit
FROM alerts
WHERE rule_id = 'ctcae-lab';
COMMENT ON VIEW derived_adverse_events IS 'Adverse events derived from lab results graded 3 or more by CTCAE v5.0 (one per lab result).';
