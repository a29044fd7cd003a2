"""Populating a meeting's records from the region's sources on the product path: a coordinator's
"refresh all" (an HTTP POST to gunicorn) enqueues ``mdt.tasks.populate_meeting`` on Redis, and a
real Celery worker (``celery -A config worker --concurrency=2``, as ``make run`` starts it) asks
every source about every patient (records.populate / records.federation) and freezes one snapshot
per patient in PostgreSQL.

The sources are the demo's FHIR R4 servers (demo.fhir_server, in this process on threads) serving
histories written by demo.histories for the meeting's patients, each adding LATENCY_MS to every
request, as does the demographics service (PDS shape). Measured:

- wall: from the POST of "refresh all" until every listed case points at a snapshot newer than
  the POST, seen by polling PostgreSQL every POLL_S;
- sequential: the same work one request at a time (in this process: one run of the product's
  Federation with FEDERATION_CONCURRENCY_PER_SOURCE=1, asking one source at a time about one
  patient at a time, then the product's freeze());
- the lower bound: the requests one patient needs from its slowest source (CapabilityStatement,
  Patient search, batch, next pages) times the latency; and the bound set by the concurrency
  limit (the busiest source's requests in one run, CONCURRENCY_PER_SOURCE at a time);
- a dead source (a FHIR server that accepts connections and never answers) with a short timeout,
  while cases arrive one after another (each case's own "refresh", one POST after the other):
  the extra wall time against the same arrivals without it, and how many requests reached it;
- when the wall misses its target (or the run fails), a diagnosis: the same population outside
  Celery in a process of its own (bench._probe), timed and under cProfile.
"""

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

CASES = 60
SOURCE_CODES = ("RRK", "RWP", "RL4", "GP")
LATENCY_MS = 150
PDS_LATENCY_MS = LATENCY_MS
CONCURRENCY_PER_SOURCE = 16
WORKER_CONCURRENCY = int(os.environ.get("CELERY_WORKER_CONCURRENCY", "2"))  # as serve.sh
SOURCE_TIMEOUT_S = 5.0
DEAD_TIMEOUT_S = 2.0
TARGET_WALL_S = 3.0
POLL_S = 0.05
PHASE_TIMEOUT_S = 150.0
POOL_FOR_DIAGNOSIS = 1000
WARMUP_CASES = 4
# With the dead source? Adjacent runs form pairs (control, dead) or (dead, control): the extra is
# the median of the pairs' differences, each pair measured under nearly the same machine load.
ARRIVAL_ORDER = (False, True, True, False, False, True, True, False)
# The sequential baseline is long (every request waits for the one before it: ~1.6 s a patient,
# ~100 s for 60): it is measured on this many cases and extrapolated to CASES (the first patient
# also reads each CapabilityStatement), which keeps the whole benchmark under 5 minutes with
# three pairs of dead-source runs.
SEQUENTIAL_CASES = 10
FIRST_NUMBER = 1001  # synthetic NHS numbers 1001.. (meeting_page uses 1..90)
COORDINATOR = "bench-federation-coordinator"
SOURCE_PREFIX = "Benchmark federation"
DEAD_SOURCE = f"{SOURCE_PREFIX} dead source"
QUESTIONS = (  # one of each pathway in demo.histories, in turn
    "CT shows new 2 cm spiculated nodule: biopsy?",
    "Confirm stage and plan treatment",
    "Post-operative histology review",
    "Liver lesion on CT: refer to HPB?",
)

TITLE = (
    f"populating a {CASES}-case meeting from {len(SOURCE_CODES)} sources "
    f"({LATENCY_MS} ms per request)"
)


# --- benchmark data (ORM, in the benchmark database) -----------------------------------------


def make_data(password: str) -> dict:
    """The team, its coordinator, and a planned meeting with exactly CASES listed cases of
    distinct patients. Idempotent: a second run reuses the rows."""
    from django.db import transaction

    from accounts.models import Organisation, Role, User
    from demo.region import TRUSTS
    from demo.synthetic import synthetic_nhs_number
    from mdt.models import Case, CoreRole, Meeting, Team, TumourSite
    from records.models import Patient

    from ._data import join_team

    with transaction.atomic():
        trusts = {}
        for code, name, address in TRUSTS:
            trusts[code], _ = Organisation.objects.update_or_create(
                ods_code=code,
                defaults={"name": name, "kind": Organisation.Kind.TRUST, "address": address},
            )
        host = trusts[TRUSTS[0][0]]
        practice, _ = Organisation.objects.update_or_create(
            ods_code="MBENCH",
            defaults={"name": "Benchmark Surgery", "kind": Organisation.Kind.GP_PRACTICE},
        )
        team, _ = Team.objects.update_or_create(
            name="Benchmark Federation Lung MDT",
            host=host,
            defaults={
                "tumour_site": TumourSite.LUNG,
                "core_roles": [CoreRole.CHAIR, CoreRole.SURGEON, CoreRole.RADIOLOGIST],
            },
        )
        user, _ = User.objects.update_or_create(
            username=COORDINATOR, defaults={"first_name": "Bench", "last_name": "Federation"}
        )
        user.set_password(password)  # a new random password each run
        user.is_active = True
        user.save()
        join_team(user, team, host, Role.COORDINATOR, CoreRole.COORDINATOR)

        patients = []
        for n in range(CASES):
            patient, _ = Patient.objects.update_or_create(
                nhs_number=synthetic_nhs_number(FIRST_NUMBER + n),
                defaults={
                    "given_name": "Federation",
                    "family_name": f"Patient{n:03d}",
                    "birth_date": date(1940, 3, 1) + timedelta(days=127 * n),
                    "sex": Patient.Sex.FEMALE if n % 2 else Patient.Sex.MALE,
                    "address": f"{n + 1} Benchmark Road, Birmingham",
                    "postcode": "B2 2BB",
                    "gp_practice": practice,
                    "restricted": False,
                    "deceased": False,
                },
            )
            patients.append(patient)

        starts_at = datetime(2030, 2, 4, 9, 0, tzinfo=UTC)  # a fixed slot: every run finds it
        meeting, _ = Meeting.objects.update_or_create(
            team=team,
            starts_at=starts_at,
            defaults={
                "cutoff_at": starts_at - timedelta(days=2),
                "status": Meeting.Status.PLANNED,
                "chair": None,
                "list_closed_at": None,
                "list_closed_by": None,
            },
        )
        current = list(meeting.cases.listed().order_by("position", "id"))
        if [case.patient_id for case in current] != [p.pk for p in patients]:
            meeting.cases.listed().update(
                status=Case.Status.REMOVED, removed_reason="benchmark data reset"
            )
            Case.objects.bulk_create(
                Case(
                    meeting=meeting,
                    patient=patient,
                    position=position,
                    question=QUESTIONS[position % len(QUESTIONS)],
                    referrer="Dr B Referrer, respiratory medicine",
                    added_by=user,
                )
                for position, patient in enumerate(patients, start=1)
            )
        cases = list(meeting.cases.listed().order_by("position", "id"))
    return {
        "user": user,
        "meeting": meeting,
        "cases": cases,
        "patients": patients,
        "trusts": trusts,
    }


def make_sources(servers: dict, dead_url: str, trusts: dict) -> dict:
    """One Source row per benchmark server (the dead one disabled for now); every other Source
    row of the benchmark database is disabled."""
    from records.models import Source

    rows = {}
    for code, server in servers.items():
        rows[code], _ = Source.objects.update_or_create(
            name=f"{SOURCE_PREFIX} {code}",
            defaults={
                "kind": Source.Kind.FHIR,
                "base_url": server.base_url,
                "organisation": trusts.get(code),
                "timeout_s": SOURCE_TIMEOUT_S,
                "enabled": True,
                "auth": Source.Auth.NONE,
            },
        )
    rows["dead"], _ = Source.objects.update_or_create(
        name=DEAD_SOURCE,
        defaults={
            "kind": Source.Kind.FHIR,
            "base_url": dead_url,
            "organisation": None,
            "timeout_s": DEAD_TIMEOUT_S,
            "enabled": False,
            "auth": Source.Auth.NONE,
        },
    )
    Source.objects.exclude(pk__in=[row.pk for row in rows.values()]).update(enabled=False)
    return rows


# --- measuring -------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children still alive (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        ppid = int(fields[1])
        if int(entry.name) == pid or ppid == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


class PhaseFailed(Exception):
    """The worker logged a failed task during the phase."""


class Phase:
    """One measured population: the moment it started (wall clock for comparing with
    Snapshot.created_at, monotonic for timing), the request counts of the servers before it, the
    CPU time of the worker (master and children) and of this process, and the worker log's size
    (to see a task fail)."""

    def __init__(self, servers: dict, worker):
        from django.utils import timezone

        self.servers = servers
        self.worker = worker
        self.requests_before = {code: s.request_count for code, s in servers.items()}
        self.worker_cpu_before = _cpu_seconds(worker.process.pid)
        self.log_mark = worker.log_mark()
        self.own_cpu_before = time.process_time()
        self.wall_s: float | None = None
        self.error = ""
        self.since = timezone.now()
        self.started = time.monotonic()

    def wait(self, case_ids: list[int]) -> float:
        """Polls PostgreSQL every POLL_S until every case points at a snapshot newer than the
        start; returns the seconds since the start. Raises PhaseFailed as soon as the worker logs
        a failed task."""
        from django.utils import timezone

        from mdt.models import Case

        try:
            while True:
                done = Case.objects.filter(
                    pk__in=case_ids, snapshot__created_at__gte=self.since
                ).count()
                elapsed = time.monotonic() - self.started
                if done == len(case_ids):
                    self.wall_s = elapsed
                    return elapsed
                failures = self.worker.failures_since(self.log_mark)
                if failures:
                    self.error = failures[0][failures[0].find("Task ") :]
                    raise PhaseFailed(
                        f"{done} of {len(case_ids)} cases populated when the worker logged, "
                        f"{elapsed:.2f} s after the start: {failures[0]}"
                    )
                process = self.worker.process
                if process is None or process.poll() is not None:
                    raise RuntimeError(f"the Celery worker stopped:\n{self.worker.log_tail()}")
                if elapsed > PHASE_TIMEOUT_S:
                    raise RuntimeError(
                        f"only {done} of {len(case_ids)} cases were populated after "
                        f"{PHASE_TIMEOUT_S:.0f} s"
                    )
                time.sleep(POLL_S)
        finally:
            self.until = timezone.now()
            self.ended_s = time.monotonic() - self.started
            self.worker_cpu_s = _cpu_seconds(self.worker.process.pid) - self.worker_cpu_before
            self.own_cpu_s = time.process_time() - self.own_cpu_before
            self.requests = {
                code: s.request_count - self.requests_before[code]
                for code, s in self.servers.items()
            }

    def facts(self) -> dict:
        return {
            "asking_total_s": round(getattr(self, "asking_total_s", 0.0), 2),
            "wall_s": round(self.wall_s, 2) if self.wall_s is not None else None,
            "error": self.error,
            "ended_s": round(self.ended_s, 2),
            "posted_s": round(self.posted_s, 3),
            "worker_cpu_s": round(self.worker_cpu_s, 2),
            "own_cpu_s": round(self.own_cpu_s, 2),
            "requests": self.requests,
        }


def describe(phase: Phase, patient_ids: list[int]) -> dict:
    """What the snapshots made since the phase started say: when each was frozen, how long
    each patient's asking took, and each source's statuses, times and requests."""
    from records.models import Snapshot, SourceResult

    snapshots = list(
        Snapshot.objects.filter(
            patient_id__in=patient_ids,
            created_at__gte=phase.since,
            created_at__lte=phase.until,
        )
        .order_by("created_at")
        .values("pk", "created_at", "elapsed_ms")
    )
    frozen = [(s["created_at"] - phase.since).total_seconds() for s in snapshots]
    results = list(
        SourceResult.objects.filter(snapshot_id__in=[s["pk"] for s in snapshots]).values(
            "source__name", "status", "elapsed_ms", "counts"
        )
    )
    by_source: dict[str, dict] = {}
    for row in results:
        name = row["source__name"].removeprefix(SOURCE_PREFIX).strip()
        entry = by_source.setdefault(name, {"statuses": Counter(), "elapsed_ms": []})
        entry["statuses"][row["status"]] += 1
        entry["elapsed_ms"].append(row["elapsed_ms"])
    asking = [s["elapsed_ms"] for s in snapshots]
    return {
        "snapshots": len(snapshots),
        "first_frozen_s": round(frozen[0], 3) if frozen else None,
        "median_frozen_s": round(statistics.median(frozen), 3) if frozen else None,
        "last_frozen_s": round(frozen[-1], 3) if frozen else None,
        "asking_ms": _summary(asking),
        "sources": {
            name: {
                "statuses": dict(entry["statuses"]),
                "elapsed_ms": _summary(entry["elapsed_ms"]),
            }
            for name, entry in sorted(by_source.items())
        },
    }


def _asking_total(phase: Phase, patient_ids: list[int]) -> float:
    """The seconds the phase's snapshots spent asking (Snapshot.elapsed_ms), summed."""
    from django.db.models import Sum

    from records.models import Snapshot

    total = Snapshot.objects.filter(
        patient_id__in=patient_ids, created_at__gte=phase.since, created_at__lte=phase.until
    ).aggregate(total=Sum("elapsed_ms"))["total"]
    return (total or 0) / 1000


def _summary(values: list[float]) -> dict:
    if not values:
        return {}
    return {
        "min": round(min(values)),
        "median": round(statistics.median(values)),
        "max": round(max(values)),
    }


def round_trips(phase: Phase, patient_ids: list[int], codes: list[str]) -> dict[str, list[int]]:
    """For each source, the requests each patient needs in series: the CapabilityStatement (once
    per run, but a patient alone needs it), the Patient search, the batch of the first pages, and
    the longest chain of next pages (pages of one search follow each other; searches run side by
    side). From the requests each SourceResult kept in ``raw`` (metadata is not kept there)."""
    from django.db import connection

    from records.models import Snapshot, SourceResult

    chains: dict[str, list[int]] = {code: [] for code in codes}
    names = {f"{SOURCE_PREFIX} {code}": code for code in codes}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT source.name, result.status,
                   jsonb_path_query_array(result.raw, '$[*].request')
            FROM {SourceResult._meta.db_table} result
            JOIN {SourceResult._meta.get_field("source").related_model._meta.db_table} source
              ON source.id = result.source_id
            JOIN {Snapshot._meta.db_table} snapshot ON snapshot.id = result.snapshot_id
            WHERE snapshot.patient_id = ANY(%s)
              AND snapshot.created_at BETWEEN %s AND %s
            """,  # noqa: S608 - table names from the models, values as parameters
            [patient_ids, phase.since, phase.until],
        )
        for name, status, requests in cursor.fetchall():
            code = names.get(name)
            if code is None:
                continue
            requests = requests if isinstance(requests, list) else []
            pages = Counter()
            for request in requests:
                if "_getpages=" in request:
                    token = request.split("_getpages=", 1)[1].split("&", 1)[0]
                    pages[token] += 1
            if status == "not_found":
                chains[code].append(1)  # the Patient search alone
            else:
                chains[code].append(3 + max(pages.values(), default=0))
    return chains


# --- the sequential baseline (in this process) -----------------------------------------------


def sequential(patients: list, sources: list, pds_url: str, redis_url: str) -> dict:
    """The same work one request at a time: one run of the product's Federation (so the
    CapabilityStatement is read once per source, as in the worker) with a concurrency of 1 per
    source, asking one source at a time about one patient at a time, the demographics service
    after the sources, then the product's freeze() of that patient's snapshot."""
    import httpx
    from django.test.utils import override_settings

    from records.federation import Federation, SourceConfig
    from records.populate import PatientAnswers, PatientJob, _demographics, freeze

    measured = patients[:SEQUENTIAL_CASES]
    per_patient: list[float] = []
    with override_settings(
        FEDERATION_CONCURRENCY_PER_SOURCE=1, REDIS_URL=redis_url, DEMOGRAPHICS_URL=pds_url
    ):
        configs = [SourceConfig.of(s) for s in sources]
        rows = {s.pk: s for s in sources}
        loop = asyncio.new_event_loop()
        try:
            federation = Federation(configs)
            pds = httpx.AsyncClient(headers={"Accept": "application/fhir+json"})

            async def ask_one_by_one(job):
                answers = [await federation.ask(config, job.nhs_number) for config in configs]
                demographics, problem = await _demographics(pds, job.nhs_number)
                return answers, demographics, problem

            try:
                for patient in measured:
                    started = time.monotonic()
                    job = PatientJob(patient.pk, patient.nhs_number, patient.birth_date)
                    answers, demographics, problem = loop.run_until_complete(ask_one_by_one(job))
                    asked_ms = round((time.monotonic() - started) * 1000)
                    freeze(
                        PatientAnswers(
                            job=job,
                            answers=answers,
                            demographics=demographics,
                            demographics_problem=problem,
                            elapsed_ms=asked_ms,
                        ),
                        reason="Benchmark: the same work one request at a time",
                        sources=rows,
                    )
                    per_patient.append(time.monotonic() - started)
            finally:
                loop.run_until_complete(federation.__aexit__(None, None, None))
                loop.run_until_complete(pds.aclose())
        finally:
            loop.close()
    measured_s = sum(per_patient)
    if len(per_patient) == CASES:
        estimate = measured_s
    else:  # the first patient also read each CapabilityStatement
        rest = per_patient[1:]
        estimate = per_patient[0] + statistics.fmean(rest) * (CASES - 1)
    return {
        "cases_measured": len(per_patient),
        "measured_s": round(measured_s, 2),
        "sequential_s": round(estimate, 2),
        "per_patient_ms": _summary([s * 1000 for s in per_patient]),
    }


# --- the run ---------------------------------------------------------------------------------


def _post(browser, path: str, token: str, referer: str) -> None:
    response, _ = browser.request(
        "POST",
        path,
        data={"csrfmiddlewaretoken": token},
        headers={"Referer": f"{browser.base_url}{referer}"},
    )
    if response.status_code != 302:
        raise RuntimeError(f"POST {path} answered {response.status_code}")


def _csrf_token(browser, path: str) -> str:
    from ._http import CSRF_INPUT

    page, _ = browser.get(path)
    if page.status_code != 200:
        raise RuntimeError(f"GET {path} answered {page.status_code}")
    match = CSRF_INPUT.search(page.text)
    if not match:
        raise RuntimeError(f"GET {path} has no CSRF token")
    return match.group(1)


def one_after_another(browser, cases, token, meeting_path, servers, worker) -> Phase:
    """Each case's own "refresh" (POST /cases/<id>/refresh/, which enqueues populate_case), one
    POST after the other, as cases arriving on a list do; then waits until every case is
    populated."""
    phase = Phase(servers, worker)
    for case in cases:
        _post(browser, f"/cases/{case.public_id}/refresh/", token, meeting_path)
    phase.posted_s = time.monotonic() - phase.started
    phase.wait([c.pk for c in cases])
    return phase


def refresh_all(browser, meeting, case_ids, token, meeting_path, servers, worker) -> Phase:
    """The meeting's "refresh all" (POST /meetings/<id>/refresh/, which enqueues
    populate_meeting); then waits until every case is populated or the task fails."""
    phase = Phase(servers, worker)
    _post(browser, f"/meetings/{meeting.public_id}/refresh/", token, meeting_path)
    phase.posted_s = time.monotonic() - phase.started
    try:
        phase.wait(case_ids)
    except PhaseFailed as failed:
        print(f"bench: refresh all FAILED: {failed}", file=sys.stderr)
    return phase


def _client_cost(rounds: int = 5) -> dict:
    """Milliseconds to create an httpx.AsyncClient as records.federation does (a new SSL
    context, the CA bundle loaded, each time) and with one shared SSL context: the fixed cost
    of each source in each population run, even one whose breaker is open."""
    import ssl

    import httpx

    def median_ms(make) -> float:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            make()
            times.append((time.perf_counter() - started) * 1000)
        return round(statistics.median(times), 1)

    shared = ssl.create_default_context()
    return {
        "fresh_ms": median_ms(lambda: httpx.AsyncClient(timeout=5)),
        "shared_ms": median_ms(lambda: httpx.AsyncClient(timeout=5, verify=shared)),
    }


def _cpu_costs(histories: Path, refresh: Phase, patient_ids: list[int]) -> dict:
    """CPU of the two libraries every patient goes through, each measured alone in this process
    (thread CPU time, so the local source's threads are not counted): one GET through an
    `httpx.AsyncClient` made as `records.federation` makes them (shared TLS context, a pool of
    CONCURRENCY_PER_SOURCE // WORKER_CONCURRENCY connections, as in one worker process) from a
    `FhirServer` without latency; and reading one resource of the demo charts with
    `records.fhir_parse.read_resource` (fhir.resources R4B). With the refresh's own counts of
    requests and resources per patient."""
    import threading

    import httpx

    from demo.fhir_server import FhirServer
    from records.federation import TLS
    from records.fhir_parse import read_resource
    from records.models import Snapshot, SourceResult

    requests, concurrency = 200, max(1, CONCURRENCY_PER_SOURCE // WORKER_CONCURRENCY)
    resources = []
    for path in sorted(histories.glob("*/*.json"))[:40]:
        data = json.loads(path.read_text())
        if data.get("resourceType") == "Bundle":
            resources += [entry["resource"] for entry in data.get("entry") or []]
    for resource in resources:  # warm
        read_resource(resource)
    started = time.thread_time()
    for resource in resources:
        read_resource(resource)
    resource_ms = (time.thread_time() - started) * 1000 / max(1, len(resources))

    measured: dict = {}
    with FhirServer(histories / "RRK") as server:
        url = f"{server.base_url}/metadata"

        async def fetch_all() -> None:
            limits = httpx.Limits(
                max_connections=concurrency, max_keepalive_connections=concurrency
            )
            async with httpx.AsyncClient(verify=TLS, limits=limits) as client:
                slots = asyncio.Semaphore(concurrency)

                async def one() -> None:
                    async with slots, client.stream("GET", url) as response:
                        async for _ in response.aiter_bytes():
                            pass

                await asyncio.gather(*(one() for _ in range(2 * concurrency)))  # warm
                started = time.thread_time()
                await asyncio.gather(*(one() for _ in range(requests)))
                measured["request_ms"] = (time.thread_time() - started) * 1000 / requests

        thread = threading.Thread(target=lambda: asyncio.run(fetch_all()))
        thread.start()
        thread.join()
    snapshots = Snapshot.objects.filter(
        patient_id__in=patient_ids, created_at__gte=refresh.since, created_at__lte=refresh.until
    )
    kept = SourceResult.objects.filter(snapshot__in=snapshots)
    per_patient = max(1, snapshots.count())
    total_resources = sum(
        (counts or {}).get("resources", 0) for counts in kept.values_list("counts", flat=True)
    )
    return {
        "requests": requests,
        "concurrency": concurrency,
        "request_ms": round(measured.get("request_ms", 0.0), 2),
        "resources": len(resources),
        "resource_ms": round(resource_ms, 3),
        "requests_per_patient": round(sum(refresh.requests.values()) / per_patient, 1),
        "resources_per_patient": round(total_resources / per_patient, 1),
    }


def _product_state() -> dict:
    """What the measured code does, for the docs' proposals (the record store is being worked
    on: a proposal must not ask for what is already there)."""
    import inspect

    from mdt import tasks
    from records import breaker, federation, populate

    def source(obj) -> str:
        try:
            return inspect.getsource(getattr(obj, "run", obj))
        except (OSError, TypeError):
            return ""

    return {
        "bounded_in_flight": "Semaphore" in source(populate._ask_all),
        "chunked_meeting": hasattr(tasks, "populate_case_chunk")
        or "apply_async" in source(tasks.populate_meeting),
        "shared_ssl_context": "verify="
        in source(federation.Federation.__init__)
        + source(getattr(federation.Federation, "_client", federation.Federation.__init__)),
        "blocking_breaker_pool": "BlockingConnectionPool" in source(breaker.CircuitBreaker),
        "sniffio_missing": importlib.util.find_spec("sniffio") is None,
        "raw_through_unnest": "bulk_create"
        in source(populate.freeze) + source(getattr(populate, "freeze_all", populate.freeze)),
    }


def _reset_breaker(redis_url: str, source_id: int) -> None:
    """Closes the source's circuit breaker through the product's own CircuitBreaker (its key
    is the product's business), on the benchmark's Redis database."""
    import redis.asyncio as aioredis

    from records.breaker import CircuitBreaker

    async def reset() -> None:
        breaker = CircuitBreaker(aioredis.from_url(redis_url))
        try:
            await breaker.reset(source_id)
        finally:
            await breaker.close()

    asyncio.run(reset())


# --- diagnosis when the target is missed -----------------------------------------------------


def _with_query(url: str, **params) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update({key: str(value) for key, value in params.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


def diagnose(env: dict, case_ids: list[int], warmup_ids: list[int]) -> dict:
    """mdt.population.populate_cases for the same cases (what populate_meeting does, or shares
    out between the worker's processes), in one process of its own (python -m bench._probe):
    once timed, once under cProfile in every thread.
    The circuit breaker's Redis pool is raised with ``?max_connections=`` on REDIS_URL (which the
    worker cannot be given: kombu rejects the parameter), so that it can run at all when the
    product path fails on that pool."""
    import pstats
    import subprocess

    from ._django import ROOT

    probe_env = dict(env)
    probe_env["REDIS_URL"] = _with_query(env["REDIS_URL"], max_connections=POOL_FOR_DIAGNOSIS)
    command = [
        sys.executable,
        "-m",
        "bench._probe",
        "--cases",
        ",".join(map(str, case_ids)),
        "--warmup",
        ",".join(map(str, warmup_ids)),
    ]

    def probe(*extra: str) -> dict:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [*command, *extra],
            cwd=ROOT,
            env=probe_env,
            capture_output=True,
            text=True,
            timeout=PHASE_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            return {"error": f"exit {done.returncode}: {tail}"}
        return json.loads(done.stdout.strip().splitlines()[-1])

    timed = probe()
    print(f"bench: diagnosis, populate_cases in a process of its own: {timed}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as folder:
        path = Path(folder) / "populate.prof"
        profiled = probe("--profile", str(path))
        top = _top_functions(pstats.Stats(str(path))) if path.exists() else []
    return {
        "pool": POOL_FOR_DIAGNOSIS,
        "timed": {key: round(v, 2) if isinstance(v, float) else v for key, v in timed.items()},
        "profiled": {
            key: round(v, 2) if isinstance(v, float) else v for key, v in profiled.items()
        },
        "top": top,
    }


def _top_functions(stats, count: int = 14) -> list[dict]:
    """The functions with the most own time, and the project's phases by cumulative time."""
    from ._django import ROOT

    rows = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():
        where = filename.replace(str(ROOT) + "/", "")
        if ".venv/lib/python3" in where:
            where = where.split("site-packages/", 1)[-1]
        rows.append(
            {
                "function": f"{where}:{line}({name})",
                "calls": calls,
                "own_s": round(tottime, 3),
                "cumulative_s": round(cumtime, 3),
                "project": filename.startswith(str(ROOT)) and ".venv" not in filename,
            }
        )
    by_own = sorted(rows, key=lambda row: -row["own_s"])[:count]
    phases = [
        row
        for row in rows
        if row["project"]
        and any(
            key in row["function"]
            for key in (
                "(parse_bundle)",
                "(assess)",
                "(freeze)",
                "(freeze_all)",
                "(_insert_source_results)",
                "(normalise)",
                "(merge)",
                "(check_identity)",
                "(_read_limited)",
                "(populate_patients)",
            )
        )
    ]
    phases.sort(key=lambda row: -row["cumulative_s"])
    return [{**row, "kind": "own"} for row in by_own] + [{**row, "kind": "phase"} for row in phases]


# --- the run ---------------------------------------------------------------------------------


def run() -> dict:
    import secrets

    from . import _celery, _django
    from ._http import Browser
    from ._server import Gunicorn

    started = time.monotonic()
    load_at_start = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    env = _django.setup()
    product_state = _product_state()  # the code the worker, started below, will run
    from django.conf import settings

    from demo.fhir_server import FhirServer
    from demo.histories import write_demo_histories
    from records.models import SourceResult

    # The demo servers log every request at INFO; the benchmark's progress is enough.
    logging.getLogger("demo.fhir_server").setLevel(logging.WARNING)
    password = secrets.token_urlsafe(24)
    data = make_data(password)
    meeting, cases, patients = data["meeting"], data["cases"], data["patients"]
    case_ids, patient_ids = [c.pk for c in cases], [p.pk for p in patients]
    redis_url = _celery.redis_url()

    with contextlib.ExitStack() as stack:
        histories = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-fhir-")))
        write_demo_histories(patients, histories)
        servers: dict = {}
        for code in SOURCE_CODES:
            servers[code] = FhirServer(histories / code, latency_ms=LATENCY_MS).start()
            stack.callback(servers[code].stop)
        pds = FhirServer(histories / "PDS", latency_ms=PDS_LATENCY_MS, pds=True).start()
        stack.callback(pds.stop)
        # A source that accepts connections and never answers: the worst kind of dead (a refused
        # connection fails at once; this one costs the whole timeout).
        dead = FhirServer(histories / "RRK", fault="hang").start()
        stack.callback(dead.stop)
        rows = make_sources(servers, dead.base_url, data["trusts"])
        every_server = {**servers, "PDS": pds, "dead": dead}

        _celery.flush_redis(redis_url)
        stack.callback(_celery.flush_redis, redis_url)
        env.update(
            REDIS_URL=redis_url,
            DEMOGRAPHICS_URL=pds.base_url,
            FEDERATION_CONCURRENCY_PER_SOURCE=str(CONCURRENCY_PER_SOURCE),
        )
        print(
            f"bench: database, histories and sources ready in {time.monotonic() - started:.1f} s",
            file=sys.stderr,
        )
        worker = stack.enter_context(_celery.CeleryWorker(env, WORKER_CONCURRENCY))
        server = stack.enter_context(Gunicorn(env))
        print(
            f"bench: Celery worker ({WORKER_CONCURRENCY} processes, ready in "
            f"{worker.ready_s:.1f} s) and gunicorn ({server.workers} workers) at {server.url}",
            file=sys.stderr,
        )
        browser = stack.enter_context(Browser(server.url))
        browser.login(COORDINATOR, password)
        meeting_path = f"/meetings/{meeting.public_id}/"
        token = _csrf_token(browser, meeting_path)

        # Warm-up: the worker's processes import and build what they need on their first task.
        warmup = one_after_another(
            browser, cases[:WARMUP_CASES], token, meeting_path, every_server, worker
        )
        print(f"bench: warm-up ({WARMUP_CASES} cases) {warmup.wall_s:.2f} s", file=sys.stderr)

        # 1. "Refresh all": the measured run.
        refresh = refresh_all(browser, meeting, case_ids, token, meeting_path, every_server, worker)
        refresh_detail = describe(refresh, patient_ids)
        chains = round_trips(refresh, patient_ids, list(SOURCE_CODES))
        if refresh.wall_s is not None:
            print(f"bench: refresh all {refresh.wall_s:.2f} s", file=sys.stderr)

        # 2. Cases one after another, without and with the dead source, alternating
        # (ARRIVAL_ORDER), compared by their medians: the machine is shared, and its load
        # drifts and spikes over runs of ~20 s each.
        arrivals: list[Phase] = []
        dead_runs: list[Phase] = []
        dead_results: list[dict] = []
        arrivals_detail = dead_detail = {}
        for with_dead in ARRIVAL_ORDER:
            if with_dead:
                rows["dead"].enabled = True
                rows["dead"].save(update_fields=["enabled"])
                _reset_breaker(redis_url, rows["dead"].pk)
            try:
                phase = one_after_another(browser, cases, token, meeting_path, every_server, worker)
            finally:
                if with_dead:
                    rows["dead"].enabled = False
                    rows["dead"].save(update_fields=["enabled"])
            phase.asking_total_s = _asking_total(phase, patient_ids)
            if not with_dead:
                arrivals.append(phase)
                print(f"bench: one after another {phase.wall_s:.2f} s", file=sys.stderr)
                if not arrivals_detail:
                    arrivals_detail = describe(phase, patient_ids)
                    if refresh.wall_s is None:  # the lower bound from these snapshots instead
                        chains = round_trips(phase, patient_ids, list(SOURCE_CODES))
                continue
            dead_runs.append(phase)
            dead_results.append(
                dict(
                    Counter(
                        SourceResult.objects.filter(
                            source=rows["dead"],
                            snapshot__patient_id__in=patient_ids,
                            snapshot__created_at__gte=phase.since,
                            snapshot__created_at__lte=phase.until,
                        ).values_list("status", flat=True)
                    )
                )
            )
            if not dead_detail:
                dead_detail = describe(phase, patient_ids)
            print(
                f"bench: one after another with a dead source {phase.wall_s:.2f} s "
                f"({phase.requests['dead']} requests reached it)",
                file=sys.stderr,
            )

        # 3. The sequential baseline, in this process, with the worker and gunicorn stopped.
        browser.close()
        server.__exit__(None, None, None)
        worker.__exit__(None, None, None)
        _celery.flush_redis(redis_url)
        print(f"bench: sequential baseline on {SEQUENTIAL_CASES} cases ...", file=sys.stderr)
        before = {code: s.request_count for code, s in every_server.items()}
        seq = sequential(patients, [rows[code] for code in SOURCE_CODES], pds.base_url, redis_url)
        seq["requests"] = {code: s.request_count - before[code] for code, s in every_server.items()}
        print(f"bench: sequential {seq['sequential_s']:.1f} s", file=sys.stderr)

        client_cost = _client_cost()
        cpu_costs = _cpu_costs(histories, refresh, patient_ids)

        # 4. A miss: the same population outside Celery, timed and profiled.
        diagnosis = None
        if refresh.wall_s is None or refresh.wall_s > TARGET_WALL_S:
            _celery.flush_redis(redis_url)
            diagnosis = diagnose(env, case_ids, case_ids[:WARMUP_CASES])

    slowest = max(SOURCE_CODES, key=lambda code: max(chains[code], default=0))
    lower_bound_trips = max(chains[slowest], default=0)
    # What a lone patient's run takes in fact (a case refreshed on its own: its own run), in
    # whole latencies: fewer than the requests counted when some of them go out together.
    fastest_alone_ms = arrivals_detail.get("asking_ms", {}).get("min")
    # A run reads each CapabilityStatement once and then sends each patient's requests (one
    # round trip fewer than the patient's chain); with at most CONCURRENCY_PER_SOURCE in flight,
    # the busiest source's requests cannot take fewer than this many latencies.
    run_requests = {code: 1 + sum(trips - 1 for trips in chains[code]) for code in SOURCE_CODES}
    waves = -(-max(run_requests.values()) // CONCURRENCY_PER_SOURCE)
    # Medians: the machine is shared, and one run slowed by other work must not decide.
    control_s = statistics.median(p.wall_s for p in arrivals)
    dead_s = statistics.median(p.wall_s for p in dead_runs)
    # Each dead run against the control run next to it (ARRIVAL_ORDER pairs them).
    paired = _paired_differences(
        ARRIVAL_ORDER, [p.wall_s for p in arrivals], [p.wall_s for p in dead_runs]
    )
    # The same extra estimated from the asking alone: the time the dead run's cases spent
    # asking beyond the control's, spread over the worker's processes.
    added_asking = (
        statistics.median(p.asking_total_s for p in dead_runs)
        - statistics.median(p.asking_total_s for p in arrivals)
    ) / WORKER_CONCURRENCY
    return {
        "bench": "federation",
        "cases": CASES,
        "sources": len(SOURCE_CODES),
        "latency_ms": LATENCY_MS,
        "wall_s": round(refresh.wall_s, 2) if refresh.wall_s is not None else None,
        "sequential_s": seq["sequential_s"],
        "lower_bound_s": round(lower_bound_trips * LATENCY_MS / 1000, 2),
        "dead_source_extra_s": round(statistics.median(paired), 2),
        "dead_source_requests": max(p.requests["dead"] for p in dead_runs),
        "refresh_error": refresh.error or None,
        "concurrency_bound_s": round(waves * LATENCY_MS / 1000, 2),
        "one_after_another_s": round(control_s, 2),
        "one_after_another_dead_s": round(dead_s, 2),
        "_extra_of_medians_s": round(dead_s - control_s, 2),
        "_paired_extra_s": [round(d, 2) for d in paired],
        "diagnosis_wall_s": round(diagnosis["timed"]["wall_s"], 2)
        if diagnosis and "wall_s" in diagnosis["timed"]
        else None,
        "_added_asking_s": round(added_asking, 2),
        "_state": product_state,
        "_fastest_alone_ms": fastest_alone_ms,
        "_load_at_start": load_at_start,
        "_client_cost": client_cost,
        "_cpu_costs": cpu_costs,
        "_breaker": {
            "failures": settings.FEDERATION_BREAKER_FAILURES,
            "cool_off_s": settings.FEDERATION_BREAKER_COOL_OFF_S,
        },
        "_target_wall_s": TARGET_WALL_S,
        "_dead_timeout_s": DEAD_TIMEOUT_S,
        "_slowest": slowest,
        "_lower_bound_trips": lower_bound_trips,
        "_chains": {code: dict(Counter(chains[code])) for code in SOURCE_CODES},
        "_run_requests": run_requests,
        "_waves": waves,
        "_refresh": {**refresh.facts(), **refresh_detail},
        "_arrivals": [p.facts() for p in arrivals],
        "_arrivals_detail": arrivals_detail,
        "_dead": [
            {**p.facts(), "results": results}
            for p, results in zip(dead_runs, dead_results, strict=True)
        ],
        "_dead_detail": dead_detail,
        "_warmup": {"cases": WARMUP_CASES, "wall_s": round(warmup.wall_s, 2)},
        "_worker_ready_s": round(worker.ready_s, 1),
        "_sequential": seq,
        "_diagnosis": diagnosis,
        "_web_workers": server.workers,
    }


def _paired_differences(order, control: list[float], dead: list[float]) -> list[float]:
    """dead - control for each adjacent pair of runs in `order` (True: with the dead source)."""
    runs, controls, deads = [], iter(control), iter(dead)
    for with_dead in order:
        runs.append((with_dead, next(deads) if with_dead else next(controls)))
    differences = []
    for (first_dead, first), (_, second) in zip(runs[0::2], runs[1::2], strict=True):
        differences.append(first - second if first_dead else second - first)
    return differences


# --- docs/benchmarks.md -----------------------------------------------------------------------


def _met(ok: bool | None) -> str:
    return "unknown" if ok is None else ("**met**" if ok else "**missed**")


def _seconds(value) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _spread(summary: dict) -> str:
    if not summary:
        return "n/a"
    return f"{summary['min']}/{summary['median']}/{summary['max']} ms (min/median/max)"


def markdown(result: dict) -> str:
    r = result
    refresh, seq, diagnosis = r["_refresh"], r["_sequential"], r["_diagnosis"]
    wall_ok = None if r["wall_s"] is None else r["wall_s"] < r["_target_wall_s"]
    if r["wall_s"] is None:
        wall_ok = False
    dead_ok = r["dead_source_extra_s"] <= r["_dead_timeout_s"]
    extrapolated = seq["cases_measured"] != r["cases"]
    lines = [
        "**Method.** The product path end to end: a signed-in coordinator's \"Refresh all "
        'records" (`POST /meetings/<id>/refresh/` with the CSRF token from the meeting page) to '
        f"gunicorn (`config.wsgi:application`, {r['_web_workers']} workers, as `make run` starts "
        "it), which enqueues `mdt.tasks.populate_meeting` on Redis"
        + (
            " (which, in the code measured, shares the cases out between the worker's "
            "processes as `populate_case_chunk` tasks)"
            if r["_state"]["chunked_meeting"]
            else ""
        )
        + "; a real Celery worker "
        f"(`celery -A config worker --concurrency={WORKER_CONCURRENCY}`, prefork, as "
        "`scripts/serve.sh` starts it, ready in "
        f"{r['_worker_ready_s']} s) runs it against the benchmark database (`mdt_bench`) and a "
        "Redis database of its own (14, flushed before and after; broker and circuit breakers), "
        f"with `FEDERATION_CONCURRENCY_PER_SOURCE={CONCURRENCY_PER_SOURCE}`. The meeting has "
        f"{r['cases']} listed cases of {r['cases']} distinct patients (synthetic NHS numbers), "
        "whose histories `demo.histories.write_demo_histories` wrote into a temporary directory "
        "(suspected, staged, operated and treated lung pathways in turn; one patient unknown to "
        f"one trust): {r['sources']} `demo.fhir_server.FhirServer` sources (RRK, RWP, RL4, GP) "
        f"with `latency_ms={r['latency_ms']}` each, and the demographics service (PDS shape) "
        f"with {PDS_LATENCY_MS} ms too (`DEMOGRAPHICS_URL` for the worker and gunicorn: a "
        "national service is not local either; it is asked alongside the sources, so it is not "
        "on the critical path), all on threads of the benchmark process on free loopback ports. "
        "Every other `Source` row of the benchmark database is disabled. "
        f"{r['_warmup']['cases']} single-case refreshes first warm both worker processes "
        f"({r['_warmup']['wall_s']} s). **wall** runs from just before the POST until every "
        "listed case points at a snapshot newer than the POST, seen by polling PostgreSQL every "
        f"{int(POLL_S * 1000)} ms (more precise than the page's own 1 s progress fragment); "
        "the failure of the task, if any, is read from the worker's log (there is no result "
        f"backend). Load average when the run started: {r['_load_at_start']} (1/5/15 min; "
        "other work shares this machine).",
        "",
        "**sequential** is the same work one request at a time, in the benchmark process with "
        "the worker stopped: one run of the product's `records.federation.Federation` (so each "
        "CapabilityStatement is read once, as in the worker's run) with "
        "`FEDERATION_CONCURRENCY_PER_SOURCE=1`, asking one source at a time about one patient "
        "at a time, then the demographics service, then the product's `records.populate.freeze` "
        "of that patient's snapshot"
        + (
            f"; measured on {seq['cases_measured']} cases ({seq['measured_s']} s) and "
            f"extrapolated to {r['cases']}."
            if extrapolated
            else f", for all {r['cases']} cases."
        )
        + " **lower bound**: the requests one patient needs from its slowest source "
        "(the CapabilityStatement, once per run, the Patient search, the batch of first pages, "
        "then the longest chain of next pages, counted from the requests each `SourceResult` "
        "kept) times the latency. The product now sends the CapabilityStatement request "
        "together with the first Patient search, so a patient alone can take one latency "
        "less (see the fastest single patient). **concurrency bound**: the busiest source's "
        "requests in one run (one "
        f"CapabilityStatement and each patient's requests), {CONCURRENCY_PER_SOURCE} at a time, "
        "times the latency.",
        "",
        '**Dead source**: a fifth `Source` pointing at a `FhirServer` with `fault="hang"` '
        f"(accepts the connection, never answers; the worst kind: a refused connection fails "
        f"at once) and `timeout_s={r['_dead_timeout_s']:g}`, its breaker reset first. Cases "
        "arrive one after another: each case's own refresh (`POST /cases/<id>/refresh/`, which "
        f"enqueues `populate_case`), {r['cases']} POSTs in a row, until every case is "
        "populated. Runs without and with the dead source alternate in adjacent pairs ("
        + ", ".join("with" if d else "without" for d in ARRIVAL_ORDER)
        + "); the extra is the median of the pairs' differences (each pair runs under nearly "
        "the same load of this shared machine, whose load drifts over a run of several "
        f"minutes; the pairs gave {', '.join(f'{d:+.2f}' for d in r['_paired_extra_s'])} s, "
        f"and the difference of the two medians is {r['_extra_of_medians_s']:+.2f} s); "
        "requests that reached the dead source are the server's own count.",
        "",
        "| measure | result | target |",
        "| --- | ---: | --- |",
        f"| **wall**: refresh all, {r['cases']} cases | "
        + (
            f"**failed** after {refresh['ended_s']:.2f} s"
            if r["wall_s"] is None
            else f"{r['wall_s']:.2f} s"
        )
        + f" | < {r['_target_wall_s']:g} s: {_met(wall_ok)} |",
        f"| sequential (one request at a time) | {r['sequential_s']:.1f} s | |",
        f"| lower bound ({r['_lower_bound_trips']} requests of {r['_slowest']} for one "
        f"patient × {r['latency_ms']} ms) | {r['lower_bound_s']:.2f} s | |",
        f"| fastest single patient seen (a case refreshed alone) "
        f"| {_seconds((r['_fastest_alone_ms'] or 0) / 1000)} | |",
        f"| concurrency bound ({r['_waves']} × {r['latency_ms']} ms) "
        f"| {r['concurrency_bound_s']:.2f} s | |",
        f"| cases one after another, {len(r['_arrivals'])} runs (median) "
        f"| {r['one_after_another_s']:.2f} s | |",
        f"| the same with the dead source, {len(r['_dead'])} runs (median) "
        f"| {r['one_after_another_dead_s']:.2f} s | |",
        f"| **dead source extra** | {r['dead_source_extra_s']:.2f} s "
        f"| ≤ its timeout once ({r['_dead_timeout_s']:g} s): {_met(dead_ok)} |",
        "| requests that reached the dead source, per run (cases that waited for it) "
        "| "
        + ", ".join(
            f"{d['requests']['dead']} ({sum(n for k, n in d['results'].items() if k != 'skipped')}"
            f" of {r['cases']})"
            for d in r["_dead"]
        )
        + " | not once per case |",
        "",
    ]
    lines += _refresh_lines(r)
    lines += _arrival_lines(r)
    lines.append(
        f"Sequential: {seq['per_patient_ms'].get('median')} ms per patient (median; "
        f"{seq['per_patient_ms'].get('min')}-{seq['per_patient_ms'].get('max')}), requests "
        + ", ".join(f"{code} {n}" for code, n in seq["requests"].items() if n)
        + f" for the {seq['cases_measured']} cases measured (as in one worker run: one "
        "CapabilityStatement per source, then each patient's)."
    )
    lines.append("")
    if diagnosis:
        lines += _diagnosis_lines(r)
    lines += _proposal_lines(r)
    return "\n".join(lines)


def _refresh_lines(r: dict) -> list[str]:
    refresh = r["_refresh"]
    if r["wall_s"] is None:
        asked = ", ".join(f"{code} {n}" for code, n in refresh["requests"].items() if n) or "none"
        return [
            f"**Refresh all failed.** The worker logged, {refresh['ended_s']:.2f} s after the "
            f"POST, with {refresh['snapshots']} of {r['cases']} cases populated: "
            f"`{refresh['error']}`. Requests the sources received: {asked}. Nothing is "
            "retried: the cases stay as they were until someone refreshes again (or the sweep "
            "re-enqueues them, which asks for the same large run).",
            "",
        ]
    sources = "; ".join(
        f"{name}: {detail['statuses']}, {detail['elapsed_ms'].get('median')} ms median"
        for name, detail in refresh["sources"].items()
    )
    return [
        f"Refresh all: first snapshot frozen {refresh['first_frozen_s']} s after the POST, "
        f"median {refresh['median_frozen_s']} s, last {refresh['last_frozen_s']} s; asking "
        f"per patient {_spread(refresh['asking_ms'])}; worker CPU {refresh['worker_cpu_s']} s, "
        f"benchmark process (the sources) CPU {refresh['own_cpu_s']} s. Sources: {sources}.",
        "",
    ]


def _arrival_lines(r: dict) -> list[str]:
    control, dead = r["_arrivals_detail"], r["_dead_detail"]
    walls = ", ".join(f"{p['wall_s']:.2f}" for p in r["_arrivals"])
    dead_walls = ", ".join(f"{p['wall_s']:.2f}" for p in r["_dead"])
    results = "; ".join(str(d["results"]) for d in r["_dead"])
    spread = max(p["wall_s"] for p in r["_arrivals"]) - min(p["wall_s"] for p in r["_arrivals"])
    dead_elapsed = dead["sources"].get("dead source", {}).get("elapsed_ms", {})
    return [
        f"One after another: runs of {walls} s without and {dead_walls} s with the dead "
        "source. Asking per case "
        f"{_spread(control.get('asking_ms'))} without, {_spread(dead.get('asking_ms'))} with; "
        "the dead "
        f"source's answers per run: {results} (longest wait {dead_elapsed.get('max')} ms). "
        "The cases whose dead-source answer was not skipped are those a worker process "
        "started before the first timeout had opened the shared breaker (a process starts "
        "its next case only after that, so at most one per process, plus one trial per "
        "breaker cool-off); every later case skipped it. The difference of the walls is "
        f"noisy (the runs without the dead source alone differ by up to {spread:.1f} s); "
        "estimated from the asking alone (the dead runs' total asking time beyond the "
        f"control's, medians, over the worker's {WORKER_CONCURRENCY} processes) the extra is "
        f"{r['_added_asking_s']:.2f} s. With "
        "cases one after another the worker, not the sources, is the limit: each case is its "
        "own task and its own run (the CapabilityStatements read again each time), one at a "
        f"time on each of {WORKER_CONCURRENCY} processes.",
        "",
    ]


def _diagnosis_lines(r: dict) -> list[str]:
    diagnosis = r["_diagnosis"]
    timed, profiled = diagnosis["timed"], diagnosis["profiled"]
    lines = [
        "**Profile of the miss.** `mdt.population.populate_cases` for the same "
        f"{r['cases']} cases (the work `populate_meeting` does, or shares out between the "
        "worker's processes) run by `python -m bench._probe` in one process of its own, with "
        "the same sources and settings, after a warm-up of a few cases"
        + (
            f", and with the circuit breaker's Redis pool raised to {diagnosis['pool']} "
            "connections (`REDIS_URL=...?max_connections=`, which redis-py accepts; the worker "
            "cannot be given it, kombu rejects the parameter) so that it runs at all"
            if r["wall_s"] is None
            else ""
        )
        + ". Not the product path (no Celery): "
        + (
            "it says what the worker's run would cost once it does not fail."
            if r["wall_s"] is None
            else "it says where the CPU goes."
        ),
        "",
        "| run | wall | CPU | first snapshot | last snapshot | asking per patient | answers |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, run in (("timed", timed), ("under cProfile (every thread)", profiled)):
        if "error" in run:
            lines.append(f"| {name} | failed: {run['error'][:200]} | | | | | |")
            continue
        lines.append(
            f"| {name} | {_seconds(run.get('wall_s'))} | {_seconds(run.get('cpu_s'))} "
            f"| {_seconds(run.get('first_frozen_s'))} | {_seconds(run.get('last_frozen_s'))} "
            f"| {run.get('asking_ms_min')}-{run.get('asking_ms_max')} ms "
            f"| {run.get('statuses')} |"
        )
    lines += [
        "",
        "Where the time goes (cProfile over the main thread, which freezes, and the asking "
        "thread; own time, then the record store's phases by cumulative time, which for "
        "coroutines includes their waits):",
        "",
        "| function | calls | own s | cumulative s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in diagnosis["top"]:
        name = row["function"].replace("|", "\\|")
        marker = "" if row["kind"] == "own" else " (phase)"
        lines.append(
            f"| `{name}`{marker} | {row['calls']} | {row['own_s']} | {row['cumulative_s']} |"
        )
    lines.append("")
    return lines


def _proposal_lines(r: dict) -> list[str]:
    diagnosis = r["_diagnosis"] or {}
    proposals = []
    if r["refresh_error"] and "MaxConnectionsError" in r["refresh_error"]:
        proposals.append(
            "**Refresh all fails for more than 25 cases (4 sources)**: `records.populate` "
            "asks every patient at once and `Federation.ask` calls `CircuitBreaker.check` "
            "for every patient and source at the same moment (240 concurrent Redis commands "
            "here) on one `redis.asyncio` client, whose pool (redis-py 8) holds at most 100 "
            "connections and raises `MaxConnectionsError` instead of waiting; the check is "
            "outside `ask`'s error handling, so one patient's error fails the whole task. "
            "Fix in `records/breaker.py` / `records/federation.py`: read each source's breaker "
            "once per run (and again only after a failure), or give the breaker a "
            "`redis.asyncio.BlockingConnectionPool` (waits for a connection), and handle a "
            'breaker error in `ask` as "breaker unknown: ask" rather than failing the run.'
        )
    timed = diagnosis.get("timed", {})
    state = r["_state"]
    if timed.get("wall_s") and timed["wall_s"] > r["_target_wall_s"]:
        refresh = r["_refresh"]
        if r["wall_s"] is not None:
            facts = (
                f"**{r['cases']} cases take {r['wall_s']:.1f} s** (target "
                f"{r['_target_wall_s']:g} s; the network alone needs "
                f"{r['concurrency_bound_s']:.2f} s): the first snapshot is frozen after "
                f"{refresh['first_frozen_s']} s, the last after {refresh['last_frozen_s']} s; "
                f"the worker used {refresh['worker_cpu_s']} s of CPU and the sources (the "
                f"benchmark process) {refresh['own_cpu_s']} s, on {WORKER_CONCURRENCY} cores "
                f"shared with other work (load average {r['_load_at_start']} at the start). "
                f"In one process (the diagnosis above) the same {r['cases']} cases take "
                f"{timed['cpu_s']:.1f} s of CPU."
            )
        else:
            facts = (
                f"**{r['cases']} cases take {timed['wall_s']:.1f} s in one process even once "
                f"that is fixed** (target {r['_target_wall_s']:g} s; the network alone needs "
                f"{r['concurrency_bound_s']:.2f} s): {timed['cpu_s']:.1f} s of it is CPU; the "
                f"first snapshot is frozen after {timed['first_frozen_s']:.1f} s, the last "
                f"after {timed['last_frozen_s']:.1f} s, the freezes one at a time on the main "
                "thread, competing for the GIL with the thread that parses the answers."
            )
        changes = []
        if not state["bounded_in_flight"]:
            changes.append(
                "in `records.populate._ask_all`, keep a bounded number of patients in flight "
                "(about the per-source limit): all are asked at once now, the per-source FIFO "
                "limit interleaves their requests and they all finish near the end, so "
                "freezing cannot overlap the asking"
            )
        if not state["chunked_meeting"]:
            changes.append(
                "in `mdt.tasks.populate_meeting`, share the cases out between the worker's "
                "processes (one task uses one core)"
            )
        if state["raw_through_unnest"]:
            changes.append(
                "make each freeze cheaper: `SourceResult.raw` (every FHIR response) goes "
                "through Django 5.2's `UNNEST` bulk insert as a `text[]` array, escaped in "
                "Python (`psycopg/types/array.py` and `re` template expansion in the profile); "
                "insert these rows without `UNNEST`, or keep the raw responses out of the hot "
                "path"
            )
        costs = r.get("_cpu_costs") or {}
        if costs.get("request_ms") and costs.get("resource_ms"):
            per_patient = costs["requests_per_patient"] * costs["request_ms"]
            parsing = costs["resources_per_patient"] * costs["resource_ms"]
            changes.append(
                "the CPU per patient that is left is mostly two libraries' own: measured here, "
                f"outside the product, one request through `httpx.AsyncClient` costs "
                f"{costs['request_ms']:.2f} ms of CPU (one thread, {costs['requests']} GETs "
                f"{costs['concurrency']} at a time from a local source without latency; a "
                f"patient needs {costs['requests_per_patient']:.1f} requests, ≈ "
                f"{per_patient:.0f} ms), where `aiohttp` would cost about a fifth "
                "(measured at 0.45 ms against 2.6 ms per request on this machine while "
                "this benchmark was being changed; not a dependency of the project, so not "
                "measured here), and reading one resource with `fhir.resources` R4B "
                f"costs {costs['resource_ms']:.2f} ms ({costs['resources']} resources of the "
                f"demo charts; a patient has {costs['resources_per_patient']:.0f}, ≈ "
                f"{parsing:.0f} ms, and each page's Bundle envelope is read with the R4B "
                "`Bundle` model too), most of it `fhir_core`'s Python validators run for every "
                "nested element (`reject_null_complex_elements` walks every field of the "
                "element's model each time). Those two alone ≈ "
                f"{per_patient + parsing:.0f} ms of the "
                f"{refresh['worker_cpu_s'] * 1000 / r['cases']:.0f} ms of worker CPU per patient "
                "measured in the refresh; the rest, in the profile above, is the event loop and "
                "the breaker's Redis calls on the asking thread, and the freeze's database work "
                "on the calling thread, which waits for the GIL while the asking thread parses "
                "(hence `psycopg`'s send and wait high in a profile of every thread). Next: an "
                "HTTP client with less overhead per request for the FHIR sources (a change "
                "of ADR-007, which names httpx), or fewer requests (one batch "
                "for several patients' searches)"
            )
        if not state["shared_ssl_context"]:
            changes.append(
                "create the run's `httpx.AsyncClient`s with one shared SSL context (see the "
                "dead source below: tens of ms of CPU per source per run)"
            )
        proposals.append(
            facts
            + " Changes, in order of effect: "
            + "; ".join(f"({n}) {text}" for n, text in enumerate(changes, start=1))
            + "."
        )
    if state["sniffio_missing"]:
        proposals.append(
            "**httpcore re-tries a failed import on every request**: `sniffio` is not "
            "installed (anyio 4 no longer requires it), so "
            "`httpcore._synchronization.current_async_library` runs `import sniffio`, which "
            "fails and searches `sys.path` again, for every lock httpcore makes "
            "(`find_spec` and `posix.stat` in the profile). Adding `sniffio` to the dependencies "
            "removes it."
        )
    statuses = diagnosis.get("profiled", {}).get("statuses") or {}
    if statuses.get("timeout"):
        proposals.append(
            f"**Healthy sources time out when the worker is slowed**: under cProfile "
            f"({diagnosis['profiled']['wall_s']:.1f} s instead of {timed.get('wall_s', 0):.1f} "
            f"s) {statuses['timeout']} of {sum(statuses.values())} answers timed out at "
            f"{SOURCE_TIMEOUT_S:g} s, although every source answers in {LATENCY_MS} ms: the "
            "per-source deadline in `Federation.ask` also counts the wait for a concurrency "
            "slot and for the busy event loop, and with `FEDERATION_BREAKER_FAILURES="
            f"{r['_breaker']['failures']}` such timeouts open the breaker of a healthy source "
            f"for everyone for {r['_breaker']['cool_off_s']:g} s. Start "
            "the deadline when the request gets its slot (or scale it with the queue), and do "
            "not count a timeout that was spent queueing as the source's failure."
        )
    if not dead_source_ok(r):
        cost = r["_client_cost"]
        cpu_added = statistics.median(d["worker_cpu_s"] for d in r["_dead"]) - statistics.median(
            a["worker_cpu_s"] for a in r["_arrivals"]
        )
        fifth = max(0.0, cpu_added) / WORKER_CONCURRENCY
        rest = r["dead_source_extra_s"] - r["_added_asking_s"] - fifth
        walls = [a["wall_s"] for a in r["_arrivals"]]
        text = (
            f"**The dead source costs {r['dead_source_extra_s']:.2f} s, more than its timeout "
            f"({r['_dead_timeout_s']:g} s)**, although only the first case of each worker "
            "process (and one trial per breaker cool-off) waited for it. The waits account "
            f"for {r['_added_asking_s']:.2f} s (the asking estimate above); a fifth source "
            "also costs every case some CPU while it is skipped: the worker used "
            f"{cpu_added:.2f} s more CPU per run (≈ {fifth:.2f} s of wall over "
            f"{WORKER_CONCURRENCY} processes); the remaining {rest:.2f} s is within the "
            "run-to-run noise of this shared machine (runs without the dead source differ by "
            f"up to {max(walls) - min(walls):.1f} s)."
        )
        if not state["shared_ssl_context"]:
            text += (
                " Most of the per-case CPU: each population run (here one per case) creates "
                "an `httpx.AsyncClient` per source, and each loads the CA bundle into a new SSL "
                f"context ({cost['fresh_ms']:g} ms of CPU each on this machine now, against "
                f"{cost['shared_ms']:g} ms with one shared context). Fix in "
                "`records/federation.py` (and the demographics client in "
                "`records/populate.py`): give every client one process-wide `ssl.SSLContext` "
                "(`verify=`), and create no client for a source whose breaker is open; it also "
                f"takes ~{cost['fresh_ms'] * (r['sources'] + 1):.0f} ms of CPU off every "
                "single-case population (four sources and the demographics service)."
            )
        if r["_breaker"]["cool_off_s"] < max(d["wall_s"] for d in r["_dead"]):
            text += (
                f" Runs longer than the breaker's cool-off ({r['_breaker']['cool_off_s']:g} s) "
                "let one trial request through, which waits the timeout again: by design."
            )
        proposals.append(text)
    if not proposals:
        return ["All targets met."]
    return ["**Misses and the product changes that would fix them** (not made here):", ""] + [
        f"{n}. {text}" for n, text in enumerate(proposals, start=1)
    ]


def dead_source_ok(r: dict) -> bool:
    return r["dead_source_extra_s"] <= r["_dead_timeout_s"]
