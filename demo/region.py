"""The demo region: three West Midlands trusts, ten GP practices, the cancer registry, lung,
breast and colorectal teams, a user for each role, 200 synthetic patients (NHS numbers from the
999 test range), next month's meetings with lists (the next ones partly reviewed), last week's
meeting of each team concluded with signed outcomes (demo.meeting_activity), and the registry's
registrations of the patients' cancers (demo.registry_data). Seeding twice changes nothing."""

import random
from dataclasses import dataclass
from datetime import date, time, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, Organisation, Role, User
from mdt.models import Case, CoreRole, Meeting, Team, TeamMember, TumourSite
from mdt.services import generate_weekly_meetings
from records.models import Patient, Source

from .practice_inbox import practice_mailbox_id
from .sources import DEMO_SOURCES, demo_source_url
from .synthetic import synthetic_nhs_number

TRUSTS = [
    (
        "RRK",
        "University Hospitals Birmingham NHS Foundation Trust",
        "Mindelsohn Way, Birmingham B15 2GW",
    ),
    ("RWP", "Worcestershire Acute Hospitals NHS Trust", "Charles Hastings Way, Worcester WR5 1DD"),
    ("RL4", "The Royal Wolverhampton NHS Trust", "Wolverhampton Road, Wolverhampton WV10 0QP"),
]
PRACTICES = [
    ("M85011", "Harborne Medical Practice", "B17 0HG"),
    ("M85020", "Moseley Medical Centre", "B13 8JP"),
    ("M85063", "Selly Oak Health Centre", "B29 6JB"),
    ("M81005", "Worcester Riverside Surgery", "WR1 2ES"),
    ("M81012", "Malvern Hills Practice", "WR14 2GP"),
    ("M81040", "Droitwich Spa Medical Centre", "WR9 8RD"),
    ("M92001", "Tettenhall Medical Practice", "WV6 8QZ"),
    ("M92015", "Whitmore Reans Health Centre", "WV1 4AL"),
    ("M92027", "Penn Manor Surgery", "WV4 5NH"),
    ("M88004", "Dudley Road Family Practice", "DY1 4SA"),
]
# (team, site, host, core roles)
TEAMS = [
    (
        "Lung MDT (UHB)",
        TumourSite.LUNG,
        "RRK",
        [
            CoreRole.CHAIR,
            CoreRole.SURGEON,
            CoreRole.ONCOLOGIST,
            CoreRole.RADIOLOGIST,
            CoreRole.PATHOLOGIST,
            CoreRole.CNS,
            CoreRole.PHYSICIAN,
        ],
    ),
    (
        "Breast MDT (Worcestershire)",
        TumourSite.BREAST,
        "RWP",
        [
            CoreRole.CHAIR,
            CoreRole.SURGEON,
            CoreRole.ONCOLOGIST,
            CoreRole.RADIOLOGIST,
            CoreRole.PATHOLOGIST,
            CoreRole.CNS,
        ],
    ),
    (
        "Colorectal MDT (Wolverhampton)",
        TumourSite.COLORECTAL,
        "RL4",
        [
            CoreRole.CHAIR,
            CoreRole.SURGEON,
            CoreRole.ONCOLOGIST,
            CoreRole.RADIOLOGIST,
            CoreRole.PATHOLOGIST,
            CoreRole.CNS,
        ],
    ),
]
TEAM_DAYS = {"RRK": 1, "RWP": 2, "RL4": 3}  # weekday: Tuesday, Wednesday, Thursday
# The specialties that review every fully discussed case before the meeting (mdt.reviews).
REVIEW_ROLES = {
    TumourSite.LUNG: [CoreRole.RADIOLOGIST, CoreRole.PATHOLOGIST],
    TumourSite.BREAST: [CoreRole.RADIOLOGIST, CoreRole.PATHOLOGIST],
    TumourSite.COLORECTAL: [CoreRole.RADIOLOGIST, CoreRole.PATHOLOGIST],
}


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    last_name: str
    org: str
    role: str
    specialty: str = ""
    teams: tuple[tuple[str, str], ...] = ()  # (team name, core role)


LUNG, BREAST, COLO = (team[0] for team in TEAMS)
USERS = [
    DemoUser(
        "coordinator",
        "Carol",
        "Jennings",
        "RRK",
        Role.COORDINATOR,
        teams=((LUNG, CoreRole.COORDINATOR), (COLO, CoreRole.COORDINATOR)),
    ),
    DemoUser(
        "clinician",
        "Ravi",
        "Sharma",
        "RRK",
        Role.CLINICIAN,
        "thoracic surgery",
        teams=((LUNG, CoreRole.SURGEON),),
    ),
    DemoUser(
        "chair",
        "Helen",
        "Okafor",
        "RRK",
        Role.CHAIR,
        "respiratory medicine",
        teams=((LUNG, CoreRole.CHAIR),),
    ),
    DemoUser("gp", "Simon", "Patel", "M85011", Role.GP),
    DemoUser("admin", "Alex", "Morgan", "RRK", Role.ADMIN),
    DemoUser(
        "radiologist",
        "Grace",
        "Liu",
        "RRK",
        Role.CLINICIAN,
        "radiology",
        teams=((LUNG, CoreRole.RADIOLOGIST),),
    ),
    DemoUser(
        "pathologist",
        "Tom",
        "Evans",
        "RRK",
        Role.CLINICIAN,
        "histopathology",
        teams=((LUNG, CoreRole.PATHOLOGIST),),
    ),
    DemoUser(
        "oncologist",
        "Amira",
        "Haddad",
        "RL4",
        Role.CLINICIAN,
        "clinical oncology",
        teams=(
            (LUNG, CoreRole.ONCOLOGIST),
            (COLO, CoreRole.ONCOLOGIST),
            (BREAST, CoreRole.ONCOLOGIST),
        ),
    ),
    DemoUser(
        "cns", "Joanne", "Price", "RRK", Role.CLINICIAN, "lung CNS", teams=((LUNG, CoreRole.CNS),)
    ),
    DemoUser(
        "physician",
        "Daniel",
        "Mensah",
        "RRK",
        Role.CLINICIAN,
        "respiratory medicine",
        teams=((LUNG, CoreRole.PHYSICIAN),),
    ),
    DemoUser(
        "breast.coordinator",
        "Priya",
        "Desai",
        "RWP",
        Role.COORDINATOR,
        teams=((BREAST, CoreRole.COORDINATOR),),
    ),
    DemoUser(
        "breast.chair",
        "Mark",
        "Hughes",
        "RWP",
        Role.CHAIR,
        "breast surgery",
        teams=((BREAST, CoreRole.CHAIR),),
    ),
    DemoUser(
        "colorectal.chair",
        "Fiona",
        "Walsh",
        "RL4",
        Role.CHAIR,
        "colorectal surgery",
        teams=((COLO, CoreRole.CHAIR),),
    ),
    # The breast and colorectal teams' other core members (their meetings are quorate).
    *(
        DemoUser(username, first, last, org, Role.CLINICIAN, specialty, teams=((team, role),))
        for username, first, last, org, specialty, team, role in [
            ("breast.surgeon", "Claire", "Bennett", "RWP", "breast surgery", BREAST, "surgeon"),
            (
                "breast.radiologist",
                "Nadia",
                "Rahman",
                "RWP",
                "breast radiology",
                BREAST,
                "radiologist",
            ),
            ("breast.pathologist", "Owen", "Price", "RWP", "histopathology", BREAST, "pathologist"),
            ("breast.cns", "Lucy", "Fraser", "RWP", "breast CNS", BREAST, "cns"),
            (
                "colorectal.surgeon",
                "Imran",
                "Qureshi",
                "RL4",
                "colorectal surgery",
                COLO,
                "surgeon",
            ),
            ("colorectal.radiologist", "Helen", "Marsh", "RL4", "radiology", COLO, "radiologist"),
            (
                "colorectal.pathologist",
                "George",
                "Adeyemi",
                "RL4",
                "histopathology",
                COLO,
                "pathologist",
            ),
            ("colorectal.cns", "Sian", "Morgan", "RL4", "colorectal CNS", COLO, "cns"),
        ]
    ),
]

GIVEN_F = [
    "Margaret",
    "Susan",
    "Patricia",
    "Linda",
    "Janet",
    "Aisha",
    "Mary",
    "Elaine",
    "Joan",
    "Sandra",
    "Fatima",
    "Barbara",
    "Gillian",
    "Karen",
    "Ruth",
    "Nisha",
    "Irene",
    "Jean",
]
GIVEN_M = [
    "John",
    "David",
    "Michael",
    "Peter",
    "Robert",
    "Mohammed",
    "James",
    "Brian",
    "Keith",
    "Anthony",
    "Raj",
    "Stephen",
    "William",
    "Gary",
    "Paul",
    "Ian",
    "Harjit",
    "Derek",
]
FAMILY = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Khan",
    "Hughes",
    "Edwards",
    "Hill",
    "Turner",
    "Ali",
    "Baker",
    "Begum",
    "Cooper",
    "Kaur",
    "Singh",
    "Morris",
    "Ward",
]
STREETS = [
    "Church Road",
    "Station Road",
    "Park Avenue",
    "Mill Lane",
    "Victoria Street",
    "The Green",
    "Queens Road",
    "High Street",
    "Oak Drive",
    "Kingsway",
]
QUESTIONS = {
    TumourSite.LUNG: [
        "Confirm stage and plan treatment",
        "CT shows new 2 cm spiculated nodule: biopsy?",
        "Post-operative histology review",
        "Suitable for SABR?",
        "Review PET-CT for staging",
    ],
    TumourSite.BREAST: [
        "Confirm diagnosis and plan surgery",
        "Neoadjuvant chemotherapy?",
        "Post-operative histology: further surgery?",
        "Review MRI extent of disease",
    ],
    TumourSite.COLORECTAL: [
        "Staging CT and MRI review: plan treatment",
        "Suitable for resection?",
        "Post-operative histology review",
        "Liver lesion on CT: refer to HPB?",
    ],
}
REFERRERS = [
    "Dr A Khan (respiratory)",
    "Mr P Green (surgery)",
    "Dr S Hall (GP)",
    "Dr R Cooper (gastroenterology)",
    "Miss L Ward (breast surgery)",
]
PATIENT_COUNT = 200
# The region's cancer registry: an organisation, and the record source the case page badges
# "Cancer registry".
REGISTRY_ODS = "NDRS"
REGISTRY_NAME = "National Disease Registration Service"
REGISTRY_SOURCE_NAME = "Cancer registry"


def synthetic_nhs_numbers(count: int, seed: int = 2026) -> list[str]:
    """Valid NHS numbers spread over the 999 test range, the same every time."""
    return [synthetic_nhs_number(n) for n in random.Random(seed).sample(range(1, 499_999), count)]


@transaction.atomic
def seed_region(password: str) -> dict[str, int]:
    rng = random.Random(42)
    orgs = {}
    for code, name, address in TRUSTS:
        orgs[code], _ = Organisation.objects.update_or_create(
            ods_code=code,
            defaults={"name": name, "kind": Organisation.Kind.TRUST, "address": address},
        )
    for code, name, postcode in PRACTICES:
        orgs[code], _ = Organisation.objects.update_or_create(
            ods_code=code,
            defaults={
                "name": name,
                "kind": Organisation.Kind.GP_PRACTICE,
                "address": postcode,
                # Each practice's mailbox in the local mesh-sandbox (demo.practice_inbox).
                "mesh_mailbox_id": practice_mailbox_id(code),
            },
        )
    teams = {}
    for name, site, host, core_roles in TEAMS:
        teams[name], _ = Team.objects.update_or_create(
            name=name,
            defaults={
                "tumour_site": site,
                "host": orgs[host],
                "core_roles": core_roles,
                "review_roles": REVIEW_ROLES[site],
            },
        )
    for spec in USERS:
        user, created = User.objects.get_or_create(
            username=spec.username,
            defaults={
                "first_name": spec.first_name,
                "last_name": spec.last_name,
                "email": f"{spec.username}@demo.invalid",
            },
        )
        if created or not user.check_password(password):
            user.set_password(password)
        user.is_staff = spec.role == Role.ADMIN
        user.is_superuser = spec.role == Role.ADMIN
        user.save()
        Membership.objects.get_or_create(
            user=user,
            organisation=orgs[spec.org],
            role=spec.role,
            defaults={"specialty": spec.specialty},
        )
        for team_name, core_role in spec.teams:
            TeamMember.objects.update_or_create(
                team=teams[team_name], user=user, defaults={"core_role": core_role}
            )

    orgs[REGISTRY_ODS], _ = Organisation.objects.update_or_create(
        ods_code=REGISTRY_ODS,
        defaults={"name": REGISTRY_NAME, "kind": Organisation.Kind.REGISTRY},
    )
    _seed_sources(orgs)
    patients = _seed_patients(rng, [orgs[code] for code, _, _ in PRACTICES])
    meetings = _seed_meetings(rng, teams, patients)
    # After the lists: the histories, and so the registrations, follow each patient's listing.
    from .registry_data import demo_histories_as_of, seed_demo_registry  # imports this module

    as_of, seed = demo_histories_as_of()
    registrations, conflict = seed_demo_registry(patients, seed=seed, as_of=as_of)
    # What the teams have done: reviews for the next meetings, last week's meeting concluded.
    from .meeting_activity import seed_next_meeting_reviews, seed_past_meetings

    concluded = seed_past_meetings(
        list(teams.values()),
        exclude_nhs_numbers={conflict.nhs_number} if conflict else set(),
        as_of=as_of,
        seed=seed,
    )
    reviews = seed_next_meeting_reviews(list(teams.values()))
    return {
        "organisations": len(orgs),
        "teams": len(teams),
        "users": len(USERS),
        "patients": len(patients),
        "meetings": meetings,
        "registrations": registrations,
        "meetings concluded now": concluded,
        "reviews added": reviews,
    }


def _seed_sources(orgs: dict[str, Organisation]) -> None:
    """The demo region's record sources: the local FHIR servers `make run` starts, and the
    cancer registry (an internal source: registry.source answers it from the database)."""
    Source.objects.update_or_create(
        name=REGISTRY_SOURCE_NAME,
        defaults={
            "kind": Source.Kind.REGISTRY,
            "base_url": "",
            "organisation": orgs[REGISTRY_ODS],
            "enabled": True,
        },
    )
    for name, code, port in DEMO_SOURCES:
        Source.objects.update_or_create(
            name=name,
            defaults={
                "kind": Source.Kind.FHIR,
                "base_url": demo_source_url(port),
                "organisation": orgs.get(code),
                "timeout_s": 5.0,
                "enabled": True,
            },
        )


def _seed_patients(rng: random.Random, practices: list[Organisation]) -> list[Patient]:
    patients = []
    for index, number in enumerate(synthetic_nhs_numbers(PATIENT_COUNT)):
        female = rng.random() < 0.5
        given = rng.choice(GIVEN_F if female else GIVEN_M)
        family = rng.choice(FAMILY)
        birth = date(1935, 1, 1) + timedelta(days=rng.randrange(0, 365 * 50))
        practice = practices[index % len(practices)]
        patient, _ = Patient.objects.update_or_create(
            nhs_number=number,
            defaults={
                "given_name": given,
                "family_name": family,
                "birth_date": birth,
                "sex": Patient.Sex.FEMALE if female else Patient.Sex.MALE,
                "address": f"{rng.randrange(1, 200)} {rng.choice(STREETS)}",
                "postcode": practice.address,
                "gp_practice": practice,
                # A few patients are restricted (PDS security label R): no address anywhere.
                "restricted": index % 50 == 7,
            },
        )
        patients.append(patient)
    return patients


def _seed_meetings(rng: random.Random, teams: dict[str, Team], patients: list[Patient]) -> int:
    today = timezone.localdate()
    coordinator = User.objects.get(username="coordinator")
    total = 0
    pool = list(patients)
    rng.shuffle(pool)
    for team in teams.values():
        weekday = TEAM_DAYS[team.host.ods_code]
        first = today + timedelta(days=(weekday - today.weekday()) % 7 or 7)
        chair = team.members.filter(core_role=CoreRole.CHAIR).select_related("user").first()
        generate_weekly_meetings(
            team=team, first_date=first, at=time(9, 0), weeks=5, chair=chair.user if chair else None
        )
        meetings = team.meetings.filter(starts_at__date__gte=today).order_by("starts_at")[:5]
        for meeting in meetings:
            total += 1
            if meeting.cases.exists():
                continue
            for position in range(1, rng.randrange(8, 16)):
                patient = pool.pop() if pool else rng.choice(patients)
                if meeting.cases.filter(patient=patient).exists():
                    continue
                Case.objects.create(
                    meeting=meeting,
                    patient=patient,
                    position=position,
                    question=rng.choice(QUESTIONS[team.tumour_site]),
                    referrer=rng.choice(REFERRERS),
                    triage=rng.choice(
                        [Case.Triage.FULL_DISCUSSION] * 3 + [Case.Triage.STANDARD_OF_CARE]
                    ),
                    added_by=coordinator,
                )
            if not pool:
                pool = list(patients)
                rng.shuffle(pool)
    return total


def demo_usernames() -> list[str]:
    return [spec.username for spec in USERS]


__all__ = ["Meeting", "demo_usernames", "seed_region", "synthetic_nhs_numbers"]
