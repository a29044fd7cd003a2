"""Two forms' HTML ids (fixed with the registry work, issue 4): every id on the page once, and each
link of the error summary pointing at an element that exists (the first radio of a group, which
the NHS.UK error summary focuses)."""

import html
import re
from collections import Counter

import pytest
from django.urls import reverse

from accounts.models import Role
from tests.factories import MeetingFactory, make_member

pytestmark = pytest.mark.django_db


def check_ids(page: str, field: str) -> None:
    ids = Counter(re.findall(r'\sid="([^"]+)"', page))
    assert not [name for name, count in ids.items() if count > 1], ids
    links = [html.unescape(target) for target in re.findall(r'href="#([^"]+)"', page)]
    assert f"id_{field}" in links
    assert not [target for target in links if target not in ids and target != "maincontent"]
    assert re.search(rf'<input[^>]*\sid="id_{field}"[^>]*type="radio"', page), "first radio"


@pytest.fixture
def meeting():
    return MeetingFactory()


@pytest.fixture
def coordinator(client, meeting):
    user = make_member(meeting.team, role=Role.COORDINATOR)
    client.force_login(user)
    return user


def test_the_patient_search_has_one_id_purpose_and_its_error_link_finds_it(client, coordinator):
    page = client.post(reverse("mdt:patient_search"), {"nhs_number": "9990000026"})

    check_ids(page.content.decode(), "purpose")


def test_the_add_case_forms_triage_error_links_to_the_first_triage_radio(
    client, coordinator, meeting
):
    page = client.post(
        reverse("mdt:add_case", args=[meeting.public_id]),
        {"nhs_number": "", "triage": "not-a-triage"},
        headers={"HX-Request": "true"},
    )

    check_ids(page.content.decode(), "triage")
