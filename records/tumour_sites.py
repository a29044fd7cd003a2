"""A coarse tumour site ("lung", "breast") and laterality read from codes and words, so that two
sources describing the same cancer differently can be compared."""

import re
from collections.abc import Iterable

# ICD-10 three-character codes (C00-C97, D00-D09) to site groups, as (first, last, group).
_ICD10_RANGES = (
    ("C00", "C14", "head and neck"),
    ("C15", "C15", "oesophagus"),
    ("C16", "C16", "stomach"),
    ("C17", "C17", "small intestine"),
    ("C18", "C20", "colorectal"),
    ("C21", "C21", "anus"),
    ("C22", "C22", "liver"),
    ("C23", "C24", "biliary"),
    ("C25", "C25", "pancreas"),
    ("C30", "C32", "head and neck"),
    ("C33", "C34", "lung"),
    ("C37", "C38", "thorax"),
    ("C40", "C41", "bone"),
    ("C43", "C43", "melanoma"),
    ("C44", "C44", "skin"),
    ("C45", "C45", "mesothelioma"),
    ("C47", "C49", "soft tissue"),
    ("C50", "C50", "breast"),
    ("C51", "C52", "vulva and vagina"),
    ("C53", "C53", "cervix"),
    ("C54", "C55", "uterus"),
    ("C56", "C57", "ovary"),
    ("C60", "C60", "penis"),
    ("C61", "C61", "prostate"),
    ("C62", "C62", "testis"),
    ("C64", "C66", "kidney"),
    ("C67", "C67", "bladder"),
    ("C69", "C69", "eye"),
    ("C70", "C72", "brain"),
    ("C73", "C73", "thyroid"),
    ("C81", "C96", "haematological"),
    ("D00", "D00", "head and neck"),
    ("D01", "D01", "colorectal"),
    ("D02", "D02", "lung"),
    ("D03", "D03", "melanoma"),
    ("D04", "D04", "skin"),
    ("D05", "D05", "breast"),
    ("D06", "D06", "cervix"),
    ("D07", "D07", "genital"),
    ("D09", "D09", "bladder"),
)

# Checked in order: the first pattern found in the text names the group.
_WORDS = (
    (r"gall ?bladder|bile duct|biliary|cholangio", "biliary"),
    (r"mesothelioma|pleura", "mesothelioma"),
    (r"lung|bronch|pulmonary", "lung"),
    (r"breast|mammary", "breast"),
    (r"colon|colorectal|rectum|rectal|rectosigmoid|sigmoid|caecum|cecum|large bowel", "colorectal"),
    (r"prostat", "prostate"),
    (r"oesophag|esophag", "oesophagus"),
    (r"stomach|gastric", "stomach"),
    (r"pancrea", "pancreas"),
    (r"liver|hepat", "liver"),
    (r"kidney|renal", "kidney"),
    (r"bladder|urothelial", "bladder"),
    (r"ovar", "ovary"),
    (r"cervix|uterine cervix", "cervix"),
    (r"endometri|uterus|uterine|corpus uteri", "uterus"),
    (r"brain|cerebr|glioma|glioblastoma|intracranial", "brain"),
    (r"melanoma", "melanoma"),
    (r"thyroid", "thyroid"),
    (r"testis|testic", "testis"),
    (r"lymphoma|leuka?emia|myeloma", "haematological"),
    (
        r"head and neck|laryn|pharyn|oral cavity|mouth|tongue|tonsil|\blip\b|salivary|parotid|"
        r"nasal|sinus",
        "head and neck",
    ),
    (r"skin|cutaneous", "skin"),
    (r"small cell|\bn?sclc\b", "lung"),
)
_WORD_PATTERNS = tuple((re.compile(pattern, re.I), group) for pattern, group in _WORDS)

_LATERALITY_CODES = {"7771000": "left", "24028007": "right", "51440002": "bilateral"}
_LATERALITY_WORDS = (
    (re.compile(r"\bbilateral|\bboth\b", re.I), "bilateral"),
    (re.compile(r"\bleft\b", re.I), "left"),
    (re.compile(r"\bright\b", re.I), "right"),
)


def site_from_icd10(code: str | None) -> str | None:
    if not code:
        return None
    three = code.strip().upper().replace(".", "")[:3]
    for first, last, group in _ICD10_RANGES:
        if first <= three <= last:
            return group
    return None


def site_from_words(texts: Iterable[str | None]) -> str | None:
    for text in texts:
        if not text:
            continue
        for pattern, group in _WORD_PATTERNS:
            if pattern.search(text):
                return group
    return None


def laterality(codes: Iterable[str | None] = (), texts: Iterable[str | None] = ()) -> str | None:
    """ "left", "right", "bilateral" or None, from SNOMED qualifier codes first, then words."""
    for code in codes:
        if code in _LATERALITY_CODES:
            return _LATERALITY_CODES[code]
    for text in texts:
        for pattern, side in _LATERALITY_WORDS:
            if text and pattern.search(text):
                return side
    return None
