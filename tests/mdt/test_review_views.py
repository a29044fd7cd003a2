"""Preparing for the meeting in the pages: recording a review on the case page (htmx and without
JavaScript), "my cases" on the dashboard, readiness and case states on the meeting's list, and
the patient's other MDT discussions on the case page."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Membership, Role
from mdt import conclusion, live, outcomes, reviews
from mdt.models import Case, CoreRole, Review
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    PatientFactory,
    SnapshotFactory,
    TeamFactory,
    UserFactory,
    make_member,
)
from tests.mdt.test_outcomes import COMPLETE

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def meeting():
    return MeetingFactory(team__name="Lung MDT")


@pytest.fixture
def case(meeting):
    return CaseFactory(meeting=meeting, patient__family_name="Reviewable")


@pytest.fixture
def radiologist(meeting):
    return make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.RADIOLOGIST)


@pytest.fixture
def pathologist(meeting):
    return make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.PATHOLOGIST)


@pytest.fixture
def coordinator(meeting):
    return make_member(meeting.team, role=Role.COORDINATOR)


@pytest.fixture
def chair(meeting):
    user = make_member(meeting.team, role=Role.CHAIR, core_role=CoreRole.CHAIR)
    meeting.chair = user
    meeting.save()
    return user


def review_url(case) -> str:
    return reverse("mdt:record_review", args=[case.public_id])


def body(response) -> str:
    return response.content.decode()


# Recording a review ----------------------------------------------------------------------------


def test_the_case_page_shows_each_needed_review_and_the_form_for_the_radiologist(
    client, case, radiologist, pathologist
):
    reviews.record_review(
        user=pathologist, case=case, role=CoreRole.PATHOLOGIST, note="Adenocarcinoma", done=True
    )
    client.force_login(radiologist)
    page = body(client.get(reverse("mdt:case", args=[case.public_id])))
    assert "Reviews before the meeting" in page
    assert "Still needs the radiology review." in page
    assert f"Done by {pathologist.display_name} (histopathologist)" in page
    assert "Adenocarcinoma" in page
    assert "Not done: no radiologist has reviewed this case yet." in page
    assert 'id="review-note-radiologist"' in page
    assert 'id="review-note-pathologist"' not in page  # not theirs to record
    assert "Mark review done" in page


def test_a_review_marked_done_without_javascript_returns_to_the_case_page(
    client, case, radiologist
):
    client.force_login(radiologist)
    response = client.post(
        review_url(case),
        {"role": CoreRole.RADIOLOGIST, "note": "CT: 3 cm RUL mass", "action": "done"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("mdt:case", args=[case.public_id]) + "#reviews"
    saved = Review.objects.get(case=case)
    assert (saved.role, saved.reviewer, saved.note) == (
        CoreRole.RADIOLOGIST,
        radiologist,
        "CT: 3 cm RUL mass",
    )
    assert saved.is_done
    event = AuditEvent.objects.filter(actor=radiologist).latest("id")
    assert "record_review" in event.action
    assert event.patient_ids == [case.patient_id]
    page = body(client.get(response["Location"]))
    assert "Radiology review marked done." in page


def test_htmx_gets_the_reviews_section_after_saving_and_after_marking_done(
    client, case, radiologist
):
    client.force_login(radiologist)
    saved = client.post(
        review_url(case),
        {"role": CoreRole.RADIOLOGIST, "note": "Half way through", "action": "save"},
        headers=HTMX,
    )
    fragment = body(saved)
    assert saved.status_code == 200
    assert fragment.lstrip().startswith('<section id="reviews"')
    assert "<html" not in fragment
    assert "Radiology review saved, not marked done." in fragment
    assert "Half way through" in fragment
    assert not Review.objects.get(case=case).is_done

    done = body(
        client.post(
            review_url(case),
            {"role": CoreRole.RADIOLOGIST, "note": "No nodal disease", "action": "done"},
            headers=HTMX,
        )
    )
    assert "Radiology review marked done." in done
    assert "Mark as not done" in done
    assert Review.objects.get(case=case).is_done

    # "Save" on a done review keeps it done; "Mark as not done" undoes it.
    client.post(
        review_url(case),
        {"role": CoreRole.RADIOLOGIST, "note": "No nodal disease (edited)", "action": "save"},
        headers=HTMX,
    )
    assert Review.objects.get(case=case).is_done
    client.post(
        review_url(case),
        {"role": CoreRole.RADIOLOGIST, "note": "Wait for the PET", "action": "undo"},
        headers=HTMX,
    )
    assert not Review.objects.get(case=case).is_done


def test_marking_done_without_a_note_shows_the_error_summary(client, case, radiologist):
    client.force_login(radiologist)
    data = {"role": CoreRole.RADIOLOGIST, "note": "  ", "action": "done"}
    fragment = body(client.post(review_url(case), data, headers=HTMX))
    assert "nhsuk-error-summary" in fragment
    assert '<a href="#review-note-radiologist">Write a short review note' in fragment
    assert "nhsuk-error-message" in fragment
    assert not Review.objects.exists()

    page = client.post(review_url(case), data)  # without JavaScript: a page of its own
    assert page.status_code == 200
    assert "<html" in body(page)
    assert "Write a short review note before marking the review done." in body(page)
    assert "Back to the case" in body(page)


def test_a_final_case_takes_no_review(client, case, radiologist):
    case.status = Case.Status.DEFERRED
    case.save()
    client.force_login(radiologist)
    fragment = body(
        client.post(
            review_url(case),
            {"role": CoreRole.RADIOLOGIST, "note": "Late look", "action": "done"},
            headers=HTMX,
        )
    )
    assert "This case has already been dealt with by the meeting." in fragment
    assert 'id="review-note-radiologist"' not in fragment  # no form on a final case
    assert not Review.objects.exists()


@pytest.mark.parametrize(
    ("who", "role", "status"),
    [
        ("surgeon", CoreRole.RADIOLOGIST, 403),
        ("pathologist", CoreRole.RADIOLOGIST, 403),
        ("coordinator", CoreRole.RADIOLOGIST, 403),
        ("radiologist of another team", CoreRole.RADIOLOGIST, 404),
        ("gp", CoreRole.RADIOLOGIST, 404),
        ("admin", CoreRole.RADIOLOGIST, 404),
    ],
)
def test_only_the_specialty_on_the_team_may_record_its_review(
    client, meeting, case, who, role, status
):
    if who == "surgeon":
        user = make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON)
    elif who == "pathologist":
        user = make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.PATHOLOGIST)
    elif who == "coordinator":
        user = make_member(meeting.team, role=Role.COORDINATOR)
    elif who == "radiologist of another team":
        user = make_member(TeamFactory(), role=Role.CLINICIAN, core_role=CoreRole.RADIOLOGIST)
    else:
        user = UserFactory()
        Membership.objects.create(
            user=user, organisation=meeting.team.host, role=Role.GP if who == "gp" else Role.ADMIN
        )
    client.force_login(user)
    response = client.post(
        review_url(case), {"role": role, "note": "Looked at it", "action": "done"}
    )
    assert response.status_code == status
    assert case.patient.family_name.lower() not in body(response).lower()
    assert not Review.objects.exists()


def test_reviews_are_posted_not_fetched(client, case, radiologist):
    client.force_login(radiologist)
    assert client.get(review_url(case)).status_code == 405


# My cases on the dashboard ---------------------------------------------------------------------


def test_my_cases_show_readiness_and_highlight_the_reviews_i_can_do(
    client, meeting, radiologist, pathologist
):
    full = CaseFactory(meeting=meeting, position=1, patient__family_name="Fullcase")
    soc = CaseFactory(
        meeting=meeting,
        position=2,
        triage=Case.Triage.STANDARD_OF_CARE,
        patient__family_name="Soccase",
    )
    reviews.record_review(
        user=pathologist, case=full, role=CoreRole.PATHOLOGIST, note="Reviewed", done=True
    )
    client.force_login(radiologist)
    page = body(client.get(reverse("mdt:dashboard")))
    assert "1 case needs your review before the meeting." in page
    full_row = page.split(f'id="my-case-{full.public_id}"')[1].split("</tr>")[0]
    assert "Radiology:" in full_row and "Your review" in full_row
    assert "Pathology:" in full_row and "Done" in full_row
    assert reverse("mdt:case", args=[full.public_id]) in full_row
    soc_row = page.split(f'id="my-case-{soc.public_id}"')[1].split("</tr>")[0]
    assert "None needed (standard of care (ratify))" in soc_row


def test_the_dashboard_queries_do_not_grow_with_cases(client, meeting, radiologist, pathologist):
    client.force_login(radiologist)

    def add_cases(count):
        for _ in range(count):
            case = CaseFactory(meeting=meeting)
            reviews.record_review(
                user=pathologist, case=case, role=CoreRole.PATHOLOGIST, note="ok", done=True
            )

    add_cases(2)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("mdt:dashboard"))
    add_cases(18)
    other = MeetingFactory(team=meeting.team)  # a second meeting of the team
    CaseFactory.create_batch(3, meeting=other)
    with CaptureQueriesContext(connection) as many:
        response = client.get(reverse("mdt:dashboard"))
    assert body(response).count('id="my-case-') == 23
    assert len(many) == len(few)


# The meeting's list ----------------------------------------------------------------------------


def test_the_list_shows_readiness_for_the_coordinator_to_chase(
    client, meeting, coordinator, radiologist, pathologist
):
    waiting = CaseFactory(meeting=meeting, position=1)
    half = CaseFactory(meeting=meeting, position=2)
    ready = CaseFactory(meeting=meeting, position=3)
    ratify = CaseFactory(meeting=meeting, position=4, triage=Case.Triage.STANDARD_OF_CARE)
    reviews.record_review(
        user=radiologist, case=half, role=CoreRole.RADIOLOGIST, note="ok", done=True
    )
    for role, user in ((CoreRole.RADIOLOGIST, radiologist), (CoreRole.PATHOLOGIST, pathologist)):
        reviews.record_review(user=user, case=ready, role=role, note="ok", done=True)
    client.force_login(coordinator)
    page = body(client.get(reverse("mdt:meeting", args=[meeting.public_id])))

    def row(case):
        return page.split(f'id="case-{case.public_id}"')[1].split("</tr>")[0]

    assert "Needs radiology, pathology" in row(waiting)
    assert "Needs pathology" in row(half)
    assert ">Ready<" in row(ready)
    assert "No review needed" in row(ratify)
    assert "Readiness" in page
    assert "What the triage means" in page
    assert "ratifies it without full discussion (COSD discussion type 2)" in page


def test_the_meeting_page_queries_do_not_grow_with_reviewed_cases(
    client, meeting, coordinator, radiologist, pathologist
):
    def add_reviewed_cases(count):
        for _ in range(count):
            case = CaseFactory(meeting=meeting)
            for role, user in (
                (CoreRole.RADIOLOGIST, radiologist),
                (CoreRole.PATHOLOGIST, pathologist),
            ):
                reviews.record_review(user=user, case=case, role=role, note="ok", done=True)

    client.force_login(coordinator)
    add_reviewed_cases(2)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("mdt:meeting", args=[meeting.public_id]))
    add_reviewed_cases(18)
    with CaptureQueriesContext(connection) as many:
        response = client.get(reverse("mdt:meeting", args=[meeting.public_id]))
    assert body(response).count(">Ready<") == 20
    assert len(many) == len(few)


def test_after_the_start_the_list_shows_each_cases_state_and_no_list_controls(
    client, meeting, coordinator, chair
):
    made = []
    for position, triage in enumerate(
        [
            Case.Triage.FULL_DISCUSSION,
            Case.Triage.STANDARD_OF_CARE,
            Case.Triage.FOR_INFORMATION,
            Case.Triage.FULL_DISCUSSION,
            Case.Triage.FULL_DISCUSSION,
            Case.Triage.FULL_DISCUSSION,
        ],
        start=1,
    ):
        case = CaseFactory(meeting=meeting, position=position, triage=triage)
        case.snapshot = SnapshotFactory(patient=case.patient)
        case.save()
        made.append(case)
    discussed, ratified, noted, deferred, withdrawn, listed = made
    live.start_meeting(user=chair, meeting=meeting)
    outcomes.save_draft(user=chair, case=discussed, revision=0, data=COMPLETE)
    outcomes.sign_outcome(user=chair, case=discussed, revision=1, snapshot_id=None)
    outcomes.save_draft(
        user=chair,
        case=ratified,
        revision=0,
        data={**COMPLETE, "planned_treatments": [], "standard_of_care": "Lung SoC 3: SABR"},
    )
    outcomes.sign_outcome(user=chair, case=ratified, revision=1, snapshot_id=None, ratify=True)
    conclusion.note_for_information(user=chair, case=noted)
    conclusion.defer_case(user=chair, case=deferred, reason="Awaiting PET-CT")
    conclusion.withdraw_case(user=chair, case=withdrawn, reason="Listed in error")

    client.force_login(coordinator)
    page = body(client.get(reverse("mdt:meeting", args=[meeting.public_id])))

    def row(case):
        return page.split(f'id="case-{case.public_id}"')[1].split("</tr>")[0]

    assert ">Discussed<" in row(discussed)
    assert reverse("mdt:outcome_history", args=[discussed.public_id]) in row(discussed)
    assert ">Ratified (standard of care)<" in row(ratified)
    assert reverse("mdt:outcome_history", args=[ratified.public_id]) in row(ratified)
    assert ">For information<" in row(noted)
    assert ">Deferred<" in row(deferred)
    assert "carried over when the meeting ends" in row(deferred)
    assert f'id="case-{withdrawn.public_id}"' not in page  # withdrawn cases leave the list
    assert ">Listed<" in row(listed) and "Needs radiology, pathology" in row(listed)
    assert "outcomes/" not in row(listed)
    for control in ("mdt:move_case", "mdt:set_triage", "mdt:remove_case"):
        assert reverse(control, args=[listed.public_id]) not in page

    # Concluding carries the deferred case over: the list says where to.
    outcomes.save_draft(user=chair, case=listed, revision=0, data=COMPLETE)
    outcomes.sign_outcome(user=chair, case=listed, revision=1, snapshot_id=None)
    result = conclusion.conclude_meeting(user=chair, meeting=meeting)
    carried_to = result.carried_over[0][1].meeting.starts_at
    page = body(client.get(reverse("mdt:meeting", args=[meeting.public_id])))
    assert f"→ carried to {timezone.localtime(carried_to).day}" in row(deferred)


def test_list_controls_never_show_on_a_final_case(client, meeting, coordinator):
    listed = CaseFactory(meeting=meeting, position=1)
    final = CaseFactory(meeting=meeting, position=2, status=Case.Status.DEFERRED)
    client.force_login(coordinator)
    page = body(client.get(reverse("mdt:meeting", args=[meeting.public_id])))
    assert reverse("mdt:remove_case", args=[listed.public_id]) in page
    for control in ("mdt:move_case", "mdt:set_triage", "mdt:remove_case"):
        assert reverse(control, args=[final.public_id]) not in page


def test_every_triage_keeps_the_patient_on_the_list_and_says_what_it_means(
    client, meeting, coordinator
):
    cases = [
        CaseFactory(meeting=meeting, position=n, triage=triage)
        for n, triage in enumerate(Case.Triage.values, start=1)
    ]
    client.force_login(coordinator)
    page = body(client.get(reverse("mdt:meeting", args=[meeting.public_id])))
    for case in cases:
        assert f'id="case-{case.public_id}"' in page
    # The add-a-patient form says what each triage means.
    assert "Standard of care: ratify without full discussion (COSD discussion type 2)" in page
    assert "For information: the MDT notes the case, without discussion or an outcome" in page


# Other MDT discussions on the case page ------------------------------------------------------


def test_other_discussions_show_state_and_signed_outcome_and_flag_another_upcoming_listing(
    client, meeting, case, radiologist
):
    patient = case.patient
    breast = MeetingFactory(team__name="Breast MDT", starts_at=timezone.now() + timedelta(days=10))
    CaseFactory(meeting=breast, patient=patient, question="Secret question about the breast")
    past = MeetingFactory(team__name="Upper GI MDT", starts_at=timezone.now() - timedelta(days=1))
    past.cutoff_at = past.starts_at - timedelta(days=1)
    past.save()
    signed_case = CaseFactory(meeting=past, patient=patient)
    signed_case.snapshot = SnapshotFactory(patient=patient)
    signed_case.save()
    gi_chair = make_member(past.team, role=Role.CHAIR, core_role=CoreRole.CHAIR)
    live.start_meeting(user=gi_chair, meeting=past)
    outcomes.save_draft(user=gi_chair, case=signed_case, revision=0, data=COMPLETE)
    outcomes.sign_outcome(user=gi_chair, case=signed_case, revision=1, snapshot_id=None)
    withdrawn = MeetingFactory(team__name="Colorectal MDT")
    CaseFactory(
        meeting=withdrawn, patient=patient, status=Case.Status.REMOVED, removed_reason="Error"
    )

    client.force_login(radiologist)
    with CaptureQueriesContext(connection) as captured:
        page = body(client.get(reverse("mdt:case", args=[case.public_id])))
    assert "Also listed at Breast MDT on" in page
    assert "Also listed at Upper GI MDT" not in page  # discussed already
    assert "Also listed at Colorectal MDT" not in page  # withdrawn
    other = page.split('id="other-discussions"')[1]
    assert "Breast MDT" in other and ">Listed<" in other
    assert "Upper GI MDT" in other and ">Discussed<" in other
    assert "Treatment plan agreed, curative intent" in other
    assert f"Signed {timezone.localdate().day}" in other
    assert "Colorectal MDT" in other and ">Withdrawn<" in other
    # Scope: the other listings' team, date, state and outcome headline, nothing more.
    assert "Secret question about the breast" not in page
    assert COMPLETE["plan"] not in page
    assert "Error" not in other
    assert len(captured) < 20


def test_a_patient_on_no_other_list(client, case, radiologist):
    client.force_login(radiologist)
    page = body(client.get(reverse("mdt:case", args=[case.public_id])))
    assert "None elsewhere in the region." in page
    assert "Also listed at" not in page


def test_other_team_patients_are_not_reached_through_reviews(client, radiologist):
    stranger = CaseFactory(patient=PatientFactory(family_name="Stranger"))
    client.force_login(radiologist)
    response = client.post(
        review_url(stranger), {"role": CoreRole.RADIOLOGIST, "note": "x", "action": "done"}
    )
    assert response.status_code == 404
    assert "stranger" not in body(response).lower()
