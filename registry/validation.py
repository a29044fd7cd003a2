"""Checking one row of a registry CSV file: every value against its COSD rule, every failure named
(so that a quarantined row shows all its reasons at once), and the values normalised for loading:
dotted ICD-10 codes, UICC 8th edition TNM spellings, dates, upper-case codes.

A checker is built once per import (today's date, the region's ODS codes) and then called for
each row, so the per-row work is dictionary look-ups, precompiled regexes and cached TNM parsing;
the import's speed depends on it."""

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from operator import gt, itemgetter

from django.core.exceptions import FieldDoesNotExist

from records import staging
from records.nhs_numbers import InvalidNHSNumber, parse_nhs_number

from . import cosd
from .models import Registration, Treatment

# ASCII digits only: \d would also match other scripts' digits, which int() reads.
_ICD10 = re.compile(r"([CD])(\d\d)(?:\.?([0-9X]))?", re.ASCII)
_ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d", re.ASCII)
_UK_DATE = re.compile(r"(\d\d)/(\d\d)/(\d{4})", re.ASCII)


def _label(item: cosd.Item) -> str:
    return f"{item.number} {item.name}"


def _choices(codes: Collection[str]) -> str:
    return ", ".join(codes)


@dataclass(frozen=True)
class Checked:
    """One row's values ready to load (meaningful only when there are no reasons) and every reason
    it cannot be loaded."""

    values: dict
    reasons: list[str]

    @property
    def ok(self) -> bool:
        return not self.reasons


def parse_date(text: str) -> date | None:
    """A date written YYYY-MM-DD (as COSD writes it) or DD/MM/YYYY (as spreadsheets export it)."""
    try:
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
        match = _UK_DATE.fullmatch(text)
        if match:
            return date(int(match[3]), int(match[2]), int(match[1]))
    except ValueError:
        return None
    return None


def normalise_icd10(text: str) -> str | None:
    """The dotted form of an ICD-10 cancer code ("C341" and "c34.1" give "C34.1"; a filler X, as
    in "C61X", gives "C61"), or None when the text is not one."""
    match = _ICD10.fullmatch(text.upper())
    if match is None:
        return None
    letter, number, fourth = match[1], int(match[2]), match[3]
    if letter == "C" and number > 97:
        return None
    if letter == "D" and not (number <= 9 or 37 <= number <= 48):
        return None
    code = f"{letter}{match[2]}"
    return f"{code}.{fourth}" if fourth and fourth != "X" else code


@lru_cache(maxsize=4096)
def normalise_tnm(axis: str, text: str) -> str | None:
    """A T, N or M category ("t", "n", "m") or stage group ("group") in its UICC 8th edition
    spelling ("ct2A" gives "cT2a", "3c" gives "IIIC"), or None when it is not one. Registry files
    repeat a few dozen values, so the answers are cached."""
    if axis == "group":
        return staging.parse_stage_group(text)
    category = staging.parse_category(axis, text)
    return str(category) if category is not None else None


def _max_length(model, field: str) -> int:
    # The treatment file names its tumour by the registration's key, so those limits apply.
    for candidate in (model, Registration):
        try:
            return candidate._meta.get_field(field).max_length
        except FieldDoesNotExist:
            continue
    raise LookupError(field)


class _RowChecker:
    items: list[cosd.Item]
    model: type
    # Items with no rule but their column's length; the others' rules bound their length.
    free_text: tuple[str, ...]

    def __init__(self, *, today: date):
        self.today = today
        self._labels = {item.field: _label(item) for item in self.items}
        self._fields = [(item.field, item.required) for item in self.items]
        self._max_lengths = {item.field: _max_length(self.model, item.field) for item in self.items}
        self._free_text = [(field, self._max_lengths[field]) for field in self.free_text]

    def _text(self, raw: Mapping[str, str], reasons: list[str]) -> dict:
        """Every item stripped, the required ones present, the free-text ones not too long."""
        values = {}
        for field, required in self._fields:
            value = raw.get(field)
            value = value.strip() if value else ""
            if required and not value:
                reasons.append(f"{self._labels[field]}: missing; this item is required.")
            values[field] = value
        for field, max_length in self._free_text:
            if len(values[field]) > max_length:
                reasons.append(
                    f"{self._labels[field]}: longer than the {max_length} characters "
                    "the registry holds."
                )
        return values

    def _date(self, values: dict, field: str, reasons: list[str]) -> date | None:
        text = values[field]
        if not text:
            return None
        parsed = parse_date(text)
        if parsed is None:
            reasons.append(
                f"{self._labels[field]}: “{text}” is not a date; write it as YYYY-MM-DD "
                "(or DD/MM/YYYY)."
            )
        elif parsed > self.today:
            reasons.append(f"{self._labels[field]}: {parsed.isoformat()} is in the future.")
        return parsed

    def _code(
        self, values: dict, field: str, codes: Collection[str], what: str, reasons: list[str]
    ) -> None:
        value = values[field].upper()
        if value and value not in codes:
            reasons.append(
                f"{self._labels[field]}: “{values[field]}” is not {what}; "
                f"use one of {_choices(codes)}."
            )
        values[field] = value


class TumourRowChecker(_RowChecker):
    """Checks a tumour row (a mapping of field name to the text in the file)."""

    items = cosd.TUMOUR_ITEMS
    model = Registration
    free_text = (
        "submitting_org",
        "local_tumour_id",
        "family_name",
        "given_name",
        "postcode",
        "gp_practice",
        "morphology",
        "topography",
        "grade",
        "tnm_edition",
    )

    def __init__(self, *, today: date, known_orgs: Collection[str]):
        super().__init__(today=today)
        self.known_orgs = frozenset(code.upper() for code in known_orgs)

    def __call__(self, raw: Mapping[str, str]) -> Checked:
        reasons: list[str] = []
        values = self._text(raw, reasons)
        labels = self._labels

        org = values["submitting_org"] = values["submitting_org"].upper()
        values["submitting_org_known"] = org in self.known_orgs
        if values["nhs_number"]:
            try:
                values["nhs_number"] = parse_nhs_number(values["nhs_number"])
            except InvalidNHSNumber as error:
                reasons.append(f"{labels['nhs_number']}: {error}")

        birth = values["birth_date"] = self._date(values, "birth_date", reasons)
        diagnosed = values["diagnosis_date"] = self._date(values, "diagnosis_date", reasons)
        values["submission_date"] = self._date(values, "submission_date", reasons)
        if birth and diagnosed and diagnosed < birth:
            reasons.append(
                f"{labels['diagnosis_date']}: {diagnosed.isoformat()} is before the birth date "
                f"({birth.isoformat()})."
            )

        if values["icd10"]:
            code = normalise_icd10(values["icd10"])
            if code is None:
                reasons.append(
                    f"{labels['icd10']}: “{values['icd10']}” is not an ICD-10 cancer code; the "
                    "registry takes C00–C97, D00–D09 and D37–D48, written like C34.1 or C341."
                )
            else:
                values["icd10"] = code

        for axis, field in (("t", "t"), ("n", "n"), ("m", "m"), ("group", "stage_group")):
            text = values[field]
            if not text:
                continue
            canonical = normalise_tnm(axis, text)
            what = "stage group" if axis == "group" else f"{axis.upper()} category"
            if canonical is None:
                reasons.append(
                    f"{labels[field]}: “{text}” is not a {what} of the UICC 8th edition."
                )
            elif len(canonical) > self._max_lengths[field]:
                reasons.append(
                    f"{labels[field]}: “{text}” is longer than the "
                    f"{self._max_lengths[field]} characters the registry holds."
                )
            else:
                values[field] = canonical

        self._code(values, "sex", cosd.SEX, "a stated gender code", reasons)
        self._code(values, "laterality", cosd.LATERALITY, "a laterality code", reasons)
        self._code(values, "basis", cosd.BASIS_OF_DIAGNOSIS, "a basis of diagnosis code", reasons)
        self._code(
            values, "performance_status", cosd.PERFORMANCE_STATUS, "a performance status", reasons
        )
        values["postcode"] = values["postcode"].upper()
        values["gp_practice"] = values["gp_practice"].upper()
        return Checked(values, reasons)


class TreatmentRowChecker(_RowChecker):
    """Checks a treatment row. That its tumour is registered, and that it did not start before the
    patient's birth, can only be checked against the database: the importer does that."""

    items = cosd.TREATMENT_ITEMS
    model = Treatment
    free_text = ("submitting_org", "local_tumour_id", "provider", "intent")

    def __call__(self, raw: Mapping[str, str]) -> Checked:
        reasons: list[str] = []
        values = self._text(raw, reasons)
        values["submitting_org"] = values["submitting_org"].upper()
        modality = values["modality"]
        if len(modality) == 1 and modality.isdigit():
            values["modality"] = "0" + modality
        if modality:
            self._code(values, "modality", cosd.MODALITIES, "a treatment modality code", reasons)
        values["start_date"] = self._date(values, "start_date", reasons)
        values["provider"] = values["provider"].upper()
        values["intent"] = values["intent"].upper()
        return Checked(values, reasons)


_INVALID = object()
# Modulus 11 weights of an NHS number's first nine digits, for the fast path below.
_NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_NHS_DIGIT_SUM = 48 * sum(_NHS_WEIGHTS)  # the weights times ord("0")
# Numbers from here on are outside Scotland's CHI range, whose numbers also encode a birth date
# (checked by the nhs-number package): those, and anything unusual, take the full check.
_NHS_FAST_FROM = "3113000000"


class FastTumourRows:
    """The common case of TumourRowChecker at import speed: a row (a list of the file's values, in
    its column order) that breaks no rule, turned into its normalised values, or None when the
    row breaks a rule or is anything but plain (the importer then runs the full checker, which
    names every reason). The answers are the full checker's, from per-column caches of the
    values registry files repeat (codes, dates, stages) and one check-digit computation of the
    NHS number; tests/registry/test_validation.py compares the two."""

    def __init__(self, checker: "TumourRowChecker", fields: list[str | None]):
        from django.conf import settings

        self.checker = checker
        self.allow_synthetic = settings.ALLOW_SYNTHETIC_NHS_NUMBERS
        column = {field: index for index, field in enumerate(fields) if field}
        items = cosd.TUMOUR_ITEMS
        # Each item's column in the row, or a column past its end (always "") when the file
        # leaves an optional item out.
        self.columns = [column.get(item.field, len(fields)) for item in items]
        required = [position for position, item in enumerate(items) if item.required]
        self.required = itemgetter(*required)
        free = [position for position, item in enumerate(items) if item.field in checker.free_text]
        self.free = itemgetter(*free)
        self.free_limits = [checker._max_lengths[items[position].field] for position in free]
        # (position, cache) of the items with a rule of their own; a cache maps the text in the
        # file to the normalised value or _INVALID (and "" to "" for an optional item).
        self.cached = [
            (position, {} if item.required else {"": ""}, item.field)
            for position, item in enumerate(items)
            if item.field not in checker.free_text and item.field != "nhs_number"
        ]
        self.org_known: dict[str, bool] = {}

    def _normalise(self, name: str, text: str):
        """One value's normalised form, or _INVALID: the full checker's rules for one item."""
        checker = self.checker
        if name in _DATE_FIELDS:
            parsed = parse_date(text)
            if parsed is None or parsed > checker.today:
                return _INVALID
            return parsed.isoformat()
        if name == "icd10":
            return normalise_icd10(text) or _INVALID
        if name in _TNM_AXES:
            canonical = normalise_tnm(_TNM_AXES[name], text)
            if canonical is None or len(canonical) > checker._max_lengths[name]:
                return _INVALID
            return canonical
        value = text.upper()
        return value if value in _CODE_LISTS[name] else _INVALID

    def __call__(self, row: list[str]) -> list | None:
        """[the values in cosd.TUMOUR_ITEMS order (dates as YYYY-MM-DD), submitting_org_known],
        or None."""
        row = [*row, ""]
        values = [row[index].strip() for index in self.columns]
        if "" in self.required(values):
            return None
        if any(map(gt, map(len, self.free(values)), self.free_limits)):
            return None
        for position, cache, name in self.cached:
            text = values[position]
            value = cache.get(text)
            if value is None:
                if len(cache) > 100_000:  # bounded: the values of the file, not the file
                    cache.clear()
                value = cache[text] = self._normalise(name, text)
            if value is _INVALID:
                return None
            values[position] = value
        if not self._nhs_number_ok(values[_NHS]) or values[_DIAGNOSED] < values[_BIRTH]:
            return None
        org = values[_ORG] = values[_ORG].upper()
        values[_POSTCODE] = values[_POSTCODE].upper()
        values[_PRACTICE] = values[_PRACTICE].upper()
        known = self.org_known.get(org)
        if known is None:
            known = self.org_known[org] = org in self.checker.known_orgs
        values.append(known)
        return values

    def _nhs_number_ok(self, text: str) -> bool:
        """Ten ASCII digits with a valid check digit, outside the CHI range, and the test range
        only where allowed: what records.nhs_numbers.parse_nhs_number accepts, unchanged."""
        if len(text) != 10 or not text.isascii() or not text.isdigit() or text < _NHS_FAST_FROM:
            return False
        if text[0] == "9" and not self.allow_synthetic:
            return False
        digits = text.encode()
        total = (
            10 * digits[0]
            + 9 * digits[1]
            + 8 * digits[2]
            + 7 * digits[3]
            + 6 * digits[4]
            + 5 * digits[5]
            + 4 * digits[6]
            + 3 * digits[7]
            + 2 * digits[8]
            - _NHS_DIGIT_SUM
        )
        check = 11 - total % 11
        if check == 11:
            check = 0
        return check == digits[9] - 48


_DATE_FIELDS = {"submission_date", "birth_date", "diagnosis_date"}
_TNM_AXES = {"t": "t", "n": "n", "m": "m", "stage_group": "group"}
_CODE_LISTS = {
    "sex": cosd.SEX,
    "laterality": cosd.LATERALITY,
    "basis": cosd.BASIS_OF_DIAGNOSIS,
    "performance_status": cosd.PERFORMANCE_STATUS,
}
_TUMOUR_FIELDS = [item.field for item in cosd.TUMOUR_ITEMS]
_ORG = _TUMOUR_FIELDS.index("submitting_org")
_NHS = _TUMOUR_FIELDS.index("nhs_number")
_BIRTH = _TUMOUR_FIELDS.index("birth_date")
_DIAGNOSED = _TUMOUR_FIELDS.index("diagnosis_date")
_POSTCODE = _TUMOUR_FIELDS.index("postcode")
_PRACTICE = _TUMOUR_FIELDS.index("gp_practice")
