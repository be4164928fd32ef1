-- Typed views of the clinical event model (pvwatch.events, docs/events.md) over the event log.
-- The log keeps each event's JSON payload as received, once per event_id; these views only read it, so they are
-- always as current as the log and a replay needs nothing else. A field the producer left out reads as the
-- model's default (the coalesce(...) below mirror the pydantic defaults). Narratives are not exposed here.

-- ---------------------------------------------------------------------------------------------------------
-- patients: one row per patient, the latest value of each field over patient-enrolled and patient-updated
-- (by occurred_at, then event_id: a late update that happened earlier does not overwrite a newer value).
CREATE VIEW patients AS
WITH facts AS (
    SELECT
        patient,
        type,
        occurred_at,
        event_id,
        payload->>'birth_year_month' AS birth_year_month,
        payload->>'sex' AS sex,
        CASE WHEN json_type(payload->'diagnoses') = 'ARRAY' THEN from_json(payload->'diagnoses',
            '[{"condition": "VARCHAR", "icd10_code": "VARCHAR", "onset_date": "DATE", "diagnosed_date": "DATE"}]')
        END AS diagnoses,
        (payload->>'weight_kg')::DOUBLE AS weight_kg,
        payload->>'site' AS site,
        payload->>'country' AS country
    FROM event_log
    WHERE type IN ('patient-enrolled', 'patient-updated')
)
SELECT
    patient,
    min(occurred_at) FILTER (WHERE type = 'patient-enrolled') AS enrolled_at,
    arg_max(birth_year_month, (occurred_at, event_id)) FILTER (WHERE birth_year_month IS NOT NULL) AS birth_year_month,
    arg_max(sex, (occurred_at, event_id)) FILTER (WHERE sex IS NOT NULL) AS sex,
    arg_max(diagnoses, (occurred_at, event_id)) FILTER (WHERE diagnoses IS NOT NULL) AS diagnoses,
    list_distinct([d.condition FOR d IN
        arg_max(diagnoses, (occurred_at, event_id)) FILTER (WHERE diagnoses IS NOT NULL)]) AS conditions,
    arg_max(weight_kg, (occurred_at, event_id)) FILTER (WHERE weight_kg IS NOT NULL) AS weight_kg,
    arg_max(site, (occurred_at, event_id)) FILTER (WHERE site IS NOT NULL) AS site,
    arg_max(country, (occurred_at, event_id)) FILTER (WHERE country IS NOT NULL) AS country,
    max(occurred_at) AS last_changed_at,
    count(*) AS patient_event_count
FROM facts
GROUP BY patient;
COMMENT ON VIEW patients IS 'One row per patient: the latest value of each baseline field over patient-enrolled and patient-updated events (by occurred_at).';
COMMENT ON COLUMN patients.patient IS 'Patient pseudonym (keyed hash of the clinic identifier; never the MRN).';
COMMENT ON COLUMN patients.enrolled_at IS 'When the patient was enrolled (occurred_at of the patient-enrolled event); NULL if only updates arrived.';
COMMENT ON COLUMN patients.birth_year_month IS 'Birth year and month, YYYY-MM (the full birth date never leaves the ingest edge).';
COMMENT ON COLUMN patients.sex IS 'female, male or unknown (E2B(R3) D.5).';
COMMENT ON COLUMN patients.diagnoses IS 'Current diagnoses: list of {condition, icd10_code, onset_date, diagnosed_date}.';
COMMENT ON COLUMN patients.conditions IS 'The conditions of the current diagnoses (SLE, MCTD, JIA-<ILAR category>, other).';
COMMENT ON COLUMN patients.weight_kg IS 'Latest body weight in kg (per-kg doses are computed with it).';
COMMENT ON COLUMN patients.site IS 'Treating site.';
COMMENT ON COLUMN patients.country IS 'Country of the treating site, ISO 3166-1 alpha-2.';
COMMENT ON COLUMN patients.last_changed_at IS 'occurred_at of the latest patient-enrolled or patient-updated event.';
COMMENT ON COLUMN patients.patient_event_count IS 'Number of patient-enrolled and patient-updated events behind this row.';

-- ---------------------------------------------------------------------------------------------------------
CREATE VIEW treatments AS
SELECT
    event_id,
    patient,
    occurred_at,
    CASE type
        WHEN 'treatment-started' THEN 'started'
        WHEN 'treatment-dose-changed' THEN 'dose-changed'
        WHEN 'treatment-tapered' THEN 'tapered'
        WHEN 'treatment-stopped' THEN 'stopped'
    END AS change,
    payload->>'course_id' AS course_id,
    payload->>'drug' AS drug,
    payload->>'atc_code' AS atc_code,
    payload->>'drug_class' AS drug_class,
    (payload->>'dose')::DOUBLE AS dose,
    (payload->>'previous_dose')::DOUBLE AS previous_dose,
    payload->>'dose_unit' AS dose_unit,
    CASE WHEN type = 'treatment-stopped' THEN NULL ELSE coalesce(payload->>'route', 'unknown') END AS route,
    payload->>'frequency' AS frequency,
    payload->>'reason' AS reason,
    payload->>'reason_detail' AS reason_detail,
    source,
    recorded_at
FROM event_log
WHERE type IN ('treatment-started', 'treatment-dose-changed', 'treatment-tapered', 'treatment-stopped');
COMMENT ON VIEW treatments IS 'One row per treatment event (started, dose changed, tapered, stopped): the dosing history of every DMARD, biologic, JAK inhibitor and glucocorticoid.';
COMMENT ON COLUMN treatments.event_id IS 'The treatment event.';
COMMENT ON COLUMN treatments.patient IS 'Patient pseudonym.';
COMMENT ON COLUMN treatments.occurred_at IS 'When the change happened.';
COMMENT ON COLUMN treatments.change IS 'started, dose-changed, tapered or stopped.';
COMMENT ON COLUMN treatments.course_id IS 'Producer id linking the events of one course of one drug (may be NULL).';
COMMENT ON COLUMN treatments.drug IS 'Active substance (INN).';
COMMENT ON COLUMN treatments.atc_code IS 'WHO ATC code, e.g. L04AC07 tocilizumab.';
COMMENT ON COLUMN treatments.drug_class IS 'csDMARD, bDMARD, tsDMARD (JAK inhibitors), glucocorticoid or other.';
COMMENT ON COLUMN treatments.dose IS 'Dose per administration after the change, in dose_unit (NULL when stopped or not given).';
COMMENT ON COLUMN treatments.previous_dose IS 'Dose per administration before the change, in dose_unit, when reported.';
COMMENT ON COLUMN treatments.dose_unit IS 'UCUM unit of dose and previous_dose (mg, mg/kg, mg/m2, ...).';
COMMENT ON COLUMN treatments.route IS 'Route of administration (NULL for a stop).';
COMMENT ON COLUMN treatments.frequency IS 'Dosing frequency as reported, e.g. once weekly.';
COMMENT ON COLUMN treatments.reason IS 'Why: taper after MSC therapy, parent decision, disease activity, remission, adverse event, inefficacy, protocol, other.';
COMMENT ON COLUMN treatments.reason_detail IS 'Free-text detail of the reason.';
COMMENT ON COLUMN treatments.source IS 'Producing system.';
COMMENT ON COLUMN treatments.recorded_at IS 'When the source system recorded the change.';

-- ---------------------------------------------------------------------------------------------------------
CREATE VIEW infusions AS
SELECT
    event_id,
    patient,
    occurred_at,
    payload->>'product_name' AS product_name,
    payload->>'clinic' AS clinic,
    payload->>'manufacturer' AS manufacturer,
    coalesce(payload->>'tissue_origin', 'unknown') AS tissue_origin,
    coalesce(payload->>'donor_type', 'unknown') AS donor_type,
    payload->>'lot_id' AS lot_id,
    (payload->>'cells_per_kg')::DOUBLE AS cells_per_kg,
    (payload->>'total_cells')::DOUBLE AS total_cells,
    (payload->>'viability_percent')::DOUBLE AS viability_percent,
    (payload->>'passage')::INTEGER AS passage,
    coalesce(payload->>'route', 'intravenous') AS route,
    payload->>'protocol_id' AS protocol_id,
    (payload->>'infusion_number')::INTEGER AS infusion_number,
    coalesce(from_json(payload->'premedication', '["VARCHAR"]'), []::VARCHAR[]) AS premedication,
    payload->>'administering_site' AS administering_site,
    payload->>'country' AS country,
    -- the same rule as MscInfusionGiven.incompletely_documented, recomputed: a producer's claim is not trusted
    (payload->>'lot_id' IS NULL
        OR (payload->>'cells_per_kg' IS NULL AND payload->>'total_cells' IS NULL)) AS incompletely_documented,
    source,
    recorded_at
FROM event_log
WHERE type = 'msc-infusion';
COMMENT ON VIEW infusions IS 'One row per MSC infusion, with the product, lot and cell dose as documented.';
COMMENT ON COLUMN infusions.event_id IS 'The msc-infusion event (adverse_events.products may point at it).';
COMMENT ON COLUMN infusions.patient IS 'Patient pseudonym.';
COMMENT ON COLUMN infusions.occurred_at IS 'Start of the infusion.';
COMMENT ON COLUMN infusions.product_name IS 'Product name as given by the clinic.';
COMMENT ON COLUMN infusions.clinic IS 'Clinic or centre that made or supplied the product.';
COMMENT ON COLUMN infusions.manufacturer IS 'Manufacturer, when different from the clinic.';
COMMENT ON COLUMN infusions.tissue_origin IS 'umbilical-cord, bone-marrow, adipose, other or unknown.';
COMMENT ON COLUMN infusions.donor_type IS 'autologous, allogeneic or unknown.';
COMMENT ON COLUMN infusions.lot_id IS 'Lot/batch id (E2B(R3) G.k.4.r.7); NULL when not documented.';
COMMENT ON COLUMN infusions.cells_per_kg IS 'Viable cells per kg body weight.';
COMMENT ON COLUMN infusions.total_cells IS 'Total cells infused.';
COMMENT ON COLUMN infusions.viability_percent IS 'Cell viability, percent.';
COMMENT ON COLUMN infusions.passage IS 'Culture passage of the cells.';
COMMENT ON COLUMN infusions.route IS 'Route: intravenous (default), intrathecal, intra-articular, ...';
COMMENT ON COLUMN infusions.protocol_id IS 'The clinic''s treatment protocol id.';
COMMENT ON COLUMN infusions.infusion_number IS '1 for the patient''s first infusion, 2 for the second, ... as reported.';
COMMENT ON COLUMN infusions.premedication IS 'Premedication given before the infusion.';
COMMENT ON COLUMN infusions.administering_site IS 'Where the infusion was given.';
COMMENT ON COLUMN infusions.country IS 'Country where the infusion was given, ISO 3166-1 alpha-2.';
COMMENT ON COLUMN infusions.incompletely_documented IS 'True when the lot or the cell dose (cells_per_kg and total_cells) is missing: accepted, but not traceable.';
COMMENT ON COLUMN infusions.source IS 'Producing system.';
COMMENT ON COLUMN infusions.recorded_at IS 'When the source system recorded the infusion.';

-- ---------------------------------------------------------------------------------------------------------
-- adverse_events: one row per case version (initial report and each follow-up); is_latest marks the version
-- with the most recent information (by recorded_at, then follow_up_number, then event_id):
-- `SELECT * FROM adverse_events WHERE is_latest` is one row per case, its current state.
CREATE VIEW adverse_events AS
WITH versions AS (
    SELECT
        event_id,
        payload->>'case_id' AS case_id,
        patient,
        coalesce(payload->>'report_kind', 'initial') AS report_kind,
        (payload->>'follow_up_number')::INTEGER AS follow_up_number,
        payload->>'reporter_type' AS reporter_type,
        (payload->>'awareness_date')::DATE AS awareness_date,
        (payload->>'onset_date')::DATE AS onset_date,
        (payload->>'resolution_date')::DATE AS resolution_date,
        occurred_at,
        recorded_at,
        payload->>'term' AS term,
        payload->>'meddra_pt_code' AS meddra_pt_code,
        payload->>'meddra_version' AS meddra_version,
        payload->>'ctcae_term' AS ctcae_term,
        (payload->>'ctcae_grade')::INTEGER AS ctcae_grade,
        coalesce((payload->'seriousness'->>'death')::BOOLEAN, false) AS death,
        coalesce((payload->'seriousness'->>'life_threatening')::BOOLEAN, false) AS life_threatening,
        coalesce((payload->'seriousness'->>'hospitalisation')::BOOLEAN, false) AS hospitalisation,
        coalesce((payload->'seriousness'->>'disability')::BOOLEAN, false) AS disability,
        coalesce((payload->'seriousness'->>'congenital_anomaly')::BOOLEAN, false) AS congenital_anomaly,
        coalesce((payload->'seriousness'->>'medically_important')::BOOLEAN, false) AS medically_important,
        coalesce(payload->>'outcome', 'unknown') AS outcome,
        coalesce(from_json(payload->'products',
            '[{"name": "VARCHAR", "role": "VARCHAR", "causality": "VARCHAR", "atc_code": "VARCHAR", '
            '"lot_id": "VARCHAR", "infusion_event_id": "UUID"}]'), []) AS products,
        payload->>'narrative' IS NOT NULL AS has_narrative,
        source
    FROM event_log
    WHERE type = 'adverse-event'
)
SELECT
    event_id,
    case_id,
    patient,
    report_kind,
    follow_up_number,
    row_number() OVER case_order AS version_number,
    row_number() OVER case_order = count(*) OVER (PARTITION BY case_id) AS is_latest,
    reporter_type,
    awareness_date,
    onset_date,
    resolution_date,
    occurred_at,
    recorded_at,
    term,
    meddra_pt_code,
    meddra_version,
    ctcae_term,
    ctcae_grade,
    death,
    life_threatening,
    hospitalisation,
    disability,
    congenital_anomaly,
    medically_important,
    (death OR life_threatening OR hospitalisation OR disability OR congenital_anomaly OR medically_important)
        AS is_serious,
    outcome,
    [p.name FOR p IN products IF coalesce(p.role, 'suspect') = 'suspect'] AS suspect_products,
    [p.name FOR p IN products IF p.role = 'concomitant'] AS concomitant_products,
    [p.lot_id FOR p IN products IF coalesce(p.role, 'suspect') = 'suspect' AND p.lot_id IS NOT NULL]
        AS suspect_lots,
    products,
    has_narrative,
    source
FROM versions
WINDOW case_order AS (PARTITION BY case_id ORDER BY recorded_at, coalesce(follow_up_number, 0), event_id);
COMMENT ON VIEW adverse_events IS 'One row per adverse-event case version (initial report and each follow-up); WHERE is_latest gives one row per case, its current version.';
COMMENT ON COLUMN adverse_events.event_id IS 'This version''s event.';
COMMENT ON COLUMN adverse_events.case_id IS 'Stable case id shared by the initial report and its follow-ups.';
COMMENT ON COLUMN adverse_events.patient IS 'Patient pseudonym.';
COMMENT ON COLUMN adverse_events.report_kind IS 'initial or follow-up.';
COMMENT ON COLUMN adverse_events.follow_up_number IS 'Follow-up number as reported (NULL for the initial report).';
COMMENT ON COLUMN adverse_events.version_number IS '1, 2, ... in order of recorded_at (then follow_up_number, event_id) within the case.';
COMMENT ON COLUMN adverse_events.is_latest IS 'True for the version with the most recent information of its case.';
COMMENT ON COLUMN adverse_events.reporter_type IS 'parent, patient, clinician, pharmacist, lab or literature.';
COMMENT ON COLUMN adverse_events.awareness_date IS 'ICH day 0: first awareness of the four minimum criteria (ICH E2D 3.2); the regulatory clock starts here.';
COMMENT ON COLUMN adverse_events.onset_date IS 'Onset of the event (E2B(R3) E.i.4).';
COMMENT ON COLUMN adverse_events.resolution_date IS 'End of the event (E2B(R3) E.i.5).';
COMMENT ON COLUMN adverse_events.occurred_at IS 'Clinical time of the event (rules order by it).';
COMMENT ON COLUMN adverse_events.recorded_at IS 'When the source recorded this version.';
COMMENT ON COLUMN adverse_events.term IS 'Reported term (MedDRA PT when coded).';
COMMENT ON COLUMN adverse_events.meddra_pt_code IS 'MedDRA preferred-term code, 8 digits (no dictionary is shipped).';
COMMENT ON COLUMN adverse_events.meddra_version IS 'MedDRA release of the code.';
COMMENT ON COLUMN adverse_events.ctcae_term IS 'CTCAE v5.0 term.';
COMMENT ON COLUMN adverse_events.ctcae_grade IS 'CTCAE v5.0 grade 1-5 (severity; not seriousness).';
COMMENT ON COLUMN adverse_events.death IS 'ICH E2A seriousness: results in death (E2B(R3) E.i.3.2a).';
COMMENT ON COLUMN adverse_events.life_threatening IS 'ICH E2A seriousness: life-threatening (E.i.3.2b).';
COMMENT ON COLUMN adverse_events.hospitalisation IS 'ICH E2A seriousness: caused or prolonged inpatient hospitalisation (E.i.3.2c).';
COMMENT ON COLUMN adverse_events.disability IS 'ICH E2A seriousness: persistent or significant disability/incapacity (E.i.3.2d).';
COMMENT ON COLUMN adverse_events.congenital_anomaly IS 'ICH E2A seriousness: congenital anomaly/birth defect (E.i.3.2e).';
COMMENT ON COLUMN adverse_events.medically_important IS 'ICH E2A seriousness: other medically important condition (E.i.3.2f).';
COMMENT ON COLUMN adverse_events.is_serious IS 'True when any ICH E2A criterion is met.';
COMMENT ON COLUMN adverse_events.outcome IS 'E2B(R3) E.i.7 outcome: unknown, recovered, recovering, not-recovered, recovered-with-sequelae, fatal.';
COMMENT ON COLUMN adverse_events.suspect_products IS 'Names of the suspect products.';
COMMENT ON COLUMN adverse_events.concomitant_products IS 'Names of the concomitant products.';
COMMENT ON COLUMN adverse_events.suspect_lots IS 'Lot/batch ids of the suspect products, where reported.';
COMMENT ON COLUMN adverse_events.products IS 'Every product: {name, role (suspect, concomitant, interacting), causality (WHO-UMC), atc_code, lot_id, infusion_event_id}.';
COMMENT ON COLUMN adverse_events.has_narrative IS 'Whether a free-text narrative was sent (the narrative itself is only in event_log).';
COMMENT ON COLUMN adverse_events.source IS 'Producing system.';

-- ---------------------------------------------------------------------------------------------------------
CREATE VIEW labs AS
SELECT
    event_id,
    patient,
    occurred_at,
    (payload->>'specimen_at')::TIMESTAMPTZ AS specimen_at,
    payload->>'loinc_code' AS loinc_code,
    payload->>'test_name' AS test_name,
    (payload->>'value')::DOUBLE AS value,
    payload->>'comparator' AS comparator,
    payload->>'unit' AS unit,
    (payload->>'reference_low')::DOUBLE AS reference_low,
    (payload->>'reference_high')::DOUBLE AS reference_high,
    (payload->>'value')::DOUBLE < (payload->>'reference_low')::DOUBLE AS below_range,
    (payload->>'value')::DOUBLE > (payload->>'reference_high')::DOUBLE AS above_range,
    CASE WHEN (payload->>'reference_high')::DOUBLE > 0
         THEN (payload->>'value')::DOUBLE / (payload->>'reference_high')::DOUBLE END AS times_upper_limit,
    payload->>'lab' AS lab,
    source,
    recorded_at
FROM event_log
WHERE type = 'lab-result';
COMMENT ON VIEW labs IS 'One row per lab result, with the reference range reported with it (age-specific in children).';
COMMENT ON COLUMN labs.event_id IS 'The lab-result event.';
COMMENT ON COLUMN labs.patient IS 'Patient pseudonym.';
COMMENT ON COLUMN labs.occurred_at IS 'Clinical time of the result (the specimen time, as sent in occurred_at).';
COMMENT ON COLUMN labs.specimen_at IS 'Specimen collection time.';
COMMENT ON COLUMN labs.loinc_code IS 'LOINC code (check digit verified at ingest), e.g. 751-8 neutrophils, 1742-6 ALT.';
COMMENT ON COLUMN labs.test_name IS 'Test name as the lab reports it.';
COMMENT ON COLUMN labs.value IS 'Numeric result, in unit.';
COMMENT ON COLUMN labs.comparator IS 'For a result beyond a limit (<, <=, >, >=), else NULL.';
COMMENT ON COLUMN labs.unit IS 'UCUM unit, e.g. 10*9/L, U/L, umol/L.';
COMMENT ON COLUMN labs.reference_low IS 'Lower limit of normal (LLN), in unit.';
COMMENT ON COLUMN labs.reference_high IS 'Upper limit of normal (ULN), in unit.';
COMMENT ON COLUMN labs.below_range IS 'value < reference_low (NULL without a lower limit).';
COMMENT ON COLUMN labs.above_range IS 'value > reference_high (NULL without an upper limit).';
COMMENT ON COLUMN labs.times_upper_limit IS 'value / reference_high: the x ULN of CTCAE v5 grading and Hy''s law (FDA DILI guidance 2009).';
COMMENT ON COLUMN labs.lab IS 'Performing laboratory.';
COMMENT ON COLUMN labs.source IS 'Producing system.';
COMMENT ON COLUMN labs.recorded_at IS 'When the result was recorded.';

-- ---------------------------------------------------------------------------------------------------------
CREATE VIEW disease_activity AS
SELECT
    event_id,
    patient,
    occurred_at,
    payload->>'instrument' AS instrument,
    (payload->>'score')::DOUBLE AS score,
    payload->>'assessed_by' AS assessed_by,
    (payload->>'documented')::BOOLEAN AS documented,
    source,
    recorded_at
FROM event_log
WHERE type = 'disease-activity';
COMMENT ON VIEW disease_activity IS 'One row per disease-activity score, with who gave it: clinician-documented and parent-reported scores are never merged.';
COMMENT ON COLUMN disease_activity.event_id IS 'The disease-activity event.';
COMMENT ON COLUMN disease_activity.patient IS 'Patient pseudonym.';
COMMENT ON COLUMN disease_activity.occurred_at IS 'When the child was assessed.';
COMMENT ON COLUMN disease_activity.instrument IS 'SLEDAI-2K (0-105), JADAS10 (0-40), JADAS27 (0-57), cJADAS10 (0-30), physician-global or parent-global (0-10).';
COMMENT ON COLUMN disease_activity.score IS 'The score on the instrument''s scale.';
COMMENT ON COLUMN disease_activity.assessed_by IS 'clinician, parent or patient: who gave the score.';
COMMENT ON COLUMN disease_activity.documented IS 'True when the score is in the clinical record from a structured examination; false for a reported impression.';
COMMENT ON COLUMN disease_activity.source IS 'Producing system.';
COMMENT ON COLUMN disease_activity.recorded_at IS 'When the score was recorded.';

-- ---------------------------------------------------------------------------------------------------------
CREATE VIEW outcomes AS
SELECT
    event_id,
    patient,
    occurred_at,
    payload->>'what' AS what,
    coalesce(payload->>'direction', 'improved') AS direction,
    payload->>'claimed_by' AS claimed_by,
    payload->>'attributed_to' AS attributed_to,
    coalesce(json_type(payload->'documented_measure') = 'OBJECT', false) AS has_documented_measure,
    payload->'documented_measure'->>'name' AS measure_name,
    (payload->'documented_measure'->>'before')::DOUBLE AS measure_before,
    (payload->'documented_measure'->>'after')::DOUBLE AS measure_after,
    (payload->'documented_measure'->>'evidence_event_id')::UUID AS measure_event_id,
    source,
    recorded_at
FROM event_log
WHERE type = 'outcome-claim';
COMMENT ON VIEW outcomes IS 'One row per outcome or benefit claim: what changed, according to whom, and whether a documented measure supports it.';
COMMENT ON COLUMN outcomes.event_id IS 'The outcome-claim event.';
COMMENT ON COLUMN outcomes.patient IS 'Patient pseudonym.';
COMMENT ON COLUMN outcomes.occurred_at IS 'When the claim was made.';
COMMENT ON COLUMN outcomes.what IS 'What changed, in the claimant''s words.';
COMMENT ON COLUMN outcomes.direction IS 'improved, worsened or unchanged.';
COMMENT ON COLUMN outcomes.claimed_by IS 'clinician, parent or patient.';
COMMENT ON COLUMN outcomes.attributed_to IS 'What the claimant credits, e.g. MSC.';
COMMENT ON COLUMN outcomes.has_documented_measure IS 'False when no measured value supports the claim: reported, not documented, benefit.';
COMMENT ON COLUMN outcomes.measure_name IS 'The supporting measure, e.g. SLEDAI-2K.';
COMMENT ON COLUMN outcomes.measure_before IS 'Measure before the change.';
COMMENT ON COLUMN outcomes.measure_after IS 'Measure after the change.';
COMMENT ON COLUMN outcomes.measure_event_id IS 'The disease-activity or lab-result event holding the measure.';
COMMENT ON COLUMN outcomes.source IS 'Producing system.';
COMMENT ON COLUMN outcomes.recorded_at IS 'When the claim was recorded.';
