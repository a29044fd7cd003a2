"""Forms for meetings and case lists. They parse and validate input; the services decide."""

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings

from accounts.display import format_datetime

from .models import Case, Meeting, Team

# The triage of NHS England's "Streamlining MDT meetings" guidance, said in full where a triage is
# chosen. Whichever is chosen, the patient stays on the meeting's list.
TRIAGE_CHOICES = [
    (Case.Triage.FULL_DISCUSSION, "Full discussion: the MDT discusses the case and agrees a plan"),
    (
        Case.Triage.STANDARD_OF_CARE,
        "Standard of care: ratify without full discussion (COSD discussion type 2)",
    ),
    (
        Case.Triage.FOR_INFORMATION,
        "For information: the MDT notes the case, without discussion or an outcome",
    ),
]


class MeetingForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)
    date = forms.DateField(
        error_messages={
            "required": "Enter the meeting date.",
            "invalid": "Enter the meeting date as a real date, like 2027-03-02.",
        },
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    time = forms.TimeField(
        error_messages={
            "required": "Enter the start time.",
            "invalid": "Enter the start time like 09:00.",
        },
        widget=forms.TimeInput(attrs={"type": "time"}),
    )
    cutoff_days = forms.IntegerField(
        min_value=0,
        max_value=14,
        initial=1,
        error_messages={"required": "Enter how many days before the meeting the list cut-off is."},
    )
    weeks = forms.IntegerField(
        min_value=1,
        max_value=52,
        initial=1,
        error_messages={
            "min_value": "Schedule at least 1 meeting.",
            "max_value": "Schedule at most 52 weekly meetings at a time.",
        },
    )

    def __init__(self, *args, teams=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams if teams is not None else Team.objects.none()

    def starts_at(self) -> datetime:
        tz = ZoneInfo(settings.TIME_ZONE)
        return datetime.combine(self.cleaned_data["date"], self.cleaned_data["time"], tzinfo=tz)

    def cutoff_at(self) -> datetime:
        tz = ZoneInfo(settings.TIME_ZONE)
        day = self.cleaned_data["date"] - timedelta(days=self.cleaned_data["cutoff_days"])
        at: time = self.cleaned_data["time"]
        return datetime.combine(day, at, tzinfo=tz)


class AddCaseForm(forms.Form):
    nhs_number = forms.CharField(
        max_length=20, error_messages={"required": "Enter the patient's NHS number."}
    )
    question = forms.CharField(
        max_length=2000, error_messages={"required": "Enter the question for the MDT."}
    )
    referrer = forms.CharField(
        max_length=200, error_messages={"required": "Enter the referring clinician."}
    )
    triage = forms.ChoiceField(choices=TRIAGE_CHOICES, initial=Case.Triage.FULL_DISCUSSION)
    late_reason = forms.CharField(max_length=2000, required=False)
    submission_id = forms.UUIDField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("submission_id", uuid.uuid4())


class RegistryCaseForm(AddCaseForm):
    """Adding a patient found in the cancer registry: the meeting is chosen on the form, from
    the user's teams' meetings whose lists are open."""

    meeting = forms.ModelChoiceField(
        queryset=Meeting.objects.none(),
        to_field_name="public_id",
        empty_label="Choose a meeting",
        error_messages={
            "required": "Choose the meeting to add the patient to.",
            "invalid_choice": "Choose one of your teams' meetings whose list is open.",
        },
    )
    field_order = ["meeting", "nhs_number", "question", "referrer", "triage", "late_reason"]

    def __init__(self, *args, meetings, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["meeting"].queryset = meetings
        self.fields["meeting"].label_from_instance = lambda meeting: (
            f"{meeting.team.name}, {format_datetime(meeting.starts_at)}"
        )


class RemoveCaseForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        error_messages={"required": "Give the reason for removing this case from the list."},
    )


class ReviewForm(forms.Form):
    """A specialty's review before the meeting. ``action``: "save" keeps the review as it is
    (done or not), "done" marks it done, "undo" marks it not done again."""

    ACTIONS = ("save", "done", "undo")

    role = forms.CharField(max_length=20)
    note = forms.CharField(max_length=4000, required=False)
    action = forms.ChoiceField(choices=[(action, action) for action in ACTIONS], initial="save")

    def done(self, was_done: bool) -> bool:
        action = self.cleaned_data["action"]
        return was_done if action == "save" else action == "done"


SEARCH_PURPOSES = [
    ("listing", "Adding the patient to an MDT list"),
    ("history", "Checking the patient's MDT history"),
    ("review", "Preparing a case for review"),
]


class PatientSearchForm(forms.Form):
    purpose = forms.ChoiceField(
        choices=SEARCH_PURPOSES,
        error_messages={"required": "Choose why you are searching for this patient."},
    )
    nhs_number = forms.CharField(max_length=20, required=False)
    family_name = forms.CharField(max_length=100, required=False)
    birth_date = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter the date of birth as a real date."},
    )

    def clean(self):
        data = super().clean()
        if not data.get("nhs_number") and not (data.get("family_name") and data.get("birth_date")):
            raise forms.ValidationError("Enter an NHS number, or a last name and a date of birth.")
        return data
