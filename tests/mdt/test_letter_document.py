"""The outcome letter document: its content from a signed outcome, the HTML and the PDF/UA file
(text on every page, tagged structure, language and title), restricted addresses, amendments and
missing roles."""

import io
import logging
import re
import time

import pikepdf
import pytest
from pypdf import PdfReader

from accounts.display import format_nhs_number
from accounts.models import Role
from mdt import live, outcomes
from mdt.letter_content import letter_context
from mdt.letter_render import render_letter_html, render_letter_pdf
from mdt.models import CoreRole
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    PatientFactory,
    SnapshotFactory,
    make_member,
)

pytestmark = pytest.mark.django_db

PLAN_PARAGRAPHS = [
    f"Step {n}: " + " ".join(["Right upper lobectomy with mediastinal lymph node dissection."] * 6)
    for n in range(1, 13)
]
LONG_PLAN = "\n\n".join(PLAN_PARAGRAPHS)
COMPLETE = {
    "category": "treatment",
    "agreed_diagnosis": "Adenocarcinoma of the right upper lobe",
    "agreed_icd10": "C34.1",
    "stage_t": "2a",
    "stage_n": "0",
    "stage_m": "0",
    "stage_group": "IB",
    "performance_status": "1",
    "care_plan_intent": "C",
    "planned_treatments": ["01", "03"],
    "trial_considered": True,
    "trial_name": "LIBRETTO-432",
    "plan": LONG_PLAN,
    "actions": [
        {"action": "Book pre-operative assessment", "owner": "Lung CNS", "due": "2026-12-01"},
        {"action": "Pulmonary function tests", "owner": "Respiratory team", "due": ""},
    ],
    "gp_actions": "Please review anticoagulation before surgery.\n\nStop aspirin a week before.",
    "key_worker": "Sam Nurse, lung CNS, 0121 000 0000",
    "patient_informed": True,
    "informed_by": "Dr Surgeon in clinic",
}


@pytest.fixture
def meeting():
    return MeetingFactory()


@pytest.fixture
def chair(meeting):
    user = make_member(meeting.team, role=Role.CHAIR, core_role=CoreRole.CHAIR)
    user.first_name, user.last_name = "Alex", "Chair"
    user.save()
    meeting.chair = user
    meeting.save()
    return user


@pytest.fixture
def coordinator(meeting):
    return make_member(meeting.team, role=Role.COORDINATOR)


@pytest.fixture
def room(meeting, chair, coordinator):
    """Everyone the team needs, present; the radiologist sends apologies unless a test says."""
    team = meeting.team
    people = {
        "surgeon": make_member(team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON),
        "pathologist": make_member(team, role=Role.CLINICIAN, core_role=CoreRole.PATHOLOGIST),
        "radiologist": make_member(team, role=Role.CLINICIAN, core_role=CoreRole.RADIOLOGIST),
    }
    for user in (chair, coordinator, people["surgeon"], people["pathologist"]):
        live.record_attendance(user=coordinator, meeting=meeting, attendee=user, status="present")
    return people


def sign(meeting, chair, room, *, patient=None, radiologist="present", **fields):
    case = CaseFactory(meeting=meeting, **({"patient": patient} if patient else {}))
    case.snapshot = SnapshotFactory(patient=case.patient)
    case.save()
    live.start_meeting(user=chair, meeting=meeting)
    live.record_attendance(
        user=chair, meeting=meeting, attendee=room["radiologist"], status=radiologist
    )
    outcomes.save_draft(user=chair, case=case, revision=0, data={**COMPLETE, **fields})
    return outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)


def render(outcome, supersedes=None):
    context = letter_context(outcome, outcome.case.patient.gp_practice, supersedes=supersedes)
    html = render_letter_html(context)
    pdf = render_letter_pdf(html, title=context["title"], author=context["author"])
    return context, html, pdf


def page_texts(pdf: bytes) -> list[str]:
    # Collapse the line breaks and spacing of extraction so phrases can be searched for.
    return [
        re.sub(r"\s+", " ", page.extract_text() or "") for page in PdfReader(io.BytesIO(pdf)).pages
    ]


def test_every_page_carries_the_nhs_number_and_its_page_of_total(meeting, chair, room):
    outcome = sign(meeting, chair, room)
    wall, cpu = time.perf_counter(), time.process_time()
    context = letter_context(outcome, outcome.case.patient.gp_practice)
    html = render_letter_html(context)
    html_wall = time.perf_counter() - wall
    pdf = render_letter_pdf(html, title=context["title"], author=context["author"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    pages = page_texts(pdf)
    print(
        f"\nletter of {len(pages)} pages, {len(pdf) / 1024:.0f} KiB: rendered in {wall:.2f} s "
        f"wall ({cpu:.2f} s CPU), of which context and HTML {html_wall:.3f} s"
    )

    assert len(pages) >= 2
    nhs_number = format_nhs_number(outcome.case.patient.nhs_number)
    assert re.fullmatch(r"\d{3} \d{3} \d{4}", nhs_number)
    for number, text in enumerate(pages, start=1):
        assert f"NHS number {nhs_number}" in text, f"page {number}"
        assert f"Page {number} of {len(pages)}" in text, f"page {number}"
    # Without the running header and footer, so a paragraph split across pages reads whole.
    running = [
        f"NHS number {nhs_number}",
        context["patient"]["name"],
        f"Reference {context['reference']}",
        *(f"Page {number} of {len(pages)}" for number in range(1, len(pages) + 1)),
    ]
    everything = " ".join(pages)
    for text in running:
        everything = everything.replace(text, " ")
    everything = re.sub(r"\s+", " ", everything)
    for paragraph in PLAN_PARAGRAPHS:
        assert paragraph in everything
    assert "Please review anticoagulation before surgery." in everything
    assert "Book pre-operative assessment" in everything


def test_the_same_letter_renders_to_the_same_bytes(meeting, chair, room):
    # So the SHA-256 stored with a letter identifies its content, and a re-render can be checked.
    context, html, pdf = render(sign(meeting, chair, room))
    assert render_letter_pdf(html, title=context["title"], author=context["author"]) == pdf


def test_the_pdf_is_tagged_with_its_language_and_title(meeting, chair, room, caplog):
    outcome = sign(meeting, chair, room)
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        context, _html, pdf = render(outcome)
    # WeasyPrint logs what PDF/UA lacks (no language, an image without alt text) as errors.
    assert [record.getMessage() for record in caplog.records] == []
    with pikepdf.open(io.BytesIO(pdf)) as document:
        root = document.Root
        assert "/StructTreeRoot" in root
        assert root.StructTreeRoot.K  # the tree has content, not just a root
        assert str(root.Lang) == "en-GB"
        assert bool(root.MarkInfo.Marked) is True
        assert bool(root.ViewerPreferences.DisplayDocTitle) is True
        assert str(document.docinfo["/Title"]) == context["title"]
        assert str(document.docinfo["/Author"]) == context["author"]
        with document.open_metadata() as xmp:
            assert xmp["dc:title"] == context["title"]
            assert xmp["pdfuaid:part"] == "1"
    assert context["title"].startswith(f"MDT outcome letter: {meeting.team.name}")
    assert chair.display_name in context["author"]


def test_the_letter_says_what_the_meeting_decided(meeting, chair, room):
    outcome = sign(meeting, chair, room)
    context, html, _pdf = render(outcome)
    patient = outcome.case.patient
    assert context["patient"]["nhs_number"] == format_nhs_number(patient.nhs_number)
    assert context["diagnosis"]["tnm"] == "T2a N0 M0"
    assert context["outcome"]["intent"] == "Curative"
    assert context["outcome"]["treatments"] == ["Surgery", "Chemotherapy"]
    assert "1 Test Street" in html
    assert patient.gp_practice.ods_code in html
    assert "Alex Chair" in html
    assert room["surgeon"].display_name in html
    assert "Dr Surgeon in clinic told the patient" in html
    assert "not quorate" not in html
    assert 'lang="en-GB"' in html


def test_a_restricted_patients_address_appears_nowhere(meeting, chair, room):
    patient = PatientFactory(
        restricted=True, address="7 Hidden Lane, Safehaven, Westshire", postcode="ZZ9 9ZZ"
    )
    outcome = sign(meeting, chair, room, patient=patient)
    context, html, pdf = render(outcome)
    fragment = render_letter_html(context, fragment=True)
    text = " ".join(page_texts(pdf))
    for part in ("7 Hidden Lane", "Hidden", "Safehaven", "Westshire", "ZZ9 9ZZ", "ZZ9"):
        assert part not in html
        assert part not in fragment
        assert part not in text
        assert part not in repr(context)
    assert "restricted" in text


def test_an_amended_outcomes_letter_replaces_the_earlier_one(meeting, chair, room):
    original = sign(meeting, chair, room)
    case = original.case
    outcomes.start_amendment(user=chair, case=case, reason="Pathology upstaged to pT3")
    outcomes.save_draft(user=chair, case=case, revision=1, data={"stage_group": "IIB"})
    amended = outcomes.sign_outcome(user=chair, case=case, revision=2, snapshot_id=None)

    context, html, pdf = render(amended, supersedes=original)
    text = " ".join(page_texts(pdf))
    earlier = context["amendment"]["replaces_date"]
    notice = (
        f"This letter replaces the letter of {earlier} (amendment 1: Pathology upstaged to pT3)"
    )
    assert earlier
    assert notice in html
    assert notice in text
    assert str(original.public_id) in html
    assert context["version"] == "Amendment 1"
    assert context["title"].endswith("(amendment 1)")


def test_a_case_role_missing_at_signing_is_flagged(meeting, chair, room):
    outcome = sign(meeting, chair, room, radiologist="apologies")
    assert outcome.missing_case_roles == [CoreRole.RADIOLOGIST]
    context, html, pdf = render(outcome)
    text = " ".join(page_texts(pdf))
    assert "Radiologist not present when this outcome was agreed" in html
    assert "Radiologist not present when this outcome was agreed" in text
    assert "not quorate" in text
    assert room["radiologist"].display_name in html  # listed under apologies
    assert [person["name"] for person in context["apologies"]] == [room["radiologist"].display_name]
    assert room["radiologist"].display_name not in [p["name"] for p in context["attendees"]]


def test_a_patient_not_yet_told_is_said_so(meeting, chair, room):
    outcome = sign(meeting, chair, room, patient_informed=False, informed_by="")
    _context, html, _pdf = render(outcome)
    assert "The patient has not yet been told." in html


def test_a_draft_preview_says_it_is_a_draft_and_has_no_inline_styles(meeting, chair, room):
    case = CaseFactory(meeting=meeting)
    live.start_meeting(user=chair, meeting=meeting)
    draft = outcomes.save_draft(user=chair, case=case, revision=0, data=COMPLETE)
    fragment = render_letter_html(letter_context(draft, case.patient.gp_practice), fragment=True)
    assert "Draft: not signed." in fragment
    assert fragment.lstrip().startswith("<article")
    assert "<style" not in fragment
    assert "style=" not in fragment
    # The radiologist has not arrived: the preview warns before the chair signs.
    assert "Radiologist not present when this outcome was agreed" in fragment


def test_inside_a_page_the_letter_title_is_an_h2_under_the_page_h1(meeting, chair, room):
    outcome = sign(meeting, chair, room)
    context = letter_context(outcome, outcome.case.patient.gp_practice)
    document = render_letter_html(context)
    fragment = render_letter_html(context, fragment=True)
    assert '<h1 id="letter-title"' in document and "<h2 " in document
    assert "<h1" not in fragment
    assert '<h2 id="letter-title"' in fragment
    assert '<h3 class="letter-heading">Patient details</h3>' in fragment
