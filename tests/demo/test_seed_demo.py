import nhs_number
import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Organisation, User
from mdt.models import Case, Meeting, Team
from records.models import Patient, Source
from registry.models import Registration, Treatment

pytestmark = pytest.mark.django_db


def test_seed_demo_builds_the_region_and_is_harmless_twice(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-for-tests")
    call_command("seed_demo")
    counts = (
        Organisation.objects.count(),
        Patient.objects.count(),
        Meeting.objects.count(),
        Case.objects.count(),
        Registration.objects.count(),
        Treatment.objects.count(),
    )
    call_command("seed_demo")
    assert (
        Organisation.objects.count(),
        Patient.objects.count(),
        Meeting.objects.count(),
        Case.objects.count(),
        Registration.objects.count(),
        Treatment.objects.count(),
    ) == counts

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
