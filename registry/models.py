"""Cancer registry data: COSD-style tumour registrations, their treatments and history, and the
imports that load them (with the rows they quarantined)."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import F
from django.db.models.functions import Upper

from records.models import Patient


class Registration(models.Model):
    """One tumour, as the registry last heard of it. Keyed by the submitting organisation and its
    local tumour id; a later submission updates it and the previous values go to the history."""

    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="registrations"
    )
    submitting_org = models.CharField(max_length=10)
    local_tumour_id = models.CharField(max_length=50)
    submission_date = models.DateField()
    submitting_org_known = models.BooleanField(
        default=True, help_text="False: the ODS code is not one the region knows (flagged)."
    )
    # Person items as submitted (the demographics service stays the authority).
    nhs_number = models.CharField(max_length=10)
    family_name = models.CharField(max_length=100)
    given_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    sex = models.CharField(max_length=10, blank=True)
    postcode = models.CharField(max_length=10, blank=True)
    gp_practice = models.CharField(max_length=10, blank=True)
    # Tumour items.
    diagnosis_date = models.DateField()
    icd10 = models.CharField("Primary diagnosis (ICD-10)", max_length=8)
    laterality = models.CharField(max_length=2, blank=True)
    basis = models.CharField("Basis of diagnosis", max_length=2, blank=True)
    morphology = models.CharField("Morphology (ICD-O-3)", max_length=10, blank=True)
    topography = models.CharField("Topography (ICD-O-3)", max_length=10, blank=True)
    grade = models.CharField(max_length=4, blank=True)
    t = models.CharField("T", max_length=8, blank=True)
    n = models.CharField("N", max_length=8, blank=True)
    m = models.CharField("M", max_length=8, blank=True)
    stage_group = models.CharField(max_length=8, blank=True)
    tnm_edition = models.CharField(max_length=4, blank=True)
    performance_status = models.CharField(max_length=2, blank=True)
    source_file = models.CharField(max_length=255, blank=True)
    source_line = models.PositiveIntegerField(null=True, blank=True)
    imported_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["submitting_org", "local_tumour_id"], name="one_registration_per_tumour"
            )
        ]
        indexes = [
            # One btree (equality is all any query asks of it; no varchar_pattern_ops twin).
            models.Index(fields=["nhs_number"], name="registration_nhs_number"),
            models.Index(fields=["birth_date"], name="registration_birth_date"),
            models.Index(fields=["icd10", "diagnosis_date"], name="registration_site_date"),
            # The name search's second step: one surname's registrations in the page's order
            # (registry.search); the misspelt name itself is matched in Surname.
            models.Index(
                Upper("family_name"),
                "family_name",
                "given_name",
                "birth_date",
                F("diagnosis_date").desc(),
                "id",
                name="registration_surname_order",
            ),
        ]

    def __str__(self) -> str:
        return f"Registration #{self.pk}"


class Surname(models.Model):
    """Each distinct UPPER(family_name) of the registrations, with how many registrations have it:
    the name search matches a misspelt name against these few thousand names (trigram index), not
    against a million registrations. Kept by triggers on registry_registration (migration 0002),
    statement by statement, so an import's batch updates it in one set-based statement and a
    registration saved through the ORM keeps it right too. A name whose count falls to 0 stays
    (the search skips it)."""

    name = models.CharField(max_length=100, primary_key=True)
    registrations = models.IntegerField(default=0)

    class Meta:
        indexes = [GinIndex(OpClass("name", name="gin_trgm_ops"), name="surname_trgm")]

    def __str__(self) -> str:
        return f"Surname ({self.registrations} registrations)"


class ImportedPatient(models.Model):
    """A patient-index entry that a registry import created from a registry row, so its
    restriction status (and address) has not come from the demographics service: the registry
    search shows no postcode for it until the index entry is written again after it was created,
    which only the demographics service does (records.patient_index.apply_demographics). Hazard
    H15 in docs/clinical-safety/hazard-log.md."""

    # No database constraint: the importer inserts these by the hundred thousand, and a foreign
    # key check per row would cost more than the row. Deleting a patient through Django still
    # deletes its row here (on_delete), and a row left by a raw DELETE only hides a postcode.
    patient = models.OneToOneField(
        Patient,
        primary_key=True,
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="registry_created",
    )
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Patient #{self.patient_id} created by a registry import"


class RegistrationHistory(models.Model):
    """The values a registration had before a later submission replaced them."""

    registration = models.ForeignKey(Registration, on_delete=models.PROTECT, related_name="history")
    submission_date = models.DateField()
    values = models.JSONField()
    replaced_at = models.DateTimeField(auto_now_add=True)
    replaced_by_file = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-submission_date", "-id"]

    def __str__(self) -> str:
        return f"History #{self.pk} of registration #{self.registration_id}"


class Treatment(models.Model):
    registration = models.ForeignKey(
        Registration, on_delete=models.CASCADE, related_name="treatments"
    )
    modality = models.CharField(max_length=4)
    start_date = models.DateField()
    provider = models.CharField(max_length=10, blank=True)
    intent = models.CharField(max_length=4, blank=True)

    class Meta:
        ordering = ["start_date"]
        constraints = [
            models.UniqueConstraint(
                fields=["registration", "modality", "start_date", "provider"],
                name="one_treatment_row",
            )
        ]

    def __str__(self) -> str:
        return f"Treatment #{self.pk}"


class ImportRun(models.Model):
    class Kind(models.TextChoices):
        TUMOURS = "tumours", "Tumour registrations"
        TREATMENTS = "treatments", "Treatments"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    # In URLs: not guessable, and it does not tell how many imports there were.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    file_name = models.CharField(max_length=255)
    stored_path = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    bytes_total = models.BigIntegerField(default=0)
    bytes_read = models.BigIntegerField(default=0)
    rows_read = models.PositiveIntegerField(default=0)
    rows_created = models.PositiveIntegerField(default=0)
    rows_updated = models.PositiveIntegerField(default=0)
    rows_unchanged = models.PositiveIntegerField(default=0)
    rows_older = models.PositiveIntegerField(default=0)
    rows_quarantined = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # When the uploaded file was deleted (docs/registry-import.md: upload retention); the run and
    # its quarantine report stay.
    file_deleted_at = models.DateTimeField(null=True, blank=True)
    # A treatments file uploaded with a tumours file is imported after it (its rows name them).
    follows = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="followers"
    )
    # When the import was last handed to Celery (the sweep re-enqueues runs whose message was lost).
    enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="importrun_status_created")]

    def __str__(self) -> str:
        return f"Import #{self.pk} ({self.file_name})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return round(100 * self.bytes_read / self.bytes_total) if self.bytes_total else 0


class QuarantinedRow(models.Model):
    """A row the import refused, with its line number and every reason, for the import report."""

    run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="quarantined")
    line = models.PositiveIntegerField()
    reasons = ArrayField(models.TextField())
    values = models.JSONField()

    class Meta:
        ordering = ["line"]

    def __str__(self) -> str:
        return f"Quarantined line {self.line} of import #{self.run_id}"
