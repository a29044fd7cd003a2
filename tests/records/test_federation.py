"""Asking real FHIR servers over real HTTP (demo.fhir_server on 127.0.0.1): each way a source can
fail gives that source a clear status and reason, and the other sources still show; the circuit
breaker, paging, the page cap, the size limit, batch and parallel GETs, and the wall time."""

import asyncio
import re
import time

import pytest

from demo.fhir_server import FhirError, FhirServer
from records.breaker import CircuitBreaker
from records.federation import CLINICAL_TYPES, Federation, SourceConfig
from records.models import Source, SourceResult
from records.populate import populate_patients
from tests.factories import PatientFactory

from .conftest import (
    BORN,
    chart,
    condition,
    observations,
    patient,
    populate_one,
    results,
    titles_by_source,
)

pytestmark = pytest.mark.django_db
Status = SourceResult.Status


def ada_chart(ada, *resources, pid="rwp-1"):
    return chart(patient(pid, ada.nhs_number), *resources)


def assert_healthy_source_still_shows(snapshot) -> None:
    assert snapshot.per_source_status["Healthy Trust"]["status"] == Status.OK
    assert titles_by_source(snapshot)["Healthy Trust"] == {"Non-small cell lung cancer"}


def breaker_state(source_id: int):
    """What another worker sees: a CircuitBreaker of its own on the same Redis."""

    async def check():
        breaker = CircuitBreaker()
        try:
            return await breaker.check(source_id)
        finally:
            await breaker.close()

    return asyncio.run(check())


# -- a source that cannot be used -------------------------------------------------------------


def test_a_source_that_is_down_is_an_error_at_once_and_the_others_still_show(
    ada, healthy, make_source, stopped_url
):
    make_source(stopped_url, "Down Trust", timeout_s=5)

    started = time.monotonic()
    snapshot = populate_one(ada)

    assert time.monotonic() - started < 2  # refused at once: no waiting for the 5 s timeout
    down = results(snapshot)["Down Trust"]
    assert down.status == Status.ERROR
    assert down.detail == "The source could not be reached (ConnectError)."
    # the Patient search and the CapabilityStatement read (made alongside), each retried once
    assert down.counts["requests"] == 4
    assert_healthy_source_still_shows(snapshot)


def test_a_hanging_source_times_out_and_the_others_still_show(ada, healthy, serve, make_source):
    server = serve([ada_chart(ada, condition("dx-2", "rwp-1"))], fault="hang")
    make_source(server, "Hanging Trust", timeout_s=1)

    started = time.monotonic()
    snapshot = populate_one(ada)

    assert time.monotonic() - started < 2.5  # the 1 s deadline, not the server's 30 s hang
    hanging = results(snapshot)["Hanging Trust"]
    assert hanging.status == Status.TIMEOUT
    assert hanging.detail == "No complete answer within 1 seconds."
    assert 1000 <= hanging.elapsed_ms < 1800
    assert_healthy_source_still_shows(snapshot)


def test_an_answer_that_keeps_dripping_is_cut_off_at_the_source_deadline(
    ada, healthy, serve, make_source
):
    # Bytes arrive every quarter second, so no single read times out: only the deadline for
    # the whole answer stops it.
    server = serve([ada_chart(ada)], fault="slow_drip")
    make_source(server, "Dripping Trust", timeout_s=1)

    snapshot = populate_one(ada)

    dripping = results(snapshot)["Dripping Trust"]
    assert dripping.status == Status.TIMEOUT
    assert dripping.elapsed_ms < 1800
    assert_healthy_source_still_shows(snapshot)


def test_a_slow_source_timing_out_for_many_patients_at_once_costs_only_that_source(
    serve, make_source
):
    # Regression: the CapabilityStatement read is shared by every patient of a run; the first
    # patient's deadline cancelled it and every other patient's wait ended in CancelledError,
    # which failed the whole run (no snapshot for anyone).
    patients = [PatientFactory(birth_date=BORN) for _ in range(8)]
    charts = [
        chart(patient(f"p-{n}", p.nhs_number), condition(f"dx-{n}", f"p-{n}"))
        for n, p in enumerate(patients)
    ]
    make_source(serve(charts), "Healthy Trust")
    # Each round trip takes 0.6 s: every patient's deadline passes while it waits for the
    # shared metadata read, which follows the Patient search.
    make_source(serve(charts, latency_ms=600), "Slow Trust", timeout_s=1)

    snapshots = populate_patients([p.pk for p in patients], reason="test")

    assert len(snapshots) == 8
    for snapshot in snapshots:
        assert snapshot.per_source_status["Slow Trust"]["status"] == Status.TIMEOUT
        assert snapshot.per_source_status["Healthy Trust"]["status"] == Status.OK
        assert snapshot.summary["record"]["timeline"]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("http500", "The source answered with HTTP 500."),
        (
            "operation_outcome",
            "The source answered with HTTP 500: HAPI-0389: Failed to call access method",
        ),
        ("html", "The source's answer was not JSON (perhaps an error or login page)."),
        ("invalid_json", "The source's answer was not JSON (perhaps an error or login page)."),
        ("not_fhir", "The answer is JSON but not a FHIR resource: it has no resourceType."),
    ],
)
def test_an_unusable_answer_is_an_error_with_a_reason_and_the_others_still_show(
    ada, healthy, serve, make_source, fault, reason
):
    server = serve([ada_chart(ada, condition("dx-2", "rwp-1"))], fault=fault)
    make_source(server, "Broken Trust")

    snapshot = populate_one(ada)

    broken = results(snapshot)["Broken Trust"]
    assert broken.status == Status.ERROR
    assert broken.detail.startswith(reason)
    assert snapshot.per_source_status["Broken Trust"]["detail"] == broken.detail
    # What it said is kept for audit, as received.
    assert broken.raw[0]["request"].startswith(f"GET {server.base_url}/Patient?identifier=")
    assert broken.raw[0]["status"] == (500 if fault in ("http500", "operation_outcome") else 200)
    assert "Broken Trust" not in titles_by_source(snapshot)
    assert_healthy_source_still_shows(snapshot)


def test_the_html_sign_in_page_is_kept_as_text_for_audit(ada, healthy, serve, make_source):
    server = serve([ada_chart(ada)], fault="html")
    make_source(server, "Gateway Trust")

    snapshot = populate_one(ada)

    (raw,) = results(snapshot)["Gateway Trust"].raw
    assert "Sign in - Trust Integration Gateway" in raw["body"]


def test_an_answer_over_the_size_limit_is_not_read(ada, healthy, serve, make_source):
    server = serve([ada_chart(ada, condition("dx-2", "rwp-1"))], fault="oversize")
    make_source(server, "Oversize Trust", max_response_mb=1)

    snapshot = populate_one(ada)

    oversize = results(snapshot)["Oversize Trust"]
    assert oversize.status == Status.ERROR
    assert oversize.detail == "An answer was larger than 1 MB and was not read."
    assert oversize.raw == []  # nothing of the 21 MB body is stored
    assert_healthy_source_still_shows(snapshot)


def test_an_oversize_batch_answer_is_not_read(ada, healthy, serve, make_source):
    server = serve([ada_chart(ada, condition("dx-2", "rwp-1"))])
    answer_batch = server.batch
    # Only the batch is padded past 20 MB: the Patient search and metadata read normally.
    server.batch = lambda body, base, fault: answer_batch(body, base, "oversize")
    make_source(server, "Oversize Trust", max_response_mb=1)

    snapshot = populate_one(ada)

    oversize = results(snapshot)["Oversize Trust"]
    assert oversize.status == Status.ERROR
    assert oversize.detail == "An answer was larger than 1 MB and was not read."
    assert [r["request"].split(" ")[0] for r in oversize.raw] == ["GET"]  # the Patient search
    assert_healthy_source_still_shows(snapshot)


# -- partial and not found --------------------------------------------------------------------


def test_an_endless_next_chain_stops_at_the_page_cap_and_is_partial(
    ada, healthy, serve, make_source
):
    # Every page has a next link; past the end the pages repeat for ever.
    server = serve([ada_chart(ada, condition("dx-2", "rwp-1"))], fault="endless_next")
    make_source(server, "Looping Trust", page_cap=3)

    snapshot = populate_one(ada)

    looping = results(snapshot)["Looping Trust"]
    assert looping.status == Status.PARTIAL
    searches = len(CLINICAL_TYPES)
    assert looping.detail == f"{searches} searches cut off after 3 pages."
    # Patient search, metadata, one batch, then two more pages for each search: then it stops.
    assert looping.counts["requests"] == 3 + 2 * searches
    assert looping.counts["pages_cut"] == searches
    # What it did send is shown (the repeats collapse into one item).
    assert titles_by_source(snapshot)["Looping Trust"] == {"Non-small cell lung cancer"}
    assert_healthy_source_still_shows(snapshot)


def test_a_record_longer_than_the_page_cap_is_partial_with_counts(ada, serve, make_source):
    server = serve([ada_chart(ada, *observations("rwp-1", 250))])
    make_source(server, "Long Trust", page_cap=2)

    snapshot = populate_one(ada)

    long = results(snapshot)["Long Trust"]
    assert long.status == Status.PARTIAL
    assert long.detail == "1 searches cut off after 2 pages."
    assert long.counts == {"resources": 200, "dropped": 0, "pages_cut": 1, "requests": 4}


def test_next_links_are_followed_to_the_end_within_the_page_cap(ada, serve, make_source):
    server = serve([ada_chart(ada, *observations("rwp-1", 250))])
    make_source(server, "Long Trust", page_cap=10)

    snapshot = populate_one(ada)

    long = results(snapshot)["Long Trust"]
    assert (long.status, long.detail) == (Status.OK, "")
    assert long.counts == {"resources": 250, "dropped": 0, "pages_cut": 0, "requests": 5}


def test_dropped_unreadable_entries_make_the_result_partial_with_counts(
    ada, healthy, serve, make_source
):
    unreadable = {**condition("dx-bad", "rwp-1"), "onsetDateTime": "2025-02-31"}
    server = serve(
        [ada_chart(ada, condition("dx-2", "rwp-1"), unreadable, *observations("rwp-1", 2))]
    )
    make_source(server, "Sloppy Trust")

    snapshot = populate_one(ada)

    sloppy = results(snapshot)["Sloppy Trust"]
    assert sloppy.status == Status.PARTIAL
    assert sloppy.detail == "1 unreadable entries dropped."
    assert sloppy.counts["dropped"] == 1
    assert sloppy.counts["resources"] == 3
    # The readable entries still show; the unreadable one is in the raw answer for audit.
    assert "Non-small cell lung cancer" in titles_by_source(snapshot)["Sloppy Trust"]
    assert "dx-bad" in str(sloppy.raw)
    assert_healthy_source_still_shows(snapshot)


def test_not_found_when_the_source_does_not_know_the_nhs_number(ada, healthy, serve, make_source):
    someone_else = PatientFactory()
    server = serve([chart(patient("rl4-9", someone_else.nhs_number), condition("dx-9", "rl4-9"))])
    make_source(server, "Other Trust")

    snapshot = populate_one(ada)

    other = results(snapshot)["Other Trust"]
    assert other.status == Status.NOT_FOUND
    assert other.detail == "The source does not know this NHS number."
    # the search and the CapabilityStatement read made alongside it; nothing more is asked
    assert other.counts["requests"] == 2
    assert "Other Trust" not in titles_by_source(snapshot)
    assert_healthy_source_still_shows(snapshot)


def test_an_unreadable_patient_record_is_an_error_not_not_found(ada, healthy, serve, make_source):
    # Regression: an unreadable Patient was dropped and the source reported "does not know this
    # NHS number", although it does.
    server = serve([chart(patient("rwp-1", ada.nhs_number, birth_date="1950-02-31"))])
    make_source(server, "Sloppy Trust")

    snapshot = populate_one(ada)

    sloppy = results(snapshot)["Sloppy Trust"]
    assert sloppy.status == Status.ERROR
    assert sloppy.detail.startswith(
        "The source's Patient record could not be read (entry 1: Patient/rwp-1: not a valid R4 "
        "Patient: birthDate"
    )
    assert_healthy_source_still_shows(snapshot)


# -- batch or parallel GETs, and the raw answers -----------------------------------------------


class NoBatchServer(FhirServer):
    """A server whose CapabilityStatement offers no batch, and which refuses one if sent."""

    batches_refused = 0

    def capability_statement(self, base):
        statement = super().capability_statement(base)
        for rest in statement["rest"]:
            rest.pop("interaction", None)
        return statement

    def batch(self, body, base, fault):
        self.batches_refused += 1
        raise FhirError(405, "not-supported", "This server does not accept batches.")


def test_a_source_without_batch_support_is_queried_with_parallel_gets(ada, serve, make_source):
    server = serve(
        [ada_chart(ada, condition("dx-2", "rwp-1"), *observations("rwp-1", 3))],
        server_class=NoBatchServer,
        latency_ms=200,
    )
    make_source(server, "Plain Trust", timeout_s=3)

    snapshot = populate_one(ada)

    plain = results(snapshot)["Plain Trust"]
    assert (plain.status, plain.counts["resources"]) == (Status.OK, 4)
    assert server.batches_refused == 0
    requests = [r["request"] for r in plain.raw]
    assert all(r.startswith("GET ") for r in requests)
    asked = {re.search(r"/fhir/(\w+)\?", r).group(1) for r in requests[1:]}
    assert asked == set(CLINICAL_TYPES)
    # Patient search, metadata, then the eleven searches at once: three round trips of 0.2 s,
    # not thirteen.
    assert plain.elapsed_ms < 1300


def test_a_source_with_batch_support_gets_one_batch_and_the_raw_fhir_is_kept_for_audit(
    ada, serve, make_source
):
    server = serve([ada_chart(ada, condition("dx-2", "rwp-1"))])
    make_source(server, "Batch Trust")

    snapshot = populate_one(ada)

    batch = results(snapshot)["Batch Trust"]
    assert batch.status == Status.OK
    search, posted = batch.raw
    assert search["request"] == (
        f"GET {server.base_url}/Patient?identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number"
        f"%7C{ada.nhs_number}"
    )
    assert search["status"] == 200
    assert search["body"]["entry"][0]["resource"]["identifier"][0]["value"] == ada.nhs_number
    assert posted["request"] == f"POST {server.base_url}/"
    assert posted["body"]["type"] == "batch-response"
    searchsets = [entry["resource"] for entry in posted["body"]["entry"]]
    assert len(searchsets) == len(CLINICAL_TYPES)
    conditions = [e["resource"] for s in searchsets for e in s.get("entry", [])]
    assert [c["id"] for c in conditions] == ["dx-2"]


class GatewayHiccupServer(FhirServer):
    """Answers 503 (a gateway in front of the server, restarting) to the first request of the
    kind given, then normally."""

    def __init__(self, *args, hiccup_on: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.hiccup_on = hiccup_on
        self.hiccups = 0

    def _hiccup(self):
        if not self.hiccups:
            self.hiccups += 1
            raise FhirError(503, "transient", "Service temporarily unavailable")

    def get(self, path, params, base, fault):
        if self.hiccup_on == "GET" and path.startswith("/Patient"):
            self._hiccup()
        return super().get(path, params, base, fault)

    def batch(self, body, base, fault):
        if self.hiccup_on == "POST":
            self._hiccup()
        return super().batch(body, base, fault)


def test_a_gateway_error_on_a_get_is_retried_once(ada, serve, make_source):
    server = serve(
        [ada_chart(ada, condition("dx-2", "rwp-1"))],
        server_class=GatewayHiccupServer,
        hiccup_on="GET",
    )
    make_source(server, "Hiccup Trust")

    snapshot = populate_one(ada)

    hiccup = results(snapshot)["Hiccup Trust"]
    assert (hiccup.status, server.hiccups) == (Status.OK, 1)
    assert hiccup.counts["requests"] == 4  # the Patient search twice, metadata, batch
    assert titles_by_source(snapshot)["Hiccup Trust"] == {"Non-small cell lung cancer"}


def test_a_batch_post_is_never_retried(ada, healthy, serve, make_source):
    server = serve(
        [ada_chart(ada, condition("dx-2", "rwp-1"))],
        server_class=GatewayHiccupServer,
        hiccup_on="POST",
    )
    make_source(server, "Hiccup Trust")

    snapshot = populate_one(ada)

    hiccup = results(snapshot)["Hiccup Trust"]
    assert hiccup.status == Status.ERROR
    assert hiccup.detail == "The source answered with HTTP 503: Service temporarily unavailable."
    assert hiccup.counts["requests"] == 3
    assert_healthy_source_still_shows(snapshot)


# -- the circuit breaker -------------------------------------------------------------------------


@pytest.fixture
def short_cool_off(settings):
    settings.FEDERATION_BREAKER_FAILURES = 1
    settings.FEDERATION_BREAKER_COOL_OFF_S = 0.6
    return settings.FEDERATION_BREAKER_COOL_OFF_S


def test_a_hanging_source_costs_its_timeout_once_then_is_skipped_until_it_answers_again(
    serve, make_source, short_cool_off
):
    patients = [PatientFactory(birth_date=BORN) for _ in range(4)]
    server = serve(
        [
            chart(patient(f"p-{n}", p.nhs_number), condition(f"dx-{n}", f"p-{n}"))
            for n, p in enumerate(patients)
        ],
        fault="hang",
    )
    source = make_source(server, "Hanging Trust", timeout_s=1)
    first, second, third, fourth = patients

    started = time.monotonic()
    (timed_out,) = populate_patients([first.pk], reason="test")
    assert time.monotonic() - started >= 1
    assert timed_out.per_source_status["Hanging Trust"]["status"] == Status.TIMEOUT

    # Shared through Redis: another worker's breaker sees it open.
    assert breaker_state(source.pk).open

    asked_before = server.request_count
    started = time.monotonic()
    skipped = populate_patients([second.pk, third.pk], reason="test")
    assert time.monotonic() - started < 0.5  # no second wait for the timeout
    assert server.request_count == asked_before
    for snapshot in skipped:
        status = results(snapshot)["Hanging Trust"]
        assert status.status == Status.SKIPPED
        assert re.fullmatch(
            r"Not asked: the source has not been answering since \d\d:\d\d:\d\d\.", status.detail
        )
        assert status.elapsed_ms == 0

    # It recovers; after the cool-off one trial goes through, and it shows again.
    server.fault = None
    time.sleep(short_cool_off + 0.1)
    (recovered,) = populate_patients([fourth.pk], reason="test")
    assert recovered.per_source_status["Hanging Trust"]["status"] == Status.OK
    assert titles_by_source(recovered)["Hanging Trust"] == {"Non-small cell lung cancer"}
    assert not breaker_state(source.pk).open


def test_a_dead_source_is_skipped_after_one_attempt_and_comes_back_when_it_answers(
    ada, serve, make_source, short_cool_off
):
    server = serve([ada_chart(ada, condition("dx-2", "rwp-1"))])
    server.stop()  # connection refused
    source = make_source(server, "Dead Trust", timeout_s=1)

    assert populate_one(ada).per_source_status["Dead Trust"]["status"] == Status.ERROR
    skipped = results(populate_one(ada))["Dead Trust"]
    assert skipped.status == Status.SKIPPED
    assert "has not been answering since" in skipped.detail

    # Still down at the trial after the cool-off: it opens again, and stays skipped.
    time.sleep(short_cool_off + 0.1)
    assert populate_one(ada).per_source_status["Dead Trust"]["status"] == Status.ERROR
    assert populate_one(ada).per_source_status["Dead Trust"]["status"] == Status.SKIPPED

    server.start()  # back on the same port
    time.sleep(short_cool_off + 0.1)
    back = populate_one(ada)
    assert back.per_source_status["Dead Trust"]["status"] == Status.OK
    assert titles_by_source(back)["Dead Trust"] == {"Non-small cell lung cancer"}
    assert not breaker_state(source.pk).open


def test_a_source_answering_with_an_unusable_body_is_alive_and_not_skipped(
    ada, serve, make_source, short_cool_off
):
    server = serve([ada_chart(ada)], fault="html")
    make_source(server, "Gateway Trust")

    statuses = [populate_one(ada).per_source_status["Gateway Trust"]["status"] for _ in range(2)]

    assert statuses == [Status.ERROR, Status.ERROR]  # asked both times: it answers, badly


def test_a_source_whose_breaker_is_open_gets_no_http_client(ada, healthy, serve, make_source):
    skipped = make_source(serve([ada_chart(ada)]), "Skipped Trust")
    configs = [SourceConfig.of(s) for s in Source.objects.filter(pk__in=[healthy.pk, skipped.pk])]

    async def ask():
        breaker = CircuitBreaker(failures_to_open=1)
        await breaker.failed(skipped.pk)
        async with Federation(configs, breaker=breaker) as federation:
            answers = {a.source.name: a.status for a in await federation.ask_all(ada.nhs_number)}
            return answers, set(federation._clients)

    answers, clients = asyncio.run(ask())

    assert answers == {"Healthy Trust": Status.OK, "Skipped Trust": Status.SKIPPED}
    assert clients == {healthy.pk}


# -- wall time ---------------------------------------------------------------------------------


def test_wall_time_for_several_sources_is_close_to_the_slowest_not_the_sum(ada, serve, make_source):
    for name in ("Trust A", "Trust B", "Trust C"):
        server = serve([ada_chart(ada, condition("dx-2", "rwp-1"))], latency_ms=300)
        make_source(server, name, timeout_s=3)

    started = time.monotonic()
    snapshot = populate_one(ada)
    wall_ms = (time.monotonic() - started) * 1000

    statuses = snapshot.per_source_status
    assert {s["status"] for s in statuses.values()} == {Status.OK}
    slowest = max(s["elapsed_ms"] for s in statuses.values())
    total = sum(s["elapsed_ms"] for s in statuses.values())
    # Each source takes two round trips of 0.3 s in sequence: the Patient search (with the
    # CapabilityStatement read alongside it), then the batch of searches.
    assert slowest >= 600
    assert wall_ms < slowest + 400
    assert wall_ms < total * 0.6
