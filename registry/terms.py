"""Words for the codes a registration holds, for titles on the case page: ICD-10 categories
(WHO ICD-10, 2019 titles) for the common cancer sites, and ICD-O-3 morphology codes for common
histologies. A code not listed here is shown as its code: these lists give words, never meaning
(site groups come from records.tumour_sites, roles from records.oncology_facts)."""

# Three-character categories.
ICD10_CATEGORIES = {
    "C15": "Malignant neoplasm of oesophagus",
    "C16": "Malignant neoplasm of stomach",
    "C17": "Malignant neoplasm of small intestine",
    "C18": "Malignant neoplasm of colon",
    "C19": "Malignant neoplasm of rectosigmoid junction",
    "C20": "Malignant neoplasm of rectum",
    "C21": "Malignant neoplasm of anus and anal canal",
    "C22": "Malignant neoplasm of liver and intrahepatic bile ducts",
    "C25": "Malignant neoplasm of pancreas",
    "C32": "Malignant neoplasm of larynx",
    "C34": "Malignant neoplasm of bronchus and lung",
    "C43": "Malignant melanoma of skin",
    "C45": "Mesothelioma",
    "C50": "Malignant neoplasm of breast",
    "C53": "Malignant neoplasm of cervix uteri",
    "C54": "Malignant neoplasm of corpus uteri",
    "C56": "Malignant neoplasm of ovary",
    "C61": "Malignant neoplasm of prostate",
    "C62": "Malignant neoplasm of testis",
    "C64": "Malignant neoplasm of kidney, except renal pelvis",
    "C67": "Malignant neoplasm of bladder",
    "C71": "Malignant neoplasm of brain",
    "C73": "Malignant neoplasm of thyroid gland",
    "C78": "Secondary malignant neoplasm of respiratory and digestive organs",
    "C79": "Secondary malignant neoplasm of other and unspecified sites",
    "C80": "Malignant neoplasm, without specification of site",
    "D05": "Carcinoma in situ of breast",
}
# Four-character subcategories of the sites the region's MDTs see most (lung, breast, colon).
ICD10_SUBCATEGORIES = {
    "C18.0": "Caecum",
    "C18.1": "Appendix",
    "C18.2": "Ascending colon",
    "C18.3": "Hepatic flexure",
    "C18.4": "Transverse colon",
    "C18.5": "Splenic flexure",
    "C18.6": "Descending colon",
    "C18.7": "Sigmoid colon",
    "C18.8": "Overlapping lesion of colon",
    "C18.9": "Colon, unspecified",
    "C34.0": "Main bronchus",
    "C34.1": "Upper lobe, bronchus or lung",
    "C34.2": "Middle lobe, bronchus or lung",
    "C34.3": "Lower lobe, bronchus or lung",
    "C34.8": "Overlapping lesion of bronchus and lung",
    "C34.9": "Bronchus or lung, unspecified",
    "C50.0": "Nipple and areola",
    "C50.1": "Central portion of breast",
    "C50.2": "Upper-inner quadrant of breast",
    "C50.3": "Lower-inner quadrant of breast",
    "C50.4": "Upper-outer quadrant of breast",
    "C50.5": "Lower-outer quadrant of breast",
    "C50.6": "Axillary tail of breast",
    "C50.8": "Overlapping lesion of breast",
    "C50.9": "Breast, unspecified",
}
ICDO3_MORPHOLOGY = {
    "8000/3": "Neoplasm, malignant",
    "8010/3": "Carcinoma, NOS",
    "8041/3": "Small cell carcinoma, NOS",
    "8046/3": "Non-small cell carcinoma",
    "8070/3": "Squamous cell carcinoma, NOS",
    "8140/3": "Adenocarcinoma, NOS",
    "8480/3": "Mucinous adenocarcinoma",
    "8500/2": "Intraductal carcinoma, noninfiltrating, NOS",
    "8500/3": "Infiltrating duct carcinoma, NOS",
    "8520/3": "Lobular carcinoma, NOS",
    "8550/3": "Acinar cell carcinoma",
    "8720/3": "Malignant melanoma, NOS",
    "9050/3": "Mesothelioma, malignant",
}
GRADES = {
    "G1": "well differentiated",
    "G2": "moderately differentiated",
    "G3": "poorly differentiated",
    "G4": "undifferentiated",
    "GX": "grade not assessed",
}


def icd10_code(code: str | None) -> str:
    """ "C341", "c34.1" or "C34.1 " as ICD-10 writes it: "C34.1"; "C20" stays "C20"."""
    compact = (code or "").strip().upper().replace(".", "")
    return f"{compact[:3]}.{compact[3:]}" if len(compact) > 3 else compact


def icd10_title(code: str) -> str:
    """ "Malignant neoplasm: Upper lobe, bronchus or lung" (as ICD-10's short titles read), the
    category's title, or the code itself when it is not listed here."""
    code = icd10_code(code)
    if code in ICD10_SUBCATEGORIES:
        return f"Malignant neoplasm: {ICD10_SUBCATEGORIES[code]}"
    if code[:3] in ICD10_CATEGORIES:
        return ICD10_CATEGORIES[code[:3]]
    return f"ICD-10 {code}"


def morphology_code(code: str | None) -> str:
    """ "81403" or "8140/3" as ICD-O-3 writes it: "8140/3"."""
    compact = (code or "").strip().replace("/", "")
    return f"{compact[:4]}/{compact[4:]}" if len(compact) == 5 and compact.isdigit() else compact


def morphology_text(code: str | None) -> str | None:
    code = morphology_code(code)
    if not code:
        return None
    name = ICDO3_MORPHOLOGY.get(code)
    return f"{name} ({code})" if name else f"ICD-O-3 {code}"
