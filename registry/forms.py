"""Forms for the registry's pages: the search (POSTed, with its purpose) and the file upload."""

import csv

from django import forms

from records.nhs_numbers import InvalidNHSNumber, parse_nhs_number

from . import cosd
from .importer import RegistryFileError, read_header
from .search import MIN_NAME_LETTERS, UnknownSite, normalise_name, parse_site

SEARCH_PURPOSES = [
    ("listing", "Adding the patient to an MDT list"),
    ("history", "Checking the patient's cancer registrations"),
    ("review", "Preparing a case for review"),
]
_DATE_ERRORS = {"invalid": "Enter a real date, like 2027-03-02."}


def _date_field() -> forms.DateField:
    return forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages=_DATE_ERRORS,
    )


class RegistrySearchForm(forms.Form):
    purpose = forms.ChoiceField(
        choices=SEARCH_PURPOSES,
        error_messages={"required": "Choose why you are searching the registry."},
    )
    nhs_number = forms.CharField(max_length=20, required=False)
    name = forms.CharField(max_length=100, required=False)
    birth_date = _date_field()
    site = forms.CharField(max_length=40, required=False)
    diagnosed_from = _date_field()
    diagnosed_to = _date_field()
    page = forms.IntegerField(min_value=1, required=False)

    CRITERIA = ("nhs_number", "name", "birth_date", "site", "diagnosed_from", "diagnosed_to")

    def clean_nhs_number(self) -> str:
        typed = self.cleaned_data["nhs_number"]
        if not typed.strip():
            return ""
        try:
            return parse_nhs_number(typed)
        except InvalidNHSNumber as error:
            raise forms.ValidationError(str(error)) from error

    def clean_name(self) -> str:
        name = normalise_name(self.cleaned_data["name"])
        if name and sum(ch.isalpha() for ch in name) < MIN_NAME_LETTERS:
            raise forms.ValidationError(
                f"Enter at least {MIN_NAME_LETTERS} letters of the last name."
            )
        return name

    def clean_site(self) -> str:
        typed = self.cleaned_data["site"].strip()
        if typed:
            try:
                parse_site(typed)
            except UnknownSite as error:
                raise forms.ValidationError(str(error)) from error
        return typed

    def clean(self):
        data = super().clean()
        if not self.errors and not any(data.get(name) for name in self.CRITERIA):
            raise forms.ValidationError(
                "Enter an NHS number, a last name, a date of birth, a tumour site or diagnosis "
                "dates to search for."
            )
        start, end = data.get("diagnosed_from"), data.get("diagnosed_to")
        if start and end and start > end:
            self.add_error(
                "diagnosed_to", "The end of the diagnosis dates must be after the start."
            )
        return data

    def criteria(self) -> dict:
        """The search's arguments (registry.search.search_registrations)."""
        return {name: self.cleaned_data[name] for name in self.CRITERIA}

    @property
    def purpose_text(self) -> str:
        return dict(SEARCH_PURPOSES)[self.cleaned_data["purpose"]]


def _checked_csv(upload, items: list[cosd.Item], what: str):
    """The uploaded file if its first line names the columns the importer needs; the importer
    checks every row later, but a wrong file is better refused now than after a queue."""
    if not upload.name.lower().endswith(".csv"):
        raise forms.ValidationError(f"The {what} file must be a CSV file (its name ends .csv).")
    if not upload.size:
        raise forms.ValidationError(f"The {what} file is empty.")
    upload.seek(0)
    first_line = upload.readline(65536)
    upload.seek(0)
    try:
        header = next(csv.reader([first_line.decode("utf-8-sig")]), [])
    except (UnicodeDecodeError, csv.Error) as error:
        raise forms.ValidationError(
            f"The {what} file is not a UTF-8 CSV file. Save it as “CSV UTF-8” and upload it again."
        ) from error
    try:
        read_header(header, items)
    except RegistryFileError as error:
        raise forms.ValidationError(f"The {what} file: {error}") from error
    return upload


class RegistryUploadForm(forms.Form):
    _FILE_ERRORS = {
        "empty": "The file you chose is empty. Choose the registry's CSV file.",
        "invalid": "The file could not be read. Choose it again.",
    }
    tumours = forms.FileField(
        error_messages={
            **_FILE_ERRORS,
            "required": "Choose the tumour registrations file to upload.",
        }
    )
    treatments = forms.FileField(required=False, error_messages=_FILE_ERRORS)

    def clean_tumours(self):
        return _checked_csv(self.cleaned_data["tumours"], cosd.TUMOUR_ITEMS, "tumour registrations")

    def clean_treatments(self):
        upload = self.cleaned_data.get("treatments")
        return _checked_csv(upload, cosd.TREATMENT_ITEMS, "treatments") if upload else None
