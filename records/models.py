"""The region's patient index, keyed by NHS number."""

from django.db import models

from accounts.models import Organisation


class Patient(models.Model):
    """A person known to the region. Demographics come from the demographics service (PDS shape),
    which is the authority; ``restricted`` means no address may be shown anywhere."""

    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Unknown"

    nhs_number = models.CharField("NHS number", max_length=10, unique=True)
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    address = models.TextField(blank=True)
    postcode = models.CharField(max_length=10, blank=True)
    gp_practice = models.ForeignKey(
        Organisation,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="registered_patients",
        limit_choices_to={"kind": Organisation.Kind.GP_PRACTICE},
    )
    restricted = models.BooleanField(default=False)
    deceased = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["family_name", "birth_date"], name="patient_name_dob")]

    def __str__(self) -> str:
        # Never the name or NHS number: this string ends up in logs and error reports.
        return f"Patient #{self.pk}"

    @property
    def full_name(self) -> str:
        return f"{self.family_name.upper()}, {self.given_name}"

    @property
    def shown_address(self) -> str:
        return "" if self.restricted else self.address


class Source(models.Model):
    """A system the record store asks about a patient: a FHIR R4 server (a trust's EPR, the GP
    record) or an internal source such as the cancer registry."""

    class Kind(models.TextChoices):
        FHIR = "fhir", "FHIR R4 server"
        REGISTRY = "registry", "Cancer registry"

    class Auth(models.TextChoices):
        NONE = "none", "None"
        BEARER = "bearer", "Bearer token"
        BASIC = "basic", "Basic (username and password)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FHIR)
    base_url = models.URLField("Base URL", max_length=300, blank=True)
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="sources"
    )
    timeout_s = models.FloatField("Timeout (seconds)", default=5.0)
    enabled = models.BooleanField(default=True)
    auth = models.CharField(max_length=10, choices=Auth.choices, default=Auth.NONE)
    token = models.CharField(max_length=500, blank=True, help_text="Bearer token")
    username = models.CharField(max_length=100, blank=True)
    password = models.CharField(max_length=200, blank=True)
    page_cap = models.PositiveSmallIntegerField(
        default=10,
        help_text="Most result pages followed per search; more makes the result partial.",
    )
    max_response_mb = models.PositiveSmallIntegerField(default=10)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def badge(self) -> str:
        """The short label shown beside each item from this source: a FHIR server's by its
        organisation's ODS code (RRK), which clinicians know; a source with no organisation, or
        an internal one such as the cancer registry (whose organisation's code, NDRS, says less
        than its name), by its name."""
        if self.organisation and self.kind == self.Kind.FHIR:
            return self.organisation.ods_code
        return self.name


class Snapshot(models.Model):
    """What the sources said about a patient at one moment. Never changed: a refresh makes a new
    one, and signing an outcome pins the one the meeting saw."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="snapshots")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    reason = models.CharField(max_length=200, blank=True)
    summary = models.JSONField(default=dict)
    per_source_status = models.JSONField(default=dict)
    elapsed_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["patient", "-created_at"], name="snapshot_patient_latest")]

    def __str__(self) -> str:
        return f"Snapshot #{self.pk}"


class SourceResult(models.Model):
    class Status(models.TextChoices):
        OK = "ok", "OK"
        PARTIAL = "partial", "Partial"
        SKIPPED = "skipped", "Skipped (source unavailable)"
        TIMEOUT = "timeout", "Timed out"
        ERROR = "error", "Error"
        IDENTITY_MISMATCH = "identity_mismatch", "Identity mismatch"
        NOT_FOUND = "not_found", "Patient not known"

    snapshot = models.ForeignKey(Snapshot, on_delete=models.PROTECT, related_name="results")
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="results")
    status = models.CharField(max_length=20, choices=Status.choices)
    detail = models.TextField(blank=True)
    raw = models.JSONField(default=list, help_text="The FHIR responses as received, for audit.")
    elapsed_ms = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "source"], name="one_result_per_source")
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.status}"
