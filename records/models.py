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
