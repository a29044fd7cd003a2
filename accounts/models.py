"""Organisations (by ODS code), users, their roles, and the append-only audit log."""

from django.contrib.auth.models import AbstractUser
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models


class Organisation(models.Model):
    class Kind(models.TextChoices):
        TRUST = "trust", "NHS trust"
        GP_PRACTICE = "gp_practice", "GP practice"
        REGISTRY = "registry", "Cancer registry"
        ALLIANCE = "alliance", "Cancer alliance"

    ods_code = models.CharField("ODS code", max_length=10, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    mesh_mailbox_id = models.CharField("MESH mailbox ID", max_length=20, blank=True)
    address = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.ods_code})"


class Role(models.TextChoices):
    COORDINATOR = "coordinator", "MDT coordinator"
    CLINICIAN = "clinician", "Clinician"
    CHAIR = "chair", "Chair"
    GP = "gp", "GP"
    ADMIN = "admin", "Administrator"


class User(AbstractUser):
    """A member of staff. What they may see is decided by memberships and team membership."""

    def roles(self) -> set[str]:
        cached = getattr(self, "_roles", None)
        if cached is None:
            cached = set(self.memberships.values_list("role", flat=True))
            self._roles = cached
        return cached

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles() & set(roles))

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username


class Membership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    specialty = models.CharField(
        max_length=60, blank=True, help_text="For clinicians: e.g. radiology, thoracic surgery."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organisation", "role"], name="one_membership_per_role"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} – {self.get_role_display()} at {self.organisation.ods_code}"


class AuditEvent(models.Model):
    """One row per request (or command or task) that showed or changed patient data.

    Rows are never updated or deleted: a PostgreSQL trigger (migration 0002) refuses both.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    system_actor = models.CharField(max_length=100, blank=True)
    reason = models.TextField(blank=True)
    action = models.CharField(max_length=100)
    method = models.CharField(max_length=10, blank=True)
    path = models.CharField(max_length=500, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    patient_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    object_ref = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["actor", "-at"], name="audit_actor_at"),
            # GIN on the array so "every event that showed patient N" is an index lookup.
            GinIndex(fields=["patient_ids"], name="audit_patient_ids"),
        ]

    def __str__(self) -> str:
        who = self.actor or self.system_actor
        return f"{self.at:%Y-%m-%d %H:%M} {who} {self.action}"
