"""The meeting page (a meeting's case list) on the product path: gunicorn as `make run` starts it,
the real middleware, PostgreSQL, over loopback HTTP with a signed-in coordinator's session.

Measures the SQL queries per request (from the X-Query-Count header; they must not grow with the
number of cases, so a 10-case meeting is measured too) and the round trip as the client sees it,
against /healthz/ (no database, no session) in the same run. Requests are interleaved (80 cases,
10 cases, /healthz/, repeat) so that drift of the machine affects all three alike.
"""

import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta

CASES = 80
SMALL_CASES = 10
WARMUP_ROUNDS = 10
MEASURED_ROUNDS = 50
COORDINATOR = "bench-coordinator"
CHAIR = "bench-chair"

TITLE = f"meeting page with {CASES} cases"


# --- benchmark data (ORM, in the benchmark database) -----------------------------------------


def make_data(password: str) -> dict:
    """The team, its coordinator (who signs in) and chair, and two planned meetings with exactly
    CASES and SMALL_CASES listed cases of distinct patients. Idempotent: a second run reuses the
    rows (the audit log's rows protect users from deletion, so nothing is deleted)."""
    from django.db import transaction

    from accounts.models import Organisation, Role, User
    from demo.synthetic import synthetic_nhs_number
    from mdt.models import Case, CoreRole, Meeting, Team, TumourSite
    from records.models import Patient

    from ._data import join_team

    with transaction.atomic():
        trust, _ = Organisation.objects.update_or_create(
            ods_code="RBENCH",
            defaults={"name": "Benchmark Hospitals NHS Trust", "kind": Organisation.Kind.TRUST},
        )
        practice, _ = Organisation.objects.update_or_create(
            ods_code="MBENCH",
            defaults={"name": "Benchmark Surgery", "kind": Organisation.Kind.GP_PRACTICE},
        )
        team, _ = Team.objects.update_or_create(
            name="Benchmark Lung MDT",
            host=trust,
            defaults={
                "tumour_site": TumourSite.LUNG,
                "core_roles": [CoreRole.CHAIR, CoreRole.SURGEON, CoreRole.RADIOLOGIST],
            },
        )
        people = {}
        for username, role, core_role, first, last in (
            (COORDINATOR, Role.COORDINATOR, CoreRole.COORDINATOR, "Bench", "Coordinator"),
            (CHAIR, Role.CHAIR, CoreRole.CHAIR, "Bench", "Chair"),
        ):
            user, _ = User.objects.update_or_create(
                username=username, defaults={"first_name": first, "last_name": last}
            )
            if username == COORDINATOR:
                user.set_password(password)  # a new random password each run
            else:
                user.set_unusable_password()
            user.is_active = True
            user.save()
            join_team(user, team, trust, role, core_role)
            people[username] = user

        patients = []
        for n in range(CASES + SMALL_CASES):
            patient, _ = Patient.objects.update_or_create(
                nhs_number=synthetic_nhs_number(n + 1),
                defaults={
                    "given_name": "Bench",
                    "family_name": f"Patient{n:03d}",
                    "birth_date": date(1940, 1, 1) + timedelta(days=131 * n),
                    "sex": Patient.Sex.FEMALE if n % 2 else Patient.Sex.MALE,
                    "address": f"{n + 1} Benchmark Street, Birmingham",
                    "postcode": "B1 1AA",
                    "gp_practice": practice,
                    "restricted": n % 17 == 0,
                },
            )
            patients.append(patient)

        meetings = {}
        # Fixed slots, so that every run finds the same two meetings.
        for size, starts_at, listed in (
            (CASES, datetime(2030, 1, 7, 9, 0, tzinfo=UTC), patients[:CASES]),
            (SMALL_CASES, datetime(2030, 1, 14, 9, 0, tzinfo=UTC), patients[CASES:]),
        ):
            meeting, _ = Meeting.objects.update_or_create(
                team=team,
                starts_at=starts_at,
                defaults={
                    "cutoff_at": starts_at - timedelta(days=2),
                    "status": Meeting.Status.PLANNED,  # list open: the editable table
                    "chair": people[CHAIR],
                    "list_closed_at": None,
                    "list_closed_by": None,
                },
            )
            current = list(meeting.cases.listed().order_by("position", "id"))
            if [case.patient_id for case in current] != [p.pk for p in listed]:
                meeting.cases.listed().update(
                    status=Case.Status.REMOVED, removed_reason="benchmark data reset"
                )
                triages = list(Case.Triage.values)
                Case.objects.bulk_create(
                    Case(
                        meeting=meeting,
                        patient=patient,
                        position=position,
                        question="Confirm stage and plan treatment: CT shows a 3 cm right upper "
                        f"lobe mass (benchmark case {position}).",
                        referrer="Dr B Referrer, respiratory medicine",
                        triage=triages[position % len(triages)],
                        added_by=people[COORDINATOR],
                        late_reason="Scan reported after the cut-off" if position % 10 == 0 else "",
                    )
                    for position, patient in enumerate(listed, start=1)
                )
            meetings[size] = meeting
    return {"user": people[COORDINATOR], "meetings": meetings}


# --- measuring -------------------------------------------------------------------------------


def _ms(seconds: list[float]) -> dict[str, float]:
    millis = [s * 1000 for s in seconds]
    return {
        "median": round(statistics.median(millis), 2),
        "p95": round(statistics.quantiles(millis, n=20, method="inclusive")[18], 2),
    }


def _query_count(response) -> int:
    value = response.headers.get("x-query-count")
    if value is None:
        raise RuntimeError("no X-Query-Count header: is QUERY_COUNT_HEADER=1 reaching the app?")
    return int(value)


def _check(response, path: str, rows: int | None) -> None:
    if response.status_code != 200:
        where = response.headers.get("location", "")
        raise RuntimeError(f"GET {path} answered {response.status_code} {where}")
    if rows is not None:
        shown = response.text.count('<tr class="nhsuk-table__row" id="case-')
        if shown != rows:
            raise RuntimeError(f"GET {path} showed {shown} cases, expected {rows}")


def measure(server_url: str, username: str, password: str, targets: dict) -> dict:
    """Signs in, then WARMUP_ROUNDS + MEASURED_ROUNDS interleaved rounds over the targets
    ({key: (path, expected case rows or None, send the session cookie)})."""
    from ._http import Browser

    times: dict[str, list[float]] = {key: [] for key in targets}
    queries: dict[str, list[int]] = {key: [] for key in targets}
    size: dict[str, int] = {}
    with Browser(server_url) as browser:
        browser.login(username, password)
        for round_no in range(WARMUP_ROUNDS + MEASURED_ROUNDS):
            for key, (path, rows, with_session) in targets.items():
                response, elapsed = browser.get(path, cookies=with_session)
                _check(response, path, rows)
                if round_no >= WARMUP_ROUNDS:
                    times[key].append(elapsed)
                    queries[key].append(_query_count(response))
                    size[key] = len(response.content)
    return {"times": times, "queries": queries, "bytes": size}


def repeated_queries(user, meetings: dict) -> list[tuple[int, int, str]]:
    """Diagnosis when the count grows with the cases: runs both pages in this process (Django's
    test client, not the product path) and returns the statements whose number differs, as
    (count with SMALL_CASES, count with CASES, SQL with literals replaced by ?)."""
    import re
    from collections import Counter

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    def shape(sql: str) -> str:
        sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
        return re.sub(r"\b\d+\b", "?", sql)

    counts = {}
    for size, meeting in meetings.items():
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(f"/meetings/{meeting.public_id}/")
        if response.status_code != 200:
            raise RuntimeError(f"in-process GET answered {response.status_code}")
        counts[size] = Counter(shape(query["sql"]) for query in captured.captured_queries)
    small, big = counts[SMALL_CASES], counts[CASES]
    return sorted(
        ((small[sql], big[sql], sql) for sql in set(small) | set(big) if small[sql] != big[sql]),
        key=lambda row: row[0] - row[1],
    )


def run() -> dict:
    import secrets

    from . import _django
    from ._server import Gunicorn

    started = time.monotonic()
    env = _django.setup()
    password = secrets.token_urlsafe(24)
    data = make_data(password)
    print(f"bench: database and data ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    big, small = data["meetings"][CASES], data["meetings"][SMALL_CASES]
    targets = {
        "big": (f"/meetings/{big.public_id}/", CASES, True),
        "small": (f"/meetings/{small.public_id}/", SMALL_CASES, True),
        # As a load balancer calls it: no cookies, so no session is read.
        "trivial": ("/healthz/", None, False),
    }
    with Gunicorn(env) as server:
        print(f"bench: gunicorn ({server.workers} workers) at {server.url}", file=sys.stderr)
        started = time.monotonic()
        measured = measure(server.url, COORDINATOR, password, targets)
        print(f"bench: measured in {time.monotonic() - started:.1f} s", file=sys.stderr)

    times, queries = measured["times"], measured["queries"]
    counts = {key: max(values) for key, values in queries.items()}
    varied = {key: sorted(set(values)) for key, values in queries.items() if len(set(values)) > 1}
    repeats = []
    if counts["big"] != counts["small"]:
        repeats = repeated_queries(data["user"], data["meetings"])
        print(
            f"bench: the meeting page's queries grow with its cases "
            f"({counts['small']} with {SMALL_CASES}, {counts['big']} with {CASES}); "
            "statements whose number differs:",
            file=sys.stderr,
        )
        for n_small, n_big, sql in repeats:
            print(f"  {n_small} -> {n_big}: {sql}", file=sys.stderr)
    ms = {key: _ms(values) for key, values in times.items()}
    return {
        "bench": "meeting_page",
        "cases": CASES,
        "queries": counts["big"],
        "queries_10_cases": counts["small"],
        "ms_median": ms["big"]["median"],
        "trivial_ms_median": ms["trivial"]["median"],
        "ms_p95": ms["big"]["p95"],
        "trivial_ms_p95": ms["trivial"]["p95"],
        "_ms": ms,
        "_queries": counts,
        "_queries_varied": varied,
        "_bytes": measured["bytes"],
        "_repeats": repeats,
        "_workers": server.workers,
    }


def markdown(result: dict) -> str:
    ms, queries, size = result["_ms"], result["_queries"], result["_bytes"]
    lines = [
        f"`GET /meetings/<id>/` as a signed-in coordinator (list open, so the editable table) "
        f"served by gunicorn (`config.wsgi:application`, {result['_workers']} sync workers, as "
        "`make run` starts it) with the real middleware (sessions, CSRF, CSP, audit log row per "
        "request) and PostgreSQL, timed by an httpx client over loopback: "
        f"{WARMUP_ROUNDS} warm-up and {MEASURED_ROUNDS} measured rounds, each round one request "
        "to each column in turn. SQL queries per request from the `X-Query-Count` header "
        "(`QUERY_COUNT_HEADER=1`). `/healthz/` is sent without cookies (no session, no database).",
        "",
        f"| measure | {CASES} cases | {SMALL_CASES} cases | `/healthz/` |",
        "| --- | ---: | ---: | ---: |",
        f"| SQL queries per request | {queries['big']} | {queries['small']} "
        f"| {queries['trivial']} |",
        f"| median round trip (ms) | {ms['big']['median']} | {ms['small']['median']} "
        f"| {ms['trivial']['median']} |",
        f"| p95 round trip (ms) | {ms['big']['p95']} | {ms['small']['p95']} "
        f"| {ms['trivial']['p95']} |",
        f"| response size (bytes) | {size['big']:,} | {size['small']:,} | {size['trivial']:,} |",
        "",
    ]
    if queries["big"] == queries["small"]:
        lines.append(
            f"The number of queries does not grow with the number of cases "
            f"({queries['big']} for {SMALL_CASES} and for {CASES})."
        )
    else:
        lines.append(
            f"**The number of queries grows with the number of cases** ({queries['small']} for "
            f"{SMALL_CASES}, {queries['big']} for {CASES}). Statements whose number differs "
            f"({SMALL_CASES} cases → {CASES} cases, from an in-process run of the same page):"
        )
        lines.append("")
        for n_small, n_big, sql in result["_repeats"]:
            lines.append(f"- {n_small} → {n_big}: `{sql[:300]}`")
    if result["_queries_varied"]:
        lines.append("")
        lines.append(
            "The count varied between requests (the table shows the largest): "
            + ", ".join(f"{key}: {values}" for key, values in result["_queries_varied"].items())
        )
    return "\n".join(lines)
