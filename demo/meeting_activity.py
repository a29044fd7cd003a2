"""What the demo's MDTs have done already: the specialty reviews on each team's next list (some
cases ready, some not), and last week's meeting of each team, run through the product's own
services from listing to conclusion (docs/case-states.md).

Last week's meeting is replayed at its own times: while it runs, ``timezone.now()`` answers the
replay's clock (cases listed in the days before, the reviews the day before, the records gathered
that morning, then the meeting from 09:00 with a few minutes per case), so every timestamp the
services record (signatures, attendance, discussion time) reads as it would have. Each case's
record is a real snapshot: the demo histories are written to a temporary directory, served by
the demo FHIR servers on free ports, and gathered by records.populate as a refresh would.

Nothing here runs twice: a team that has a concluded meeting keeps it, and a case with a review
keeps its reviews."""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from unittest import mock
from zoneinfo import ZoneInfo

import redis
from django.conf import settings
from django.db.models import Min
from django.test.utils import override_settings
from django.utils import timezone

from accounts.models import User
from mdt import conclusion, live, outcomes, reviews, services
from mdt.models import (
    Attendance,
    CarePlanIntent,
    Case,
    CoreRole,
    Meeting,
    NoTreatmentReason,
    OutcomeCategory,
    PlannedTreatment,
    Team,
    TumourSite,
)
from records.breaker import breaker_key
from records.models import Patient, Source
from records.populate import populate_patients, sources_to_ask
from registry.models import Registration

from .histories import BREAST_QUADRANTS, COLORECTAL_SITES, LUNG_LOBES, write_demo_histories
from .region import REFERRERS, TEAM_DAYS
from .sources import DEMO_SOURCES, run_demo_servers

LONDON = ZoneInfo(settings.TIME_ZONE)
PAST_CASES = 9  # 6 fully discussed (one deferred), 1 ratified, 1 for information, 1 withdrawn

ICD10_NAMES = {code: name for _, code, name, *_ in (*LUNG_LOBES, *BREAST_QUADRANTS)}
ICD10_NAMES.update({code: name for _, code, name, _ in COLORECTAL_SITES})
MORPHOLOGY_NAMES = {
    "8140/3": "Adenocarcinoma",
    "8070/3": "Squamous cell carcinoma",
    "8500/3": "Invasive ductal carcinoma (no special type)",
}

# -- reviews before the next meeting -----------------------------------------------------------

REVIEW_NOTES = {
    CoreRole.RADIOLOGIST: [
        "Imaging reviewed: appearances as reported, no new findings; images ready to show.",
        "CT reviewed against the previous study: lesion measured; no distant disease seen.",
        "MRI and CT reviewed: local extent as reported; key images saved for the meeting.",
    ],
    CoreRole.PATHOLOGIST: [
        "Histology reviewed: diagnosis confirmed; report and slides ready for the meeting.",
        "Biopsy reviewed: diagnosis confirmed; ancillary tests reported.",
        "Resection specimen reviewed: margins and nodes as reported; staging agreed.",
    ],
}


def seed_next_meeting_reviews(teams: list[Team]) -> int:
    """Reviews on each team's next meeting (services.record_review, by the team's specialists):
    most fully discussed cases have both, some only radiology, a few none yet. Cases that
    already have a review are left alone."""
    made = 0
    now = timezone.now()
    for team in teams:
        meeting = (
            team.meetings.filter(starts_at__gt=now, status=Meeting.Status.PLANNED)
            .order_by("starts_at")
            .first()
        )
        if meeting is None:
            continue
        reviewers = _members_by_role(team)
        cases = meeting.cases.listed().filter(triage=Case.Triage.FULL_DISCUSSION)
        reviewed = set(cases.filter(reviews__isnull=False).values_list("pk", flat=True))
        for index, case in enumerate(cases.order_by("position", "id")):
            if case.pk in reviewed:
                continue  # seeded before (or reviewed by someone trying the demo)
            # Of every five cases: three ready, one with radiology only, one not reviewed yet.
            roles = list(team.review_roles) if index % 5 < 3 else team.review_roles[:1]
            if index % 5 == 4:
                roles = []
            for role in roles:
                if role not in reviewers:
                    continue
                reviews.record_review(
                    user=reviewers[role],
                    case=case,
                    role=role,
                    note=REVIEW_NOTES.get(role, ["Reviewed."])[case.position % 3],
                    done=True,
                )
                made += 1
            if index % 5 == 3 and len(team.review_roles) > 1:
                # Started but not done: a note saved as work in progress.
                role = team.review_roles[1]
                if role in reviewers:
                    reviews.record_review(
                        user=reviewers[role],
                        case=case,
                        role=role,
                        note="Awaiting the immunohistochemistry before signing off.",
                        done=False,
                    )
    return made


def _members_by_role(team: Team) -> dict[str, User]:
    members = {}
    for member in team.members.select_related("user").order_by("id"):
        members.setdefault(member.core_role, member.user)
    return members


# -- last week's meeting -------------------------------------------------------------------------


class _Clock:
    def __init__(self, moment: datetime):
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def at(self, moment: datetime) -> None:
        self.moment = moment

    def advance(self, **delta) -> None:
        self.moment += timedelta(**delta)


@contextmanager
def _replaying(moment: datetime):
    """timezone.now() (and so every auto_now field and service timestamp) reads this clock."""
    clock = _Clock(moment)
    with mock.patch("django.utils.timezone.now", clock):
        yield clock


@dataclass
class Plan:
    """One case of the replayed meeting: how it was listed and what became of it."""

    case: Case
    fate: str  # "discussed", "ratified", "info", "deferred", "withdrawn"


def seed_past_meetings(
    teams: list[Team], *, exclude_nhs_numbers: set[str], as_of: date | None, seed: int
) -> int:
    """Last week's meeting for every team that has no concluded meeting yet. Returns how many."""
    waiting = [t for t in teams if not t.meetings.filter(status=Meeting.Status.CONCLUDED).exists()]
    if not waiting:
        return 0
    data_dir = Path(tempfile.mkdtemp(prefix="demo-fhir-"))
    servers = []
    server_log = logging.getLogger("demo.fhir_server")
    level = server_log.level
    try:
        patients = list(Patient.objects.select_related("gp_practice").order_by("nhs_number"))
        write_demo_histories(patients, data_dir, seed=seed, as_of=as_of)
        manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
        situations = manifest["situations"]
        exclude = set(exclude_nhs_numbers) | set(situations["restricted"])
        exclude |= {d["nhs_number"] for d in situations["deceased"]}
        for key in ("stage_conflict", "not_found"):
            if situations.get(key):
                exclude.add(situations[key]["nhs_number"])
        ports = {code: 0 for _, code, _ in DEMO_SOURCES} | {"PDS": 0}
        server_log.setLevel(logging.WARNING)  # not a line per request while seeding
        servers = run_demo_servers(data_dir, ports=ports)
        sources = _sources_at(servers)
        with override_settings(DEMOGRAPHICS_URL=servers[-1].base_url):
            for team in waiting:
                _replay_last_meeting(team, exclude, sources)
    finally:
        for server in servers:
            server.stop()
        server_log.setLevel(level)
        shutil.rmtree(data_dir, ignore_errors=True)
    return len(waiting)


def _sources_at(servers) -> list[Source]:
    """The region's enabled sources, the demo FHIR ones pointed (in memory only) at the servers
    this run started; the cancer registry is read from the database as usual."""
    urls = {
        name: server.base_url
        for (name, _, _), server in zip(DEMO_SOURCES, servers[:-1], strict=True)
    }
    sources = sources_to_ask()
    for source in sources:
        if source.name in urls:
            source.base_url = urls[source.name]
    # A breaker left open by the real sources being down must not skip these servers.
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.delete(*(breaker_key(source.pk) for source in sources))
    finally:
        client.close()
    return sources


def _last_slot(team: Team) -> datetime:
    """The team's weekly slot before today (09:00 local on its meeting day)."""
    today = timezone.localdate()
    day = today - timedelta(days=(today.weekday() - TEAM_DAYS[team.host.ods_code]) % 7 or 7)
    return datetime.combine(day, time(9, 0), tzinfo=LONDON)


def _choose_patients(team: Team, exclude: set[str], count: int) -> list[tuple[Patient, str]]:
    """Patients whose first listing is on this team's lists, with that listing's question: the
    replayed meeting becomes their first listing with the same site and question, so the demo
    histories (and the registry) built from first listings do not change."""
    firsts = (
        Case.objects.values("patient_id")
        .annotate(first=Min("meeting__starts_at"))
        .values_list("patient_id", "first")
    )
    first_at = dict(firsts)
    chosen = []
    for case in (
        Case.objects.filter(meeting__team=team)
        .select_related("patient", "meeting")
        .order_by("meeting__starts_at", "position")
    ):
        patient = case.patient
        if first_at.get(patient.pk) != case.meeting.starts_at or patient.nhs_number in exclude:
            continue
        if any(p.pk == patient.pk for p, _ in chosen):
            continue
        chosen.append((patient, case.question))
    # Spread over the team's lists rather than all from next week's.
    rng = random.Random(f"past:{team.name}")
    rng.shuffle(chosen)
    return chosen[:count]


# Which case of last week's list gets each fate: the first whose question suits it.
SPECIAL_FATES = [
    ("ratified", Case.Triage.STANDARD_OF_CARE, ("Suitable for SABR?", "Post-operative")),
    ("info", Case.Triage.FOR_INFORMATION, ("Post-operative", "Liver lesion")),
    ("deferred", Case.Triage.FULL_DISCUSSION, ("Review", "Staging", "CT shows")),
    ("withdrawn", Case.Triage.FULL_DISCUSSION, ()),
]


def _fates(questions: list[str]) -> list[tuple[str, str]]:
    """(triage, fate) for each chosen case, in list order: one ratified under a Standard of
    Care, one for information, one deferred, one withdrawn before the meeting, the rest
    discussed and signed."""
    fates: list[tuple[str, str] | None] = [None] * len(questions)
    for fate, triage, suits in SPECIAL_FATES:
        free = [i for i in range(1, len(questions)) if fates[i] is None]
        index = next((i for i in free if questions[i].startswith(suits) and suits), free[-1])
        fates[index] = (triage, fate)
    return [fate or (Case.Triage.FULL_DISCUSSION, "discussed") for fate in fates]


def _replay_last_meeting(team: Team, exclude: set[str], sources: list[Source]) -> None:
    members = _members_by_role(team)
    chair = members[CoreRole.CHAIR]
    coordinator = members.get(CoreRole.COORDINATOR) or chair
    starts_at = _last_slot(team)
    chosen = _choose_patients(team, exclude, PAST_CASES)
    if len(chosen) < PAST_CASES:
        return  # a region too small for it (not the demo's)
    meeting, created = Meeting.objects.get_or_create(
        team=team,
        starts_at=starts_at,
        defaults={"cutoff_at": starts_at - timedelta(days=1), "chair": chair},
    )
    if not created and (meeting.status != Meeting.Status.PLANNED or meeting.cases.exists()):
        return  # that slot was used otherwise (an older demo database): leave it alone
    attendance = _attendance(team)
    away = {user.pk for user, status in attendance if status == Attendance.Status.APOLOGIES}
    runner = chair if coordinator.pk in away else coordinator  # who drives the shared screen
    rng = random.Random(f"replay:{team.name}")
    fates = _fates([question for _, question in chosen])
    real_now = timezone.now()
    with _replaying(starts_at - timedelta(days=6, hours=-1)) as clock:
        plans = []
        for position, ((patient, question), (triage, fate)) in enumerate(
            zip(chosen, fates, strict=True), start=1
        ):
            case = Case.objects.create(
                meeting=meeting,
                patient=patient,
                position=position,
                question=question,
                referrer=rng.choice(REFERRERS),
                triage=triage,
                added_by=coordinator,
            )
            plans.append(Plan(case, fate))
            clock.advance(hours=5)

        # The afternoon before: the specialists review the fully discussed cases, one case is
        # withdrawn, and the list closes.
        clock.at(starts_at - timedelta(hours=19))
        for plan in plans:
            if plan.case.triage != Case.Triage.FULL_DISCUSSION or plan.fate == "withdrawn":
                continue
            for role in team.review_roles:
                if role in members:
                    reviews.record_review(
                        user=members[role],
                        case=plan.case,
                        role=role,
                        note=REVIEW_NOTES.get(role, ["Reviewed."])[plan.case.position % 3],
                        done=True,
                    )
                    clock.advance(minutes=7)
        withdrawn = next(plan.case for plan in plans if plan.fate == "withdrawn")
        services.remove_case(
            user=coordinator,
            case=withdrawn,
            reason="The patient has chosen to be treated nearer home and has been referred to "
            "that trust's MDT.",
        )
        clock.at(starts_at - timedelta(days=1))
        services.close_list(user=coordinator, meeting=meeting)

        # That morning: every case's record gathered, as "refresh all" does.
        clock.at(starts_at - timedelta(minutes=75))
        _gather_records([plan.case for plan in plans if plan.fate != "withdrawn"], sources)

        # The meeting: attendance, then each case in list order, then the conclusion (the
        # deferred case is carried over to the team's next meeting).
        clock.at(starts_at)
        live.start_meeting(user=runner, meeting=meeting)
        for attendee, status in attendance:
            live.record_attendance(user=runner, meeting=meeting, attendee=attendee, status=status)
            clock.advance(seconds=20)
        for plan in plans:
            if plan.fate == "withdrawn":
                continue
            case = Case.objects.select_related("meeting__team").get(pk=plan.case.pk)
            live.show_case(user=runner, meeting=meeting, case=case)
            _conclude_case(case, plan.fate, runner, chair, clock, rng)
        clock.advance(minutes=2)
        conclusion.conclude_meeting(user=runner, meeting=meeting)

        # The next afternoon the lung chair corrects one signed outcome: a new version with its
        # reason (the first stays readable).
        discussed = [plan.case for plan in plans if plan.fate == "discussed"]
        if team.tumour_site == TumourSite.LUNG and discussed:
            clock.at(min(starts_at + timedelta(days=1, hours=5), real_now - timedelta(minutes=5)))
            case = discussed[0]
            signed = outcomes.current_outcome(case)
            corrected = "0" if signed.performance_status != "0" else "1"
            draft = outcomes.start_amendment(
                user=chair,
                case=case,
                reason="Performance status corrected after the clinic review "
                f"(WHO {signed.performance_status} recorded at the meeting, {corrected} seen "
                "in clinic).",
            )
            draft = outcomes.save_draft(
                user=chair,
                case=case,
                revision=draft.revision,
                data={"performance_status": corrected},
            )
            clock.advance(minutes=3)
            outcomes.sign_outcome(
                user=chair, case=case, revision=draft.revision, snapshot_id=signed.snapshot_id
            )


def _attendance(team: Team) -> list[tuple[User, str]]:
    """Everyone present but: lung's oncologist joins remotely; breast's nurse specialist sends
    apologies (the meeting is not quorate, which its outcomes record); colorectal's coordinator
    sends apologies (not a core role: the chair runs the screen)."""
    away = {
        TumourSite.LUNG: {CoreRole.ONCOLOGIST: Attendance.Status.REMOTE},
        TumourSite.BREAST: {CoreRole.CNS: Attendance.Status.APOLOGIES},
        TumourSite.COLORECTAL: {CoreRole.COORDINATOR: Attendance.Status.APOLOGIES},
    }.get(team.tumour_site, {})
    rows = []
    for member in team.members.select_related("user").order_by("id"):
        rows.append((member.user, away.get(member.core_role, Attendance.Status.PRESENT)))
    return rows


def _gather_records(cases: list[Case], sources: list[Source]) -> None:
    by_patient: dict[int, list[int]] = {}
    for case in cases:
        by_patient.setdefault(case.patient_id, []).append(case.pk)

    def link(snapshot) -> None:
        Case.objects.filter(pk__in=by_patient[snapshot.patient_id]).update(snapshot=snapshot)

    populate_patients(
        by_patient, reason="Refresh of every case on the meeting", sources=sources, on_snapshot=link
    )


def _conclude_case(case: Case, fate: str, runner, chair, clock: _Clock, rng) -> None:
    if fate == "info":
        clock.advance(minutes=rng.randint(1, 2))
        conclusion.note_for_information(user=runner, case=case)
        return
    if fate == "deferred":
        clock.advance(minutes=rng.randint(2, 4))
        conclusion.defer_case(
            user=runner,
            case=case,
            reason="The latest imaging has not been reported yet: rediscuss next week with the "
            "report.",
        )
        return
    ratify = fate == "ratified"
    values = outcome_values(case)
    if ratify:
        values["standard_of_care"] = STANDARDS_OF_CARE.get(
            case.meeting.team.tumour_site, "Team standard of care protocol"
        )
    first = {
        k: values[k] for k in ("discussion_date", "category", "agreed_diagnosis") if k in values
    }
    clock.advance(minutes=1 if ratify else rng.randint(2, 4))
    draft = outcomes.save_draft(user=runner, case=case, revision=0, data=first)
    clock.advance(minutes=1 if ratify else rng.randint(3, 6))
    draft = outcomes.save_draft(user=runner, case=case, revision=draft.revision, data=values)
    clock.advance(seconds=40)
    outcomes.sign_outcome(
        user=chair, case=case, revision=draft.revision, snapshot_id=case.snapshot_id, ratify=ratify
    )


# -- the outcomes: COSD-coded, following the question and the registered cancer ------------------


# The protocol a ratified (Standard of Care) outcome follows, by team.
STANDARDS_OF_CARE = {
    TumourSite.LUNG: "Lung MDT standard of care LU-03: early-stage disease, curative treatment",
    TumourSite.BREAST: "Breast MDT standard of care BR-02: adjuvant therapy after excision",
    TumourSite.COLORECTAL: "Colorectal MDT standard of care CR-04: post-operative pathway",
}


def outcome_values(case: Case) -> dict:
    """The outcome a team would record for this case: the question decides the plan; the
    diagnosis and stage are the cancer registry's for the patient (none for a suspected cancer)."""
    registration = (
        Registration.objects.filter(patient_id=case.patient_id).order_by("-diagnosis_date").first()
    )
    site = case.meeting.team.get_tumour_site_display()
    discussion_date = timezone.localtime(case.meeting.starts_at).date()
    values = {
        "discussion_date": discussion_date,
        "performance_status": "1",
        "trial_considered": True,
        "key_worker": _key_worker(case.meeting.team),
    }
    if registration is not None:
        morphology = MORPHOLOGY_NAMES.get(registration.morphology, "Carcinoma")
        place = ICD10_NAMES.get(registration.icd10, registration.icd10).split(": ")[-1]
        values.update(
            agreed_diagnosis=f"{morphology}, {place.lower()}",
            agreed_icd10=registration.icd10,
            stage_t=registration.t,
            stage_n=registration.n,
            stage_m=registration.m,
            stage_group=registration.stage_group,
            performance_status=(registration.performance_status or "1")[:1],
        )
    stage = values.get("stage_group", "")
    plan = _PLANS.get(case.question) or _PLANS["default"]
    values.update(plan(site, stage, values.get("agreed_diagnosis", "")))
    due = discussion_date + timedelta(days=7)
    values["actions"] = [
        {"action": action, "owner": owner, "due": (discussion_date + timedelta(days)).isoformat()}
        for action, owner, days in values.pop("_actions")
    ]
    # Most patients hear the outcome from their key worker on the day, so their letters go to
    # the GP at once; every fourth has not been told yet, so the demo shows a held letter.
    told = case.position % 4 != 0
    values["patient_informed"] = told
    if told:
        values["informed_by"] = values["key_worker"] or "Key worker"
        values["informed_at"] = case.meeting.starts_at + timedelta(minutes=30)
    else:
        tell = {"action": "Tell the patient the outcome", "owner": "Key worker"}
        values["actions"].append({**tell, "due": due.isoformat()})
    return values


def _key_worker(team: Team) -> str:
    nurse = team.members.filter(core_role=CoreRole.CNS).select_related("user").first()
    if nurse is None:
        return "Cancer nurse specialist team"
    return f"{nurse.user.get_full_name()}, clinical nurse specialist"


def _early(stage: str) -> bool:
    return stage.startswith(("I", "0")) and not stage.startswith("III")


def _confirm_and_plan(site, stage, diagnosis):
    if site == "Lung" and not _early(stage):
        return {
            "category": OutcomeCategory.TREATMENT,
            "care_plan_intent": CarePlanIntent.CURATIVE,
            "planned_treatments": [
                PlannedTreatment.CHEMOTHERAPY,
                PlannedTreatment.EXTERNAL_BEAM_RT,
            ],
            "plan": f"{diagnosis or 'Lung cancer'}, stage {stage or 'III'}: not suitable for "
            "resection. Concurrent chemoradiotherapy (cisplatin and vinorelbine with 60 Gy in "
            "30 fractions), then consolidation durvalumab if PD-L1 positive.",
            "_actions": [
                ("See in the clinical oncology clinic to consent", "Clinical oncology", 7),
                ("Radiotherapy planning CT", "Radiotherapy", 10),
            ],
            "gp_actions": "Please review the patient's renal function before chemotherapy "
            "starts; no other action needed.",
        }
    return {
        "category": OutcomeCategory.TREATMENT,
        "care_plan_intent": CarePlanIntent.CURATIVE,
        "planned_treatments": [PlannedTreatment.SURGERY],
        "plan": f"{diagnosis or 'Cancer'}, stage {stage or 'to be confirmed'}: fit for surgery. "
        + {
            "Lung": "VATS lobectomy with mediastinal lymph node dissection after full lung "
            "function tests.",
            "Breast": "Wide local excision with sentinel lymph node biopsy, then rediscuss "
            "with the histology.",
            "Colorectal": "Laparoscopic resection; pre-operative assessment and stoma nurse "
            "review.",
        }.get(site, "Surgery."),
        "_actions": [
            ("List for surgery", "Surgical team", 14),
            ("Pre-operative assessment", "Pre-operative assessment clinic", 10),
        ],
        "gp_actions": "No action needed now; the surgical team will write with the date.",
    }


def _suspected(site, stage, diagnosis):
    return {
        "category": OutcomeCategory.INVESTIGATION,
        "care_plan_intent": CarePlanIntent.NOT_KNOWN,
        "planned_treatments": [PlannedTreatment.NOT_KNOWN],
        "agreed_diagnosis": "Suspected lung cancer: spiculated nodule, no tissue diagnosis yet",
        "plan": "PET-CT, then CT-guided biopsy of the nodule; rediscuss with the results.",
        "_actions": [
            ("Request PET-CT", "MDT coordinator", 3),
            ("Book CT-guided lung biopsy", "Interventional radiology", 14),
        ],
        "gp_actions": "Please check the patient's clotting and stop any anticoagulant as "
        "advised by the biopsy team.",
    }


def _sabr(site, stage, diagnosis):
    return {
        "category": OutcomeCategory.TREATMENT,
        "care_plan_intent": CarePlanIntent.CURATIVE,
        "planned_treatments": [PlannedTreatment.EXTERNAL_BEAM_RT],
        "plan": f"{diagnosis or 'Early lung cancer'}: not fit for surgery (lung function). "
        "Stereotactic ablative radiotherapy, 54 Gy in 3 fractions.",
        "_actions": [("Refer for SABR planning", "Clinical oncology", 7)],
        "gp_actions": "No action needed.",
    }


def _post_operative(site, stage, diagnosis):
    if _early(stage) and not stage.startswith("II"):
        return {
            "category": OutcomeCategory.ACTIVE_MONITORING,
            "care_plan_intent": CarePlanIntent.NO_ACTIVE_TREATMENT,
            "planned_treatments": [PlannedTreatment.NO_ACTIVE],
            "no_treatment_reason": NoTreatmentReason.MONITORING,
            "plan": f"{diagnosis or 'Cancer'}, completely excised (R0), stage {stage}. No "
            "adjuvant treatment is indicated: surveillance CT at 6 and 12 months.",
            "_actions": [("Book surveillance CT at 6 months", "Surgical team", 180)],
            "gp_actions": "No action needed; follow-up is with the hospital team.",
        }
    treatments = [PlannedTreatment.CHEMOTHERAPY]
    extra = "Adjuvant chemotherapy (four cycles) in the oncology clinic."
    if site == "Breast":
        treatments = [PlannedTreatment.EXTERNAL_BEAM_RT, PlannedTreatment.HORMONE]
        extra = "Whole-breast radiotherapy (26 Gy in 5 fractions), then letrozole for 5 years."
    return {
        "category": OutcomeCategory.TREATMENT,
        "care_plan_intent": CarePlanIntent.CURATIVE,
        "planned_treatments": treatments,
        "plan": f"{diagnosis or 'Cancer'}, excised with clear margins, stage {stage}. {extra}",
        "_actions": [("Refer to the oncology clinic", "Oncology", 14)],
        "gp_actions": "Please prescribe as the oncology team advises once treatment starts.",
    }


def _neoadjuvant(site, stage, diagnosis):
    return {
        "category": OutcomeCategory.TREATMENT,
        "care_plan_intent": CarePlanIntent.CURATIVE,
        "planned_treatments": [PlannedTreatment.CHEMOTHERAPY, PlannedTreatment.SURGERY],
        "plan": f"{diagnosis or 'Breast cancer'}, stage {stage}: neoadjuvant chemotherapy "
        "(epirubicin and cyclophosphamide, then paclitaxel), clip the tumour first; surgery "
        "after, planned on the response MRI.",
        "_actions": [
            ("Insert a marker clip", "Breast radiology", 7),
            ("See in the oncology clinic", "Medical oncology", 10),
        ],
        "gp_actions": "No action needed now.",
    }


def _refer_hpb(site, stage, diagnosis):
    return {
        "category": OutcomeCategory.REFER_OTHER_MDT,
        "care_plan_intent": CarePlanIntent.NOT_KNOWN,
        "planned_treatments": [PlannedTreatment.NOT_KNOWN],
        "plan": "Solitary liver lesion after treated colorectal cancer: likely a metastasis. "
        "Liver MRI with contrast, then refer to the HPB MDT at UHB for resection.",
        "_actions": [
            ("Request liver MRI", "MDT coordinator", 3),
            ("Refer to the HPB MDT", "Colorectal surgery", 14),
        ],
        "gp_actions": "No action needed; the patient will hear from the HPB team.",
    }


_PLANS = {
    "Confirm stage and plan treatment": _confirm_and_plan,
    "Review PET-CT for staging": _confirm_and_plan,
    "Confirm diagnosis and plan surgery": _confirm_and_plan,
    "Review MRI extent of disease": _confirm_and_plan,
    "Staging CT and MRI review: plan treatment": _confirm_and_plan,
    "Suitable for resection?": _confirm_and_plan,
    "CT shows new 2 cm spiculated nodule: biopsy?": _suspected,
    "Suitable for SABR?": _sabr,
    "Post-operative histology review": _post_operative,
    "Post-operative histology: further surgery?": _post_operative,
    "Neoadjuvant chemotherapy?": _neoadjuvant,
    "Liver lesion on CT: refer to HPB?": _refer_hpb,
    "default": _confirm_and_plan,
}
