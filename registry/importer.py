"""Loading cancer registry CSV files: tumour registrations (one row per tumour) and their
treatments, checked row by row, streamed in batches through COPY into a temporary staging table,
then merged with set-based SQL.

Each batch is its own transaction: a web page polling the ImportRun sees progress, memory stays
flat whatever the file's size, and an import that stops half-way can simply be run again (loading
is idempotent). Rows that fail a check are quarantined with their line number and every reason;
the rest still load. See docs/registry-import.md for the format and the rules."""

import csv
import io
import json
import os
import queue
import re
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from accounts.audit import record_system_event
from accounts.models import Organisation

from . import cosd
from .models import ImportRun
from .validation import FastTumourRows, TreatmentRowChecker, TumourRowChecker

BATCH_ROWS = 20_000
AUDIT_ACTOR = "registry_import"
# Imports take this lock for each batch, so that two imports at once merge one after the other.
_LOCK_KEY = zlib.crc32(b"registry.importer")
# A tumour file's batches are merged in two halves at once, on two database connections (the
# merge is PostgreSQL's work, one core per connection), when the import is not inside a
# transaction of its caller (a second connection could not see that transaction's rows).
PARALLEL_MERGE = True

_COUNTERS = [
    "rows_read",
    "rows_created",
    "rows_updated",
    "rows_unchanged",
    "rows_older",
    "rows_quarantined",
]

Progress = Callable[[int, int, ImportRun], None]


class RegistryFileError(Exception):
    """The file cannot be read at all; the message says what to fix."""


def import_tumours(
    path, *, run: ImportRun | None = None, requested_by=None, progress: Progress | None = None
) -> ImportRun:
    """Loads a tumour file and returns its ImportRun: status DONE, or FAILED with `error` saying
    what to fix when the file cannot be read (batches already merged stay loaded). The returned
    run also carries `unknown_submitters` ({ODS code: rows}, not saved): the submitting
    organisations the region does not know, whose rows were loaded and flagged."""
    return _Import(_TumourLoad(), path, run, requested_by, progress).run()


def import_treatments(
    path, *, run: ImportRun | None = None, requested_by=None, progress: Progress | None = None
) -> ImportRun:
    """Loads a treatments file, each row linked to its tumour by submitting organisation and local
    tumour id; a treatment for a tumour the registry does not hold is quarantined."""
    return _Import(_TreatmentLoad(), path, run, requested_by, progress).run()


def read_header(header: list[str], items: list[cosd.Item]) -> list[str]:
    """The field of each column, or RegistryFileError naming every unknown, repeated or missing
    column, before any row is read."""
    accepted = cosd.header_map(items)
    by_field = {item.field: item for item in items}
    fields, unknown, repeated, seen = [], [], [], {}
    for position, text in enumerate(header, start=1):
        name = text.strip()
        field = accepted.get(name.upper())
        if field is None:
            unknown.append(f"“{name}”" if name else f"column {position} (no header)")
        elif field in seen:
            item = by_field[field]
            repeated.append(f"“{seen[field]}” and “{name}” are both {item.number} {item.name}")
        else:
            seen[field] = name
        fields.append(field)
    problems = []
    if repeated:
        problems.append("Repeated columns: " + "; ".join(repeated) + "; keep one of each.")
    if unknown:
        problems.append(
            "Unknown column headers: "
            + ", ".join(unknown)
            + ". Headers are COSD item numbers (such as CR0370) or item names."
        )
    missing = [
        f"{item.number} {item.name}" for item in items if item.required and item.field not in seen
    ]
    if missing:
        problems.append("Required columns missing: " + ", ".join(missing) + ".")
    if problems:
        raise RegistryFileError(" ".join(problems) + " See docs/registry-import.md for the format.")
    return fields


@dataclass
class _Batch:
    """Rows read and checked, ready for one transaction."""

    stage: list[str] = field(default_factory=list)  # COPY text lines of the rows to merge
    halves: bytearray = field(default_factory=bytearray)  # each staged row's half (0 or 1)
    quarantine: list[tuple] = field(default_factory=list)  # (line, reasons, values)
    rows_read: int = 0
    bytes_read: int = 0


_END = object()


class _Import:
    """One run over one file. A reader thread parses and checks rows into batches (pure Python,
    no database) while this thread merges the previous batch (waiting on PostgreSQL, which frees
    the interpreter): the two overlap on two cores. The database work stays on the caller's
    thread and connection, so an import inside a transaction (a test) sees that transaction."""

    def __init__(self, load, path, run, requested_by, progress):
        self.load = load
        self.path = Path(path)
        self.progress = progress
        if run is None:
            run = ImportRun(file_name=self.path.name, requested_by=requested_by)
        elif requested_by is not None and run.requested_by_id is None:
            run.requested_by = requested_by
        run.kind = load.kind
        run.file_name = run.file_name or self.path.name
        run.stored_path = run.stored_path or str(self.path)
        self.record = run
        self.raw_file = None

    def run(self) -> ImportRun:
        run = self.record
        run.status = ImportRun.Status.RUNNING
        run.started_at = timezone.now()
        run.error = ""
        for counter in _COUNTERS:
            setattr(run, counter, 0)
        run.save()
        try:
            self._read()
        except (RegistryFileError, OSError, UnicodeDecodeError, csv.Error) as error:
            self._finish(ImportRun.Status.FAILED, _file_error_message(error, self.path))
        except BaseException as error:
            try:
                self._finish(ImportRun.Status.FAILED, f"The import stopped: {error!r}")
            except Exception:  # noqa: BLE001, S110 - the original error matters more
                pass
            raise
        else:
            run.bytes_read = run.bytes_total
            self._finish(ImportRun.Status.DONE)
        finally:
            if self.raw_file is not None:
                self.raw_file.close()
            self.load.drop_stage()
        return run

    def _finish(self, status: str, error: str = "") -> None:
        run = self.record
        run.status = status
        run.error = error
        run.finished_at = timezone.now()
        run.save()
        run.unknown_submitters = dict(self.load.unknown_submitters)
        # One audit event per import: a million patient ids do not belong in one row, so the event
        # names the ImportRun, whose registrations name the patients (docs/registry-import.md).
        record_system_event(
            AUDIT_ACTOR,
            f"Cancer registry import {run.file_name}",
            f"registry_import_{self.load.kind}",
            object_ref=f"import_run:{run.pk}",
        )

    def _read(self) -> None:
        self.raw_file = open(self.path, "rb")  # noqa: SIM115 - closed in run()
        self.record.bytes_total = os.fstat(self.raw_file.fileno()).st_size
        text = io.TextIOWrapper(self.raw_file, encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        header = next(reader, None)
        if not header:
            raise RegistryFileError(
                "The first line of the file is empty: it must hold the column headers."
            )
        fields = read_header(header, self.load.items)
        check = self.load.checker()
        self.load.create_stage(self.record)
        helper = None
        if PARALLEL_MERGE and self.load.parallel and not connection.in_atomic_block:
            helper = ThreadPoolExecutor(1, thread_name_prefix="registry-import-merge")
        batches = queue.Queue(maxsize=2)
        stop = threading.Event()
        thread = threading.Thread(
            target=self._produce,
            args=(reader, fields, check, batches, stop),
            name="registry-import-reader",
            daemon=True,
        )
        thread.start()
        try:
            if helper is not None:
                helper.submit(self.load.create_stage, self.record).result()
            while (batch := batches.get()) is not _END:
                if isinstance(batch, BaseException):
                    raise batch
                if helper is None:
                    self._merge(batch)
                else:
                    self._merge_halves(batch, helper)
        finally:
            stop.set()
            thread.join()
            if helper is not None:
                # Its connection (and staging table) ends with it.
                helper.submit(lambda: connection.close()).result()
                helper.shutdown()

    def _produce(self, reader, fields, check, batches: queue.Queue, stop: threading.Event):
        def put(item) -> bool:
            while not stop.is_set():
                try:
                    batches.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for batch in self._batches(reader, fields, check):
                if not put(batch):
                    return
            put(_END)
        except BaseException as error:  # noqa: BLE001 - raised again on the merging thread
            put(error)

    def _batches(self, reader, fields: list[str], check):
        """Reads rows into batches: at most BATCH_ROWS rows to merge (or to quarantine), and each
        tumour (or treatment) once, so that a repeat is merged after the first, as if it came in
        a later file."""
        width = len(fields)
        key_of = self.load.key
        stage_line = self.load.stage_line
        half_of = self.load.half
        fast = self.load.fast_rows(check, fields)  # None: every row takes the full check
        batch, keys = _Batch(), set()
        next_line = reader.line_num + 1
        for row in _rows(reader):
            line, next_line = next_line, reader.line_num + 1
            if not any(row):
                continue
            batch.rows_read += 1
            joined = "\x01".join(row)
            staged = None
            if "\x00" in joined:
                # PostgreSQL text cannot hold NUL: shown as U+FFFD in the quarantined values.
                cleaned = [value.replace("\x00", "\ufffd") for value in row]
                values = dict(zip(fields, cleaned, strict=False))
                batch.quarantine.append((line, [_NUL_REASON], values))
            elif len(row) != width:
                values = dict(zip(fields, row, strict=False))
                if len(row) > width:
                    values["(extra values)"] = row[width:]
                reason = f"The row has {len(row)} values but the header has {width} columns."
                batch.quarantine.append((line, [reason], values))
            else:
                if fast is not None and not _COPY_SPECIAL.search(joined):
                    staged = fast(line, row)
                if staged is None:
                    raw = dict(zip(fields, row, strict=True))
                    checked = check(raw)
                    if checked.reasons:
                        batch.quarantine.append((line, checked.reasons, raw))
                    else:
                        values = checked.values
                        staged = key_of(values), stage_line(line, values), half_of(values)
            if staged is not None:
                key, text, half = staged
                if key in keys:
                    batch.rows_read -= 1
                    batch.bytes_read = self.raw_file.tell()
                    yield batch
                    batch, keys = _Batch(rows_read=1), set()
                keys.add(key)
                batch.stage.append(text)
                batch.halves.append(half)
            if len(batch.stage) >= BATCH_ROWS or len(batch.quarantine) >= BATCH_ROWS:
                batch.bytes_read = self.raw_file.tell()
                yield batch
                batch, keys = _Batch(), set()
        batch.bytes_read = self.raw_file.tell()
        yield batch

    def _merge(self, batch: _Batch) -> None:
        run = self.record
        with transaction.atomic():
            connection.ensure_connection()
            with connection.connection.cursor() as cursor:
                self.load.begin_batch(cursor)
                if batch.stage:
                    counts = self.load.merge(cursor, batch.stage)
                    for name, count in counts.items():
                        setattr(run, name, getattr(run, name) + count)
                if batch.quarantine:
                    _copy_quarantine(cursor, run.pk, batch.quarantine)
                    run.rows_quarantined += len(batch.quarantine)
            run.rows_read += batch.rows_read
            run.bytes_read = batch.bytes_read
            run.save(update_fields=["bytes_total", "bytes_read", *_COUNTERS])
        if self.progress is not None:
            self.progress(run.bytes_read, run.bytes_total, run)

    def _merge_halves(self, batch: _Batch, helper: ThreadPoolExecutor) -> None:
        """Merges a batch in two halves at once: one on this thread's connection, the other on the
        helper's, each in a transaction of its own that also adds its counts to the ImportRun.
        Both halves end (committed or failed) before the next batch starts, so a tumour in two
        batches is merged in file order, and this connection holds the import lock meanwhile.
        The halves never touch the same patient or tumour (_half_of); the surnames they both
        count are locked in name order by each (see _TUMOUR_STATEMENTS), and the ImportRun row
        last, so neither can wait for the other in a cycle."""
        run = self.record
        halves = ([], [])
        for text, half in zip(batch.stage, batch.halves, strict=True):
            halves[half].append(text)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
        try:
            other = helper.submit(self._merge_half, halves[1], [], batch.bytes_read)
            merged = []
            try:
                merged.append(self._merge_half(halves[0], batch.quarantine, batch.bytes_read))
            finally:
                try:
                    merged.append(other.result())  # waits for it, and raises its error
                finally:
                    for counts in merged:  # what the committed halves added
                        for name, count in counts.items():
                            setattr(run, name, getattr(run, name) + count)
                        run.bytes_read = max(run.bytes_read, batch.bytes_read)
        finally:
            _unlock_import()
        if self.progress is not None:
            self.progress(run.bytes_read, run.bytes_total, run)

    def _merge_half(self, lines: list[str], quarantine: list[tuple], bytes_read: int) -> dict:
        """One half of a batch in a transaction on this thread's connection; returns the counts
        it added to the ImportRun."""
        run = self.record
        counts = dict.fromkeys(_COUNTERS, 0)
        counts["rows_read"] = len(lines) + len(quarantine)
        with transaction.atomic():
            connection.ensure_connection()
            with connection.connection.cursor() as cursor:
                if lines:
                    self.load.begin_batch(cursor, locked=True)
                    for name, count in self.load.merge(cursor, lines).items():
                        counts[name] += count
                if quarantine:
                    _copy_quarantine(cursor, run.pk, quarantine)
                    counts["rows_quarantined"] += len(quarantine)
                cursor.execute(
                    sql.SQL(
                        "UPDATE registry_importrun SET {}, bytes_read = greatest(bytes_read, %s), "
                        "bytes_total = %s WHERE id = %s"
                    ).format(
                        sql.SQL(", ").join(
                            sql.SQL("{0} = {0} + %s").format(sql.Identifier(name))
                            for name in _COUNTERS
                        )
                    ),
                    [*(counts[name] for name in _COUNTERS), bytes_read, run.bytes_total, run.pk],
                )
        return counts


def _unlock_import() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])
    except Exception:  # noqa: BLE001 - the session's end releases it
        connection.close()


_NUL_REASON = (
    "The row contains a NUL character (a zero byte), which the registry cannot store; the file "
    "may be damaged or not a text file."
)


def _rows(reader):
    """The reader's rows; a CSV syntax error names the line it was found on."""
    try:
        yield from reader
    except csv.Error as error:
        raise RegistryFileError(
            f"Line {reader.line_num} cannot be read as CSV ({error}); rows before it were "
            "loaded. Correct the file and import it again."
        ) from error


def _file_error_message(error: BaseException, path: Path) -> str:
    if isinstance(error, RegistryFileError):
        return str(error)
    if isinstance(error, UnicodeDecodeError):
        return (
            "The file is not UTF-8 text: some of its bytes cannot be read. Save it as "
            "“CSV UTF-8” and import it again."
        )
    if isinstance(error, csv.Error):
        return f"The file cannot be read as CSV ({error}). Correct it and import it again."
    reason = getattr(error, "strerror", None) or str(error)
    return f"The file {path.name} cannot be opened: {reason}."


def _copy_quarantine(cursor, run_id: int, rows: list[tuple]) -> None:
    with cursor.copy(
        "COPY registry_quarantinedrow (run_id, line, reasons, values) FROM STDIN"
    ) as copy:
        for line, reasons, values in rows:
            copy.write_row((run_id, line, reasons, json.dumps(values, default=str)))


# COPY's text format: values separated by tabs, \\N for NULL, and a backslash, tab, newline or
# carriage return inside a value escaped with a backslash.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_NEEDS_ESCAPE = re.compile(r"[\\\n\r]")
# A row with one of these anywhere takes the full check and _copy_line's escaping.
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def _copy_line(values: list) -> str:
    """One row in COPY's text format, from str, int, bool, date and None values. Checked for
    characters to escape on the whole line, since they are rare (a tab in a name)."""
    texts = ["\\N" if value is None else str(value) for value in values]
    line = "\t".join(texts)
    if line.count("\t") != len(texts) - 1 or _COPY_NEEDS_ESCAPE.search(line):
        line = "\t".join(
            text if value is None else text.translate(_COPY_ESCAPES)
            for text, value in zip(texts, values, strict=True)
        )
    return line + "\n"


def _columns(names) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def _json_object(alias: str, names) -> sql.Composed:
    """jsonb_build_object('name', alias.name, ...) for the named columns."""
    return sql.SQL("jsonb_build_object({})").format(
        sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(name), sql.Identifier(alias, name))
            for name in names
        )
    )


class _Load:
    """What differs between the tumour and treatment files: their items, checks, staging table and
    the SQL that merges a batch."""

    kind: str
    items: list[cosd.Item]
    stage: str
    stage_columns: list[tuple[str, str]]  # (name, type) of the columns COPY fills
    extra_columns: list[tuple[str, str]] = []  # filled by the merge
    merge_statements: list[tuple[str, dict]]  # run after COPY, in order; the last counts
    # Whether a batch may be merged in two halves at once (see half()).
    parallel = False

    def __init__(self):
        self.unknown_submitters: Counter[str] = Counter()
        self._created = False
        self._merge_sql = None

    def create_stage(self, run: ImportRun) -> None:
        """The staging table, for this connection's session, and the merge SQL for this run."""
        table = sql.Identifier(self.stage)
        definition = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
            for name, kind in self.stage_columns + self.extra_columns
        )
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(table))
            cursor.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(table, definition))
        self._created = True
        # Each batch: one round trip before COPY and one after, with the run's id and file name
        # as literals (several statements in one execute cannot take parameters).
        # No planner settings: every statement that looks a row up in the registry or the patient
        # index does it in a correlated subquery (a parameterised index look-up per staged row),
        # whatever the planner's statistics say about tables growing under it.
        self._truncate_sql = sql.SQL("TRUNCATE {}").format(table)
        self._begin_sql = sql.SQL("SELECT pg_advisory_xact_lock({}); {}").format(
            sql.Literal(_LOCK_KEY), self._truncate_sql
        )
        self._copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            table, _columns(name for name, _ in self.stage_columns)
        )
        filled = {
            "stage": table,
            "run": sql.Literal(run.pk),
            "file": sql.Literal(run.file_name[:255]),
        }
        self._merge_sql = sql.SQL(";\n").join(
            sql.SQL(template).format(**filled, **values)
            for template, values in self.merge_statements
        )

    def drop_stage(self) -> None:
        if not self._created:
            return
        try:
            with connection.connection.cursor() as cursor:
                cursor.execute(
                    sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(self.stage))
                )
        except Exception:  # noqa: BLE001, S110 - the session's end drops it anyway
            pass

    def fast_rows(self, check, fields):
        """A function (line, row) -> (key, COPY line) or None for the rows that pass every check
        in the common case, or None if this kind of file has none (every row takes `check`)."""
        return None

    @staticmethod
    def half(values: dict) -> int:
        """Which half of its batch a row is merged in when the halves are merged at once."""
        return 0

    def begin_batch(self, cursor, *, locked: bool = False) -> None:
        """Empties the staging table; and takes the import lock for this transaction unless the
        caller holds it (a batch merged in two halves)."""
        cursor.execute(self._truncate_sql if locked else self._begin_sql)

    def merge(self, cursor, lines: list[str]) -> dict[str, int]:
        """Loads a batch's rows into the staging table and merges them; returns the counts.

        No ANALYZE of the staging table: never analysed, it is estimated small, which (with hash
        and merge joins off) gives index look-ups into the registry; ANALYZE would cost more."""
        with cursor.copy(self._copy_sql) as copy:
            copy.write("".join(lines))
        cursor.execute(self._merge_sql)
        while cursor.nextset():
            pass
        return self.counts(cursor.fetchone())


# The submitted items of a tumour; all but the key and the submission date are its "values".
_ITEM_FIELDS = [item.field for item in cosd.TUMOUR_ITEMS]
_COMPARED = [
    name
    for name in _ITEM_FIELDS
    if name not in ("submitting_org", "local_tumour_id", "submission_date")
]
_DATE_ITEMS = {"submission_date": "date", "birth_date": "date", "diagnosis_date": "date"}


def _sentence(*parts) -> sql.Composed:
    """A reason built in SQL: literal text and SQL expressions, concatenated."""
    return sql.SQL(" || ").join(
        sql.Literal(part) if isinstance(part, str) else part for part in parts
    )


def _iso(column: str) -> sql.Composed:
    return sql.SQL("to_char({}, 'YYYY-MM-DD')").format(sql.Identifier("s", column))


def _listed(alias: str, names) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(alias, name) for name in names)


# The statements run after each tumour batch's COPY, in order, as (template, values): {stage},
# {run} and {file} are filled in per import. A staged row is "newer" when the registry does not
# hold its tumour yet, or holds an earlier submission of it.
_NEWER = sql.SQL("(s.reg_id IS NULL OR s.submission_date > s.old_date)")
_TUMOUR_STATEMENTS = [
    # What the registry holds for each staged tumour, and whether the submitted values differ: a
    # look-up by the unique key per staged row (a subquery, so no join plan to go wrong).
    (
        "UPDATE {stage} s SET (reg_id, old_date, differ) = ("
        "SELECT r.id, r.submission_date, ({old}) IS DISTINCT FROM ({new}) "
        "FROM registry_registration r "
        "WHERE r.submitting_org = s.submitting_org AND r.local_tumour_id = s.local_tumour_id)",
        {"old": _listed("r", _COMPARED), "new": _listed("s", _COMPARED)},
    ),
    # Patients the index does not hold yet, from the rows about to load. An existing entry is
    # never touched: the demographics service is the authority for it.
    # Each is marked as created by the registry (ImportedPatient): its restriction status is not
    # known until the demographics service is asked (hazard H15).
    (
        "WITH created AS ("
        "INSERT INTO records_patient (nhs_number, given_name, family_name, birth_date, sex, "
        "address, postcode, gp_practice_id, restricted, deceased, updated_at) "
        "SELECT DISTINCT ON (s.nhs_number) s.nhs_number, s.given_name, s.family_name, "
        "s.birth_date, s.patient_sex, '', s.postcode, s.gp_practice_id, false, false, now() "
        "FROM {stage} s WHERE {newer} ORDER BY s.nhs_number, s.line DESC "
        "ON CONFLICT (nhs_number) DO NOTHING RETURNING id) "
        "INSERT INTO registry_importedpatient (patient_id, created_at) "
        "SELECT id, now() FROM created",
        {"newer": _NEWER},
    ),
    # The values a later submission replaces, written before they are replaced.
    (
        "INSERT INTO registry_registrationhistory "
        "(registration_id, submission_date, values, replaced_at, replaced_by_file) "
        "SELECT r.id, r.submission_date, {values}, now(), {file} "
        "FROM {stage} s CROSS JOIN LATERAL ("
        "SELECT * FROM registry_registration r WHERE r.id = s.reg_id OFFSET 0) r "
        "WHERE s.submission_date > s.old_date AND s.differ",
        {
            "values": _json_object(
                "r",
                _ITEM_FIELDS + ["submitting_org_known", "patient_id", "source_file", "source_line"],
            )
        },
    ),
    # The surnames this batch's writes will count, locked in name order before the first of the
    # two statements that count them (their triggers each go through their own names in order;
    # one after the other they could cross another transaction's in the opposite order and
    # deadlock). Only a batch with later submissions writes both; for the others nothing is done.
    (
        "INSERT INTO registry_surname (name, registrations) "
        "SELECT name, 0 FROM ("
        "SELECT upper(s.family_name) AS name FROM {stage} s WHERE {newer} "
        "UNION SELECT upper(r.family_name) FROM {stage} s CROSS JOIN LATERAL ("
        "SELECT r.family_name FROM registry_registration r WHERE r.id = s.reg_id OFFSET 0) r "
        "WHERE s.submission_date > s.old_date) names "
        "WHERE EXISTS (SELECT FROM {stage} s WHERE s.submission_date > s.old_date) "
        "ORDER BY name "
        "ON CONFLICT (name) DO UPDATE SET registrations = registry_surname.registrations",
        {"newer": _NEWER},
    ),
    # A later submission of a tumour the registry holds replaces its values (the history above
    # keeps the old ones); a later submission with the same values updates only the date, file
    # and line.
    (
        "UPDATE registry_registration r SET {updates}, "
        "submitting_org_known = s.submitting_org_known, "
        "patient_id = (SELECT p.id FROM records_patient p WHERE p.nhs_number = s.nhs_number), "
        "source_file = {file}, source_line = s.line, updated_at = now() "
        "FROM {stage} s WHERE r.id = s.reg_id AND s.submission_date > s.old_date "
        # The ids, as an array: the registry is read by its primary key whatever the plan.
        "AND r.id = ANY(ARRAY(SELECT reg_id FROM {stage} WHERE submission_date > old_date))",
        {
            "updates": sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(name), sql.Identifier("s", name))
                for name in ["submission_date", *_COMPARED]
            ),
        },
    ),
    # Tumours the registry does not hold: a plain INSERT (the advisory lock keeps other imports
    # out, and INSERT ... ON CONFLICT costs half as much again per row with seven indexes).
    (
        "INSERT INTO registry_registration ({columns}, submitting_org_known, patient_id, "
        "source_file, source_line, imported_at, updated_at) "
        "SELECT {values}, s.submitting_org_known, "
        "(SELECT p.id FROM records_patient p WHERE p.nhs_number = s.nhs_number), "
        "{file}, s.line, now(), now() "
        "FROM {stage} s WHERE s.reg_id IS NULL",
        {"columns": _columns(_ITEM_FIELDS), "values": _listed("s", _ITEM_FIELDS)},
    ),
    # The same submission date with different values: which is right cannot be told, so the row
    # waits in quarantine for a corrected submission with a later date.
    (
        "INSERT INTO registry_quarantinedrow (run_id, line, reasons, values) "
        "SELECT {run}, s.line, ARRAY[{reason}], {values} "
        "FROM {stage} s WHERE s.submission_date = s.old_date AND s.differ",
        {
            "reason": _sentence(
                "A submission of this tumour with the same submission date (",
                _iso("submission_date"),
                ") is already loaded with different values; send the corrected row with a later "
                "submission date.",
            ),
            "values": _json_object("s", _ITEM_FIELDS),
        },
    ),
    (
        "SELECT count(*) FILTER (WHERE reg_id IS NULL), "
        "count(*) FILTER (WHERE submission_date > old_date AND differ), "
        "count(*) FILTER (WHERE submission_date >= old_date AND NOT differ), "
        "count(*) FILTER (WHERE submission_date < old_date), "
        "count(*) FILTER (WHERE submission_date = old_date AND differ) "
        "FROM {stage}",
        {},
    ),
]


def _half_of(nhs_number: str) -> int:
    """Tumour rows are halved by NHS number: all of a patient's rows are in one half, so the two
    connections never create (or link to) the same patient; and a tumour is in a batch once (see
    _Import._batches), so it is in one half."""
    return zlib.crc32(nhs_number.encode()) & 1


class _TumourLoad(_Load):
    kind = ImportRun.Kind.TUMOURS
    items = cosd.TUMOUR_ITEMS
    stage = "registry_stage_tumours"
    stage_columns = (
        [("line", "integer")]
        + [(name, _DATE_ITEMS.get(name, "text")) for name in _ITEM_FIELDS]
        + [
            ("submitting_org_known", "boolean"),
            ("patient_sex", "text"),
            ("gp_practice_id", "bigint"),
        ]
    )
    extra_columns = [("reg_id", "bigint"), ("old_date", "date"), ("differ", "boolean")]
    merge_statements = _TUMOUR_STATEMENTS
    parallel = True

    def __init__(self):
        super().__init__()
        self._practices: dict[str, int] = {}

    def checker(self) -> TumourRowChecker:
        organisations = list(Organisation.objects.values_list("ods_code", "kind", "pk"))
        self._practices = {
            code.upper(): pk
            for code, kind, pk in organisations
            if kind == Organisation.Kind.GP_PRACTICE
        }
        return TumourRowChecker(
            today=timezone.localdate(), known_orgs={code for code, _, _ in organisations}
        )

    @staticmethod
    def key(values: dict) -> tuple:
        return values["submitting_org"], values["local_tumour_id"]

    @staticmethod
    def half(values: dict) -> int:
        return _half_of(values["nhs_number"])

    def fast_rows(self, check, fields):
        fast = FastTumourRows(check, fields)
        org, tumour_id = _ITEM_FIELDS.index("submitting_org"), _ITEM_FIELDS.index("local_tumour_id")
        nhs_number = _ITEM_FIELDS.index("nhs_number")
        sex, practice = _ITEM_FIELDS.index("sex"), _ITEM_FIELDS.index("gp_practice")
        sexes, practices, unknown = cosd.SEX, self._practices, self.unknown_submitters

        def staged(line: int, row: list[str]):
            values = fast(row)
            if values is None:
                return None
            known = values.pop()
            if not known:
                unknown[values[org]] += 1
            practice_id = practices.get(values[practice])
            text = (
                f"{line}\t"
                + "\t".join(values)
                + f"\t{known}\t{sexes.get(values[sex], 'unknown')}\t"
                + ("\\N" if practice_id is None else str(practice_id))
                + "\n"
            )
            return (values[org], values[tumour_id]), text, _half_of(values[nhs_number])

        return staged

    def stage_line(self, line: int, values: dict) -> str:
        if not values["submitting_org_known"]:
            self.unknown_submitters[values["submitting_org"]] += 1
        return _copy_line(
            [
                line,
                *[values[name] for name in _ITEM_FIELDS],
                values["submitting_org_known"],
                cosd.SEX.get(values["sex"], "unknown"),
                self._practices.get(values["gp_practice"]),
            ]
        )

    @staticmethod
    def counts(row: tuple) -> dict[str, int]:
        created, updated, unchanged, older, conflicts = row
        return {
            "rows_created": created,
            "rows_updated": updated,
            "rows_unchanged": unchanged,
            "rows_older": older,
            "rows_quarantined": conflicts,
        }


_TREATMENT_FIELDS = [item.field for item in cosd.TREATMENT_ITEMS]
_TREATMENT_LOADABLE = sql.SQL("s.reg_id IS NOT NULL AND s.start_date >= s.birth_date")
_TREATMENT_STATEMENTS = [
    (
        "UPDATE {stage} s SET (reg_id, birth_date) = (SELECT r.id, r.birth_date "
        "FROM registry_registration r "
        "WHERE r.submitting_org = s.submitting_org AND r.local_tumour_id = s.local_tumour_id)",
        {},
    ),
    (
        "INSERT INTO registry_quarantinedrow (run_id, line, reasons, values) "
        "SELECT {run}, s.line, ARRAY[{reason}], {values} FROM {stage} s WHERE s.reg_id IS NULL",
        {
            "values": _json_object("s", _TREATMENT_FIELDS),
            "reason": _sentence(
                "No tumour registration has submitting organisation ",
                sql.SQL("s.submitting_org"),
                " and local tumour id ",
                sql.SQL("s.local_tumour_id"),
                "; load the tumour file first, or correct the tumour id.",
            ),
        },
    ),
    (
        "INSERT INTO registry_quarantinedrow (run_id, line, reasons, values) "
        "SELECT {run}, s.line, ARRAY[{reason}], {values} FROM {stage} s "
        "WHERE s.start_date < s.birth_date",
        {
            "values": _json_object("s", _TREATMENT_FIELDS),
            "reason": _sentence(
                "CR1370 TREATMENT START DATE (CANCER): ",
                _iso("start_date"),
                " is before the patient's birth date (",
                _iso("birth_date"),
                ").",
            ),
        },
    ),
    # Created or updated (a different intent), counted from what the upsert returns.
    (
        "WITH loaded AS ("
        "INSERT INTO registry_treatment (registration_id, modality, start_date, provider, intent) "
        "SELECT s.reg_id, s.modality, s.start_date, s.provider, s.intent FROM {stage} s "
        "WHERE {loadable} "
        "ON CONFLICT (registration_id, modality, start_date, provider) DO UPDATE "
        "SET intent = excluded.intent "
        "WHERE registry_treatment.intent IS DISTINCT FROM excluded.intent "
        "RETURNING (xmax = 0) AS created) "
        "SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created), "
        "(SELECT count(*) FROM {stage} s WHERE {loadable}), "
        "(SELECT count(*) FROM {stage} s WHERE NOT ({loadable})) "
        "FROM loaded",
        {"loadable": _TREATMENT_LOADABLE},
    ),
]


class _TreatmentLoad(_Load):
    kind = ImportRun.Kind.TREATMENTS
    items = cosd.TREATMENT_ITEMS
    stage = "registry_stage_treatments"
    stage_columns = [("line", "integer")] + [
        (name, "date" if name == "start_date" else "text") for name in _TREATMENT_FIELDS
    ]
    extra_columns = [("reg_id", "bigint"), ("birth_date", "date")]
    merge_statements = _TREATMENT_STATEMENTS

    def checker(self) -> TreatmentRowChecker:
        return TreatmentRowChecker(today=timezone.localdate())

    @staticmethod
    def key(values: dict) -> tuple:
        return (
            values["submitting_org"],
            values["local_tumour_id"],
            values["modality"],
            values["start_date"],
            values["provider"],
        )

    def stage_line(self, line: int, values: dict) -> str:
        return _copy_line([line, *[values[name] for name in _TREATMENT_FIELDS]])

    @staticmethod
    def counts(row: tuple) -> dict[str, int]:
        created, updated, loadable, quarantined = row
        return {
            "rows_created": created,
            "rows_updated": updated,
            "rows_unchanged": loadable - created - updated,
            "rows_quarantined": quarantined,
        }
