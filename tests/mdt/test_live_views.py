"""The live meeting's pages: the console, following, outcomes (save, conflict, sign, amend),
ending cases, concluding and the summary (mdt/views_live.py)."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Role
from mdt import live, outcomes, views_live
from mdt.forms_outcome import OutcomeForm
from mdt.models import Attendance, Case, CoreRole, DiscussionPeriod, Meeting, Outcome
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    SnapshotFactory,
    TeamFactory,
    make_member,
)

pytestmark = pytest.mark.django_db
POLL = {"X-Background-Poll": "1", "HX-Request": "true"}


@pytest.fixture
def meeting():
    return MeetingFactory(starts_at=timezone.now() + timedelta(hours=1))


@pytest.fixture
def chair(meeting):
    user = make_member(meeting.team, role=Role.CHAIR, core_role=CoreRole.CHAIR)
    user.first_name, user.last_name = "Clara", "Chair"
    user.save()
    meeting.chair = user
    meeting.save()
    return user


@pytest.fixture
def coordinator(meeting):
    user = make_member(meeting.team, role=Role.COORDINATOR, core_role=CoreRole.COORDINATOR)
    user.first_name, user.last_name = "Colin", "Coordinator"
    user.save()
    return user


@pytest.fixture
def clinician(meeting):
    return make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON)


@pytest.fixture
def cases(meeting):
    made = []
    for position, name in enumerate(["Firstcase", "Secondcase", "Thirdcase"], start=1):
        case = CaseFactory(meeting=meeting, position=position, patient__family_name=name)
        case.snapshot = SnapshotFactory(patient=case.patient)
        case.save()
        made.append(case)
    return made


@pytest.fixture
def started(meeting, chair, cases):
    live.start_meeting(user=chair, meeting=meeting)
    meeting.refresh_from_db()
    return meeting


def url(name, obj, **query):
    address = reverse(f"mdt:{name}", args=[obj.public_id])
    if query:
        address += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return address


def outcome_form(revision=0, **fields):
    data = {
        "revision": str(revision),
        "discussion_date": timezone.localdate().isoformat(),
        "category": "treatment",
        "care_plan_intent": "C",
        "planned_treatments": ["01"],
        "plan": "Right upper lobectomy.",
        "action_rows": "3",
        "action_0": "Book pre-op assessment",
        "owner_0": "CNS",
        "due_0": (timezone.localdate() + timedelta(days=7)).isoformat(),
        "patient_informed": "no",
    }
    data.update(fields)
    return data


def body(response) -> str:
    return response.content.decode()


# Starting and moving through the cases


def test_starting_the_meeting_opens_the_console_on_the_first_case(client, meeting, chair, cases):
    client.force_login(chair)
    response = client.post(url("start_meeting", meeting))
    assert response.status_code == 302
    assert response["Location"] == url("console", meeting)
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.IN_PROGRESS
    assert meeting.current_case == cases[0]

    page = client.get(url("console", meeting))
    assert page.status_code == 200
    assert "FIRSTCASE" in body(page)
    assert 'id="outcome-form"' in body(page)


def test_the_meeting_page_offers_start_then_console_follow_and_conclude(
    client, meeting, chair, clinician, cases
):
    client.force_login(chair)
    page = body(client.get(url("meeting", meeting)))
    assert "Start the meeting" in page and "Open the chair&#39;s console" not in page
    live.start_meeting(user=chair, meeting=meeting)
    page = body(client.get(url("meeting", meeting)))
    assert "Start the meeting" not in page
    assert "Open the chair" in page and "Follow the meeting" in page
    assert "Conclude the meeting" in page

    client.force_login(clinician)
    page = body(client.get(url("meeting", meeting)))
    assert "Follow the meeting" in page
    assert "Open the chair" not in page and "Conclude the meeting" not in page


def test_next_previous_and_jump_move_the_shared_screen(client, started, chair, cases):
    client.force_login(chair)
    client.post(url("show_case", started), {"direction": "next"})
    started.refresh_from_db()
    assert started.current_case == cases[1]
    client.post(url("show_case", started), {"case": str(cases[2].public_id)})
    started.refresh_from_db()
    assert started.current_case == cases[2]
    client.post(url("show_case", started), {"direction": "previous"})
    started.refresh_from_db()
    assert started.current_case == cases[1]
    event = AuditEvent.objects.filter(action="show_case").latest("id")
    assert event.object_ref == str(cases[1].public_id)
    assert event.patient_ids == [cases[1].patient_id]


def test_next_on_the_last_case_says_so(client, started, chair, cases):
    client.force_login(chair)
    client.post(url("show_case", started), {"case": str(cases[2].public_id)})
    response = client.post(url("show_case", started), {"direction": "next"}, follow=True)
    assert "This is the last case." in body(response)


def test_the_console_can_open_a_case_without_moving_the_screen(client, started, chair, cases):
    client.force_login(chair)
    page = body(client.get(url("console", started, case=cases[2].public_id)))
    assert "THIRDCASE" in page
    assert "This case is not on the shared screen." in page
    started.refresh_from_db()
    assert started.current_case == cases[0]


def test_the_console_is_for_the_chair_and_coordinator_only(client, started, clinician):
    client.force_login(clinician)
    assert client.get(url("console", started)).status_code == 403
    assert client.post(url("show_case", started), {"direction": "next"}).status_code == 403


# Following the meeting


def test_the_poll_answers_204_until_something_changes(client, started, chair, clinician, cases):
    client.force_login(clinician)
    page = client.get(url("follow", started))
    assert "FIRSTCASE" in body(page)
    version = started.live_version
    unchanged = client.get(
        url("live_state", started, v=version, case=cases[0].public_id), headers=POLL
    )
    assert unchanged.status_code == 204
    assert unchanged.content == b""

    live.show_case(user=chair, meeting=started, case=cases[1])
    changed = client.get(
        url("live_state", started, v=version, case=cases[0].public_id), headers=POLL
    )
    assert changed.status_code == 200
    fragment = body(changed)
    assert "SECONDCASE" in fragment and "FIRSTCASE" not in fragment
    assert 'id="live-announcement" hx-swap-oob' in fragment
    assert "Now showing case 2" in fragment
    started.refresh_from_db()
    assert f"v={started.live_version}" in fragment


def test_an_unchanged_poll_is_two_queries_in_the_view(client, started, clinician, cases):
    client.force_login(clinician)
    client.get(url("follow", started))
    address = url("live_state", started, v=started.live_version, case=cases[0].public_id)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(address, headers=POLL)
    assert response.status_code == 204
    ours = [q["sql"] for q in queries.captured_queries if "django_session" not in q["sql"]]
    ours = [sql for sql in ours if 'FROM "accounts_user" WHERE' not in sql]
    assert len(ours) <= 2, ours


def test_a_new_case_on_the_follower_page_is_audited_and_an_unchanged_poll_is_not(
    client, started, chair, clinician, cases
):
    client.force_login(clinician)
    version = started.live_version
    before = AuditEvent.objects.count()
    client.get(url("live_state", started, v=version, case=cases[0].public_id), headers=POLL)
    assert AuditEvent.objects.count() == before
    live.show_case(user=chair, meeting=started, case=cases[1])
    client.get(url("live_state", started, v=version, case=cases[0].public_id), headers=POLL)
    event = AuditEvent.objects.latest("id")
    assert event.patient_ids == [cases[1].patient_id]


def test_followers_share_one_render_per_version_but_each_is_audited(
    client, started, chair, clinician, cases
):
    other = make_member(started.team, role=Role.CLINICIAN, core_role=CoreRole.ONCOLOGIST)
    version = started.live_version
    live.show_case(user=chair, meeting=started, case=cases[1])
    address = url("live_state", started, v=version, case=cases[0].public_id)
    with mock.patch("mdt.views_live.render_to_string", wraps=views_live.render_to_string) as render:
        for user in (clinician, other):
            client.force_login(user)
            fragment = body(client.get(address, headers=POLL))
            assert "SECONDCASE" in fragment and "Now showing case 2" in fragment
    assert render.call_count == 1
    seen_by = set(
        AuditEvent.objects.filter(patient_ids=[cases[1].patient_id]).values_list("actor", flat=True)
    )
    assert {clinician.pk, other.pk} <= seen_by


def test_a_draft_shows_on_the_follower_page(client, started, chair, clinician, cases):
    outcomes.save_draft(
        user=chair,
        case=cases[0],
        revision=0,
        data={"plan": "Refer for SABR", "category": "treatment"},
    )
    client.force_login(clinician)
    page = body(client.get(url("follow", started)))
    assert "Refer for SABR" in page and "Draft" in page


def test_presentation_mode_has_no_navigation_and_keeps_present_in_the_poll(
    client, started, clinician
):
    client.force_login(clinician)
    page = body(client.get(url("follow", started, present=1)))
    assert "app-present" in page
    assert "nhsuk-header" not in page
    assert "&amp;present=1" in page or "&present=1" in page


def test_followers_check_themselves_in(client, started, clinician):
    client.force_login(clinician)
    response = client.post(url("attendance", started), {"status": "remote"})
    assert response["Location"] == url("follow", started)
    attendance = Attendance.objects.get(meeting=started, user=clinician)
    assert (attendance.status, attendance.core_role) == ("remote", CoreRole.SURGEON)
    assert "Joined remotely" in body(client.get(url("attendance", started)))


def test_only_the_chair_or_coordinator_records_others(client, started, clinician, chair):
    member = chair.team_memberships.get()
    client.force_login(clinician)
    response = client.post(url("attendance", started), {"member": member.pk, "status": "present"})
    assert response.status_code == 403
    client.force_login(chair)
    client.post(url("attendance", started), {"member": member.pk, "status": "present"})
    client.post(url("attendance", started), {"member": member.pk, "status": "left"})
    attendance = Attendance.objects.get(meeting=started, user=chair)
    assert attendance.left_at is not None


# Outcomes


def test_saving_a_draft_keeps_the_console_on_that_case(client, started, coordinator, cases):
    client.force_login(coordinator)
    response = client.post(url("save_outcome", cases[0]), outcome_form())
    assert response.status_code == 302
    assert response["Location"] == url("console", started, case=cases[0].public_id) + "#outcome"
    draft = Outcome.objects.get(case=cases[0])
    assert draft.plan == "Right upper lobectomy."
    assert draft.actions == [
        {
            "action": "Book pre-op assessment",
            "owner": "CNS",
            "due": (timezone.localdate() + timedelta(days=7)).isoformat(),
        }
    ]
    page = body(client.get(response["Location"]))
    assert 'value="Book pre-op assessment"' in page
    assert 'name="revision" value="1"' in page
    assert 'name="action_rows" value="4"' in page  # the action and three blank rows


def test_a_stale_save_shows_the_other_change_and_keeps_yours(
    client, started, chair, coordinator, cases
):
    client.force_login(coordinator)
    client.post(url("save_outcome", cases[0]), outcome_form())
    outcomes.save_draft(
        user=chair, case=cases[0], revision=1, data={"plan": "Stereotactic radiotherapy."}
    )
    response = client.post(
        url("save_outcome", cases[0]), outcome_form(revision=1, plan="Lobectomy after all.")
    )
    page = body(response)
    assert response.status_code == 409
    assert "Clara Chair saved this outcome while you were editing it" in page
    assert "Stereotactic radiotherapy." in page  # theirs
    assert "Lobectomy after all." in page  # yours, kept in the form
    assert 'name="revision" value="2"' in page  # re-saving is deliberate
    assert Outcome.objects.get(case=cases[0]).plan == "Stereotactic radiotherapy."

    again = client.post(
        url("save_outcome", cases[0]), outcome_form(revision=2, plan="Lobectomy after all.")
    )
    assert again.status_code == 302
    assert Outcome.objects.get(case=cases[0]).plan == "Lobectomy after all."


def test_a_form_error_keeps_what_was_typed(client, started, coordinator, cases):
    client.force_login(coordinator)
    response = client.post(
        url("save_outcome", cases[0]), outcome_form(agreed_icd10="lung", plan="Kept plan")
    )
    page = body(response)
    assert response.status_code == 200
    assert "Enter the ICD-10 code like C34.1" in page
    assert "Kept plan" in page
    assert not Outcome.objects.exists()


def test_the_chair_signs_and_a_second_press_is_harmless(client, started, chair, cases):
    client.force_login(chair)
    form = outcome_form(snapshot=str(cases[0].snapshot_id))
    first = client.post(url("sign_outcome", cases[0]), form)
    second = client.post(url("sign_outcome", cases[0]), form)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    signed = Outcome.objects.get(case=cases[0])
    assert signed.is_signed and signed.signed_by == chair
    assert signed.snapshot == cases[0].snapshot
    cases[0].refresh_from_db()
    assert cases[0].status == Case.Status.DISCUSSED
    page = body(client.get(first["Location"]))
    assert "Signed" in page and "Amend this outcome" in page
    assert 'id="outcome-form"' not in page


def test_signing_an_incomplete_outcome_says_what_is_missing(client, started, chair, cases):
    client.force_login(chair)
    response = client.post(
        url("sign_outcome", cases[0]), outcome_form(plan="", category="", agreed_diagnosis="NSCLC")
    )
    page = body(response)
    assert "Choose the outcome." in page and "Write the plan in words." in page
    assert 'value="NSCLC"' in page  # what was typed is kept in the form
    assert not Outcome.objects.exists()  # and nothing is saved or signed


def test_a_standard_of_care_case_is_ratified(client, started, chair, cases):
    cases[0].triage = Case.Triage.STANDARD_OF_CARE
    cases[0].save()
    client.force_login(chair)
    page = body(client.get(url("console", started)))
    assert "Ratify (standard of care)" in page
    client.post(
        url("sign_outcome", cases[0]),
        outcome_form(ratify="1", planned_treatments=[], standard_of_care="Lung SoC 3"),
    )
    cases[0].refresh_from_db()
    assert cases[0].status == Case.Status.RATIFIED


def test_only_a_chair_signs(client, started, coordinator, cases):
    client.force_login(coordinator)
    response = client.post(url("sign_outcome", cases[0]), outcome_form())
    assert response.status_code == 403
    assert not Outcome.objects.exists()
    assert "Sign the outcome" not in body(client.get(url("console", started)))


def test_amending_makes_a_new_version_and_history_shows_both(client, started, chair, cases):
    client.force_login(chair)
    client.post(url("sign_outcome", cases[0]), outcome_form())
    response = client.post(url("amend_outcome", cases[0]), {"reason": "Wrong T stage"})
    assert response.status_code == 302
    amendment = Outcome.objects.get(case=cases[0], amendment_no=1)
    assert amendment.amendment_reason == "Wrong T stage" and not amendment.is_signed
    client.post(
        url("sign_outcome", cases[0]),
        outcome_form(revision=amendment.revision, stage_t="T2a"),
    )
    history = client.get(url("outcome_history", cases[0]))
    page = body(history)
    assert "Outcome agreed at the meeting" in page and "Amendment 1" in page
    assert "Wrong T stage" in page and "T2a" in page
    assert page.count("Signed by Clara Chair") == 2
    event = AuditEvent.objects.latest("id")
    assert event.patient_ids == [cases[0].patient_id]


def test_amending_needs_a_reason(client, started, chair, cases):
    client.force_login(chair)
    client.post(url("sign_outcome", cases[0]), outcome_form())
    started.status = Meeting.Status.CONCLUDED
    started.save()
    response = client.post(url("amend_outcome", cases[0]), {"reason": " "})
    assert "Give the reason for amending" in body(response)
    assert Outcome.objects.filter(case=cases[0]).count() == 1


def test_after_the_meeting_the_amendment_is_edited_on_its_own_page(client, started, chair, cases):
    client.force_login(chair)
    client.post(url("sign_outcome", cases[0]), outcome_form())
    Meeting.objects.filter(pk=started.pk).update(status=Meeting.Status.CONCLUDED)
    response = client.post(url("amend_outcome", cases[0]), {"reason": "Typo in plan"})
    assert response["Location"] == url("amend_outcome", cases[0])
    page = body(client.get(response["Location"]))
    assert 'id="outcome-form"' in page and "Sign amendment 1" in page


# Ending cases without an outcome, concluding, the summary


def test_defer_note_and_withdraw(client, started, chair, cases):
    cases[1].triage = Case.Triage.FOR_INFORMATION
    cases[1].save()
    client.force_login(chair)
    client.post(url("defer_case", cases[0]), {"reason": "Awaiting PET-CT"})
    client.post(url("note_case", cases[1]))
    client.post(url("withdraw_case", cases[2]), {"reason": "Listed in error"})
    statuses = [Case.objects.get(pk=case.pk).status for case in cases]
    assert statuses == [Case.Status.DEFERRED, Case.Status.FOR_INFORMATION, Case.Status.REMOVED]
    assert AuditEvent.objects.filter(action="defer_case", reason="Awaiting PET-CT").exists()


def test_deferring_without_a_reason_is_refused(client, started, chair, cases):
    client.force_login(chair)
    response = client.post(url("defer_case", cases[0]), {"reason": ""}, follow=True)
    assert "Give the reason for deferring this case." in body(response)
    assert Case.objects.get(pk=cases[0].pk).status == Case.Status.LISTED


def test_concluding_is_refused_with_open_cases_then_carries_deferred_ones_over(
    client, started, chair, cases
):
    client.force_login(chair)
    refused = client.post(url("conclude", started), {"from": "meeting"}, follow=True)
    assert "3 case(s) still need an outcome" in body(refused)
    assert "FIRSTCASE" in body(refused)
    started.refresh_from_db()
    assert started.status == Meeting.Status.IN_PROGRESS

    client.post(url("sign_outcome", cases[0]), outcome_form())
    client.post(url("defer_case", cases[1]), {"reason": "Awaiting PET-CT"})
    client.post(url("withdraw_case", cases[2]), {"reason": "Listed in error"})
    response = client.post(url("conclude", started))
    assert response["Location"] == url("meeting_summary", started)
    started.refresh_from_db()
    assert started.status == Meeting.Status.CONCLUDED
    carried = Case.objects.get(pk=cases[1].pk).carried_over_to
    assert carried.meeting != started and carried.patient == cases[1].patient

    summary = body(client.get(response["Location"]))
    assert "1 discussed, 1 deferred, 1 withdrawn" in summary
    assert "Awaiting PET-CT" in summary and "Carried over to" in summary


def test_the_summary_shows_time_per_case_and_in_total(client, started, chair, cases):
    start = timezone.now() - timedelta(minutes=10)
    DiscussionPeriod.objects.filter(case__meeting=started).delete()
    DiscussionPeriod.objects.create(
        case=cases[0], started_at=start, ended_at=start + timedelta(minutes=3, seconds=5)
    )
    DiscussionPeriod.objects.create(
        case=cases[1],
        started_at=start + timedelta(minutes=4),
        ended_at=start + timedelta(minutes=5, seconds=30),
    )
    client.force_login(chair)
    page = body(client.get(url("meeting_summary", started)))
    assert "3 min 05 s" in page and "1 min 30 s" in page
    assert "4 min 35 s in total" in page


def test_the_summary_flags_an_outcome_signed_without_quorum(client, started, chair, cases):
    client.force_login(chair)
    client.post(url("sign_outcome", cases[0]), outcome_form())
    page = body(client.get(url("meeting_summary", started)))
    assert "Not quorate" in page


# Scope


def test_other_teams_see_nothing(client, started, cases):
    stranger = make_member(TeamFactory(), role=Role.CHAIR, core_role=CoreRole.CHAIR)
    client.force_login(stranger)
    for name in ("console", "follow", "attendance", "meeting_summary"):
        assert client.get(url(name, started)).status_code == 404, name
    assert client.get(url("live_state", started, v=0), headers=POLL).status_code == 404
    assert client.get(url("outcome_history", cases[0])).status_code == 404
    assert client.post(url("sign_outcome", cases[0]), outcome_form()).status_code == 404
    assert client.post(url("start_meeting", started)).status_code == 404


def test_the_form_covers_every_editable_field():
    form = OutcomeForm()
    assert set(outcomes.EDITABLE_FIELDS) - {"actions"} <= set(form.fields)
