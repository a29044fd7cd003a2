"""MDT teams, their meetings and the case lists of those meetings."""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone

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


def default_review_roles() -> list[str]:
    return [CoreRole.RADIOLOGIST, CoreRole.PATHOLOGIST]


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
    review_roles = ArrayField(
        models.CharField(max_length=20, choices=CoreRole.choices),
        default=default_review_roles,
        blank=True,
        help_text="The specialties that review every fully discussed case before the meeting "
        "(a case is ready when they have). Their presence is needed for that case's outcome.",
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
    started_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    concluded_at = models.DateTimeField(null=True, blank=True)
    concluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    current_case = models.ForeignKey(
        "Case",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The case on the shared screen while the meeting is in progress.",
    )
    live_version = models.PositiveIntegerField(
        default=0,
        help_text="Bumped by every change followers must see (current case, outcome saved, "
        "attendance), so their poll is one indexed read that usually answers 'no change'.",
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

    @property
    def is_live(self) -> bool:
        return self.status == self.Status.IN_PROGRESS


class CaseQuerySet(models.QuerySet):
    def visible_to(self, user):
        """The one scope for patient data on MDT lists: cases of the user's teams."""
        return self.filter(meeting__team__in=Team.objects.visible_to(user))

    def listed(self):
        return self.filter(status=Case.Status.LISTED)

    def on_list(self):
        """Every case the meeting took, whatever became of it, except those withdrawn."""
        return self.exclude(status=Case.Status.REMOVED)


class Case(models.Model):
    class Triage(models.TextChoices):
        FULL_DISCUSSION = "full", "Full discussion"
        STANDARD_OF_CARE = "soc", "Standard of care (ratify)"
        FOR_INFORMATION = "info", "For information"

    class Status(models.TextChoices):
        """The case states of docs/case-states.md. Only LISTED is not final."""

        LISTED = "listed", "Listed"
        DISCUSSED = "discussed", "Discussed"
        RATIFIED = "ratified", "Ratified (standard of care)"
        FOR_INFORMATION = "info", "For information"
        DEFERRED = "deferred", "Deferred"
        REMOVED = "removed", "Withdrawn"

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
    deferred_reason = models.TextField(blank=True)
    deferred_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    deferred_at = models.DateTimeField(null=True, blank=True)
    carried_over_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="carried_over_from",
        help_text="The case at the team's next meeting that took this deferred case "
        "(created by the carry-over, or the patient's existing listing there).",
    )
    noted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    noted_at = models.DateTimeField(null=True, blank=True)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["meeting", "patient"],
                condition=~Q(status="removed"),
                name="patient_once_per_meeting",
            )
        ]

    def __str__(self) -> str:
        return f"Case #{self.pk}"

    @property
    def added_late(self) -> bool:
        return bool(self.late_reason)

    @property
    def is_final(self) -> bool:
        return self.status != self.Status.LISTED


class Review(models.Model):
    """A specialty's review of a case before the meeting (e.g. radiology reviewing the imaging).
    The case is ready when every role in its team's ``review_roles`` has a review marked done."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="reviews")
    role = models.CharField(max_length=20, choices=CoreRole.choices)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["role"]
        constraints = [
            models.UniqueConstraint(fields=["case", "role"], name="one_review_per_case_role")
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} review of case #{self.case_id}"

    @property
    def is_done(self) -> bool:
        return self.done_at is not None


class Attendance(models.Model):
    """Who was at the meeting, in which core role, and how. ``left_at`` is set when someone leaves
    part-way; quoracy at any moment counts those present or remote and not yet left."""

    class Status(models.TextChoices):
        PRESENT = "present", "Present"
        REMOTE = "remote", "Joined remotely"
        APOLOGIES = "apologies", "Apologies"

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="attendance")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    core_role = models.CharField(max_length=20, choices=CoreRole.choices)
    status = models.CharField(max_length=10, choices=Status.choices)
    joined_at = models.DateTimeField(null=True, blank=True)
    left_at = models.DateTimeField(null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["core_role", "id"]
        constraints = [
            models.UniqueConstraint(fields=["meeting", "user"], name="one_attendance_per_person")
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.meeting}: {self.get_status_display()}"

    @property
    def is_in_room(self) -> bool:
        return self.status != self.Status.APOLOGIES and self.left_at is None


class DiscussionPeriod(models.Model):
    """A stretch of time a case was the current case in the live meeting. A case the chair comes
    back to has several; its discussion time is their sum."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="discussion_periods")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at"]
        indexes = [models.Index(fields=["case", "started_at"])]

    def __str__(self) -> str:
        return f"Case #{self.case_id} from {self.started_at:%H:%M:%S}"


class OutcomeCategory(models.TextChoices):
    """The MDT's recommendation (DOMAIN.md, "Outcome")."""

    TREATMENT = "treatment", "Treatment plan agreed"
    INVESTIGATION = "investigation", "Further investigation"
    ACTIVE_MONITORING = "monitoring", "Active monitoring"
    SUPPORTIVE_CARE = "supportive", "Best supportive care"
    REFER_OTHER_MDT = "refer_mdt", "Refer to another MDT"
    CLINICAL_TRIAL = "trial", "Clinical trial"
    DISCHARGE = "discharge", "Discharge (no cancer)"


class CarePlanIntent(models.TextChoices):
    """COSD CR0460."""

    CURATIVE = "C", "Curative"
    NON_CURATIVE = "Z", "Non-curative"
    NO_ACTIVE_TREATMENT = "X", "No active treatment"
    NOT_KNOWN = "9", "Not known"


class PlannedTreatment(models.TextChoices):
    """COSD CR0470 (several may apply)."""

    SURGERY = "01", "Surgery"
    EXTERNAL_BEAM_RT = "02", "External beam radiotherapy"
    CHEMOTHERAPY = "03", "Chemotherapy"
    HORMONE = "04", "Hormone therapy"
    PALLIATIVE = "05", "Specialist palliative care"
    BRACHYTHERAPY = "06", "Brachytherapy"
    BIOLOGICAL = "07", "Biological therapy"
    OTHER_ACTIVE = "10", "Other active treatment"
    NO_ACTIVE = "11", "No active treatment"
    BISPHOSPHONATES = "12", "Bisphosphonates"
    DRUG_OTHER = "13", "Anti-cancer drug, other"
    RADIOTHERAPY_OTHER = "14", "Radiotherapy, other"
    NOT_KNOWN = "99", "Not known"


class NoTreatmentReason(models.TextChoices):
    """COSD CR0490."""

    DECLINED = "01", "Patient declined treatment"
    UNFIT_PS = "02", "Unfit: poor performance status"
    UNFIT_COMORBIDITY = "03", "Unfit: significant comorbidity"
    UNFIT_ADVANCED = "04", "Unfit: advanced stage cancer"
    UNKNOWN_PRIMARY = "05", "Unknown primary site"
    DIED = "06", "Died before treatment"
    NONE_AVAILABLE = "07", "No active treatment available"
    OTHER = "08", "Other"
    MONITORING = "10", "Monitoring only"
    NOT_KNOWN = "99", "Not known"


class PerformanceStatus(models.TextChoices):
    """COSD CR0510 (WHO/ECOG, adult)."""

    PS0 = "0", "0: fully active"
    PS1 = "1", "1: restricted in strenuous activity"
    PS2 = "2", "2: ambulatory, capable of self-care, unable to work"
    PS3 = "3", "3: limited self-care, in bed or chair over half the day"
    PS4 = "4", "4: completely disabled"
    NOT_RECORDED = "9", "9: not recorded"


class Outcome(models.Model):
    """One version of a case's MDT outcome. ``amendment_no`` 0 is the outcome agreed at the
    meeting; each amendment after signing is a new row with the next number and a reason, and each
    signed row gets its own letter. A row is a draft until signed, and PostgreSQL refuses any change
    to a signed row (migration 0004). ``revision`` is the optimistic lock for drafts: every save
    bumps it, and a save that names an older revision is refused as a conflict."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="outcomes")
    amendment_no = models.PositiveIntegerField(default=0)
    amendment_reason = models.TextField(blank=True)
    revision = models.PositiveIntegerField(default=1)

    discussion_date = models.DateField("MDT discussion date")  # CR0430
    category = models.CharField(max_length=20, choices=OutcomeCategory.choices, blank=True)
    agreed_diagnosis = models.CharField(max_length=300, blank=True)
    agreed_icd10 = models.CharField("ICD-10 code", max_length=8, blank=True)
    stage_t = models.CharField("T", max_length=8, blank=True)
    stage_n = models.CharField("N", max_length=8, blank=True)
    stage_m = models.CharField("M", max_length=8, blank=True)
    stage_group = models.CharField("Stage group", max_length=8, blank=True)
    performance_status = models.CharField(
        max_length=1, choices=PerformanceStatus.choices, blank=True
    )  # CR0510
    care_plan_intent = models.CharField(
        max_length=1, choices=CarePlanIntent.choices, blank=True
    )  # CR0460
    planned_treatments = ArrayField(
        models.CharField(max_length=2, choices=PlannedTreatment.choices), default=list, blank=True
    )  # CR0470
    no_treatment_reason = models.CharField(
        max_length=2, choices=NoTreatmentReason.choices, blank=True
    )  # CR0490
    trial_considered = models.BooleanField(default=False)
    trial_referred = models.BooleanField(default=False)
    trial_name = models.CharField("Trial name or identifier", max_length=200, blank=True)
    standard_of_care = models.CharField(
        "Standard of care protocol",
        max_length=200,
        blank=True,
        help_text="The team's agreed protocol a ratified outcome follows (COSD discussion type 2).",
    )
    plan = models.TextField("The plan", blank=True)
    actions = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"action": ..., "owner": ..., "due": "YYYY-MM-DD"}]',
    )
    gp_actions = models.TextField("What the GP should do", blank=True)
    key_worker = models.CharField("Key worker / CNS", max_length=200, blank=True)
    patient_informed = models.BooleanField("Patient has been told the outcome", default=False)
    informed_by = models.CharField(max_length=200, blank=True)
    informed_at = models.DateTimeField(null=True, blank=True)

    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    ratified = models.BooleanField(
        default=False, help_text="Signed under a Standard of Care without full discussion."
    )
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    snapshot = models.ForeignKey(
        Snapshot,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The federated record the meeting saw, pinned when signed.",
    )
    roles_present = ArrayField(models.CharField(max_length=20), default=list, blank=True)
    missing_core_roles = ArrayField(
        models.CharField(max_length=20),
        default=list,
        blank=True,
        help_text="Team core roles absent when signed: the meeting was not quorate.",
    )
    missing_case_roles = ArrayField(
        models.CharField(max_length=20),
        default=list,
        blank=True,
        help_text="Roles this case needed (its reviews) absent when signed: flagged on the "
        "outcome and its letter.",
    )

    class Meta:
        ordering = ["case", "amendment_no"]
        constraints = [
            models.UniqueConstraint(fields=["case", "amendment_no"], name="one_outcome_version"),
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(signed_at__isnull=True),
                name="one_draft_outcome_per_case",
            ),
            models.CheckConstraint(
                condition=Q(signed_at__isnull=True)
                | (Q(signed_by__isnull=False) & Q(snapshot__isnull=False)),
                name="signed_outcome_has_signer_and_snapshot",
            ),
            models.CheckConstraint(
                condition=Q(amendment_no=0) | ~Q(amendment_reason=""),
                name="amendment_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"Outcome {self.amendment_no} of case #{self.case_id}"

    @property
    def is_signed(self) -> bool:
        return self.signed_at is not None

    @property
    def quorate(self) -> bool:
        return not self.missing_core_roles


class LetterStatus(models.TextChoices):
    """Where a letter to the GP is (docs/case-states.md, "Outcome versions"; ARCHITECTURE.md,
    "Letters"). ``held``: waiting until the patient has been told; ``queued``: waiting to be
    rendered; ``rendered``: the PDF is stored and waits to be sent; ``manual``: it cannot go by
    MESH (``manual_reason`` says why) and someone must deliver it (its PDF is still rendered);
    ``superseded``: the outcome was amended before this letter left, so only the amendment's
    letter goes."""

    HELD = "held", "Held until the patient has been told"
    QUEUED = "queued", "Queued"
    RENDERED = "rendered", "Ready to send"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    ACKNOWLEDGED = "acknowledged", "Acknowledged by the practice"
    FAILED = "failed", "Failed"
    MANUAL = "manual", "Needs manual delivery"
    SUPERSEDED = "superseded", "Replaced before it was sent"


# The statuses in which the letter's PDF exists (and so its SHA-256).
LETTER_RENDERED_STATUSES = (
    LetterStatus.RENDERED,
    LetterStatus.SENDING,
    LetterStatus.SENT,
    LetterStatus.ACKNOWLEDGED,
)


def letter_pdf_path(letter, filename: str) -> str:
    """One name per letter, from its public id: a render repeated after a killed worker writes
    over the same file rather than making a second one."""
    created = letter.created_at or timezone.now()
    return f"letters/{created:%Y/%m}/{letter.public_id}.pdf"


class Letter(models.Model):
    """The letter to the GP of one signed outcome version, made in the transaction that signs it
    (mdt.letters.create_letter_for). Its recipient practice and mailbox are frozen then; the PDF
    is rendered by a Celery task (mdt.letter_tasks) and sent over MESH (mdt.mesh), whose message
    carries ``public_id`` as its local id."""

    Status = LetterStatus

    public_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, help_text="The MESH local id too."
    )
    # Not PROTECT: a signed outcome cannot be deleted anyway (the trigger of migration 0004 refuses
    # it, and the foreign key would), and PostgreSQL should be the one that says so.
    outcome = models.OneToOneField(Outcome, on_delete=models.DO_NOTHING, related_name="letter")
    recipient = models.ForeignKey(
        Organisation,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="letters_received",
        help_text="The patient's GP practice when the outcome was signed; none when unknown.",
    )
    recipient_mailbox = models.CharField(
        "MESH mailbox ID", max_length=20, blank=True, help_text="The practice's, at signing."
    )
    manual_reason = models.TextField(
        blank=True, help_text="Why the letter cannot be sent by MESH and must be delivered by hand."
    )
    supersedes = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="superseded_by",
        help_text="The letter of the previous signed version, which this one replaces.",
    )
    status = models.CharField(
        max_length=20, choices=LetterStatus.choices, default=LetterStatus.QUEUED
    )
    status_changed_at = models.DateTimeField(
        default=timezone.now,
        help_text="When the status last changed, or the sweep last re-enqueued the letter (the "
        "sweep's clock).",
    )
    title = models.CharField(max_length=300, blank=True)
    html = models.TextField(blank=True, help_text="The HTML the PDF was rendered from.")
    pdf = models.FileField(upload_to=letter_pdf_path, blank=True, max_length=200)
    sha256 = models.CharField("SHA-256 of the PDF", max_length=64, blank=True)
    mesh_message_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    rendered_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "status_changed_at"])]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status__in=LETTER_RENDERED_STATUSES)
                | (~Q(sha256="") & ~Q(pdf="") & Q(rendered_at__isnull=False)),
                name="rendered_letter_has_pdf_and_sha256",
            ),
            models.CheckConstraint(
                condition=~Q(status=LetterStatus.MANUAL) | ~Q(manual_reason=""),
                name="manual_letter_says_why",
            ),
        ]

    def __str__(self) -> str:
        return f"Letter {self.public_id} ({self.status})"

    @property
    def is_rendered(self) -> bool:
        return bool(self.sha256)


class PatientTold(models.Model):
    """A clinician's record, after signing, that the patient has been told the outcome (a signed
    outcome is never changed, so this is its own row). It releases the case's held letters."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="patient_told")
    outcome = models.ForeignKey(
        Outcome,
        on_delete=models.DO_NOTHING,
        related_name="+",
        help_text="The latest signed version when this was recorded.",
    )
    told_by = models.CharField("Who told the patient", max_length=200)
    told_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recorded_at", "id"]
        constraints = [
            models.CheckConstraint(condition=~Q(told_by=""), name="patient_told_says_by_whom")
        ]

    def __str__(self) -> str:
        return f"Patient told (case #{self.case_id})"
