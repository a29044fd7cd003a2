"""The cancer registry at the size of a large region's decade: ROWS synthetic COSD tumour
registrations (about PATIENT_SHARE as many patients, the others with a second or third tumour)
written to a CSV file and imported on the product path, ``manage.py import_registry FILE --quiet``
in a process of its own against the benchmark's own database (DB_NAME: the other benchmarks'
data, however large, cannot slow its resets), with every index, constraint and history
table of the registry in place; then the same file again (which must change nothing), and a
SMALL_ROWS file first, to see whether the import's memory grows with the file. Then, in this
process, NHS-number lookups and name searches (misspelt surnames) through registry.search on the
imported table.

Measured: the import's wall time (rows per second, and per tenth of the file from its ImportRun
row read while it runs), its peak resident memory (ru_maxrss of the import process), the
re-import's wall time and counts, and the latency (median, p95) of search_registrations calls
including reading the page of results. An import slower than MIN_ROWS_PER_S is stopped (and, for
the 1M file, completed after ANALYZE so that the searches see the whole table). A missed import
target is diagnosed with cProfile of registry.importer.import_tumours over the file's first
PROFILE_ROWS rows in this process, with the time and the plan of each statement it sends; a
missed search target with EXPLAIN (ANALYZE, BUFFERS) of the slowest search, cProfile, and the
proposed query tried on the same data.
"""

import csv
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from bisect import bisect_right
from datetime import date, timedelta
from itertools import accumulate
from pathlib import Path

ROWS = 1_000_000
SMALL_ROWS = 250_000  # the same import on a quarter of the file: is memory flat in file size?
TINY_ROWS = 1_000  # and on a thousand rows: the import's memory apart from the rows
PROFILE_ROWS = 100_000
PROFILE_ROWS_SLOW = 20_000  # when the measured import was stopped: its slowdown shows early
PATIENT_SHARE = 0.85  # registrations per patient about 1.18: some have a second or third tumour
SEED = 4
LOOKUPS = 200
NAME_SEARCHES = 200
WARMUP = 10
POLL_S = 1.0  # how often the import's progress (its ImportRun row) is read while it runs
MIN_ROWS_PER_S = 2_000  # an import slower than this (a tenth of the target) is stopped
DB_NAME = "mdt_bench_registry"
# The 999 test range from this stem on (about 864,000 valid numbers); the demo's patients
# (demo.synthetic.synthetic_nhs_number(n), n up to a few thousand) sit below it, so the patients
# this benchmark removes are its own even in a database that has others.
# (synthetic_nhs_number(n) spends two stems per n, so it has fewer than 500,000 numbers.)
FIRST_STEM = 999_050_000
LAST_STEM = 999_999_999
# A decade of diagnoses ending well before today, so that no date is in the future.
DIAGNOSED_FROM = date(2016, 7, 1)
DIAGNOSED_TO = date(2026, 6, 30)
SUBMITTED_BY = date(2026, 9, 30)

TARGET_ROWS_PER_S = 20_000
TARGET_LOOKUP_P95_MS = 5.0
TARGET_NAME_P95_MS = 50.0
# "Flat in file size": 4 times the rows may not cost more than this factor of the peak memory.
FLAT_FACTOR = 1.2

TITLE = f"cancer registry: importing {ROWS:,} registrations, NHS-number lookup and name search"

# (submitting organisation ODS code, name): the region's three trusts and four neighbours.
TRUSTS = [
    ("RRK", "University Hospitals Birmingham NHS Foundation Trust"),
    ("RWP", "Worcestershire Acute Hospitals NHS Trust"),
    ("RL4", "The Royal Wolverhampton NHS Trust"),
    ("RNA", "The Dudley Group NHS Foundation Trust"),
    ("RXK", "Sandwell and West Birmingham Hospitals NHS Trust"),
    ("RJC", "South Warwickshire University NHS Foundation Trust"),
    ("RLQ", "Wye Valley NHS Trust"),
]
TRUST_WEIGHTS = [34, 14, 16, 10, 12, 7, 7]

# Tumour sites: (weight, ICD-10, ICD-O-3 topography, morphologies, sexes (COSD codes) it
# occurs in with their weights, paired organ, UICC 8 T categories, N categories, M categories).
SITES = [
    (15, "C50.9", "C50.9", ["8500/3", "8520/3", "8140/3"], {"2": 99, "1": 1}, True,
     ["Tis", "T1a", "T1b", "T1c", "T2", "T3", "T4b", "T4d"], ["N0", "N1", "N2a", "N3a"],
     ["M0", "M1"]),
    (5, "C50.4", "C50.4", ["8500/3", "8520/3"], {"2": 99, "1": 1}, True,
     ["T1b", "T1c", "T2", "T3"], ["N0", "N1", "N2a"], ["M0", "M1"]),
    (13, "C61", "C61.9", ["8140/3"], {"1": 1}, False,
     ["T1c", "T2a", "T2b", "T2c", "T3a", "T3b", "T4"], ["N0", "N1"], ["M0", "M1a", "M1b"]),
    (7, "C34.1", "C34.1", ["8140/3", "8070/3", "8041/3"], {"1": 52, "2": 48}, True,
     ["T1a", "T1b", "T1c", "T2a", "T2b", "T3", "T4"], ["N0", "N1", "N2", "N3"],
     ["M0", "M1a", "M1b", "M1c"]),
    (4, "C34.3", "C34.3", ["8140/3", "8070/3"], {"1": 52, "2": 48}, True,
     ["T1b", "T1c", "T2a", "T3", "T4"], ["N0", "N1", "N2"], ["M0", "M1b", "M1c"]),
    (5, "C18.7", "C18.7", ["8140/3", "8480/3"], {"1": 55, "2": 45}, False,
     ["T1", "T2", "T3", "T4a", "T4b"], ["N0", "N1a", "N1b", "N2a", "N2b"], ["M0", "M1a"]),
    (3, "C18.0", "C18.0", ["8140/3", "8480/3"], {"1": 50, "2": 50}, False,
     ["T2", "T3", "T4a"], ["N0", "N1a", "N2a"], ["M0", "M1a"]),
    (4, "C20", "C20.9", ["8140/3"], {"1": 60, "2": 40}, False,
     ["T1", "T2", "T3", "T4a"], ["N0", "N1a", "N1b", "N2a"], ["M0", "M1a"]),
    (5, "C43.5", "C44.5", ["8720/3", "8743/3"], {"1": 50, "2": 50}, False,
     ["T1a", "T1b", "T2a", "T2b", "T3a", "T4a"], ["N0", "N1a", "N2a"], ["M0", "M1a"]),
    (3, "C67.9", "C67.9", ["8120/3"], {"1": 75, "2": 25}, False,
     ["Ta", "Tis", "T1", "T2a", "T2b", "T3a", "T4a"], ["N0", "N1", "N2"], ["M0", "M1a"]),
    (3, "C64", "C64.9", ["8312/3"], {"1": 63, "2": 37}, True,
     ["T1a", "T1b", "T2a", "T3a", "T4"], ["N0", "N1"], ["M0", "M1"]),
    (2, "C25.0", "C25.0", ["8500/3", "8140/3"], {"1": 50, "2": 50}, False,
     ["T1c", "T2", "T3", "T4"], ["N0", "N1", "N2"], ["M0", "M1"]),
    (2, "C16.9", "C16.9", ["8144/3", "8490/3"], {"1": 65, "2": 35}, False,
     ["T1a", "T1b", "T2", "T3", "T4a"], ["N0", "N1", "N2", "N3a"], ["M0", "M1"]),
    (2, "C15.5", "C15.5", ["8140/3", "8070/3"], {"1": 70, "2": 30}, False,
     ["T1b", "T2", "T3", "T4a"], ["N0", "N1", "N2", "N3"], ["M0", "M1"]),
    (3, "C54.1", "C54.1", ["8380/3"], {"2": 1}, False,
     ["T1a", "T1b", "T2", "T3a"], ["N0", "N1", "N2"], ["M0", "M1"]),
    (2, "C56", "C56.9", ["8441/3", "8461/3"], {"2": 1}, True,
     ["T1a", "T1c", "T2a", "T3c"], ["N0", "N1a"], ["M0", "M1a"]),
    (1, "C73", "C73.9", ["8260/3"], {"2": 75, "1": 25}, False,
     ["T1a", "T1b", "T2", "T3a"], ["N0", "N1a", "N1b"], ["M0", "M1"]),
    (2, "C02.9", "C02.9", ["8070/3"], {"1": 68, "2": 32}, False,
     ["T1", "T2", "T3", "T4a"], ["N0", "N1", "N2b"], ["M0", "M1"]),
]  # fmt: skip
BASIS = (["7", "6", "5", "2", "1"], [75, 5, 6, 10, 4])
GRADES = (["G1", "G2", "G3", "GX"], [15, 45, 30, 10])
PERFORMANCE = (["0", "1", "2", "3", "4"], [35, 31, 18, 11, 5])
POSTCODE_AREAS = [("B", 98, 40), ("WV", 16, 10), ("WS", 15, 9), ("DY", 14, 9), ("WR", 15, 8),
                  ("CV", 47, 12), ("ST", 21, 6), ("HR", 9, 3), ("TF", 13, 3)]  # fmt: skip
POSTCODE_UNIT = "ABDEFGHJLNPQRSTUWXYZ"
GP_PRACTICES = 900


# --- the data --------------------------------------------------------------------------------


def check_digit(stem: str) -> int | None:
    """The NHS number check digit of a 9-digit stem (modulus 11), None when there is none."""
    check = 11 - sum(int(d) * w for d, w in zip(stem, range(10, 1, -1), strict=True)) % 11
    return None if check == 10 else check % 11


def nhs_numbers():
    """Valid NHS numbers of the 999 test range, in order, from FIRST_STEM on."""
    for stem in range(FIRST_STEM, LAST_STEM + 1):
        text = str(stem)
        check = check_digit(text)
        if check is not None:
            yield f"{text}{check}"


def name_lists() -> tuple[list[str], list[float], dict[str, list[str]]]:
    """Surnames (about 3,800, a British, Irish and South Asian mix from Faker's lists) ranked
    roughly by frequency, with weights falling as 1/(rank + 20) so that the commonest name is
    about 1 % of people (Smith is about 1.2 % in England) and the rarest a few in 100,000; given
    names by sex (COSD codes)."""
    from faker.providers.person import en_GB, en_IE, en_IN, en_NZ, en_US

    def by_weight(names) -> list[str]:
        if hasattr(names, "items"):
            return [name for name, _ in sorted(names.items(), key=lambda kv: -kv[1])]
        return list(names)

    ranked: dict[str, None] = {}
    for provider in (en_NZ, en_GB, en_US, en_IE, en_IN):
        for name in by_weight(provider.Provider.last_names):
            if name.isalpha() or "-" in name or "'" in name:
                ranked.setdefault(name, None)
    surnames = list(ranked)
    weights = [1 / (rank + 20) for rank in range(len(surnames))]
    given = {"1": [], "2": []}
    for provider in (en_GB, en_US, en_IE, en_IN):
        given["1"] += by_weight(provider.Provider.first_names_male)
        given["2"] += by_weight(provider.Provider.first_names_female)
    given = {sex: list(dict.fromkeys(names)) for sex, names in given.items()}
    return surnames, weights, given


def header() -> list[str]:
    from registry.cosd import TUMOUR_ITEMS

    return [item.number for item in TUMOUR_ITEMS]


def stage_group(t: str, n: str, m: str, icd10: str) -> str:
    """A UICC 8 stage group consistent in kind with the categories (simplified per site)."""
    if m.startswith("M1"):
        return "IVB" if icd10 == "C61" and m != "M1a" else ("IVA" if icd10 == "C61" else "IV")
    if t in ("Tis", "Ta"):
        return "0is" if t == "Tis" and icd10 == "C67.9" else ("0a" if t == "Ta" else "0")
    if n != "N0":
        return "IIIA" if n.startswith("N1") else ("IIIB" if n.startswith("N2") else "IIIC")
    if t.startswith("T4") or t.startswith("T3"):
        return "IIB" if t.startswith("T3") else "IIC" if icd10.startswith("C18") else "IIIB"
    if t.startswith("T2"):
        return "IIA" if icd10 in ("C50.9", "C50.4", "C61") else "IB"
    return "IA" if icd10.startswith(("C34", "C50", "C43")) else "I"


class Weighted:
    """A weighted choice with the cumulative weights worked out once (random.choices would add
    them up again on every call: most of the time of writing a million rows)."""

    def __init__(self, values, weights):
        self.values = list(values)
        self.cumulative = list(accumulate(weights))
        self.total = self.cumulative[-1]

    def __call__(self, rng: random.Random):
        return self.values[bisect_right(self.cumulative, rng.random() * self.total)]


def write_registrations(path: Path, rows: int, sample: int = 0) -> dict:
    """Writes ``rows`` registrations to ``path`` (streamed: nothing but the file grows with
    ``rows``) and returns the number of patients and, when ``sample``, that many random rows'
    (NHS number, family name) to search for."""
    rng = random.Random(f"{SEED}:{rows}")
    surnames, surname_weights, given_names = name_lists()
    surname = Weighted(surnames, surname_weights)
    site_of = Weighted(SITES, [site[0] for site in SITES])
    sex_of = {site[1]: Weighted(site[4], site[4].values()) for site in SITES}
    trust = Weighted([code for code, _ in TRUSTS], TRUST_WEIGHTS)
    basis, grade, performance = Weighted(*BASIS), Weighted(*GRADES), Weighted(*PERFORMANCE)
    area_of = Weighted([area for area, _, _ in POSTCODE_AREAS], [w for _, _, w in POSTCODE_AREAS])
    districts = {area: top for area, top, _ in POSTCODE_AREAS}
    patients = round(rows * PATIENT_SHARE)
    tumours = bytearray([1]) * patients
    for _ in range(rows - patients):  # the rest: further tumours of random patients
        index = rng.randrange(patients)
        while tumours[index] >= 3:
            index = rng.randrange(patients)
        tumours[index] += 1
    picked = set(rng.sample(range(rows), sample)) if sample else set()
    chosen: list[tuple[str, str]] = []
    practices = [f"M{rng.randrange(80_000, 100_000):05d}" for _ in range(GP_PRACTICES)]
    span = (DIAGNOSED_TO - DIAGNOSED_FROM).days
    numbers = nhs_numbers()
    row = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(header())
        for count in tumours:
            nhs = next(numbers)
            family = surname(rng)
            first = site_of(rng)
            sex = sex_of[first[1]](rng)
            given = rng.choice(given_names[sex])
            # Age at the first diagnosis: most cancers are diagnosed between 60 and 85.
            age_days = int(rng.triangular(25, 98, 74) * 365.25)
            first_diagnosis = DIAGNOSED_FROM + timedelta(days=rng.randrange(span + 1))
            birth = (first_diagnosis - timedelta(days=age_days)).isoformat()
            area = area_of(rng)
            postcode = (
                f"{area}{rng.randint(1, districts[area])} {rng.randint(1, 9)}"
                f"{rng.choice(POSTCODE_UNIT)}{rng.choice(POSTCODE_UNIT)}"
            )
            practice = rng.choice(practices)
            for k in range(count):
                if k == 0:
                    site, diagnosed = first, first_diagnosis
                else:  # a later primary, of a site this person's sex can have
                    site = site_of(rng)
                    while sex not in site[4]:
                        site = site_of(rng)
                    diagnosed = DIAGNOSED_FROM + timedelta(days=rng.randrange(span + 1))
                _, icd10, topography, morphologies, _, paired, ts, ns, ms = site
                t, n = rng.choice(ts), rng.choice(ns)
                m = ms[0] if rng.random() < 0.84 else rng.choice(ms[1:])
                org = trust(rng)
                submitted = min(diagnosed + timedelta(days=rng.randint(14, 150)), SUBMITTED_BY)
                row += 1
                out.writerow(
                    [
                        org,
                        f"{org}-{diagnosed.year}-{row:08d}",
                        submitted.isoformat(),
                        nhs,
                        family,
                        given,
                        birth,
                        sex,
                        postcode,
                        practice,
                        diagnosed.isoformat(),
                        icd10,
                        rng.choice("LR") if paired else "8",
                        basis(rng),
                        rng.choice(morphologies),
                        topography,
                        grade(rng),
                        t,
                        n,
                        m,
                        stage_group(t, n, m, icd10),
                        "8",
                        performance(rng),
                    ]
                )
                if row - 1 in picked:
                    chosen.append((nhs, family))
    assert row == rows, (row, rows)
    rng.shuffle(chosen)
    return {"patients": patients, "sample": chosen, "bytes": path.stat().st_size}


def ensure_organisations() -> None:
    from accounts.models import Organisation

    for code, name in TRUSTS:
        Organisation.objects.get_or_create(
            ods_code=code, defaults={"name": name, "kind": Organisation.Kind.TRUST}
        )


def registry_tables() -> list[str]:
    from django.apps import apps

    return [model._meta.db_table for model in apps.get_app_config("registry").get_models()]


def clean() -> None:
    """Empties the registry (every registry table) and removes this benchmark's patients."""
    from django.db import connection, transaction

    tables = ", ".join(connection.ops.quote_name(name) for name in registry_tables())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY")  # noqa: S608 - our table names
        cursor.execute(
            "DELETE FROM records_patient WHERE nhs_number BETWEEN %s AND %s",
            [f"{FIRST_STEM}0", f"{LAST_STEM}9"],
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE records_patient")


def indexes() -> dict:
    """The registry's indexes and constraints as PostgreSQL has them (valid ones only count)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, i.relname, x.indisvalid, pg_get_indexdef(x.indexrelid)
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relname = ANY(%s)
            ORDER BY t.relname, i.relname
            """,
            [registry_tables()],
        )
        found = [
            {"table": table, "index": name, "valid": valid, "definition": definition}
            for table, name, valid, definition in cursor.fetchall()
        ]
        cursor.execute(
            """
            SELECT t.relname, c.conname, c.contype, c.convalidated
            FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
            WHERE t.relname = ANY(%s) AND c.contype IN ('f', 'u', 'c', 'p')
            ORDER BY t.relname, c.conname
            """,
            [registry_tables()],
        )
        constraints = [
            {"table": table, "name": name, "kind": kind, "valid": valid}
            for table, name, kind, valid in cursor.fetchall()
        ]
        cursor.execute(
            "SELECT count(*) FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname = 'records_patient'"
        )
        patient_indexes = cursor.fetchone()[0]
    return {
        "indexes": found,
        "constraints": constraints,
        "registration_indexes": sum(row["table"] == "registry_registration" for row in found),
        "patient_indexes": patient_indexes,
    }


def table_state() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), max(updated_at), count(patient_id) FROM registry_registration"
        )
        registrations, last_update, linked = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM registry_registrationhistory")
        history = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM records_patient WHERE nhs_number BETWEEN %s AND %s",
            [f"{FIRST_STEM}0", f"{LAST_STEM}9"],
        )
        patients = cursor.fetchone()[0]
        cursor.execute(
            "SELECT pg_total_relation_size('registry_registration'), "
            "pg_total_relation_size('registry_registrationhistory')"
        )
        size, history_size = cursor.fetchone()
    return {
        "registrations": registrations,
        "last_update": last_update.isoformat() if last_update else None,
        "linked_to_patient": linked,
        "history": history,
        "patients": patients,
        "table_mb": round(size / 2**20),
        "history_mb": round(history_size / 2**20),
    }


# --- importing on the product path -----------------------------------------------------------


# Runs the command given after the output path, then writes its wall time and resource usage
# there. The command is forked from this small interpreter, not from the benchmark: a child's
# ru_maxrss counts the memory it had before exec, which for a child of the benchmark's process
# (Django, the sample) would be the benchmark's own size, not the importer's.
LAUNCHER = """
import json, resource, signal, subprocess, sys, time
# Stopped with its process group (a timeout), it waits for the import to stop and still reports.
signal.signal(signal.SIGTERM, lambda *args: None)
started = time.perf_counter()
code = subprocess.Popen(sys.argv[2:]).wait()
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "wall_s": wall, "maxrss_kib": usage.ru_maxrss,
               "cpu_s": usage.ru_utime + usage.ru_stime}, out)
sys.exit(0 if code == 0 else 1)
"""


def launch(
    env: dict, command: list[str], watch=None, timeout: float | None = None
) -> tuple[int, dict, str, bool]:
    """Runs ``command`` through LAUNCHER: (exit code, usage, what it printed, whether it was
    stopped after ``timeout`` seconds). ``watch`` is called about every POLL_S while it runs."""
    import json

    from ._django import ROOT

    with (
        tempfile.TemporaryDirectory(prefix="bench-import-") as folder,
        tempfile.TemporaryFile() as output,
    ):
        usage_path = Path(folder) / "usage.json"
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
            [sys.executable, "-c", LAUNCHER, str(usage_path), *command],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to stop with the import in it
        )
        started, timed_out = time.monotonic(), False
        try:
            while True:
                try:
                    process.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    if watch is not None:
                        watch()
                    if timeout is not None and time.monotonic() - started > timeout:
                        timed_out = True
                        os.killpg(process.pid, signal.SIGTERM)
        except BaseException:  # stopped (SIGTERM, Ctrl-C, an error): stop the import too
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
            raise
        usage = json.loads(usage_path.read_text()) if usage_path.exists() else {}
        output.seek(0)
        printed = output.read().decode(errors="replace")
    return process.returncode, usage, printed, timed_out


def timeout_for(rows: int) -> float:
    """How long an import of ``rows`` may take before it is stopped: at MIN_ROWS_PER_S, a tenth
    of the target, plus the start-up."""
    return rows / MIN_ROWS_PER_S + 30


def import_file(env: dict, path: Path, rows: int) -> dict:
    """``manage.py import_registry FILE --quiet`` in a process of its own: its wall time, CPU
    time and peak resident memory (ru_maxrss, Linux), and the ImportRun it recorded. Stopped
    after timeout_for(rows) seconds (then ``timed_out``, with the rows it had committed)."""
    from registry.models import ImportRun

    before = ImportRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    command = [sys.executable, "manage.py", "import_registry", str(path), "--quiet"]
    started = time.perf_counter()
    progress: list[tuple[float, int]] = []

    def watch() -> None:
        # Rows read so far, as the import commits them batch by batch.
        read = (
            ImportRun.objects.filter(pk__gt=before)
            .order_by("-pk")
            .values_list("rows_read", flat=True)
            .first()
        )
        if read:
            progress.append((time.perf_counter() - started, read))

    code, usage, printed, timed_out = launch(env, command, watch, timeout_for(rows))
    if (code != 0 and not timed_out) or not usage:
        sys.stderr.write(printed[-4000:])
        raise RuntimeError(f"import_registry exited with {code}")
    run = ImportRun.objects.filter(pk__gt=before).order_by("-pk").first()
    if run is None:
        raise RuntimeError("import_registry recorded no ImportRun")
    counts = {
        key: getattr(run, key)
        for key in (
            "rows_read",
            "rows_created",
            "rows_updated",
            "rows_unchanged",
            "rows_older",
            "rows_quarantined",
        )
    }
    quarantined = list(run.quarantined.order_by("line").values("line", "reasons")[:5])
    own = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    return {
        "timed_out": timed_out,
        "rows_done": run.rows_read,
        "wall_s": round(usage["wall_s"], 2),
        "run_s": round(own, 2) if own is not None else None,
        "peak_mb": round(usage["maxrss_kib"] / 1024, 1),  # Linux: KiB
        "cpu_s": round(usage["cpu_s"], 2),
        "status": run.status,
        "error": run.error[:500],
        "counts": counts,
        "quarantined_examples": quarantined,
        "output": printed[-1000:],
        "rates": rates_by_tenth(progress, run.rows_read),
    }


def rates_by_tenth(progress: list[tuple[float, int]], rows: int) -> list[int]:
    """Rows per second over each tenth of the file, from the (seconds, rows read) samples: does
    the import slow down as the tables grow?"""
    rates = []
    previous_t, previous_rows = None, None
    for tenth in range(1, 11):
        goal = rows * tenth // 10
        reached = next(((t, n) for t, n in progress if n >= goal), None)
        if reached is None:
            break
        if previous_t is not None and reached[1] > previous_rows and reached[0] > previous_t:
            rates.append(round((reached[1] - previous_rows) / (reached[0] - previous_t)))
        previous_t, previous_rows = reached
    return rates


def _brief(run: dict) -> dict:
    return {key: run[key] for key in ("timed_out", "rows_done", "wall_s", "peak_mb", "counts")}


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- searching --------------------------------------------------------------------------------


def _evaluate(page) -> tuple[int, int]:
    """Reads the page of results as the search page shows it (each result's registration, site
    and postcode, which is blank for a restricted patient): (results on the page, matches)."""
    shown = [
        (result.registration.family_name, result.site, result.postcode, result.sex)
        for result in page.results
    ]
    return len(shown), page.total


def misspell(name: str, rng: random.Random) -> str:
    """A typist's slip: one letter dropped, or two neighbouring letters swapped."""
    for _ in range(20):
        i = rng.randrange(1, len(name) - 1)
        if rng.random() < 0.5:
            typed = name[:i] + name[i + 1 :]
        else:
            typed = name[:i] + name[i + 1] + name[i] + name[i + 2 :]
        if typed.lower() != name.lower():
            return typed
    return name[:-1]


def measure_searches(sample: list[tuple[str, str]]) -> dict:
    from registry.search import search_registrations

    rng = random.Random(f"{SEED}:search")
    lookups = [nhs for nhs, _ in sample[:LOOKUPS]]
    names = [family for _, family in sample if len(family) >= 4][:NAME_SEARCHES]
    typed = [misspell(name, rng) for name in names]
    for i in range(WARMUP):
        _evaluate(search_registrations(nhs_number=lookups[-1 - i]))
        _evaluate(search_registrations(name=typed[-1 - i]))
    lookup_s, name_s, found, totals = [], [], 0, []
    for nhs, name in zip(lookups, typed, strict=False):
        started = time.perf_counter()
        shown, _ = _evaluate(search_registrations(nhs_number=nhs))
        lookup_s.append(time.perf_counter() - started)
        found += shown > 0
        started = time.perf_counter()
        _, total = _evaluate(search_registrations(name=name))
        name_s.append(time.perf_counter() - started)
        totals.append(total)
    by_time = sorted(zip(name_s, names, typed, totals, strict=False), key=lambda row: -row[0])
    return {
        "lookup": _ms(lookup_s),
        "name": _ms(name_s),
        "lookups": len(lookup_s),
        "lookups_found": found,
        "names": len(name_s),
        "names_with_rows": sum(1 for total in totals if total),
        "name_matches": {
            "median": round(statistics.median(totals)),
            "p95": round(statistics.quantiles(totals, n=20, method="inclusive")[18]),
            "max": max(totals),
        },
        "examples": list(zip(names[:8], typed[:8], strict=True)),
        "slowest": [
            {"ms": round(s * 1000, 1), "name": name, "typed": text, "matches": total}
            for s, name, text, total in by_time[:8]
        ],
        "_typed": typed,
        "_lookups": lookups,
        "_slowest_typed": by_time[0][2],
    }


def explain_search(**criteria) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) of every SELECT one search_registrations call runs (after the
    SETs it runs, if any)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from registry.search import search_registrations

    with CaptureQueriesContext(connection) as captured:
        _evaluate(search_registrations(**criteria))
    plans = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            sql = query["sql"].strip()
            head = sql.split(None, 1)[0].upper() if sql else ""
            if head == "SET":
                cursor.execute(sql)
            elif head in ("SELECT", "WITH"):
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
                plan = "\n".join(row[0] for row in cursor.fetchall())
                plans.append({"sql": sql, "plan": plan})
    return plans


def _ms(seconds: list[float]) -> dict[str, float]:
    millis = [s * 1000 for s in seconds]
    return {
        "median": round(statistics.median(millis), 2),
        "p95": round(statistics.quantiles(millis, n=20, method="inclusive")[18], 2),
        "max": round(max(millis), 2),
    }


# --- diagnosis ---------------------------------------------------------------------------------


def write_head(path: Path, head: Path, rows: int) -> None:
    """The header and the first ``rows`` rows of the CSV file ``path``."""
    with (
        path.open(newline="", encoding="utf-8") as source,
        head.open("w", newline="", encoding="utf-8") as out,
    ):
        for number, line in enumerate(source):
            if number > rows:
                break
            out.write(line)


def split_statements(text: str) -> list[str]:
    """The statements of an SQL text, split at semicolons outside quotes."""
    statements, current, quote = [], [], None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ";":
            statements.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    statements.append("".join(current).strip())
    return [statement for statement in statements if statement]


def plan_ms(plan: str) -> dict:
    """The execution time an EXPLAIN ANALYZE reports, and its triggers' (foreign-key checks)."""
    import re

    found = re.search(r"Execution Time: ([\d.]+) ms", plan)
    triggers = sum(float(ms) for ms in re.findall(r"Trigger .*?: time=([\d.]+)", plan))
    return {"ms": float(found[1]) if found else 0.0, "trigger_ms": round(triggers, 1)}


def profile_import(path: Path, rows: int) -> dict:
    """registry.importer.import_tumours, in this process, over the first ``rows`` rows of the
    file into emptied tables (as the measured import began): cProfile in every thread (the
    importer reads and checks rows on a thread of its own while the calling thread merges
    batches), the time of each execute and COPY it sends through psycopg (where the merging
    thread waits for PostgreSQL), and the middle batch's merge statement by statement under
    EXPLAIN ANALYZE."""
    import contextlib
    import cProfile
    import pstats
    import re
    import threading
    from collections import defaultdict

    import psycopg

    from registry import importer
    from registry.importer import import_tumours

    batch_rows = getattr(importer, "BATCH_ROWS", None)
    explain_batch = max(1, rows // (batch_rows or 5000) // 2)
    head = path.with_name(f"first-{rows}.csv")
    write_head(path, head, rows)
    clean()
    path = head
    statements: dict[str, list] = defaultdict(lambda: [0, 0.0])

    def shape(query) -> str:
        text = query if isinstance(query, str) else query.as_string(None)
        text = re.sub(r"\s+", " ", re.sub(r"\b\d+\b", "?", text)).strip()
        return text[:160] + (" …" if len(text) > 160 else "")

    execute, copy, commit = psycopg.Cursor.execute, psycopg.Cursor.copy, psycopg.Connection.commit

    def timed_commit(self):
        started = time.perf_counter()
        try:
            return commit(self)
        finally:
            row = statements["COMMIT (deferred foreign key checks run here)"]
            row[0] += 1
            row[1] += time.perf_counter() - started

    explained: list[dict] = []

    def explain_each(cursor, query, args, kwargs) -> None:
        """Each statement of ``query`` under EXPLAIN (ANALYZE, BUFFERS) (the others run as they
        are), inside a savepoint rolled back afterwards: the real execute follows unchanged."""
        params = args[0] if args else kwargs.get("params")
        if params is not None and hasattr(cursor, "mogrify"):
            text = cursor.mogrify(query, params)
        elif params is None:
            text = query if isinstance(query, str) else query.as_string(cursor)
        else:
            return
        execute(cursor, "SAVEPOINT bench_explain")
        try:
            for statement in split_statements(text):
                head = statement.split(None, 1)[0].upper()
                if head in ("INSERT", "UPDATE", "DELETE", "WITH") or (
                    head == "SELECT" and "set_config" not in statement
                ):
                    execute(cursor, f"EXPLAIN (ANALYZE, BUFFERS) {statement}")
                    plan = "\n".join(row[0] for row in cursor.fetchall())
                    explained.append({"sql": shape(statement), "plan": plan, **plan_ms(plan)})
                else:
                    execute(cursor, statement)
        finally:
            execute(cursor, "ROLLBACK TO SAVEPOINT bench_explain")

    def timed_execute(self, query, *args, **kwargs):
        text = shape(query)
        # The merge of one batch in the middle of the file, statement by statement.
        if statements[text][0] == explain_batch:
            full = query if isinstance(query, str) else query.as_string(self)
            if "INSERT" in full.upper() and "registry_registration" in full:
                explain_each(self, query, args, kwargs)
        started = time.perf_counter()
        try:
            return execute(self, query, *args, **kwargs)
        finally:
            row = statements[text]
            row[0] += 1
            row[1] += time.perf_counter() - started

    @contextlib.contextmanager
    def timed_copy(self, statement, *args, **kwargs):
        started = time.perf_counter()
        try:
            with copy(self, statement, *args, **kwargs) as copying:
                yield copying
        finally:
            row = statements[shape(statement)]
            row[0] += 1
            row[1] += time.perf_counter() - started

    profiles: dict[str, cProfile.Profile] = {}

    def profile_new_thread(frame, event, arg):
        sys.setprofile(None)
        profile = cProfile.Profile()
        profiles[threading.current_thread().name] = profile
        profile.enable()

    main = cProfile.Profile()
    psycopg.Cursor.execute, psycopg.Cursor.copy = timed_execute, timed_copy
    psycopg.Connection.commit = timed_commit
    try:
        threading.setprofile(profile_new_thread)
        started = time.perf_counter()
        main.enable()
        run = import_tumours(path)
        main.disable()
        wall = time.perf_counter() - started
    finally:
        threading.setprofile(None)
        psycopg.Cursor.execute, psycopg.Cursor.copy = execute, copy
        psycopg.Connection.commit = commit
    head.unlink()
    threads = {"calling thread (merges)": _top_cumulative(pstats.Stats(main))}
    for name, profile in profiles.items():
        threads[f"thread {name}"] = _top_cumulative(pstats.Stats(profile))
    sql = sorted(
        ({"sql": text, "calls": n, "s": round(s, 2)} for text, (n, s) in statements.items()),
        key=lambda row: -row["s"],
    )[:12]
    return {
        "rows": rows,
        "explain_batch": explain_batch + 1,
        "wall_s": round(wall, 2),
        "rows_per_s": round(rows / wall),
        "created": run.rows_created,
        "threads": threads,
        "sql": sql,
        "sql_s": round(sum(s for _, s in statements.values()), 2),
        "explained": explained,
        "batch_rows": batch_rows,
    }


def profile_searches(typed: list[str], lookups: list[str]) -> dict:
    """cProfile of the measured lookups, then of the measured name searches, each with the share
    of its time spent waiting for PostgreSQL (psycopg's wait)."""
    import cProfile
    import pstats

    from registry.search import search_registrations

    profiled = {}
    for kind, calls in (
        ("lookups", [{"nhs_number": nhs} for nhs in lookups]),
        ("names", [{"name": name} for name in typed]),
    ):
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for criteria in calls:
            _evaluate(search_registrations(**criteria))
        profiler.disable()
        wall = time.perf_counter() - started
        stats = pstats.Stats(profiler)
        waiting = sum(
            tottime
            for (filename, _, name), (_, _, tottime, _, _) in stats.stats.items()
            if name == "wait" and "psycopg" in filename
        )
        profiled[kind] = {
            "calls": len(calls),
            "wall_s": round(wall, 2),
            "waiting_s": round(waiting, 2),
            "top": _top_cumulative(stats, 12),
        }
    return profiled


# The name search proposed below, on the same data: the trigram match on the distinct surnames
# (a few thousand rows) instead of on every registration, then each matched surname's first
# rows from a btree on (UPPER(family_name), the page's order). The total is the sum of the
# matched surnames' counts, which is what the product counts.
PROPOSED_SURNAMES = """
CREATE TEMP TABLE bench_surnames AS
SELECT UPPER(family_name) AS name, count(*) AS registrations
FROM registry_registration GROUP BY 1
"""
PROPOSED_INDEXES = [
    "CREATE INDEX ON bench_surnames USING gin (name gin_trgm_ops)",
    "CREATE INDEX bench_registration_surname ON registry_registration "
    "(UPPER(family_name), family_name, given_name, birth_date, diagnosis_date DESC, id)",
    "ANALYZE bench_surnames",
]
PROPOSED_QUERY = """
WITH names AS MATERIALIZED (
    SELECT name, similarity(name, %s) AS score, registrations
    FROM bench_surnames WHERE name %% %s
)
SELECT page.*, (SELECT coalesce(sum(registrations), 0) FROM names) AS matches
FROM names CROSS JOIN LATERAL (
    SELECT r.* FROM registry_registration r WHERE UPPER(r.family_name) = names.name
    ORDER BY r.family_name, r.given_name, r.birth_date, r.diagnosis_date DESC, r.id LIMIT %s
) page
ORDER BY names.score DESC, page.family_name, page.given_name, page.birth_date,
    page.diagnosis_date DESC, page.id
LIMIT %s
"""


def try_proposed_name_search(typed: list[str], per_page: int = 25) -> dict:
    """PROPOSED_QUERY for the measured name searches, in a transaction rolled back at the end
    (the surname table and the btree are not kept): its latency, and whether it returns the same
    page and total as search_registrations."""
    from django.db import connection, transaction

    from registry.search import normalise_name, search_registrations

    product = {}
    for name in typed:
        page = search_registrations(name=name, per_page=per_page)
        product[name] = ([result.registration.pk for result in page.results], page.total)
    seconds, same_page, same_total = [], 0, 0
    with transaction.atomic(), connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(PROPOSED_SURNAMES)
        for statement in PROPOSED_INDEXES:
            cursor.execute(statement)
        setup_s = time.perf_counter() - started
        cursor.execute("SELECT count(*) FROM bench_surnames")
        surnames = cursor.fetchone()[0]
        for name in typed[:WARMUP]:
            cursor.execute(PROPOSED_QUERY, [normalise_name(name)] * 2 + [per_page] * 2)
            cursor.fetchall()
        for name in typed:
            text = normalise_name(name)
            started = time.perf_counter()
            cursor.execute(PROPOSED_QUERY, [text, text, per_page, per_page])
            rows = cursor.fetchall()
            seconds.append(time.perf_counter() - started)
            ids, total = [row[0] for row in rows], rows[0][-1] if rows else 0
            same_page += ids == product[name][0]
            same_total += total == product[name][1]
        cursor.execute(
            f"EXPLAIN (ANALYZE, BUFFERS) {PROPOSED_QUERY}",
            [normalise_name(typed[0])] * 2 + [per_page] * 2,
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    return {
        "surnames": surnames,
        "setup_s": round(setup_s, 1),
        "ms": _ms(seconds),
        "searches": len(seconds),
        "same_page": same_page,
        "same_total": same_total,
        "plan": plan,
    }


def _top_cumulative(stats, count: int = 20) -> list[dict]:
    from ._django import ROOT

    rows = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():
        where = filename.replace(str(ROOT) + "/", "")
        if "site-packages/" in where:
            where = where.split("site-packages/", 1)[-1]
        rows.append(
            {
                "function": f"{where}:{line}({name})",
                "calls": calls,
                "own_s": round(tottime, 3),
                "cumulative_s": round(cumtime, 3),
            }
        )
    rows.sort(key=lambda row: -row["cumulative_s"])
    return rows[:count]


def postgres_settings() -> dict:
    from django.db import connection

    names = [
        "autovacuum",
        "shared_buffers",
        "work_mem",
        "maintenance_work_mem",
        "max_wal_size",
        "synchronous_commit",
        "fsync",
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)", [names]
        )
        found = dict(cursor.fetchall())
    return {name: found.get(name, "?") for name in names}


# --- the run ---------------------------------------------------------------------------------


def run() -> dict:
    from django.db import connection

    from . import _django

    started = time.monotonic()
    env = _django.setup(DB_NAME)
    ensure_organisations()
    settings = postgres_settings()
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as temporary:
        folder = Path(temporary)
        small_path = folder / f"registrations-{SMALL_ROWS}.csv"
        path = folder / f"registrations-{ROWS}.csv"
        t0 = time.monotonic()
        write_registrations(small_path, SMALL_ROWS)
        big_file = write_registrations(path, ROWS, sample=max(LOOKUPS, NAME_SEARCHES) * 2)
        generated_s = time.monotonic() - t0
        _progress(
            f"wrote {ROWS:,} rows ({big_file['bytes'] / 2**20:.0f} MiB, {big_file['patients']:,} "
            f"patients) and {SMALL_ROWS:,} rows in {generated_s:.0f} s"
        )
        try:
            clean()
            schema = indexes()
            tiny_path = folder / f"registrations-{TINY_ROWS}.csv"
            write_registrations(tiny_path, TINY_ROWS)
            tiny = import_file(env, tiny_path, TINY_ROWS)
            _progress(f"imported {TINY_ROWS:,} rows: peak {tiny['peak_mb']} MiB")
            clean()
            small = import_file(env, small_path, SMALL_ROWS)
            small["state"] = table_state()
            _progress(f"imported {SMALL_ROWS:,} rows: {_brief(small)}")
            small_path.unlink()

            clean()
            load = {"before the import": os.getloadavg()}
            first = import_file(env, path, ROWS)
            first["state"] = table_state()
            _progress(f"imported {ROWS:,} rows: {_brief(first)}")
            completion = None
            if first["timed_out"]:
                # The searches need the whole table: with the planner's statistics brought up
                # to date, the same import loads the rest (the rows it has are unchanged).
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE registry_registration")
                    cursor.execute("ANALYZE records_patient")
                completion = import_file(env, path, ROWS)
                completion["state"] = table_state()
                _progress(f"after ANALYZE, imported the rest: {_brief(completion)}")
            again = import_file(env, path, ROWS)
            again["state"] = table_state()
            _progress(f"imported the same {ROWS:,} rows again: {_brief(again)}")
            schema_after = indexes()

            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            searched = measure_searches(big_file["sample"])
            searched["registrations"] = table_state()["registrations"]
            load["after the searches"] = os.getloadavg()
            _progress(f"searched: lookup {searched['lookup']}, name {searched['name']}")
            name_plans = explain_search(name=searched["_typed"][0])
            slowest_plans = explain_search(name=searched["_slowest_typed"])
            lookup_plans = explain_search(nhs_number=searched["_lookups"][0])

            rows_per_s = round(first["rows_done"] / first["wall_s"])
            loaded = completion or first
            # The smaller import that read its whole file: the quarter-size one, or the
            # thousand-row one if that was stopped.
            flat_reference = tiny if small["timed_out"] else small
            flat_reference_rows = TINY_ROWS if small["timed_out"] else SMALL_ROWS
            whole = searched["registrations"] == ROWS
            met = {
                "throughput": not first["timed_out"] and rows_per_s >= TARGET_ROWS_PER_S,
                # Compared between two imports that read their whole file (None: cannot tell).
                "memory_flat": None
                if loaded["timed_out"]
                else loaded["peak_mb"] <= flat_reference["peak_mb"] * FLAT_FACTOR,
                "lookup": whole and searched["lookup"]["p95"] < TARGET_LOOKUP_P95_MS,
                "name": whole and searched["name"]["p95"] < TARGET_NAME_P95_MS,
                "reimport_unchanged": not again["timed_out"]
                and again["counts"]["rows_created"] == 0
                and again["counts"]["rows_updated"] == 0
                and again["state"]["history"] == loaded["state"]["history"]
                and again["state"]["last_update"] == loaded["state"]["last_update"],
                "all_imported": loaded["state"]["registrations"] == ROWS
                and first["counts"]["rows_quarantined"] == 0,
            }
            diagnosis = {}
            if not (met["lookup"] and met["name"]):
                _progress("search target missed: profiling the searches")
                diagnosis["search"] = profile_searches(searched["_typed"], searched["_lookups"])
            if not met["name"]:
                diagnosis["proposed_name_search"] = try_proposed_name_search(searched["_typed"])
            if not (met["throughput"] and met["memory_flat"] is not False):
                profile_rows = PROFILE_ROWS_SLOW if first["timed_out"] else PROFILE_ROWS
                _progress(f"import target missed: profiling the importer on {profile_rows:,} rows")
                diagnosis["import"] = profile_import(path, profile_rows)
        finally:
            clean()
    _progress(f"done in {time.monotonic() - started:.0f} s")
    return {
        "bench": "registry",
        "rows": ROWS,
        "import_rows_per_s": rows_per_s,
        "import_peak_mb": max(first["peak_mb"], loaded["peak_mb"]),
        "lookup_p95_ms": searched["lookup"]["p95"],
        "name_search_p95_ms": searched["name"]["p95"],
        "lookup_median_ms": searched["lookup"]["median"],
        "name_search_median_ms": searched["name"]["median"],
        "import_stopped": first["timed_out"],
        "reimport_s": again["wall_s"],
        "reimport_created": again["counts"]["rows_created"],
        "reimport_updated": again["counts"]["rows_updated"],
        "rows_small": SMALL_ROWS,
        "import_peak_mb_small": small["peak_mb"],
        "import_rows_per_s_small": round(SMALL_ROWS / small["wall_s"]),
        "patients": big_file["patients"],
        "import_peak_mb_tiny": tiny["peak_mb"],
        "_flat_reference_rows": flat_reference_rows,
        "_file_mb": round(big_file["bytes"] / 2**20),
        "_generated_s": round(generated_s),
        "_small": small,
        "_first": first,
        "_completion": completion,
        "_again": again,
        "_searched": searched,
        "_name_plans": name_plans,
        "_slowest_plans": slowest_plans,
        "_lookup_plans": lookup_plans,
        "_schema": schema,
        "_schema_after": schema_after,
        "_settings": settings,
        "_load": {key: [round(x, 2) for x in value] for key, value in load.items()},
        "_met": met,
        "_diagnosis": diagnosis,
    }


# --- the report --------------------------------------------------------------------------------


def _verdict(met: bool | None) -> str:
    return "not determined" if met is None else "met" if met else "**missed**"


def _stopped(run: dict) -> str:
    return f" (**stopped**, {run['rows_done']:,} rows read)" if run["timed_out"] else ""


def markdown(result: dict) -> str:
    first, again, small = result["_first"], result["_again"], result["_small"]
    completion = result.get("_completion")
    loaded = completion or first
    searched, met = result["_searched"], result["_met"]
    state = loaded["state"]
    imports = [
        (f"{SMALL_ROWS:,} rows", small),
        (f"{ROWS:,} rows", first),
        *([(f"{ROWS:,} rows after `ANALYZE`", completion)] if completion else []),
        (f"{ROWS:,} rows again", again),
    ]
    lines = [
        f"A CSV file of {ROWS:,} synthetic COSD tumour registrations "
        f"({result['_file_mb']} MiB, written in {result['_generated_s']} s from seed {SEED}; "
        f"{result['patients']:,} patients, so about one in six has a second or third primary): "
        "valid NHS numbers of the 999 test range, about 3,800 surnames (Faker's British, Irish, "
        "New Zealand, US and Indian lists) with Zipf-like frequencies (the commonest about 1 %), "
        "given names by sex, birth dates giving ages 25-98 at diagnosis (mode 74), diagnoses "
        f"from {DIAGNOSED_FROM} to {DIAGNOSED_TO} at seven West Midlands trusts, ICD-10 codes "
        "of 18 sites with matching ICD-O-3 morphology and topography, UICC 8 T, N, M and stage "
        "groups valid for the site, TNM edition 8, performance status 0-4. Headers are the COSD "
        "item numbers of `registry.cosd.TUMOUR_ITEMS`.",
        "",
        "Imported on the product path: `manage.py import_registry FILE --quiet` in a process of "
        f"its own against the benchmark's own database (`{DB_NAME}`, "
        "`ALLOW_SYNTHETIC_NHS_NUMBERS=1`), into emptied "
        "registry tables (`TRUNCATE`, and this benchmark's patients deleted from "
        "`records_patient`, then `VACUUM ANALYZE records_patient`) with every index, constraint "
        "and the history table in place (checked valid before and after). Wall time is the "
        "whole process (Python start-up and Django set-up included); peak memory is the import "
        "process's `ru_maxrss`, taken by a small launcher process that forks it (a child forked "
        "from the benchmark would count the benchmark's own memory from before its exec), so "
        "the PostgreSQL server's memory is not in it; the same command importing "
        f"{TINY_ROWS:,} rows peaks at {result['import_peak_mb_tiny']} MiB. An import slower than "
        f"{MIN_ROWS_PER_S:,} rows/s (a tenth of the target) is stopped; if the {ROWS:,}-row "
        "import is, the benchmark runs `ANALYZE` on the two tables and the same import again "
        "to load the rest, so that the searches run on the whole table. Then the same file "
        f"again (it must change nothing), and, for memory against file size, a {SMALL_ROWS:,}"
        "-row file from the same generator into emptied tables (run first). Searches: in this "
        f"process after `ANALYZE`, {WARMUP} warm-up calls of each, then {searched['lookups']} "
        f"NHS-number lookups of random registered numbers and {searched['names']} name "
        "searches with misspelt surnames (one letter dropped or two neighbours swapped), "
        "interleaved, on a table of "
        f"{searched.get('registrations', ROWS):,} registrations; each timing is one "
        "`registry.search.search_registrations` call including reading its page of results.",
        "",
        "| measure | result | target | |",
        "| --- | ---: | ---: | --- |",
        f"| import of {ROWS:,} rows: wall | {first['wall_s']} s{_stopped(first)} | | |",
        f"| import throughput | {result['import_rows_per_s']:,} rows/s | "
        f"≥ {TARGET_ROWS_PER_S:,} rows/s | {_verdict(met['throughput'])} |",
        f"| import peak memory, {ROWS:,} rows | {loaded['peak_mb']} MiB | flat in file size "
        f"(≤ {FLAT_FACTOR}× the {result['_flat_reference_rows']:,}-row import"
        + (", the larger one having been stopped" if small["timed_out"] else "")
        + f") | {_verdict(met['memory_flat'])} |",
        f"| import peak memory, {SMALL_ROWS:,} rows | {small['peak_mb']} MiB{_stopped(small)} "
        "| | |",
        f"| import peak memory, {TINY_ROWS:,} rows | {result['import_peak_mb_tiny']} MiB | | |",
        f"| import of {SMALL_ROWS:,} rows: wall, throughput | {small['wall_s']} s, "
        f"{result['import_rows_per_s_small']:,} rows/s | | |",
        f"| re-import of the same {ROWS:,} rows: wall | {again['wall_s']} s "
        f"({round(ROWS / again['wall_s']):,} rows/s){_stopped(again)} | changes nothing | "
        f"{_verdict(met['reimport_unchanged'])} |",
        f"| NHS-number lookup: median, p95 | {searched['lookup']['median']} ms, "
        f"{searched['lookup']['p95']} ms | p95 < {TARGET_LOOKUP_P95_MS:g} ms | "
        f"{_verdict(met['lookup'])} |",
        f"| name search: median, p95 | {searched['name']['median']} ms, "
        f"{searched['name']['p95']} ms | p95 < {TARGET_NAME_P95_MS:g} ms | "
        f"{_verdict(met['name'])} |",
        "",
        "| import | wall s | run s (ImportRun) | CPU s (importer) | peak MiB | read | created | "
        "updated | unchanged | older | quarantined |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, run in imports:
        c = run["counts"]
        lines.append(
            f"| {name}{' (stopped)' if run['timed_out'] else ''} | {run['wall_s']} "
            f"| {run['run_s'] if run['run_s'] is not None else '-'} | {run['cpu_s']} "
            f"| {run['peak_mb']} "
            f"| {c['rows_read']:,} | {c['rows_created']:,} | {c['rows_updated']:,} "
            f"| {c['rows_unchanged']:,} | {c['rows_older']:,} | {c['rows_quarantined']:,} |"
        )
    lines += [
        "",
        "Rows per second over each tenth of the file (from the ImportRun row, read every "
        f"{POLL_S:g} s while the import runs; does the import slow down as the tables grow?):",
        "",
        "| import | " + " | ".join(f"{n}0 %" for n in range(1, 11)) + " |",
        "| --- |" + " ---: |" * 10,
    ]
    for name, run in imports:
        rates = [f"{rate:,}" for rate in run["rates"]]
        lines.append(f"| {name} | " + " | ".join(rates + [""] * (10 - len(rates))) + " |")
    lines += [
        "",
        "Load average of the machine (1/5/15 min) "
        + "; ".join(
            f"{key}: {' / '.join(map(str, value))}" for key, value in result["_load"].items()
        )
        + " (other work on the machine shows in the timings).",
        "",
        f"After the import: {state['registrations']:,} registrations "
        f"({state['table_mb']} MiB with indexes), {state['linked_to_patient']:,} linked to a "
        f"patient, {state['patients']:,} of this benchmark's patients in `records_patient`, "
        f"{state['history']:,} history rows. After the re-import: "
        f"{again['state']['registrations']:,} registrations, {again['state']['history']:,} "
        "history rows, latest `updated_at` "
        + (
            "unchanged."
            if again["state"]["last_update"] == state["last_update"]
            else f"moved from {state['last_update']} to {again['state']['last_update']}."
        ),
        "",
        f"Lookups that found the registration: {searched['lookups_found']} of "
        f"{searched['lookups']}; name searches with at least one match: "
        f"{searched['names_with_rows']} of {searched['names']}; matches per name search: median "
        f"{searched['name_matches']['median']:,}, p95 {searched['name_matches']['p95']:,}, "
        f"max {searched['name_matches']['max']:,}. Misspellings, e.g. "
        + ", ".join(f"{name} → {typed}" for name, typed in searched["examples"])
        + ". The slowest name searches:",
        "",
        "| surname | typed | matches | ms |",
        "| --- | --- | ---: | ---: |",
        *(
            f"| {row['name']} | {row['typed']} | {row['matches']:,} | {row['ms']} |"
            for row in searched["slowest"]
        ),
        "",
    ]
    for run_name, run in (("first import", first), ("re-import", again), ("small", small)):
        if run["quarantined_examples"]:
            lines.append(
                f"Quarantined in the {run_name} (first lines): "
                + "; ".join(
                    f"line {row['line']}: {' '.join(row['reasons'])}"
                    for row in run["quarantined_examples"]
                )
            )
            lines.append("")
    schema = result["_schema_after"]
    lines.append(
        "Indexes in place during the imports: "
        + ", ".join(
            f"`{row['index']}`" + ("" if row["valid"] else " (INVALID)")
            for row in schema["indexes"]
            if row["table"] == "registry_registration"
        )
        + f" on `registry_registration`; {len(schema['indexes'])} indexes and "
        f"{len(schema['constraints'])} constraints on the registry tables in all."
    )
    lines.append("")
    lines.append(
        "PostgreSQL settings: "
        + ", ".join(f"`{k}` {v}" for k, v in result["_settings"].items())
        + "."
    )
    for title, plans in (
        (f"One name search ({searched['_typed'][0]})", result["_name_plans"]),
        (f"The slowest name search ({searched['_slowest_typed']})", result["_slowest_plans"]),
        ("One NHS-number lookup", result["_lookup_plans"]),
    ):
        lines += ["", f"{title}, `EXPLAIN (ANALYZE, BUFFERS)` of each statement it runs:", ""]
        for plan in plans:
            lines += ["```", plan["sql"][:1500], "", plan["plan"], "```"]
    diagnosis = result["_diagnosis"]
    if "import" in diagnosis:
        profiled = diagnosis["import"]
        lines += [
            "",
            f"**Import diagnosis**: `registry.importer.import_tumours` on the first "
            f"{profiled['rows']:,} rows of the file, in the benchmark's process, into emptied "
            "tables (as the measured import began), under cProfile: "
            f"{profiled['wall_s']} s ({profiled['rows_per_s']:,} rows/s under the profiler), "
            f"{profiled['created']:,} created. Time of each execute and COPY sent through "
            "psycopg (a round trip, so mostly PostgreSQL's work; the importer sends each "
            f"batch's merge as one execute of several statements; {profiled['sql_s']} s in all):",
            "",
            "| execute | calls | s |",
            "| --- | ---: | ---: |",
        ]
        lines += [
            f"| `{row['sql'].replace('|', '/')}` | {row['calls']} | {row['s']} |"
            for row in profiled["sql"]
        ]
        explained = profiled.get("explained") or []
        if explained:
            batch = profiled.get("batch_rows")
            lines += [
                "",
                f"Batch {profiled['explain_batch']}'s merge statement by statement under `EXPLAIN "
                "(ANALYZE, BUFFERS)` (in a savepoint rolled back before the real merge; "
                "deferred foreign-key checks, which run at commit, are not in these times)"
                + (f", µs per row of its {batch:,}-row batch:" if batch else ":"),
                "",
                "| statement | ms | µs per row |",
                "| --- | ---: | ---: |",
            ]
            lines += [
                f"| `{row['sql'].replace('|', '/')}` | {row['ms']} | "
                + (f"{row['ms'] * 1000 / batch:.0f}" if batch else "")
                + " |"
                for row in explained
            ]
            lines += ["", "The plans of its three slowest statements:"]
            for row in sorted(explained, key=lambda row: -row["ms"])[:3]:
                lines += ["", "```", row["sql"], "", row["plan"], "```"]
        for thread, top in profiled["threads"].items():
            lines += [
                "",
                f"Top functions by cumulative time, {thread}:",
                "",
                "| function | calls | own s | cumulative s |",
                "| --- | ---: | ---: | ---: |",
            ]
            lines += [
                f"| `{row['function']}` | {row['calls']:,} | {row['own_s']} "
                f"| {row['cumulative_s']} |"
                for row in top
            ]
    for kind, profiled in diagnosis.get("search", {}).items():
        lines += [
            "",
            f"**Search diagnosis, {kind}**: the {profiled['calls']} measured calls again under "
            f"cProfile: {profiled['wall_s']} s, of which {profiled['waiting_s']} s waiting for "
            "PostgreSQL (psycopg's `wait`). Top functions by cumulative time:",
            "",
            "| function | calls | own s | cumulative s |",
            "| --- | ---: | ---: | ---: |",
        ]
        lines += [
            f"| `{row['function']}` | {row['calls']:,} | {row['own_s']} | {row['cumulative_s']} |"
            for row in profiled["top"]
        ]
    lines += ["", *proposals(result)]
    return "\n".join(lines)


def throughput_proposal(result: dict) -> str:
    """The import's miss, from its profile: where a batch's merge spends its time, and what
    would change that."""
    first, diagnosis = result["_first"], result["_diagnosis"]
    completion = result.get("_completion")
    text = (
        f"**Import throughput: {result['import_rows_per_s']:,} rows/s against "
        f"{TARGET_ROWS_PER_S:,}**"
        + (
            f", and falling: the import was stopped after {first['wall_s']} s with "
            f"{first['rows_done']:,} of {ROWS:,} rows (rates per tenth above)."
            if first["timed_out"]
            else "."
        )
        + f" The import process used {first['cpu_s']} s of CPU in {first['wall_s']} s: the "
        "time goes to waiting for PostgreSQL in the merging thread."
    )
    profiled = diagnosis.get("import") or {}
    explained = profiled.get("explained") or []
    batch = profiled.get("batch_rows")
    if explained and batch:
        slowest = sorted(explained, key=lambda row: -row["ms"])
        total_ms = sum(row["ms"] for row in explained)
        text += (
            f" In the profile, batch {profiled['explain_batch']}'s merge took {total_ms:.0f} ms "
            f"({total_ms * 1000 / batch:.0f} µs per row, against the "
            f"{1e6 / TARGET_ROWS_PER_S:.0f} µs per row the target allows the whole import), "
            "mostly "
            + ", ".join(
                f"`{row['sql'][:50]}…` {row['ms'] * 1000 / batch:.0f} µs" for row in slowest[:2]
            )
            + "."
        )
        plans = " ".join(row["plan"] for row in explained)
        scanned = [
            table
            for table in ("records_patient", "registry_registration")
            if f"Seq Scan on {table}" in plans
        ]
        if scanned and "Join Filter" in plans:
            text += (
                " **The plan is quadratic**: a nested loop reads the whole of "
                + " and ".join(f"`{table}`" for table in scanned)
                + " for every staged row (`Materialize`, `Rows Removed by Join Filter` in the "
                "plan above), because the planner's statistics still describe the tables as they "
                "were when last analysed, before the import (autovacuum is off on this server, "
                "and where it is on it analyses at most once a minute, late for a load that "
                "grows the tables many times over), and the "
                "importer turns hash and merge joins off for its merge. Each batch costs more "
                "than the last. Proposed: (a) in `_begin_sql`, also "
                "`set_config('enable_seqscan', 'off', true)`, so that the nested loops look "
                "rows up by the unique indexes whatever the statistics say (the staging table "
                "is still read in full, having no index); or (b) `ANALYZE records_patient` and "
                "`registry_registration` in the import when it has added more rows than they "
                "held at its start (ANALYZE samples, so it takes about a second or less)."
            )
            if completion and not completion["timed_out"]:
                rate = round(completion["counts"]["rows_read"] / completion["wall_s"])
                text += (
                    " The benchmark did (b) once by hand: after `ANALYZE` the same import read "
                    f"the whole file again in {completion['wall_s']} s ({rate:,} rows/s), "
                    f"creating the remaining {completion['counts']['rows_created']:,} rows at "
                    "the rates per tenth shown above. Then, for the rest of the gap to the "
                    "target:"
                )
            else:
                text += " Then, for the rest of the gap to the target:"
        elif scanned:
            text += (
                " The plans above scan the whole of "
                + " and ".join(f"`{table}`" for table in scanned)
                + " for every batch, a cost that grows with the registry: make those joins "
                "index look-ups. Then:"
            )
        else:
            text += (
                " The plans above look rows up by index, so the cost is mostly the writes and "
                "their index maintenance: each registration updates "
                f"{result['_schema_after']['registration_indexes']} indexes, each new patient "
                f"{result['_schema_after']['patient_indexes']}. Proposed:"
            )
    return text + (
        " drop the `varchar_pattern_ops` index Django adds beside `Patient.nhs_number` "
        "(`unique=True`; the registration's is gone): only `LIKE 'prefix%'` uses it and no "
        "query in the project does; declare the patient's uniqueness in `Meta.constraints` "
        "(a records change). The importer already checks each row once (a cached fast path), "
        "merges 20,000-row batches with index look-ups whatever the statistics, and inserts new "
        "tumours without ON CONFLICT; what is left per row is PostgreSQL writing the heap, "
        "seven registry indexes and five patient-index indexes, and the foreign-key checks at "
        "commit. Measure again on a quiet machine: here the reader, the merge's backend and the "
        "WAL writer share two cores with whatever else runs (see the load average)."
    )


def proposals(result: dict) -> list[str]:
    """What would meet a missed target: product changes, not made here."""
    met, diagnosis = result["_met"], result["_diagnosis"]
    found: list[str] = []
    blocks: list[str] = []
    if not met["throughput"]:
        found.append(throughput_proposal(result))
    if met["memory_flat"] is None:
        found.append(
            "**Memory against file size not determined**: the import of the whole file was "
            "stopped before its end (see the tables above)."
        )
    elif not met["memory_flat"]:
        found.append(
            "**Import memory grows with the file**: see the peak memory of each import above."
        )
    if not met["reimport_unchanged"]:
        found.append("**The re-import changed the registry**: see the table above.")
    if not met["all_imported"]:
        found.append("**Not every row was imported**: see the counts and quarantined lines.")
    if not met["lookup"]:
        profiled = diagnosis.get("search", {}).get("lookups")
        text = (
            f"**NHS-number lookup p95 {result['lookup_p95_ms']} ms against "
            f"{TARGET_LOOKUP_P95_MS:g} ms** (median {result['lookup_median_ms']} ms). Its plans "
            "above are index scans of a few rows, well under a millisecond in PostgreSQL."
        )
        if profiled:
            waiting = profiled["waiting_s"] / profiled["wall_s"] if profiled["wall_s"] else 0
            text += (
                f" Under cProfile the {profiled['calls']} lookups took {profiled['wall_s']} s, "
                f"{profiled['waiting_s']} s of it waiting for PostgreSQL"
                + (
                    ": most of the time is the ORM building and reading two queries (the "
                    "registrations with a window count, then the patient index)."
                    if waiting < 0.5
                    else ": most of it is the round trips of two queries, on a machine whose "
                    "load average was above its core count (see above)."
                )
            )
        text += (
            " Re-measure on a quiet machine before changing the code; if it still misses, "
            "count an NHS-number search's rows on the page instead of with a window (a patient "
            "has a handful of tumours) and read the patient-index rows in the same query."
        )
        found.append(text)
    if not met["name"]:
        searched = result["_searched"]
        text = (
            f"**Name search p95 {result['name_search_p95_ms']} ms against "
            f"{TARGET_NAME_P95_MS:g} ms** (median {result['name_search_median_ms']} ms). The "
            "search matches the misspelt name against the distinct surnames (`registry_surname`, "
            "trigram index), then reads each surname's first rows of the page from the btree "
            "`registration_surname_order` (plans above); a misspelt common surname still matches "
            f"many registrations (p95 {searched['name_matches']['p95']:,}, max "
            f"{searched['name_matches']['max']:,}), but only a page of them is read. See the "
            "profile above for where the time goes (the ORM, the patient-index facts)."
        )
        proposed = diagnosis.get("proposed_name_search")
        if proposed:
            text += (
                f" Tried here on the same data, in a transaction rolled back afterwards "
                f"({proposed['surnames']:,} surnames, set up in {proposed['setup_s']} s): the "
                f"same {proposed['searches']} misspelt names took median "
                f"{proposed['ms']['median']} ms, p95 {proposed['ms']['p95']} ms as one SQL "
                "statement (without the ORM and the patient-index query), and returned the "
                f"same page in {proposed['same_page']} and the same total in "
                f"{proposed['same_total']} of the {proposed['searches']} searches (statement and "
                "plan below)."
            )
            blocks.append(
                "The proposed name search, `EXPLAIN (ANALYZE, BUFFERS)` for "
                f"{searched['_typed'][0]}:\n\n```\n{PROPOSED_QUERY.strip()}\n\n"
                f"{proposed['plan']}\n```"
            )
        found.append(text)
    if not found:
        return ["All targets met."]
    lines = ["**Misses and the product changes that would fix them** (not made here):", ""]
    lines += [f"{n}. {text}" for n, text in enumerate(found, start=1)]
    for block in blocks:
        lines += ["", block]
    return lines
