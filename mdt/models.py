"""MDT teams, their meetings and the case lists of those meetings."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from accounts.models import Organisation, Role
from records.models import Patient, Snapshot


class TumourSite(models.TextChoices):
    """COSD MDT meeting type (CR3190) codes for the sites the region runs."""

    BREAST = "0101", "Breast"
    COLORECTAL = "0301", "Colorectal"
    HAEMATOLOGY = "0601", "Haematology"
    LUNG = "0801", "Lung"
    UPPER_GI = "1101", "Upper GI"
    UROLOGY = "1201", "Urology"
    UNKNOWN_PRIMARY = "1301", "Cancer of unknown primary"


class CoreRole(models.TextChoices):
    CHAIR = "chair", "Chair"
    COORDINATOR = "coordinator", "MDT coordinator"
    SURGEON = "surgeon", "Surgeon"
    ONCOLOGIST = "oncologist", "Oncologist"
    RADIOLOGIST = "radiologist", "Radiologist"
    PATHOLOGIST = "pathologist", "Histopathologist"
    CNS = "cns", "Clinical nurse specialist"
    PHYSICIAN = "physician", "Respiratory physician"
    OTHER = "other", "Other member"


CASE_VIEWER_ROLES = (Role.COORDINATOR, Role.CLINICIAN, Role.CHAIR)


class TeamQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Teams whose lists the user may see: a member of the team who has a clinical or
        coordinating role. A GP or an administrator on a team's member list sees nothing."""
        if not user.is_authenticated or not user.has_role(*CASE_VIEWER_ROLES):
            return self.none()
        return self.filter(members__user=user).distinct()


class Team(models.Model):
    name = models.CharField(max_length=120)
    tumour_site = models.CharField(max_length=4, choices=TumourSite.choices)
    host = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="mdt_teams")
    core_roles = ArrayField(
        models.CharField(max_length=20, choices=CoreRole.choices),
        default=list,
        help_text="The roles that must be present for the meeting to be quorate.",
    )

    objects = TeamQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamMember(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships"
    )
    core_role = models.CharField(max_length=20, choices=CoreRole.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team")
        ]

    def __str__(self) -> str:
        return f"{self.user} – {self.get_core_role_display()} ({self.team})"


class MeetingQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(team__in=Team.objects.visible_to(user))


class Meeting(models.Model):
    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        LIST_CLOSED = "list_closed", "List closed"
        IN_PROGRESS = "in_progress", "In progress"
        CONCLUDED = "concluded", "Concluded"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="meetings")
    starts_at = models.DateTimeField()
    cutoff_at = models.DateTimeField(help_text="Cases added after this need a reason.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLANNED)
    chair = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="chaired_meetings",
    )
    list_closed_at = models.DateTimeField(null=True, blank=True)
    list_closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    refresh_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When someone last asked to refresh every case's record."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MeetingQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.UniqueConstraint(fields=["team", "starts_at"], name="one_meeting_per_team_slot"),
            models.CheckConstraint(
                condition=Q(cutoff_at__lte=models.F("starts_at")), name="cutoff_before_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team} {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def list_is_open(self) -> bool:
        return self.status == self.Status.PLANNED


class CaseQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The one scope for patient data on MDT lists: cases of the user's teams."""
        return self.filter(meeting__team__in=Team.objects.visible_to(user))

    def listed(self):
        return self.filter(status=Case.Status.LISTED)


class Case(models.Model):
    class Triage(models.TextChoices):
        FULL_DISCUSSION = "full", "Full discussion"
        STANDARD_OF_CARE = "soc", "Standard of care (ratify)"
        FOR_INFORMATION = "info", "For information"

    class Status(models.TextChoices):
        LISTED = "listed", "Listed"
        REMOVED = "removed", "Removed"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    meeting = models.ForeignKey(Meeting, on_delete=models.PROTECT, related_name="cases")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="mdt_cases")
    position = models.PositiveIntegerField()
    question = models.TextField("Question for the MDT")
    referrer = models.CharField("Referring clinician", max_length=200)
    triage = models.CharField(max_length=10, choices=Triage.choices, default=Triage.FULL_DISCUSSION)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LISTED)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="cases_added"
    )
    added_at = models.DateTimeField(auto_now_add=True)
    late_reason = models.TextField(
        blank=True, help_text="Why the case was added after the cut-off."
    )
    submission_id = models.UUIDField(
        null=True,
        blank=True,
        unique=True,
        help_text="The add-case form's id: a resubmit is a no-op.",
    )
    removed_reason = models.TextField(blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    removed_at = models.DateTimeField(null=True, blank=True)
    snapshot = models.ForeignKey(
        Snapshot,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The federated record this case shows (the latest population run for it).",
    )
    population_requested_at = models.DateTimeField(null=True, blank=True)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["meeting", "patient"],
                condition=Q(status="listed"),
                name="patient_listed_once_per_meeting",
            )
        ]

    def __str__(self) -> str:
        return f"Case #{self.pk}"

    @property
    def added_late(self) -> bool:
        return bool(self.late_reason)
