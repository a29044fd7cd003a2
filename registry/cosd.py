"""The COSD items the registry holds: each field's COSD item number and name, so that a COSD export
is a serialisation of these fields, not a rewrite. The CSV import's headers are these item numbers
(or, as aliases, the item names). Tumour and treatment item numbers are those quoted in
shared/design/DOMAIN.md from the COSD v10 user guide; the person items use the COSD core numbers
for the same concepts (check them against the NHS Data Dictionary before an export). The three
submission fields are not COSD items: they are this project's, prefixed X-."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    field: str
    number: str
    name: str
    required: bool = False


TUMOUR_ITEMS = [
    Item("submitting_org", "X-SUBMITTER", "SUBMITTING ORGANISATION CODE", True),
    Item("local_tumour_id", "X-TUMOUR-ID", "LOCAL TUMOUR IDENTIFIER", True),
    Item("submission_date", "X-SUBMITTED", "SUBMISSION DATE", True),
    Item("nhs_number", "CR0010", "NHS NUMBER", True),
    Item("family_name", "CR0050", "PERSON FAMILY NAME", True),
    Item("given_name", "CR0060", "PERSON GIVEN NAME", True),
    Item("birth_date", "CR0100", "PERSON BIRTH DATE", True),
    Item("sex", "CR3170", "PERSON STATED GENDER CODE"),
    Item("postcode", "CR0080", "POSTCODE OF USUAL ADDRESS (AT DIAGNOSIS)"),
    Item("gp_practice", "CR0120", "GENERAL MEDICAL PRACTICE CODE (PATIENT REGISTRATION)"),
    Item("diagnosis_date", "CR2030", "DATE OF PRIMARY DIAGNOSIS (CLINICALLY AGREED)", True),
    Item("icd10", "CR0370", "PRIMARY DIAGNOSIS (ICD)", True),
    Item("laterality", "CR0380", "TUMOUR LATERALITY"),
    Item("basis", "CR0390", "BASIS OF DIAGNOSIS (CANCER)"),
    Item("morphology", "CR0180", "MORPHOLOGY (ICD-O-3)"),
    Item("topography", "CR0480", "TOPOGRAPHY (ICD-O-3)"),
    Item("grade", "CR0410", "GRADE OF DIFFERENTIATION (AT DIAGNOSIS)"),
    Item("t", "CR0520", "T CATEGORY (FINAL PRETREATMENT)"),
    Item("n", "CR0540", "N CATEGORY (FINAL PRETREATMENT)"),
    Item("m", "CR0560", "M CATEGORY (FINAL PRETREATMENT)"),
    Item("stage_group", "CR0580", "TNM STAGE GROUPING (FINAL PRETREATMENT)"),
    Item("tnm_edition", "CR6980", "TNM EDITION NUMBER"),
    Item("performance_status", "CR0510", "PERFORMANCE STATUS (ADULT)"),
]

TREATMENT_ITEMS = [
    Item("submitting_org", "X-SUBMITTER", "SUBMITTING ORGANISATION CODE", True),
    Item("local_tumour_id", "X-TUMOUR-ID", "LOCAL TUMOUR IDENTIFIER", True),
    Item("modality", "CR2040", "CANCER TREATMENT MODALITY", True),
    Item("start_date", "CR1370", "TREATMENT START DATE (CANCER)", True),
    Item("provider", "CR1450", "ORGANISATION SITE IDENTIFIER (OF PROVIDER)"),
    Item("intent", "CR0680", "CANCER TREATMENT INTENT"),
]

# CR2040 modality codes (COSD treatment section), as the DOMAIN.md primer lists planned types.
MODALITIES = {
    "01": "Surgery",
    "02": "Teletherapy (external beam radiotherapy)",
    "03": "Chemotherapy",
    "04": "Hormone therapy",
    "05": "Specialist palliative care",
    "06": "Brachytherapy",
    "07": "Biological therapy",
    "10": "Other active treatment",
    "12": "Bisphosphonates",
    "13": "Anti-cancer drug regimen (other)",
    "14": "Radiotherapy (other)",
}
BASIS_OF_DIAGNOSIS = {
    "0": "Death certificate only",
    "1": "Clinical",
    "2": "Clinical investigation",
    "4": "Specific tumour markers",
    "5": "Cytology",
    "6": "Histology of a metastasis",
    "7": "Histology of a primary tumour",
    "9": "Unknown",
}
LATERALITY = {
    "L": "Left",
    "R": "Right",
    "M": "Midline",
    "B": "Bilateral",
    "8": "Not applicable",
    "9": "Not known",
}
PERFORMANCE_STATUS = {"0", "1", "2", "3", "4", "9"}
SEX = {"1": "male", "2": "female", "9": "unknown", "X": "unknown"}


def header_map(items: list[Item]) -> dict[str, str]:
    """Maps each accepted header (item number or item name, any case) to the field."""
    mapping = {}
    for item in items:
        mapping[item.number.upper()] = item.field
        mapping[item.name.upper()] = item.field
        mapping[item.field.upper()] = item.field
    return mapping
