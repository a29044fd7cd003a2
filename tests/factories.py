"""factory_boy factories: valid objects by default; a test spells out only what it is about."""

from datetime import timedelta

import factory
from django.utils import timezone

from accounts.models import Membership, Organisation, Role, User
from demo.synthetic import synthetic_nhs_number
from mdt import live
from mdt.models import Case, CoreRole, Meeting, Team, TeamMember, TumourSite
from records.models import Patient, Snapshot

TEST_PASSWORD = "correct-horse-battery-staple"  # noqa: S105


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation
        django_get_or_create = ["ods_code"]

    ods_code = factory.Sequence(lambda n: f"R{n:02d}")
    name = factory.Sequence(lambda n: f"Test Hospitals NHS Trust {n}")
    kind = Organisation.Kind.TRUST


class PracticeFactory(OrganisationFactory):
    ods_code = factory.Sequence(lambda n: f"M{n:05d}")
    name = factory.Sequence(lambda n: f"Test Surgery {n}")
    kind = Organisation.Kind.GP_PRACTICE


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = "Test"
    last_name = factory.Sequence(lambda n: f"User{n}")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def saved(self, create, extracted, **kwargs):
        if create:
            self.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)
    role = Role.COORDINATOR


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Lung MDT {n}")
    tumour_site = TumourSite.LUNG
    host = factory.SubFactory(OrganisationFactory)
    core_roles = factory.LazyFunction(
        lambda: [CoreRole.CHAIR, CoreRole.SURGEON, CoreRole.RADIOLOGIST, CoreRole.PATHOLOGIST]
    )


class TeamMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TeamMember

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory)
    core_role = CoreRole.COORDINATOR


class MeetingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Meeting

    team = factory.SubFactory(TeamFactory)
    starts_at = factory.Sequence(lambda n: timezone.now() + timedelta(days=7, hours=n))
    cutoff_at = factory.LazyAttribute(lambda meeting: meeting.starts_at - timedelta(days=1))


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient
        django_get_or_create = ["nhs_number"]

    nhs_number = factory.Sequence(lambda n: synthetic_nhs_number(n + 1))
    given_name = "Ada"
    family_name = factory.Sequence(lambda n: f"Testpatient{n}")
    birth_date = factory.Faker("date_of_birth", minimum_age=40, maximum_age=90)
    sex = Patient.Sex.FEMALE
    address = "1 Test Street, Birmingham"
    postcode = "B1 1AA"
    gp_practice = factory.SubFactory(PracticeFactory)


class SnapshotFactory(factory.django.DjangoModelFactory):
    """A snapshot of a run that asked no sources: enough for the rules that pin snapshots. Tests
    about what a record contains populate one through records.populate instead."""

    class Meta:
        model = Snapshot

    patient = factory.SubFactory(PatientFactory)
    reason = "test"


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    meeting = factory.SubFactory(MeetingFactory)
    patient = factory.SubFactory(PatientFactory)
    position = factory.Sequence(lambda n: n + 1)
    question = "Confirm stage and plan treatment"
    referrer = "Dr A Referrer"
    added_by = factory.SubFactory(UserFactory)


def make_member(
    team: Team,
    role: str = Role.COORDINATOR,
    core_role: str = CoreRole.COORDINATOR,
    username: str | None = None,
    organisation: Organisation | None = None,
) -> User:
    """A user with a membership role at the team's host (or another organisation) on the team."""
    user = UserFactory(**({"username": username} if username else {}))
    MembershipFactory(user=user, organisation=organisation or team.host, role=role)
    TeamMember.objects.create(team=team, user=user, core_role=core_role)
    return user


def chair_starts(meeting: Meeting) -> User:
    """A chair for the meeting (a team member with the chair's core role), who starts it."""
    chair = make_member(meeting.team, role=Role.CHAIR, core_role=CoreRole.CHAIR)
    meeting.chair = chair
    meeting.save()
    live.start_meeting(user=chair, meeting=meeting)
    return chair
