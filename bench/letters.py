"""Letters to GPs for a concluded meeting, on the product path: "Send all letters" posted over
HTTP to gunicorn (as `make run` serves it), the real Celery worker (two prefork processes, as
scripts/serve.sh runs it) rendering each PDF with WeasyPrint and sending it with mesh-client to
NHS England's mesh-sandbox, PostgreSQL and Redis in between.

The data, made through the product's services in the benchmark's own database: a lung team with
a chair, a coordinator and six core members; a meeting of LETTERS cases (patients at the demo
region's ten GP practices, each practice with its MESH mailbox registered in the sandbox), each
case with its record snapshot and its radiology and pathology reviews, run live, attended, every
outcome recorded (a plan of a few paragraphs, actions, what the GP should do) and signed with
the patient not yet told, so every letter is ``held``; then concluded.

Measured: from just before the coordinator's POST of "Send all letters" (confirming who told the
patients, which releases the held letters) until the last letter has a MESH message id and is
``sent`` (MESH accepted the upload), reading the database every POLL_S. Then, in this process,
one WeasyPrint render of the same letter's stored HTML (median of SINGLE_RENDERS), and a check
that MESH has exactly one message for each letter's local id. A warm-up meeting of WARMUP_CASES
letters goes the same way first, so that each worker process has imported WeasyPrint and built
its fonts, as a worker that has been running all day has.
"""

import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

LETTERS = 60
WORKERS = 2
WARMUP_CASES = 4
TARGET_S = 20.0
POLL_S = 0.05
TIMEOUT_S = 300.0
SINGLE_RENDERS = 5
PROFILE_RENDERS = 3
DB_NAME = "mdt_bench_letters"
TEAM = "Benchmark Letters Lung MDT"
CHAIR = "bench-letters-chair"
COORDINATOR = "bench-letters-coordinator"
TOLD_BY = "Lung CNS team"
FIRST_PATIENT = 8000  # demo.synthetic.synthetic_nhs_number(n) from here on

TITLE = (
    f"letters to GPs: 'Send all letters' for a concluded {LETTERS}-case meeting, "
    f"{WORKERS} worker processes"
)

TASK_DONE = re.compile(r"Task mdt\.letter_tasks\.(\w+)\[.*?\] succeeded in ([0-9.]+)s")

# The team's members besides the chair and the coordinator: (username, first, last, core role).
MEMBERS = [
    ("bench-letters-surgeon", "Amir", "Haddad", "surgeon"),
    ("bench-letters-oncologist", "Claire", "Okafor", "oncologist"),
    ("bench-letters-radiologist", "Priya", "Raman", "radiologist"),
    ("bench-letters-pathologist", "Tomasz", "Nowak", "pathologist"),
    ("bench-letters-cns", "Sian", "Evans", "cns"),
    ("bench-letters-physician", "David", "Lloyd", "physician"),
]

# Outcomes in the shape the chair records them: what was agreed, the plan in a few paragraphs,
# the hospital's actions and what the GP should do.
PLANS = [
    {
        "agreed_diagnosis": "Adenocarcinoma of the right upper lobe",
        "agreed_icd10": "C34.1",
        "stage_t": "T2a",
        "stage_n": "N0",
        "stage_m": "M0",
        "stage_group": "IB",
        "performance_status": "1",
        "care_plan_intent": "C",
        "planned_treatments": ["01"],
        "plan": (
            "The MDT reviewed the CT and PET-CT, which show a 32 mm spiculated mass in the right "
            "upper lobe with no FDG-avid nodes and no distant disease. The EBUS samples from "
            "stations 4R, 7 and 11R showed no malignancy; the CT-guided biopsy confirms "
            "adenocarcinoma, PD-L1 30%, EGFR and ALK negative.\n\n"
            "Lung function (FEV1 78% predicted, TLCO 71% predicted) and the shuttle walk (480 m) "
            "make a lobectomy safe. The recommendation is a VATS right upper lobectomy with "
            "systematic nodal dissection, to be offered at the thoracic surgery clinic within "
            "two weeks.\n\n"
            "Adjuvant treatment will be decided on the final pathological stage; the patient "
            "will be discussed again at this meeting when the resection histology is available."
        ),
        "gp_actions": (
            "Please review the patient's anticoagulation before surgery: the pre-operative "
            "assessment clinic will advise on when to stop apixaban.\n\n"
            "Please support smoking cessation; the patient has been referred to the hospital's "
            "stop smoking service."
        ),
        "actions": [
            ("See in the thoracic surgery clinic to consent for lobectomy", "Thoracic surgery"),
            ("Pre-operative assessment and anaesthetic review", "Pre-operative assessment"),
            ("Re-discuss with the resection histology", "MDT coordinator"),
        ],
    },
    {
        "agreed_diagnosis": "Squamous cell carcinoma of the left lower lobe",
        "agreed_icd10": "C34.3",
        "stage_t": "T1c",
        "stage_n": "N0",
        "stage_m": "M0",
        "stage_group": "IA3",
        "performance_status": "2",
        "care_plan_intent": "C",
        "planned_treatments": ["02"],
        "plan": (
            "A 24 mm peripheral nodule in the left lower lobe, FDG-avid (SUVmax 9.2), with no "
            "nodal or distant disease on PET-CT. Biopsy confirms squamous cell carcinoma.\n\n"
            "The patient's COPD (FEV1 41% predicted) and performance status make surgery high "
            "risk. The MDT recommends stereotactic ablative radiotherapy (SABR), 55 Gy in five "
            "fractions, as the curative treatment.\n\n"
            "Follow-up will be with CT at three months after treatment and then every six "
            "months for two years, in the clinical oncology clinic."
        ),
        "gp_actions": (
            "No change to the patient's inhalers is needed before treatment.\n\n"
            "Please refer back urgently if the patient develops new breathlessness, cough or "
            "chest pain in the months after radiotherapy: radiation pneumonitis is treatable."
        ),
        "actions": [
            ("Clinical oncology appointment to consent for SABR", "Clinical oncology"),
            ("Planning CT scan", "Radiotherapy department"),
        ],
    },
    {
        "agreed_diagnosis": "Non-small cell lung cancer, right hilar, with mediastinal nodes",
        "agreed_icd10": "C34.0",
        "stage_t": "T3",
        "stage_n": "N2",
        "stage_m": "M0",
        "stage_group": "IIIB",
        "performance_status": "1",
        "care_plan_intent": "C",
        "planned_treatments": ["03", "02"],
        "plan": (
            "CT and PET-CT show a 58 mm right hilar mass with FDG-avid ipsilateral mediastinal "
            "nodes (stations 4R and 7); the brain MRI is clear. EBUS confirms non-small cell "
            "carcinoma in station 7.\n\n"
            "The disease is not resectable. The MDT recommends concurrent chemoradiotherapy "
            "(cisplatin and vinorelbine with 60 Gy in 30 fractions), followed by a year of "
            "consolidation durvalumab if there is no progression.\n\n"
            "Molecular results (PD-L1, EGFR, ALK, ROS1) are awaited and will be reviewed by the "
            "oncologist before treatment starts."
        ),
        "gp_actions": (
            "Please check the patient's renal function and full blood count now and send the "
            "results to the oncology team, as cisplatin depends on them.\n\n"
            "Please offer the seasonal influenza and COVID-19 vaccinations before chemotherapy "
            "starts."
        ),
        "actions": [
            ("Oncology clinic to consent for chemoradiotherapy", "Clinical oncology"),
            ("Dietitian review before treatment", "Dietetics"),
            ("Review molecular results", "Clinical oncology"),
        ],
    },
    {
        "agreed_diagnosis": "Adenocarcinoma of the lung with pleural and bone metastases",
        "agreed_icd10": "C34.9",
        "stage_t": "T2b",
        "stage_n": "N1",
        "stage_m": "M1c",
        "stage_group": "IVB",
        "performance_status": "1",
        "care_plan_intent": "Z",
        "planned_treatments": ["07", "05"],
        "plan": (
            "CT shows a left lower lobe mass with a pleural effusion, pleural nodularity and "
            "lytic lesions in T10 and the left ilium. Pleural fluid cytology confirms "
            "adenocarcinoma; next-generation sequencing shows an EGFR exon 19 deletion.\n\n"
            "The MDT recommends first-line osimertinib, to start after the oncology "
            "appointment next week, with an indwelling pleural catheter for the recurrent "
            "effusion and a referral to the specialist palliative care team for symptoms.\n\n"
            "The bone lesions will be assessed for palliative radiotherapy if they cause pain; "
            "denosumab will be considered once dental review is done."
        ),
        "gp_actions": (
            "Please add the patient to the practice's palliative care register and consider an "
            "anticipatory prescribing plan.\n\n"
            "Please arrange a dental review before denosumab is started."
        ),
        "actions": [
            ("Oncology clinic to start osimertinib", "Medical oncology"),
            ("Indwelling pleural catheter insertion", "Respiratory physician"),
            ("Specialist palliative care referral", "Lung CNS team"),
        ],
    },
]


# --- benchmark data (the product's services, in the benchmark's own database) ----------------


def _outcome_data(n: int) -> dict:
    from django.utils import timezone

    plan = PLANS[n % len(PLANS)]
    today = timezone.localdate()
    return {
        **{key: value for key, value in plan.items() if key != "actions"},
        "category": "treatment",
        "key_worker": "Sian Evans, lung clinical nurse specialist",
        "patient_informed": False,  # the letter is held until someone records that they were
        "actions": [
            {
                "action": action,
                "owner": owner,
                "due": (today + timedelta(days=7 * (i + 1))).isoformat(),
            }
            for i, (action, owner) in enumerate(plan["actions"])
        ],
    }


def make_people(password: str) -> dict:
    """The trust, the demo region's ten GP practices with their MESH mailboxes, the team and its
    members (all signing in with ``password``), and the patients; kept between runs."""
    from datetime import date

    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from accounts.models import Organisation, Role, User
    from demo.practice_inbox import practice_mailbox_id
    from demo.region import PRACTICES
    from demo.synthetic import synthetic_nhs_number
    from mdt.models import CoreRole, Team, TumourSite
    from records.models import Patient

    from ._data import join_team

    encoded = make_password(password)
    with transaction.atomic():
        trust, _ = Organisation.objects.update_or_create(
            ods_code="RRK",
            defaults={
                "name": "University Hospitals Birmingham NHS Foundation Trust",
                "kind": Organisation.Kind.TRUST,
                "address": "Mindelsohn Way, Birmingham B15 2GW",
            },
        )
        practices = []
        for code, name, postcode in PRACTICES:
            practice, _ = Organisation.objects.update_or_create(
                ods_code=code,
                defaults={
                    "name": name,
                    "kind": Organisation.Kind.GP_PRACTICE,
                    "address": f"1 Surgery Lane, {postcode}",
                    "mesh_mailbox_id": practice_mailbox_id(code),
                },
            )
            practices.append(practice)
        team, _ = Team.objects.update_or_create(
            name=TEAM,
            defaults={
                "host": trust,
                "tumour_site": TumourSite.LUNG,
                "core_roles": [CoreRole.CHAIR, *(role for *_, role in MEMBERS)],
                "review_roles": [CoreRole.RADIOLOGIST, CoreRole.PATHOLOGIST],
            },
        )
        people = {}
        everyone = [
            (CHAIR, "Helen", "Marsh", CoreRole.CHAIR, Role.CHAIR),
            (COORDINATOR, "Gareth", "Price", CoreRole.COORDINATOR, Role.COORDINATOR),
            *((*member, Role.CLINICIAN) for member in MEMBERS),
        ]
        for username, first, last, core_role, role in everyone:
            user, _ = User.objects.update_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "password": encoded,
                    "is_active": True,
                },
            )
            join_team(user, team, trust, role, core_role)
            people[core_role] = user
        patients = []
        for n in range(LETTERS + WARMUP_CASES):
            patient, _ = Patient.objects.update_or_create(
                nhs_number=synthetic_nhs_number(FIRST_PATIENT + n),
                defaults={
                    "given_name": ("Margaret", "John", "Susan", "Robert")[n % 4],
                    "family_name": f"Letterpatient{n:02d}",
                    "birth_date": date(1944, 5, 1) + timedelta(days=211 * n),
                    "sex": Patient.Sex.FEMALE if n % 2 == 0 else Patient.Sex.MALE,
                    "address": f"{n + 3} Edgbaston Park Road, Birmingham",
                    "postcode": "B15 2RS",
                    "gp_practice": practices[n % len(practices)],
                },
            )
            patients.append(patient)
    return {"team": team, "people": people, "patients": patients, "practices": practices}


def concluded_meeting(team, people: dict, patients: list, starts_at):
    """A meeting of the patients' cases, through the product's services: scheduled, records
    gathered, reviewed, run live with its attendance, every outcome signed with the patient not
    yet told (so every letter is held), concluded."""
    from django.test.utils import override_settings

    from mdt import conclusion, live, outcomes, reviews
    from mdt.models import Attendance, CoreRole
    from mdt.population import populate_cases
    from mdt.services import schedule_meeting

    from ._data import list_patients

    chair, coordinator = people[CoreRole.CHAIR], people[CoreRole.COORDINATOR]
    meeting = schedule_meeting(team=team, starts_at=starts_at, chair=chair)
    cases = list_patients(
        meeting,
        patients,
        added_by=coordinator,
        question="Confirm the stage and agree the treatment plan",
        referrer="Dr R Patel, respiratory medicine",
    )
    # Each case's record: no record source is set up in this database and no demographics
    # service is asked, so each snapshot says only that (the letter does not show the record).
    with override_settings(DEMOGRAPHICS_URL=""):
        populate_cases([case.pk for case in cases], reason="Benchmark data")
    for case in cases:
        reviews.record_review(
            user=people[CoreRole.RADIOLOGIST],
            case=case,
            role=CoreRole.RADIOLOGIST,
            note="CT and PET-CT reviewed against the previous study; staging as discussed.",
            done=True,
        )
        reviews.record_review(
            user=people[CoreRole.PATHOLOGIST],
            case=case,
            role=CoreRole.PATHOLOGIST,
            note="Histology and molecular results reviewed; the diagnosis is confirmed.",
            done=True,
        )
    live.start_meeting(user=chair, meeting=meeting)
    for core_role, user in people.items():
        remote = core_role in (CoreRole.PATHOLOGIST, CoreRole.CNS)
        status = Attendance.Status.REMOTE if remote else Attendance.Status.PRESENT
        live.record_attendance(user=coordinator, meeting=meeting, attendee=user, status=status)
    for n, case in enumerate(cases):
        outcomes.save_draft(user=chair, case=case, revision=0, data=_outcome_data(n))
        outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
    conclusion.conclude_meeting(user=coordinator, meeting=meeting)
    meeting.refresh_from_db()
    return meeting


def make_data(password: str) -> dict:
    from django.utils import timezone

    from mdt.models import Letter, LetterStatus

    made = make_people(password)
    # New meetings each run (signed outcomes and their letters are never deleted), an hour ago.
    now = timezone.now().replace(microsecond=0)
    warmup = concluded_meeting(
        made["team"], made["people"], made["patients"][LETTERS:], now - timedelta(hours=2)
    )
    meeting = concluded_meeting(
        made["team"], made["people"], made["patients"][:LETTERS], now - timedelta(hours=1)
    )
    for each, count in ((warmup, WARMUP_CASES), (meeting, LETTERS)):
        statuses = list(
            Letter.objects.filter(outcome__case__meeting=each).values_list("status", flat=True)
        )
        if statuses != [LetterStatus.HELD] * count:
            raise RuntimeError(f"expected {count} held letters, found {statuses}")
    return {**made, "meeting": meeting, "warmup": warmup}


# --- the run -----------------------------------------------------------------------------------


def send_all(browser, meeting, count: int) -> dict:
    """The coordinator's "Send all letters" (confirming who told the patients), then the redirect
    to the meeting page as the browser follows it, and the letters panel htmx loads there; the
    page must say that the ``count`` held letters were released."""
    from django.urls import reverse

    token = browser.cookies.get("csrftoken")
    if not token:
        raise RuntimeError("no CSRF cookie: sign in first")
    response, post_s = browser.request(
        "POST",
        reverse("mdt:send_meeting_letters", args=[meeting.public_id]),
        data={"csrfmiddlewaretoken": token, "told_by": TOLD_BY},
    )
    if response.status_code != 302:
        raise RuntimeError(f"Send all letters answered {response.status_code}")
    page, page_s = browser.get(response.headers["location"])
    if page.status_code != 200:
        raise RuntimeError(f"the meeting page answered {page.status_code}")
    panel, panel_s = browser.get(
        reverse("mdt:meeting_letters", args=[meeting.public_id]), headers={"HX-Request": "true"}
    )
    if panel.status_code != 200:
        raise RuntimeError(f"the letters panel answered {panel.status_code}")
    released = re.search(r"(\d+) held letters? released", page.text)
    if released is None or int(released.group(1)) != count:
        raise RuntimeError(
            f"Send all letters did not release the {count} held letters: "
            f"{released.group(0) if released else 'the page does not say'}"
        )
    return {"post_s": post_s, "page_s": page_s, "panel_s": panel_s}


def wait_until_sent(meeting, count: int, started: float, worker, mark: int) -> dict:
    """Reads the meeting's letters every POLL_S until all ``count`` have a MESH message id and
    are sent; the seconds from ``started`` (time.perf_counter) to the read that saw the last."""
    from mdt.models import Letter, LetterStatus

    done_statuses = (LetterStatus.SENT, LetterStatus.ACKNOWLEDGED)
    letters = Letter.objects.filter(outcome__case__meeting=meeting)
    reads = 0
    while True:
        statuses = list(letters.values_list("status", "mesh_message_id"))
        reads += 1
        now = time.perf_counter()
        sent = sum(1 for status, message in statuses if status in done_statuses and message)
        if sent == count:
            return {"wall_s": now - started, "reads": reads, "sent": sent, "timed_out": False}
        failed = [s for s, _ in statuses if s == LetterStatus.FAILED]
        if failed:
            raise RuntimeError(
                f"{len(failed)} letters failed:\n{worker.failures_since(mark)}\n{worker.log_tail()}"
            )
        if now - started > TIMEOUT_S:
            return {"wall_s": now - started, "reads": reads, "sent": sent, "timed_out": True}
        time.sleep(POLL_S)


def task_times(log: str) -> dict[str, list[float]]:
    """Each letter task's run time, from the worker's INFO lines "Task ... succeeded in Ns"."""
    times: dict[str, list[float]] = {}
    for name, seconds in TASK_DONE.findall(log):
        times.setdefault(name, []).append(float(seconds))
    return times


def _stats(values: list[float], scale: float = 1.0, digits: int = 1) -> dict:
    if not values:
        return {"n": 0, "p50": None, "max": None, "sum": 0.0}
    scaled = sorted(v * scale for v in values)
    return {
        "n": len(scaled),
        "p50": round(statistics.median(scaled), digits),
        "max": round(scaled[-1], digits),
        "sum": round(sum(scaled), digits),
    }


def per_letter(meeting, clicked_at) -> dict:
    """Per letter, from the click (``clicked_at``, the database's clock) to rendered and to sent,
    and from signing to sent (what the meeting page shows as "Signed to sent")."""
    from mdt.models import Letter

    rows = list(
        Letter.objects.filter(outcome__case__meeting=meeting).values_list(
            "rendered_at", "sent_at", "outcome__signed_at"
        )
    )
    rendered = [(r - clicked_at).total_seconds() for r, _, _ in rows]
    sent = [(s - clicked_at).total_seconds() for _, s, _ in rows]
    signed = [(s - signed_at).total_seconds() for _, s, signed_at in rows]
    return {
        "rendered_s": _stats(rendered, digits=2),
        "sent_s": _stats(sent, digits=2),
        "signed_to_sent_s": _stats(signed, digits=1),
        "first_rendered_s": round(min(rendered), 2),
        "last_rendered_s": round(max(rendered), 2),
        "first_sent_s": round(min(sent), 2),
    }


def exactly_once(meeting, sandbox) -> dict:
    """Asks MESH (mdt.mesh.find_by_local_id: the sandbox's tracking by local id) about each
    sent letter's local id: one message, the one the letter records. And reads the sandbox's
    store (``<mailbox>/in/<message id>.json``): one message per local id, in the letter's
    practice's mailbox, and no other."""
    import json
    from collections import Counter

    from django.test.utils import override_settings

    from mdt import mesh, mesh_addressing
    from mdt.models import Letter

    letters = list(
        Letter.objects.filter(outcome__case__meeting=meeting).exclude(mesh_message_id="")
    )
    found = matching = duplicated = 0
    with (
        override_settings(
            **sandbox.app_env(), MESH_CLIENT_CERT="", MESH_CA_BUNDLE="", MESH_TIMEOUT_S=10
        ),
        mesh.client() as session,
    ):
        for letter in letters:
            try:
                tracked = mesh.find_by_local_id(mesh_addressing.local_id(letter), mesh=session)
            except mesh.MeshDuplicateLocalId:
                duplicated += 1
                continue
            if tracked is not None:
                found += 1
                matching += tracked.message_id == letter.mesh_message_id
    expected = Counter((mesh_addressing.local_id(x), x.recipient_mailbox) for x in letters)
    local_ids = {local_id for local_id, _ in expected}
    stored = [json.loads(path.read_text()) for path in sandbox.store.glob("*/in/*.json")]
    in_store = Counter(
        (message["metadata"]["local_id"], message["recipient"]["mailbox_id"])
        for message in stored
        if (message.get("metadata") or {}).get("local_id") in local_ids
    )
    return {
        "letters": len(letters),
        "found": found,
        "matching": matching,
        "duplicated": duplicated,
        "store_messages": sum(in_store.values()),
        "store_matches": in_store == expected,
        "store_others": len(stored) - sum(in_store.values()),  # the warm-up's letters
    }


def single_render(letter) -> dict:
    """mdt.letter_render.render_letter_pdf of the letter's stored HTML in this process: the first
    call (WeasyPrint imported and its fonts found) apart, then the median of SINGLE_RENDERS."""
    from mdt import letters
    from mdt.letter_render import render_letter_pdf

    author = letters.letter_context_for(letter)["author"]
    started = time.perf_counter()
    pdf = render_letter_pdf(letter.html, title=letter.title, author=author)
    first_ms = (time.perf_counter() - started) * 1000
    timings = []
    for _ in range(SINGLE_RENDERS):
        started = time.perf_counter()
        pdf = render_letter_pdf(letter.html, title=letter.title, author=author)
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "first_ms": round(first_ms, 1),
        "median_ms": round(statistics.median(timings), 1),
        "ms": [round(t, 1) for t in timings],
        "pages": _pages(pdf),
        "pdf_kb": round(len(pdf) / 1024, 1),
        "html_kb": round(len(letter.html) / 1024, 1),
        "author": author,
    }


def _pages(pdf: bytes) -> int | None:
    import io

    try:
        from pypdf import PdfReader
    except ImportError:  # a development dependency: the page count is a detail
        return None
    return len(PdfReader(io.BytesIO(pdf)).pages)


def profile_render(letter) -> dict:
    """Where one letter's rendering goes, in this process: the content and HTML (as the task
    makes them, database reads included), then the PDF under cProfile."""
    import cProfile
    import io
    import pstats

    from mdt import letters
    from mdt.letter_render import render_letter_html, render_letter_pdf

    from ._django import ROOT

    started = time.perf_counter()
    for _ in range(PROFILE_RENDERS):
        context = letters.letter_context_for(letter)
        html = render_letter_html(context)
    html_ms = (time.perf_counter() - started) * 1000 / PROFILE_RENDERS
    render_letter_pdf(html, title=context["title"], author=context["author"])  # imports done
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(PROFILE_RENDERS):
        render_letter_pdf(html, title=context["title"], author=context["author"])
    profiler.disable()
    pdf_ms = (time.perf_counter() - started) * 1000 / PROFILE_RENDERS
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(18)
    top = [  # file names relative to site-packages or the project
        re.sub(r"\S*/site-packages/", "", line).replace(f"{ROOT}/", "")
        for line in out.getvalue().splitlines()
        if re.match(r"\s+\d", line) and "{" not in line and "<frozen" not in line
    ]
    return {"html_ms": round(html_ms, 1), "pdf_ms_profiled": round(pdf_ms, 1), "top": top}


def run() -> dict:
    import logging
    import os
    import secrets

    from django.utils import timezone

    from demo.mesh_sandbox import MeshSandbox, install

    from . import _celery, _django
    from ._http import Browser
    from ._server import Gunicorn, free_port

    started = time.monotonic()
    env = _django.setup(DB_NAME)
    # WeasyPrint logs each step of each render at INFO; the benchmark's progress is enough.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    password = secrets.token_urlsafe(24)
    data = make_data(password)
    meeting, warmup = data["meeting"], data["warmup"]
    print(
        f"bench: database {DB_NAME} and two concluded meetings ({LETTERS} + {WARMUP_CASES} held "
        f"letters) ready in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    mailboxes = tuple(practice.mesh_mailbox_id for practice in data["practices"])
    install()
    redis_url = _celery.redis_url()
    folder = Path(tempfile.mkdtemp(prefix="bench-letters-"))
    try:
        (folder / "media").mkdir()
        sandbox = MeshSandbox(
            store=folder / "mesh-store",
            port=free_port(),
            log=folder / "mesh-sandbox.log",
            mailboxes=mailboxes,
        )
        _celery.flush_redis(redis_url)
        env.update(REDIS_URL=redis_url, MEDIA_ROOT=str(folder / "media"), **sandbox.app_env())
        with (
            sandbox,
            _celery.CeleryWorker(env, WORKERS, loglevel="INFO") as worker,
            Gunicorn(env) as server,
            Browser(server.url) as browser,
        ):
            print(
                f"bench: mesh-sandbox at {sandbox.url}, Celery worker ({WORKERS} processes, ready "
                f"in {worker.ready_s:.1f} s), gunicorn ({server.workers} workers) at {server.url}",
                file=sys.stderr,
            )
            browser.login(COORDINATOR, password)
            # Warm-up: each worker process imports WeasyPrint and renders and sends once.
            mark = worker.log_mark()
            began = time.perf_counter()
            send_all(browser, warmup, WARMUP_CASES)
            warm = wait_until_sent(warmup, WARMUP_CASES, began, worker, mark)
            warm_tasks = task_times(worker.log_since(mark))
            print(
                f"bench: warm-up, {WARMUP_CASES} letters sent in {warm['wall_s']:.2f} s",
                file=sys.stderr,
            )
            load_before = os.getloadavg()
            # The measured run.
            mark = worker.log_mark()
            clicked_at = timezone.now()
            began = time.perf_counter()
            clicked = send_all(browser, meeting, LETTERS)
            waited = wait_until_sent(meeting, LETTERS, began, worker, mark)
            load_after = os.getloadavg()
            time.sleep(0.5)  # the worker logs a task's end just after its commit
            log = worker.log_since(mark)
            failures = worker.failures_since(mark)
            print(
                f"bench: {waited['sent']} of {LETTERS} letters sent in {waited['wall_s']:.2f} s",
                file=sys.stderr,
            )
            checked = exactly_once(meeting, sandbox)
    finally:
        _celery.flush_redis(redis_url)
        shutil.rmtree(folder, ignore_errors=True)

    from mdt.models import Letter

    letter = (
        Letter.objects.filter(outcome__case__meeting=meeting)
        .select_related("outcome__case")
        .order_by("outcome__case__position")
        .first()
    )
    rendered = single_render(letter)
    times = task_times(log)
    wall_s = waited["wall_s"]
    met = not waited["timed_out"] and wall_s <= TARGET_S
    result = {
        "bench": "letters",
        "letters": LETTERS,
        "workers": WORKERS,
        "wall_s": round(wall_s, 2),
        "letters_per_s": round(waited["sent"] / wall_s, 2),
        "single_render_ms": rendered["median_ms"],
        "sent": waited["sent"],
        "letter_sent_p50_s": None,
        "letter_sent_max_s": None,
        "exactly_once": checked["matching"] == checked["letters"] == waited["sent"]
        and checked["duplicated"] == 0
        and checked["store_matches"],
        "target_met": met,
        "_waited": waited,
        "_warm": {**warm, "tasks": {k: _stats(v, 1000) for k, v in warm_tasks.items()}},
        "_clicked": clicked,
        "_tasks": {name: _stats(values, 1000) for name, values in times.items()},
        "_failures": failures,
        "_checked": checked,
        "_render": rendered,
        "_load": {"before": load_before, "after": load_after},
        "_worker_ready_s": round(worker.ready_s, 1),
        "_web_workers": server.workers,
        "_profile": None,
    }
    if waited["sent"] == LETTERS:
        timing = per_letter(meeting, clicked_at)
        result["letter_sent_p50_s"] = timing["sent_s"]["p50"]
        result["letter_sent_max_s"] = timing["sent_s"]["max"]
        result["_per_letter"] = timing
    if not result["exactly_once"]:
        print(f"bench: MESH does not hold one message per sent letter: {checked}", file=sys.stderr)
    if not met:
        print("bench: target missed; profiling one letter's rendering", file=sys.stderr)
        result["_profile"] = profile_render(letter)
    return result


# --- the report --------------------------------------------------------------------------------


def markdown(result: dict) -> str:
    tasks, render, checked = result["_tasks"], result["_render"], result["_checked"]
    clicked, waited = result["_clicked"], result["_waited"]
    timing = result.get("_per_letter") or {}
    renders, sends = tasks.get("render_letter", {}), tasks.get("send_letter_task", {})
    verdict = "met" if result["target_met"] else "**missed**"
    lines = [
        f"A concluded meeting of {LETTERS} cases (a lung team; patients at the demo region's ten "
        "GP practices, each with its MESH mailbox), made through the product's services in the "
        f"benchmark's own database (`{DB_NAME}`): records gathered, radiology and pathology "
        "reviews, the meeting run live with its attendance, every outcome recorded (a plan of "
        "three paragraphs, two or three actions, what the GP should do) and signed with the "
        f"patient not yet told, so all {LETTERS} letters are `held`. The coordinator, signed in "
        "over HTTP to gunicorn (`config.wsgi:application`, "
        f"{result['_web_workers']} sync workers, as `make run` serves it), posts **Send all "
        f'letters** confirming who told the patients (`told_by` "{TOLD_BY}"), which releases '
        "the held letters, and follows the redirect to the meeting page and its letters panel. "
        f"The real Celery worker (`celery -A config worker --concurrency={WORKERS}`, prefork, "
        "as `scripts/serve.sh` runs it) renders each PDF with WeasyPrint "
        "(`mdt.letter_tasks.render_letter`) and sends it with mesh-client "
        "(`send_letter_task`) to NHS England's mesh-sandbox (file store, the practices' "
        "mailboxes registered), through the bench's own Redis database. **Wall time**: from "
        f"just before the POST until a read of the database (every {POLL_S * 1000:.0f} ms) sees "
        f"the last of the {LETTERS} letters `sent` with its MESH message id. A warm-up meeting "
        f"of {WARMUP_CASES} letters goes the same way first (each worker process imports "
        "WeasyPrint on its first letter: "
        f"{result['_warm']['wall_s']:.2f} s for those {WARMUP_CASES}), as a worker running all "
        "day would have. **Single render**: `mdt.letter_render.render_letter_pdf` of the first "
        "letter's stored HTML, title and author in the benchmark's process, median of "
        f"{SINGLE_RENDERS} after a first call ({render['first_ms']} ms).",
        "",
        "| measure | result | target |",
        "| --- | ---: | --- |",
        f"| {LETTERS} letters, 'Send all' to the last sent to MESH (s) | {result['wall_s']} "
        f"| ≤ {TARGET_S:g} s: {verdict} |",
        f"| letters per second | {result['letters_per_s']} | |",
        f"| single WeasyPrint render of the same letter (ms, median) | "
        f"{result['single_render_ms']} | |",
        f"| the letter: pages, PDF size, HTML size | {render['pages']} pages, "
        f"{render['pdf_kb']} KiB, {render['html_kb']} KiB | |",
    ]
    if timing:
        lines += [
            f"| per letter, 'Send all' to rendered (s): median / max | "
            f"{timing['rendered_s']['p50']} / {timing['rendered_s']['max']} | |",
            f"| per letter, 'Send all' to sent (s): median / max | "
            f"{timing['sent_s']['p50']} / {timing['sent_s']['max']} | |",
        ]
    lines += [
        f"| render task in the worker (ms): median / max ({renders.get('n', 0)} tasks) | "
        f"{renders.get('p50')} / {renders.get('max')} | |",
        f"| send task in the worker (ms): median / max ({sends.get('n', 0)} tasks) | "
        f"{sends.get('p50')} / {sends.get('max')} | |",
        f"| 'Send all' POST / meeting page / letters panel (ms) | "
        f"{clicked['post_s'] * 1000:.0f} / {clicked['page_s'] * 1000:.0f} / "
        f"{clicked['panel_s'] * 1000:.0f} | |",
        f"| MESH messages per letter | tracking by local id: {checked['matching']} of "
        f"{checked['letters']} sent letters have exactly one, the one recorded, "
        f"{checked['duplicated']} have several; the sandbox's store: "
        f"{checked['store_messages']} messages with these local ids, "
        + (
            "one each, in its practice's mailbox"
            if checked["store_matches"]
            else "**not one each**"
        )
        + " | exactly one each |",
        "",
        f"Worker busy time: {renders.get('sum', 0) / 1000:.1f} s rendering and "
        f"{sends.get('sum', 0) / 1000:.1f} s sending, of {WORKERS} × {result['wall_s']} s = "
        f"{WORKERS * result['wall_s']:.1f} process-seconds; "
        f"{_share(renders, sends)} of the tasks' time is rendering."
        + (
            f" The first letter was rendered {timing['first_rendered_s']} s and sent "
            f"{timing['first_sent_s']} s after the click, the last rendered at "
            f"{timing['last_rendered_s']} s (each render queues its send behind the renders "
            "already waiting on the same queue)."
            if timing
            else ""
        )
        + (
            ' The meeting page\'s "Signed to sent" also counts the time the letters were held '
            f"before 'Send all' (here {timing['signed_to_sent_s']['p50']} s, the data set-up)."
            if timing
            else ""
        )
        + f" Load average (1/5/15 min) before the run {_load(result['_load']['before'])}, "
        f"after it {_load(result['_load']['after'])}.",
    ]
    if not result["exactly_once"]:
        lines += ["", "**Not one MESH message per sent letter**: see the row above."]
    if waited["timed_out"]:
        lines += [
            "",
            f"**Stopped after {TIMEOUT_S:.0f} s with {waited['sent']} of {LETTERS} sent.**",
        ]
    if result["_profile"]:
        lines += ["", *_miss(result)]
    return "\n".join(lines)


def _share(renders: dict, sends: dict) -> str:
    total = (renders.get("sum") or 0) + (sends.get("sum") or 0)
    return f"{100 * (renders.get('sum') or 0) / total:.0f} %" if total else "none"


def _load(values) -> str:
    return " / ".join(f"{value:.2f}" for value in values)


def _miss(result: dict) -> list[str]:
    """The profile of a missed target: where the time went."""
    profile, tasks = result["_profile"], result["_tasks"]
    renders, sends = tasks.get("render_letter", {}), tasks.get("send_letter_task", {})
    render_bound = renders.get("sum", 0) / 1000 / WORKERS
    busy = (renders.get("sum", 0) + sends.get("sum", 0)) / 1000
    idle = WORKERS * result["wall_s"] - busy
    return [
        f"**Target missed: {result['wall_s']} s against {TARGET_S:g} s.** Rendering alone, "
        f"shared between {WORKERS} processes, is {render_bound:.1f} s of it "
        f"({renders.get('n', 0)} renders, median {renders.get('p50')} ms in the worker against "
        f"{result['single_render_ms']} ms for the PDF alone in the benchmark's process); "
        f"sending {sends.get('sum', 0) / 1000 / WORKERS:.1f} s; the worker's processes were "
        f"out of a task for {max(idle, 0):.1f} process-seconds (waiting for messages, or for "
        "the tasks' ends to be logged). In "
        f"the benchmark's process one letter's content and HTML take {profile['html_ms']} ms "
        f"and its PDF {profile['pdf_ms_profiled']} ms under cProfile; the PDF's top functions "
        "by cumulative time:",
        "",
        "```",
        "   ncalls  tottime  percall  cumtime  percall filename:lineno(function)",
        *profile["top"],
        "```",
    ]
