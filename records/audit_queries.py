"""Filtering the audit log by patient (NHS number, POSTed so it never sits in a URL) and user."""

from django import forms

from accounts.models import AuditEvent, User

from .models import Patient
from .nhs_numbers import InvalidNHSNumber, parse_nhs_number


class AuditFilterForm(forms.Form):
    nhs_number = forms.CharField(max_length=20, required=False, label="Patient's NHS number")
    user = forms.ModelChoiceField(
        queryset=User.objects.order_by("username"), required=False, empty_label="Any user"
    )

    def clean_nhs_number(self):
        typed = self.cleaned_data["nhs_number"]
        if not typed:
            return ""
        try:
            return parse_nhs_number(typed)
        except InvalidNHSNumber as error:
            raise forms.ValidationError(str(error)) from error


def filtered_events(form: AuditFilterForm, limit: int = 200):
    events = AuditEvent.objects.select_related("actor")
    patient = None
    if form.is_bound and form.is_valid():
        if form.cleaned_data["nhs_number"]:
            patient = Patient.objects.filter(nhs_number=form.cleaned_data["nhs_number"]).first()
            if patient is None:
                form.add_error("nhs_number", "No patient with this NHS number is in the index.")
                return [], None
            events = events.filter(patient_ids__contains=[patient.pk])
        if form.cleaned_data["user"]:
            events = events.filter(actor=form.cleaned_data["user"])
    return list(events[:limit]), patient
