import nhs_number
import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Organisation, User
from mdt import reviews
from mdt.models import Attendance, Case, Meeting, Outcome, Review, Team
from records.models import Patient, Snapshot, Source
from registry.models import Registration, Treatment

pytestmark = pytest.mark.django_db


def test_seed_demo_builds_the_region_and_is_harmless_twice(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-for-tests")
    call_command("seed_demo")
    counted = (Organisation, Patient, Meeting, Case, Registration, Treatment, Review, Outcome)
    counted += (Attendance, Snapshot)
    counts = [model.objects.count() for model in counted]
    outcomes = list(Outcome.objects.values_list("pk", "revision", "signed_at"))
    call_command("seed_demo")
    assert [model.objects.count() for model in counted] == counts
    assert list(Outcome.objects.values_list("pk", "revision", "signed_at")) == outcomes

    assert set(Organisation.objects.filter(kind="trust").values_list("ods_code", flat=True)) == {
        "RRK",
        "RWP",
        "RL4",
    }
    assert Organisation.objects.filter(kind="gp_practice").count() == 10
    assert {t.get_tumour_site_display() for t in Team.objects.all()} == {
        "Lung",
        "Breast",
        "Colorectal",
    }
    for username, role in [
        ("coordinator", "coordinator"),
        ("clinician", "clinician"),
        ("chair", "chair"),
        ("gp", "gp"),
        ("admin", "admin"),
    ]:
        user = User.objects.get(username=username)
        assert user.has_role(role)
        assert user.check_password("demo-password-for-tests")

    numbers = list(Patient.objects.values_list("nhs_number", flat=True))
    assert len(numbers) == 200
    assert all(n.startswith("999") and nhs_number.is_valid(n) for n in numbers)

    upcoming = Meeting.objects.filter(starts_at__gt=timezone.now())
    assert upcoming.count() >= 12
    assert all(meeting.cases.exists() for meeting in upcoming)
    assert upcoming.filter(starts_at__lt=timezone.now() + timezone.timedelta(days=35)).count() >= 12

    # The cancer registry: an organisation, a record source, and the patients' registrations.
    registry = Source.objects.get(name="Cancer registry")
    assert registry.kind == Source.Kind.REGISTRY and registry.enabled
    assert (registry.organisation.ods_code, registry.organisation.kind) == ("NDRS", "registry")
    assert registry.badge == "Cancer registry"
    registered = Registration.objects.filter(patient__isnull=False)
    assert 150 <= registered.count() <= len(numbers)  # all but the suspected cancers
    assert registered.count() == Registration.objects.count()
    assert Treatment.objects.exists()

    # What the teams have done: last week's meetings, and reviews for the next ones.
    _check_last_weeks_meetings()
    _check_next_meetings_reviews()


def _check_last_weeks_meetings():
    """Every team concluded last week's meeting through the services."""
    now = timezone.now()
    for team in Team.objects.all():
        assert team.review_roles == ["radiologist", "pathologist"]
        concluded = team.meetings.get(status=Meeting.Status.CONCLUDED)
        assert now - timezone.timedelta(days=8) < concluded.starts_at < now
        assert concluded.started_at == concluded.starts_at
        assert (
            concluded.starts_at
            < concluded.concluded_at
            < concluded.starts_at + (timezone.timedelta(hours=2))
        )
        cases = list(concluded.cases.all())
        assert all(case.is_final for case in cases)
        assert sorted(case.status for case in cases) == sorted(
            ["discussed"] * 5 + ["ratified", "info", "deferred", "removed"]
        )
        assert concluded.current_case is None
        meeting_day = timezone.localtime(concluded.starts_at).date()
        for case in cases:
            signed = list(case.outcomes.filter(signed_at__isnull=False))
            if case.status in ("discussed", "ratified"):
                first = signed[0]
                # A real snapshot, gathered before the meeting from the demo sources.
                assert first.snapshot_id == case.snapshot_id
                assert first.snapshot.created_at < concluded.starts_at
                statuses = {s["status"] for s in first.snapshot.per_source_status.values()}
                assert statuses <= {"ok", "not_found"}, statuses
                assert first.signed_by == concluded.chair
                assert first.discussion_date == meeting_day
                assert concluded.starts_at < first.signed_at < concluded.concluded_at
                assert first.category and first.care_plan_intent and first.plan
                assert first.planned_treatments and first.key_worker and first.actions
                assert first.ratified == (case.status == "ratified")
                if first.ratified:
                    assert case.triage == Case.Triage.STANDARD_OF_CARE
                    assert first.standard_of_care
            else:
                assert signed == []
        deferred = next(case for case in cases if case.status == "deferred")
        assert deferred.deferred_reason
        carried = deferred.carried_over_to
        assert carried.patient_id == deferred.patient_id
        assert carried.meeting.team_id == team.pk
        assert carried.meeting.starts_at > concluded.starts_at
        assert carried.status == Case.Status.LISTED
        withdrawn = next(case for case in cases if case.status == "removed")
        assert withdrawn.removed_reason and withdrawn.removed_at < concluded.starts_at
        noted = next(case for case in cases if case.status == "info")
        assert noted.noted_at and noted.triage == Case.Triage.FOR_INFORMATION
        attendance = {a.status for a in concluded.attendance.all()}
        assert "present" in attendance

    # The breast nurse specialist sent apologies: those outcomes record the missing core role.
    breast = Meeting.objects.get(team__tumour_site="0101", status=Meeting.Status.CONCLUDED)
    assert breast.attendance.filter(status="apologies", core_role="cns").exists()
    for outcome in Outcome.objects.filter(case__meeting=breast):
        assert outcome.missing_core_roles == ["cns"] and not outcome.quorate
    lung = Meeting.objects.get(team__tumour_site="0801", status=Meeting.Status.CONCLUDED)
    assert all(o.quorate for o in Outcome.objects.filter(case__meeting=lung))
    # One lung outcome was amended the next day: two signed versions, both kept.
    amended = Outcome.objects.get(case__meeting=lung, amendment_no=1)
    assert amended.is_signed and amended.amendment_reason
    assert amended.case.outcomes.count() == 2
    assert not Outcome.objects.filter(signed_at__isnull=True).exists()


def _check_next_meetings_reviews():
    """The next meetings have reviews: some cases ready, some not."""
    for team in Team.objects.all():
        meeting = (
            team.meetings.filter(starts_at__gt=timezone.now(), status=Meeting.Status.PLANNED)
            .order_by("starts_at")
            .first()
        )
        full = meeting.cases.listed().filter(triage=Case.Triage.FULL_DISCUSSION)
        ready = [reviews.is_ready(reviews.readiness(case)) for case in full]
        assert any(ready) and not all(ready)
        for review in Review.objects.filter(case__meeting=meeting):
            member = team.members.get(user=review.reviewer)
            assert member.core_role == review.role
