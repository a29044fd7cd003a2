"""What the pages say about a meeting's letters to GPs: how far they have got (the progress bar
after "Send all letters"), what "Send all letters" would do, and their turnaround from signing
to sent and to acknowledged, for the meeting page and the administrators' report (issue 6: an
alliance holds itself to "the GP knows the same day").

"Sent" means MESH accepted the letter (``sent`` or ``acknowledged``). Letters for manual
delivery and superseded letters do not go by MESH, so nothing waits for them; a superseded
letter is left out of the turnaround too (its amendment's letter is the one that counts). "The
same day" is the calendar day in Europe/London, whatever the server's time zone.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Aggregate, Count, DurationField, F, Max, Q
from django.db.models.functions import TruncDate
from django.db.models.lookups import Exact

from accounts.models import Membership, Role

from .letters import held_letter_may_go, told_case_ids
from .models import Letter, LetterStatus, Meeting, Team
from .permissions import can_read_letter_turnaround

LONDON = ZoneInfo("Europe/London")

MESH_ACCEPTED = (LetterStatus.SENT, LetterStatus.ACKNOWLEDGED)
ON_ITS_WAY = (LetterStatus.QUEUED, LetterStatus.RENDERED, LetterStatus.SENDING)
NOT_SENT = (LetterStatus.HELD, *ON_ITS_WAY, LetterStatus.FAILED)
NOT_BY_MESH = (LetterStatus.MANUAL, LetterStatus.SUPERSEDED)


def _letters_word(count: int) -> str:
    return "letter" if count == 1 else "letters"


# -- the progress bar --------------------------------------------------------------------------


@dataclass(frozen=True)
class LetterProgress:
    """How far a meeting's letters have got on their way to the GPs by MESH."""

    to_send: int = 0  # the letters that go by MESH: all but manual delivery and superseded
    sent: int = 0
    on_its_way: int = 0  # queued, ready to send, or sending (retries included)
    failed: int = 0
    held: int = 0

    @property
    def moving(self) -> bool:
        """Whether the panel should keep polling."""
        return self.on_its_way > 0

    @property
    def label(self) -> str:
        return f"{self.sent} of {self.to_send} {_letters_word(self.to_send)} sent"

    @property
    def announcement(self) -> str:
        """What the live region says when the count changes."""
        if self.failed:
            return f"{self.label}, {self.failed} failed."
        return f"{self.label}."

    @property
    def percent(self) -> int:
        return round(100 * self.sent / self.to_send) if self.to_send else 100


def letter_progress(statuses: Iterable[str]) -> LetterProgress:
    counts = {"to_send": 0, "sent": 0, "on_its_way": 0, "failed": 0, "held": 0}
    for status in statuses:
        if status in NOT_BY_MESH:
            continue
        counts["to_send"] += 1
        if status in MESH_ACCEPTED:
            counts["sent"] += 1
        elif status in ON_ITS_WAY:
            counts["on_its_way"] += 1
        elif status == LetterStatus.FAILED:
            counts["failed"] += 1
        elif status == LetterStatus.HELD:
            counts["held"] += 1
    return LetterProgress(**counts)


# -- what "Send all letters" would do ------------------------------------------------------------


@dataclass(frozen=True)
class SendAllPreview:
    """What "Send all letters" would do now (mdt.letters.release_meeting_letters decides)."""

    told_held: int = 0  # held letters whose patient has been told: they go
    failed: int = 0  # failed letters: tried again
    untold_held: int = 0  # held letters whose patient is not recorded as told: they stay held

    @property
    def anything_waiting(self) -> bool:
        return bool(self.told_held or self.failed or self.untold_held)


def send_all_preview(meeting: Meeting, letters: Iterable[Letter]) -> SendAllPreview:
    """``letters``: the meeting's letters with their outcomes loaded. One query, for the cases
    recorded as told after signing."""
    told_cases = told_case_ids(meeting)
    counts = {"told_held": 0, "failed": 0, "untold_held": 0}
    for letter in letters:
        if letter.status == LetterStatus.FAILED:
            counts["failed"] += 1
        elif letter.status == LetterStatus.HELD:
            told = held_letter_may_go(letter, told_cases)
            counts["told_held" if told else "untold_held"] += 1
    return SendAllPreview(**counts)


# -- turnaround --------------------------------------------------------------------------------


class Median(Aggregate):
    """PostgreSQL's continuous median, here of intervals."""

    function = "PERCENTILE_CONT"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


@dataclass(frozen=True)
class Turnaround:
    """One meeting's letters (or a report's), superseded letters left out."""

    letters: int = 0
    sent: int = 0
    acknowledged: int = 0
    median_to_sent: timedelta | None = None
    longest_to_sent: timedelta | None = None
    median_to_acknowledged: timedelta | None = None
    longest_to_acknowledged: timedelta | None = None
    sent_same_day: int = 0
    acknowledged_same_day: int = 0
    not_sent: int = 0  # held, on their way or failed
    held: int = 0  # of those, held until the patient has been told
    not_acknowledged: int = 0  # sent, not acknowledged yet
    manual: int = 0  # need manual delivery


def _same_day_as_signing(field: str) -> Exact:
    return Exact(TruncDate(field, tzinfo=LONDON), TruncDate("outcome__signed_at", tzinfo=LONDON))


def _turnaround_aggregates() -> dict:
    sent = Q(status__in=MESH_ACCEPTED)
    acknowledged = Q(status=LetterStatus.ACKNOWLEDGED)
    to_sent = F("sent_at") - F("outcome__signed_at")
    to_acknowledged = F("acknowledged_at") - F("outcome__signed_at")
    return {
        "letters": Count("pk"),
        "sent": Count("pk", filter=sent),
        "acknowledged": Count("pk", filter=acknowledged),
        "median_to_sent": Median(to_sent, filter=sent),
        "longest_to_sent": Max(to_sent, filter=sent),
        "median_to_acknowledged": Median(to_acknowledged, filter=acknowledged),
        "longest_to_acknowledged": Max(to_acknowledged, filter=acknowledged),
        "sent_same_day": Count("pk", filter=sent & Q(_same_day_as_signing("sent_at"))),
        "acknowledged_same_day": Count(
            "pk", filter=acknowledged & Q(_same_day_as_signing("acknowledged_at"))
        ),
        "not_sent": Count("pk", filter=Q(status__in=NOT_SENT)),
        "held": Count("pk", filter=Q(status=LetterStatus.HELD)),
        "not_acknowledged": Count("pk", filter=Q(status=LetterStatus.SENT)),
        "manual": Count("pk", filter=Q(status=LetterStatus.MANUAL)),
    }


def _letters_of(meetings):
    """``meetings``: a queryset (used as a subquery) or a list of meetings."""
    return Letter.objects.filter(outcome__case__meeting__in=meetings).exclude(
        status=LetterStatus.SUPERSEDED
    )


def meeting_turnaround(meeting: Meeting) -> Turnaround:
    """One query."""
    return Turnaround(**_letters_of([meeting]).aggregate(**_turnaround_aggregates()))


def turnaround_by_meeting(meetings) -> dict[int, Turnaround]:
    """Each meeting's turnaround by its id, in one query; meetings without letters are absent."""
    rows = (
        _letters_of(meetings)
        .values("outcome__case__meeting_id")
        .annotate(**_turnaround_aggregates())
        .order_by()
    )
    return {row.pop("outcome__case__meeting_id"): Turnaround(**row) for row in rows}


# -- the administrators' report ----------------------------------------------------------------


def report_teams(user):
    """The teams an administrator reports on: those hosted by the organisations where they are
    an administrator."""
    if not can_read_letter_turnaround(user):
        return Team.objects.none()
    administered = Membership.objects.filter(user=user, role=Role.ADMIN).values("organisation_id")
    return Team.objects.filter(host__in=administered)


def default_period(today: date) -> tuple[date, date]:
    """The last four weeks, today included."""
    return today - timedelta(weeks=4), today


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=LONDON)


@dataclass(frozen=True)
class MeetingRow:
    meeting: Meeting
    turnaround: Turnaround


@dataclass(frozen=True)
class TurnaroundReport:
    rows: list[MeetingRow]
    total: Turnaround


def turnaround_report(user, *, first_day: date, last_day: date, team=None) -> TurnaroundReport:
    """The meetings of the user's organisations' teams held from ``first_day`` to ``last_day``
    (London days, both included), newest first, each with its letters' turnaround, and the
    turnaround of all their letters together. Three queries, however many meetings."""
    meetings = Meeting.objects.filter(
        team__in=report_teams(user),
        starts_at__gte=_start_of(first_day),
        starts_at__lt=_start_of(last_day + timedelta(days=1)),
    )
    if team is not None:
        meetings = meetings.filter(team=team)
    by_meeting = turnaround_by_meeting(meetings)
    rows = [
        MeetingRow(meeting, by_meeting.get(meeting.pk, Turnaround()))
        for meeting in meetings.select_related("team").order_by("-starts_at", "team__name")
    ]
    total = Turnaround(**_letters_of(meetings).aggregate(**_turnaround_aggregates()))
    return TurnaroundReport(rows, total)
