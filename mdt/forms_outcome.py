"""The MDT outcome form: parses and validates what the chair or coordinator typed into the fields of
``outcomes.EDITABLE_FIELDS`` (COSD code lists from the model's choices), and shows any outcome's
values in words, for the read-only views and the conflict panel. The services decide the rest."""

import re
from datetime import date, datetime

from django import forms
from django.utils import timezone

from accounts.display import format_date, format_datetime

from .models import (
    CarePlanIntent,
    NoTreatmentReason,
    Outcome,
    OutcomeCategory,
    PerformanceStatus,
    PlannedTreatment,
)
from .outcomes import EDITABLE_FIELDS

BLANK_ACTION_ROWS = 3
MAX_ACTION_ROWS = 40
ICD10 = re.compile(r"[A-Z][0-9]{2}(\.?[0-9X]{1,2})?")
YES_NO = [("yes", "Yes"), ("no", "No")]


def _choices(choices, blank="Not recorded"):
    return [("", blank), *choices]


class OutcomeForm(forms.Form):
    revision = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    discussion_date = forms.DateField(
        error_messages={
            "required": "Enter the date the MDT discussed the case.",
            "invalid": "Enter the discussion date as a real date, like 2027-03-02.",
        },
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    category = forms.ChoiceField(
        choices=_choices(OutcomeCategory.choices, "Choose"), required=False
    )
    agreed_diagnosis = forms.CharField(max_length=300, required=False)
    agreed_icd10 = forms.CharField(max_length=8, required=False)
    stage_t = forms.CharField(max_length=8, required=False)
    stage_n = forms.CharField(max_length=8, required=False)
    stage_m = forms.CharField(max_length=8, required=False)
    stage_group = forms.CharField(max_length=8, required=False)
    performance_status = forms.ChoiceField(
        choices=_choices(PerformanceStatus.choices), required=False
    )
    care_plan_intent = forms.ChoiceField(choices=CarePlanIntent.choices, required=False)
    planned_treatments = forms.MultipleChoiceField(choices=PlannedTreatment.choices, required=False)
    no_treatment_reason = forms.ChoiceField(
        choices=_choices(NoTreatmentReason.choices, "Not applicable"), required=False
    )
    trial_considered = forms.BooleanField(required=False)
    trial_referred = forms.BooleanField(required=False)
    trial_name = forms.CharField(max_length=200, required=False)
    standard_of_care = forms.CharField(max_length=200, required=False)
    plan = forms.CharField(max_length=10000, required=False)
    gp_actions = forms.CharField(max_length=5000, required=False)
    key_worker = forms.CharField(max_length=200, required=False)
    patient_informed = forms.ChoiceField(choices=YES_NO, required=False)
    informed_by = forms.CharField(max_length=200, required=False)
    informed_at = forms.DateTimeField(
        required=False,
        error_messages={"invalid": "Enter when the patient was told as a date and time."},
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args, action_rows: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.is_bound:
            action_rows = _bounded_int(self.data.get("action_rows"), MAX_ACTION_ROWS)
        self.action_rows = action_rows if action_rows is not None else BLANK_ACTION_ROWS
        for row in range(self.action_rows):
            self.fields[f"action_{row}"] = forms.CharField(max_length=500, required=False)
            self.fields[f"owner_{row}"] = forms.CharField(max_length=200, required=False)
            self.fields[f"due_{row}"] = forms.DateField(
                required=False,
                error_messages={"invalid": f"Enter action {row + 1}'s due date as a real date."},
                widget=forms.DateInput(attrs={"type": "date"}),
            )

    @classmethod
    def for_outcome(cls, outcome: Outcome | None) -> "OutcomeForm":
        """The form loaded with a draft's values and revision (an empty form at revision 0)."""
        if outcome is None:
            return cls(initial={"revision": 0, "discussion_date": timezone.localdate()})
        initial = {name: getattr(outcome, name) for name in EDITABLE_FIELDS if name != "actions"}
        initial["revision"] = outcome.revision
        initial["patient_informed"] = "yes" if outcome.patient_informed else "no"
        if outcome.informed_at:  # as the datetime-local input takes it
            initial["informed_at"] = f"{timezone.localtime(outcome.informed_at):%Y-%m-%dT%H:%M}"
        actions = outcome.actions or []
        for row, action in enumerate(actions):
            initial[f"action_{row}"] = action.get("action", "")
            initial[f"owner_{row}"] = action.get("owner", "")
            initial[f"due_{row}"] = action.get("due", "")
        return cls(initial=initial, action_rows=len(actions) + BLANK_ACTION_ROWS)

    def with_revision(self, revision: int) -> "OutcomeForm":
        """The same typed values, bound again at another revision (after a conflict, so the user
        can save them deliberately over the version they have now seen)."""
        data = self.data.copy()
        data["revision"] = str(revision)
        return type(self)(data)

    def clean_agreed_icd10(self) -> str:
        code = self.cleaned_data["agreed_icd10"].strip().upper()
        if code and not ICD10.fullmatch(code):
            raise forms.ValidationError(
                "Enter the ICD-10 code like C34.1: a letter, two digits, then any subdivision."
            )
        return code

    def clean_patient_informed(self) -> bool:
        return self.cleaned_data["patient_informed"] == "yes"

    def action_items(self) -> list[dict]:
        """The action rows for the template: each row's bound fields."""
        return [
            {
                "number": row + 1,
                "action": self[f"action_{row}"],
                "owner": self[f"owner_{row}"],
                "due": self[f"due_{row}"],
            }
            for row in range(self.action_rows)
        ]

    def outcome_data(self) -> dict:
        """The cleaned values as ``save_draft`` takes them (only the editable fields)."""
        data = self.cleaned_data
        values = {name: data[name] for name in EDITABLE_FIELDS if name in data}
        for text in ("stage_t", "stage_n", "stage_m", "stage_group"):
            values[text] = values[text].strip()
        values["actions"] = []
        for row in range(self.action_rows):
            action = data.get(f"action_{row}", "").strip()
            owner = data.get(f"owner_{row}", "").strip()
            due: date | None = data.get(f"due_{row}")
            if action or owner or due:
                values["actions"].append(
                    {"action": action, "owner": owner, "due": due.isoformat() if due else ""}
                )
        if not values["patient_informed"]:
            values["informed_by"], values["informed_at"] = "", None
        return values

    def add_problems(self, problems: list[tuple[str, str]]) -> None:
        """Puts the reasons an outcome cannot be signed on the fields they are about."""
        for name, message in problems:
            field = name if name in self.fields else None
            if name == "actions":
                field = "action_0"
            self.add_error(field, message)


def _bounded_int(value, most: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return BLANK_ACTION_ROWS
    return max(0, min(number, most))


# Showing outcomes in words

LABELS = {
    "discussion_date": "MDT discussion date",
    "category": "Outcome",
    "agreed_diagnosis": "Agreed diagnosis",
    "agreed_icd10": "ICD-10 code",
    "stage_t": "T",
    "stage_n": "N",
    "stage_m": "M",
    "stage_group": "Stage group",
    "performance_status": "Performance status",
    "care_plan_intent": "Care plan intent",
    "planned_treatments": "Planned treatment",
    "no_treatment_reason": "Reason for no active treatment",
    "trial_considered": "Clinical trial considered",
    "trial_referred": "Referred to a clinical trial",
    "trial_name": "Trial",
    "standard_of_care": "Standard of care protocol",
    "plan": "The plan",
    "actions": "Actions",
    "gp_actions": "What the GP should do",
    "key_worker": "Key worker / CNS",
    "patient_informed": "Patient told the outcome",
    "informed_by": "Told by",
    "informed_at": "Told on",
}
_CODES = {
    "category": dict(OutcomeCategory.choices),
    "performance_status": dict(PerformanceStatus.choices),
    "care_plan_intent": dict(CarePlanIntent.choices),
    "no_treatment_reason": dict(NoTreatmentReason.choices),
}
_TREATMENTS = dict(PlannedTreatment.choices)


def in_words(name: str, value) -> str:
    """One outcome field's value as people read it ("" when not recorded)."""
    if name in _CODES:
        return _CODES[name].get(value, value or "")
    if name == "planned_treatments":
        return ", ".join(_TREATMENTS.get(code, code) for code in value or [])
    if name == "actions":
        return "; ".join(
            f"{item.get('action')} ({item.get('owner') or 'no owner'}"
            f"{', by ' + format_date(item['due']) if item.get('due') else ''})"
            for item in value or []
        )
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return format_date(value)
    return str(value or "")


def outcome_rows(outcome: Outcome, *, filled_only: bool = False) -> list[dict]:
    """Every editable field of an outcome with its label and value in words."""
    rows = []
    for name in EDITABLE_FIELDS:
        text = in_words(name, getattr(outcome, name))
        if filled_only and (not text or text == "No"):
            continue
        rows.append({"name": name, "label": LABELS.get(name, name), "text": text})
    return rows


def conflict_rows(conflict_outcome: Outcome, yours: dict, changed: list[str]) -> list[dict]:
    """Theirs against yours for each field that differs."""
    return [
        {
            "label": LABELS.get(name, name),
            "theirs": in_words(name, getattr(conflict_outcome, name)),
            "yours": in_words(name, yours.get(name)),
        }
        for name in changed
        if name in EDITABLE_FIELDS
    ]
