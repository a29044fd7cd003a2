"""What an outcome letter to the GP says, gathered from the outcome, its case, meeting, team and
patient into plain values for the letter template (which only lays them out).

The content follows the PRSB clinical letter headings. A restricted patient's address (PDS
``meta.security`` R) is never put in the context, so neither the preview nor the PDF can show it.
A draft can be previewed beside the outcome form: it says it is a draft, and its attendance and
missing roles are those of the room now rather than those recorded at signing."""

from datetime import datetime

from django.utils import timezone

from accounts.display import format_date, format_datetime, format_nhs_number
from accounts.models import Organisation

from . import reviews
from .live import quoracy
from .models import (
    Attendance,
    CoreRole,
    PerformanceStatus,
    PlannedTreatment,
    TeamMember,
    TumourSite,
)

ROLE_LABELS = dict(CoreRole.choices)


def letter_context(outcome, recipient: Organisation | None, supersedes=None) -> dict:
    """Everything the letter template shows. ``recipient`` is the GP practice the letter goes to
    (the patient's practice frozen at signing; None only in a preview for a patient with no
    practice, which the letter then says). ``supersedes`` is the earlier letter this one
    replaces: the earlier signed ``Outcome`` version, or a letter row with an ``outcome``."""
    case = outcome.case
    meeting = case.meeting
    team = meeting.team
    host = team.host
    patient = case.patient
    first = _first_version(outcome)
    agreed_at = first.signed_at if first is not None else None
    attendance = list(meeting.attendance.select_related("user").order_by("core_role", "id"))
    missing_core, missing_case = _missing_roles(outcome, first, attendance)
    nhs_number = format_nhs_number(patient.nhs_number)
    discussed = format_date(outcome.discussion_date)
    version = f" (amendment {outcome.amendment_no})" if outcome.amendment_no else ""
    signer = outcome.signed_by.display_name if outcome.signed_by_id else ""

    return {
        "title": f"MDT outcome letter: {team.name}, discussed {discussed}{version}",
        "author": f"{signer}, chair, {team.name}" if signer else team.name,
        "lang": "en-GB",
        "reference": str(outcome.public_id),
        "version": _version_label(outcome),
        "is_draft": not outcome.is_signed,
        "letter_date": format_date(outcome.signed_at or timezone.localdate()),
        "sender": {
            "trust": host.name,
            "ods_code": host.ods_code,
            "address_lines": _lines(host.address),
            "team": team.name,
            "tumour_site": TumourSite(team.tumour_site).label if team.tumour_site else "",
            "coordinators": _coordinators(team, attendance),
        },
        "recipient": {
            "name": recipient.name,
            "ods_code": recipient.ods_code,
            "address_lines": _lines(recipient.address),
        }
        if recipient is not None
        else None,
        "patient": _patient(patient, nhs_number, recipient),
        "meeting": {"discussion_date": discussed},
        "diagnosis": _diagnosis(outcome),
        "discussion": {
            "question": case.question,
            "referrer": case.referrer,
            "reviews": _reviews(case),
            "ratified": outcome.ratified,
            "standard_of_care": getattr(outcome, "standard_of_care", "") or "",
        },
        "outcome": _outcome(outcome),
        "plan": _paragraphs(outcome.plan),
        "actions": [
            {
                "action": action.get("action", ""),
                "owner": action.get("owner", ""),
                "due": format_date(action.get("due") or None),
            }
            for action in outcome.actions or []
        ],
        "gp_actions": _paragraphs(outcome.gp_actions),
        "key_worker": outcome.key_worker,
        "informed": {
            "told": outcome.patient_informed,
            "by": outcome.informed_by,
            "at": format_datetime(outcome.informed_at),
        },
        "attendees": _attendees(attendance, agreed_at),
        "apologies": [
            {"name": row.user.display_name, "role": ROLE_LABELS.get(row.core_role, row.core_role)}
            for row in attendance
            if row.status == Attendance.Status.APOLOGIES
        ],
        "chair": {"name": signer, "signed_at": format_datetime(outcome.signed_at)},
        "flags": _flags(missing_core, missing_case),
        "amendment": _amendment(outcome, supersedes),
    }


def _first_version(outcome):
    """The version agreed at the meeting (amendment 0), whose signing is when the room agreed."""
    if outcome.amendment_no == 0:
        return outcome if outcome.is_signed else None
    return outcome.case.outcomes.filter(amendment_no=0).first()


def _missing_roles(outcome, first, attendance: list[Attendance]) -> tuple[list[str], list[str]]:
    """As recorded at signing; for a draft of the first version, as the room stands now."""
    if outcome.is_signed or outcome.amendment_no:
        recorded = outcome if outcome.is_signed else first
        return list(recorded.missing_core_roles), list(recorded.missing_case_roles)
    room = quoracy(outcome.case.meeting, attendance)
    needed = reviews.roles_needed(outcome.case)
    return room.missing_roles, [role for role in needed if role not in room.present_roles]


def _flags(missing_core: list[str], missing_case: list[str]) -> list[str]:
    flags = [
        f"{ROLE_LABELS.get(role, role)} not present when this outcome was agreed "
        "(this case needed their review)."
        for role in missing_case
    ]
    others = [ROLE_LABELS.get(role, role) for role in missing_core if role not in missing_case]
    if missing_core:
        absent = f" (also absent: {', '.join(others)})" if others else ""
        flags.append(
            "The meeting was not quorate when this outcome was agreed: not every core member "
            f"of the team was present{absent}."
        )
    return flags


def _patient(patient, nhs_number: str, practice: Organisation | None) -> dict:
    restricted = patient.restricted
    return {
        "name": patient.full_name,
        "birth_date": format_date(patient.birth_date),
        "nhs_number": nhs_number,
        "sex": patient.get_sex_display() if patient.sex != patient.Sex.UNKNOWN else "",
        "restricted": restricted,
        # Never read the address or postcode of a restricted patient into the letter.
        "address_lines": [] if restricted else _lines(patient.shown_address),
        "postcode": "" if restricted else patient.postcode,
        "gp_practice": f"{practice.name} ({practice.ods_code})" if practice else "",
        "deceased": patient.deceased,
    }


def _diagnosis(outcome) -> dict:
    tnm = " ".join(
        _stage_axis(axis, value)
        for axis, value in (("T", outcome.stage_t), ("N", outcome.stage_n), ("M", outcome.stage_m))
        if value
    )
    performance = (
        f"WHO {PerformanceStatus(outcome.performance_status).label}"
        if outcome.performance_status
        else ""
    )
    return {
        "diagnosis": outcome.agreed_diagnosis,
        "icd10": outcome.agreed_icd10,
        "tnm": tnm,
        "stage_group": outcome.stage_group,
        "performance_status": performance,
    }


def _stage_axis(axis: str, value: str) -> str:
    """``2a`` becomes ``T2a``; a value that already names its axis (``pT2a``) stays as written."""
    value = value.strip()
    if axis.lower() in value.lower():
        return value
    return f"{axis}{'X' if value.lower() == 'x' else value}"


def _outcome(outcome) -> dict:
    trial = ""
    if outcome.trial_referred:
        trial = "Referred to a clinical trial"
    elif outcome.trial_considered:
        trial = "A clinical trial was considered; the patient was not referred"
    if trial and outcome.trial_name:
        trial = f"{trial}: {outcome.trial_name}"
    return {
        "category": outcome.get_category_display(),
        "intent": outcome.get_care_plan_intent_display(),
        "treatments": [PlannedTreatment(code).label for code in outcome.planned_treatments],
        "no_treatment_reason": outcome.get_no_treatment_reason_display(),
        "trial": trial,
    }


def _reviews(case) -> list[dict]:
    return [
        {"role": ROLE_LABELS.get(review.role, review.role), "note": _paragraphs(review.note)}
        for review in case.reviews.all()
        if review.is_done and review.note.strip()
    ]


def _attendees(attendance: list[Attendance], agreed_at: datetime | None) -> list[dict]:
    """Who was in the room when the outcome was agreed (for a draft: who is in the room now)."""
    rows = []
    for row in attendance:
        if row.status == Attendance.Status.APOLOGIES:
            continue
        if agreed_at is None:
            if row.left_at is not None:
                continue
        elif (row.joined_at and row.joined_at > agreed_at) or (
            row.left_at and row.left_at <= agreed_at
        ):
            continue
        rows.append(
            {
                "name": row.user.display_name,
                "role": ROLE_LABELS.get(row.core_role, row.core_role),
                "remote": row.status == Attendance.Status.REMOTE,
            }
        )
    return rows


def _coordinators(team, attendance: list[Attendance]) -> list[str]:
    """The MDT coordinators to contact about the letter: those at the meeting, else the team's."""
    at_meeting = [
        row.user.display_name
        for row in attendance
        if row.core_role == CoreRole.COORDINATOR and row.status != Attendance.Status.APOLOGIES
    ]
    if at_meeting:
        return at_meeting
    members = TeamMember.objects.filter(team=team, core_role=CoreRole.COORDINATOR)
    return [member.user.display_name for member in members.select_related("user")]


def _amendment(outcome, supersedes) -> dict | None:
    """The earlier letter is named by the date it bears: its outcome's signing date."""
    if not outcome.amendment_no:
        return None
    earlier = getattr(supersedes, "outcome", supersedes)
    return {
        "number": outcome.amendment_no,
        "reason": outcome.amendment_reason,
        "replaces_date": format_date(earlier.signed_at) if earlier is not None else "",
        "replaces_reference": str(earlier.public_id) if earlier is not None else "",
    }


def _version_label(outcome) -> str:
    if outcome.amendment_no:
        return f"Amendment {outcome.amendment_no}"
    return "Original outcome"


def _paragraphs(text: str) -> list[str]:
    """Blank lines separate paragraphs; single line breaks are kept by the template's CSS."""
    blocks = (text or "").replace("\r\n", "\n").split("\n\n")
    return [block.strip() for block in blocks if block.strip()]


def _lines(text: str) -> list[str]:
    """An address stored on one line with commas or over several lines, as lines."""
    parts = (text or "").replace("\r\n", "\n").replace(",", "\n").split("\n")
    return [part.strip() for part in parts if part.strip()]
