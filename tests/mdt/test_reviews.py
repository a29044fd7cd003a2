"""Reviews before the meeting and the readiness they give a case (mdt/reviews.py)."""

import pytest

from accounts.models import Role
from mdt import reviews
from mdt.models import Case, CoreRole, Review
from mdt.services import ListError
from tests.factories import CaseFactory, MeetingFactory, make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def meeting():
    return MeetingFactory()


@pytest.fixture
def case(meeting):
    return CaseFactory(meeting=meeting)


@pytest.fixture
def radiologist(meeting):
    return make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.RADIOLOGIST)


@pytest.fixture
def pathologist(meeting):
    return make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.PATHOLOGIST)


def review(user, case, role=CoreRole.RADIOLOGIST, note="CT: 3 cm RUL mass, no nodes", done=True):
    return reviews.record_review(user=user, case=case, role=role, note=note, done=done)


def test_only_a_member_in_that_specialty_records_its_review(meeting, case, radiologist):
    surgeon = make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON)
    with pytest.raises(ListError, match="Only a member of this MDT in that specialty"):
        review(surgeon, case)
    with pytest.raises(ListError):
        review(radiologist, case, role=CoreRole.PATHOLOGIST)
    assert not Review.objects.exists()
    assert reviews.reviewer_roles(radiologist, case) == [CoreRole.RADIOLOGIST]
    assert reviews.reviewer_roles(surgeon, case) == []


def test_a_radiologist_of_another_team_cannot_review(case):
    outsider = make_member(MeetingFactory().team, core_role=CoreRole.RADIOLOGIST)
    with pytest.raises(ListError):
        review(outsider, case)


def test_a_note_is_needed_to_mark_a_review_done(case, radiologist):
    with pytest.raises(ListError, match="Write a short review note") as refused:
        review(radiologist, case, note="   ")
    assert refused.value.field == "note"
    draft = review(radiologist, case, note="", done=False)  # saving without a note is fine
    assert not draft.is_done


def test_a_review_is_done_then_undone_and_stays_one_row(case, radiologist):
    done = review(radiologist, case, note="  Imaging reviewed  ")
    assert done.is_done
    assert done.note == "Imaging reviewed"
    first_done_at = done.done_at
    again = review(radiologist, case, note="Imaging reviewed, nodes re-measured")
    assert again.done_at == first_done_at  # saving a done review keeps when it was done
    undone = review(radiologist, case, note="Needs the PET first", done=False)
    assert undone.done_at is None
    assert Review.objects.get(case=case).note == "Needs the PET first"


def test_a_fully_discussed_case_needs_its_teams_review_roles(case, radiologist, pathologist):
    states = reviews.readiness(case)
    assert [(s.role, s.label, s.done) for s in states] == [
        (CoreRole.RADIOLOGIST, "Radiologist", False),
        (CoreRole.PATHOLOGIST, "Histopathologist", False),
    ]
    assert not reviews.is_ready(states)
    review(radiologist, case)
    assert not reviews.is_ready(reviews.readiness(case))
    review(pathologist, case, role=CoreRole.PATHOLOGIST, note="Adenocarcinoma, TTF1 positive")
    assert reviews.is_ready(reviews.readiness(case))


@pytest.mark.parametrize("triage", [Case.Triage.STANDARD_OF_CARE, Case.Triage.FOR_INFORMATION])
def test_ratified_and_information_cases_need_no_review(meeting, triage):
    case = CaseFactory(meeting=meeting, triage=triage)
    assert reviews.roles_needed(case) == []
    assert reviews.readiness(case) == []
    assert reviews.is_ready(reviews.readiness(case))


def test_the_team_decides_which_roles_review(meeting, case):
    meeting.team.review_roles = [CoreRole.RADIOLOGIST]
    meeting.team.save()
    case.refresh_from_db()
    assert [state.role for state in reviews.readiness(case)] == [CoreRole.RADIOLOGIST]


def test_a_draft_review_does_not_make_the_case_ready(case, radiologist, pathologist):
    review(radiologist, case)
    review(pathologist, case, role=CoreRole.PATHOLOGIST, note="Pending", done=False)
    states = reviews.readiness(case)
    assert [s.done for s in states] == [True, False]
    assert states[1].review.note == "Pending"


@pytest.mark.parametrize(
    "status",
    [
        Case.Status.DISCUSSED,
        Case.Status.RATIFIED,
        Case.Status.DEFERRED,
        Case.Status.FOR_INFORMATION,
        Case.Status.REMOVED,
    ],
)
def test_a_final_case_refuses_reviews(case, radiologist, status):
    case.status = status
    case.save()
    with pytest.raises(ListError, match="already been dealt with"):
        review(radiologist, case)
    assert not Review.objects.exists()
