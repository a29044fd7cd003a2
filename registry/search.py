"""Finding tumour registrations: by NHS number, by a partial or misspelt last name, birth date,
tumour site and diagnosis dates, a page at a time. The registry search page and the registry
benchmark both call ``search_registrations``.

A name is matched (pg_trgm) against the distinct surnames of the registry (``Surname``, a few
thousand rows with a trigram index), not against every registration: a misspelt common name
matches thousands of registrations, and finding them all to rank them grew with the registry.
Each matching surname's registrations then come from a btree on UPPER(family_name) in the page's
order, and the total is the sum of the surnames' counts.

A restricted patient's postcode is never in a result: each result says whether its patient is
restricted in the region's patient index, and ``Result.postcode`` is blank if so. Nor is the
postcode of a patient whose index entry an import created and the demographics service has not
confirmed since (``ImportedPatient``; hazard H15): whether that patient is restricted is not
known."""

import re
from dataclasses import dataclass
from datetime import date
from math import ceil

from django.contrib.postgres.search import TrigramSimilarity
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Window
from django.db.models.functions import Upper

from records.models import Patient
from records.nhs_numbers import parse_nhs_number
from records.tumour_sites import site_from_icd10, site_from_words

from . import cosd
from .models import ImportedPatient, Registration, Surname
from .validation import normalise_icd10

MAX_PER_PAGE = 100
MIN_NAME_LETTERS = 2

# ICD-10 three-character categories the registry holds (cancers and in-situ tumours), grouped by
# the site group records.tumour_sites gives each, so "lung" is C33-C34 and D02 there and here.
_CATEGORIES = [f"C{n:02d}" for n in range(98)] + [f"D{n:02d}" for n in range(10)]
SITE_GROUPS: dict[str, list[str]] = {}
for _category in _CATEGORIES:
    _group = site_from_icd10(_category)
    if _group:
        SITE_GROUPS.setdefault(_group, []).append(_category)

# Names coordinators use for their MDTs' sites, as the site groups above.
SITE_ALIASES: dict[str, tuple[str, ...]] = {
    "bowel": ("colorectal",),
    "haematology": ("haematological",),
    "upper gi": ("oesophagus", "stomach"),
    "urology": ("prostate", "kidney", "bladder", "testis", "penis"),
}

_CODE = re.compile(r"[CD]\d\d(\.?[0-9])?")


class UnknownSite(ValueError):
    """The message is written for the person who typed the site."""


@dataclass(frozen=True)
class SiteFilter:
    """A tumour site as ICD-10 category ranges, each [first, after) (and a code within one)."""

    label: str
    ranges: tuple[tuple[str, str], ...]
    code: str = ""  # a four-character code such as C34.1, within the one range

    def q(self) -> Q:
        # Ranges rather than LIKE: they use the (icd10, diagnosis_date) index whatever the
        # database's collation. Codes are stored dotted (registry.validation.normalise_icd10).
        match = Q()
        for first, after in self.ranges:
            match |= Q(icd10__gte=first, icd10__lt=after)
        if self.code:
            match &= Q(icd10__startswith=self.code)
        return match


def _next_category(category: str) -> str:
    return f"{category[0]}{int(category[1:]) + 1:02d}"


def _ranges(categories: list[str]) -> tuple[tuple[str, str], ...]:
    """Consecutive categories as one range: C33, C34 -> [C33, C35)."""
    ranges: list[list[str]] = []
    for category in categories:
        if ranges and ranges[-1][1] == category:
            ranges[-1][1] = _next_category(category)
        else:
            ranges.append([category, _next_category(category)])
    return tuple((first, after) for first, after in ranges)


def parse_site(typed: str) -> SiteFilter:
    """An ICD-10 code or category (C34, C34.1, c341) or a site such as lung or bowel.
    Raises UnknownSite."""
    text = " ".join((typed or "").split())
    compact = text.upper().replace(" ", "")
    if _CODE.fullmatch(compact):
        code = normalise_icd10(compact)
        if code is None:
            raise UnknownSite(f"{text} is not an ICD-10 code for a cancer or an in-situ tumour.")
        category = code[:3]
        return SiteFilter(
            label=code,
            ranges=((category, _next_category(category)),),
            code=code if len(code) > 3 else "",
        )
    word = text.lower()
    if word in SITE_ALIASES:
        groups = SITE_ALIASES[word]
    elif word in SITE_GROUPS:
        groups = (word,)
    else:
        groups = tuple(group for group in [site_from_words([text])] if group in SITE_GROUPS)
    if not groups:
        raise UnknownSite(
            "Enter an ICD-10 code such as C34 or C50.9, or a tumour site such as lung, breast, "
            "colorectal or prostate."
        )
    categories = sorted(category for group in groups for category in SITE_GROUPS[group])
    return SiteFilter(label=word if word in SITE_ALIASES else groups[0], ranges=_ranges(categories))


def normalise_name(typed: str) -> str:
    """The name as the index holds it: upper case, single spaces."""
    return " ".join((typed or "").split()).upper()


@dataclass(frozen=True)
class Result:
    """One registration found, and what the region's patient index says of its patient."""

    registration: Registration
    patient_ids: tuple[int, ...]  # its index entries (linked, or by NHS number); none if unknown
    restricted: bool
    # The index entry was created by a registry import and the demographics service has not
    # confirmed it since, so whether the patient is restricted is not known (hazard H15).
    unconfirmed: bool = False

    @property
    def postcode(self) -> str:
        """The registry's postcode; blank for a restricted patient (shown nowhere, ever) and for
        one whose restriction status the demographics service has not confirmed."""
        return "" if self.restricted or self.unconfirmed else self.registration.postcode

    @property
    def site(self) -> str:
        return site_from_icd10(self.registration.icd10) or ""

    @property
    def sex(self) -> str:
        value = self.registration.sex
        return cosd.SEX.get(value, value).capitalize()


@dataclass(frozen=True)
class Page:
    """One page of results, with the number of registrations that match in all."""

    results: list[Result]
    total: int
    number: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, ceil(self.total / self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.results else 0

    @property
    def last_index(self) -> int:
        return (self.number - 1) * self.per_page + len(self.results)

    @property
    def patient_ids(self) -> list[int]:
        """The index entries of the patients on this page (for the audit log)."""
        return sorted({pk for result in self.results for pk in result.patient_ids})

    @property
    def unindexed_registration_ids(self) -> list[int]:
        """Registrations on this page whose patient the index does not know."""
        return [result.registration.pk for result in self.results if not result.patient_ids]


def search_registrations(
    *,
    nhs_number: str = "",
    name: str = "",
    birth_date: date | None = None,
    site: str = "",
    diagnosed_from: date | None = None,
    diagnosed_to: date | None = None,
    page: int = 1,
    per_page: int = 25,
) -> Page:
    """Registrations matching every criterion given, best name match first, then by name.
    Raises InvalidNHSNumber, UnknownSite, or ValueError when no criterion is given."""
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    page = max(1, page)
    registrations = Registration.objects.all()
    order = ["family_name", "given_name", "birth_date", "-diagnosis_date", "id"]
    criteria = False
    if nhs_number:
        registrations = registrations.filter(nhs_number=parse_nhs_number(nhs_number))
        criteria = True
    typed_name = normalise_name(name)
    if typed_name:
        # `%` (pg_trgm's default threshold, 0.3: SMITH for SMYTH and SMI) on the distinct
        # surnames; then each one's registrations by the btree on UPPER(family_name).
        registrations = registrations.annotate(
            family_upper=Upper("family_name"),
            similarity=TrigramSimilarity(Upper("family_name"), typed_name),
        ).filter(family_upper__in=Subquery(_surnames_like(typed_name).values("name")))
        order.insert(0, "-similarity")
        criteria = True
    name_only = bool(typed_name) and not (
        nhs_number or birth_date or site or diagnosed_from or diagnosed_to
    )
    if birth_date:
        registrations = registrations.filter(birth_date=birth_date)
        criteria = True
    if site:
        registrations = registrations.filter(parse_site(site).q())
        criteria = True
    if diagnosed_from:
        registrations = registrations.filter(diagnosis_date__gte=diagnosed_from)
        criteria = True
    if diagnosed_to:
        registrations = registrations.filter(diagnosis_date__lte=diagnosed_to)
        criteria = True
    if not criteria:
        raise ValueError("Enter at least one thing to search for.")

    if name_only:
        return _name_page(typed_name, page, per_page)
    if nhs_number and not (typed_name or birth_date or site or diagnosed_from or diagnosed_to):
        return _nhs_number_page(parse_nhs_number(nhs_number), page, per_page)
    ranked = registrations.annotate(matches=Window(Count("pk"))).order_by(*order)
    # An NHS number finds a handful of rows: read them whole, in one query. Other searches can
    # match thousands: rank narrow rows, then read the page's rows whole by id (a third faster
    # than ranking whole rows, on a million registrations).
    whole = bool(nhs_number)
    rows, total = _read_page(ranked, page, per_page, whole=whole)
    if not rows and page > 1:
        total = registrations.count()
        if total:  # a page past the end (the results changed): show the last one
            page = ceil(total / per_page)
            rows, total = _read_page(ranked, page, per_page, whole=whole)
    return Page([_result(row) for row in rows], total, page, per_page)


def _surnames_like(typed_name: str):
    return Surname.objects.filter(name__trigram_similar=typed_name, registrations__gt=0)


# A name alone: the surnames like it (trigram index on registry_surname), best first, and from
# each the first rows of the page in the page's order (the btree registration_surname_order
# answers ORDER BY ... LIMIT per surname); the total is the sum of their counts.
_NAME_PAGE = """
WITH names AS MATERIALIZED (
    SELECT name, similarity(name, %(typed)s) AS score, registrations
    FROM registry_surname WHERE name %% %(typed)s AND registrations > 0
)
SELECT page.id, (SELECT coalesce(sum(registrations), 0) FROM names)
FROM names CROSS JOIN LATERAL (
    SELECT r.id, r.family_name, r.given_name, r.birth_date, r.diagnosis_date
    FROM registry_registration r WHERE UPPER(r.family_name) = names.name
    ORDER BY UPPER(r.family_name), r.family_name, r.given_name, r.birth_date,
        r.diagnosis_date DESC, r.id
    LIMIT %(upto)s
) page
ORDER BY names.score DESC, page.family_name, page.given_name, page.birth_date,
    page.diagnosis_date DESC, page.id
LIMIT %(per_page)s OFFSET %(offset)s
"""


def _name_page(typed_name: str, page: int, per_page: int) -> Page:
    def ranked(number: int) -> list[tuple[int, int]]:
        with connection.cursor() as cursor:
            cursor.execute(
                _NAME_PAGE,
                {
                    "typed": typed_name,
                    "upto": number * per_page,
                    "per_page": per_page,
                    "offset": (number - 1) * per_page,
                },
            )
            return cursor.fetchall()

    ranking = ranked(page)
    if ranking:
        total = int(ranking[0][1])
    else:
        total = sum(_surnames_like(typed_name).values_list("registrations", flat=True))
        if total and page > 1:  # a page past the end (the results changed): show the last one
            page = ceil(total / per_page)
            ranking = ranked(page)
    ids = [pk for pk, _ in ranking]
    by_id = {row.pk: row for row in _facts_sql("r.id = ANY(%s)", [ids])}
    rows = [by_id[pk] for pk in ids if pk in by_id]
    return Page([_result(row) for row in rows], total, page, per_page)


# What _with_index_facts says of each registration, in SQL: the NHS-number lookup and the name
# search's page read their rows with it, without the ORM's query building (most of a lookup's
# time, on a million registrations).
_FACTS = """
    (SELECT p.id FROM records_patient p WHERE p.nhs_number = r.nhs_number LIMIT 1) AS index_id,
    EXISTS (SELECT 1 FROM records_patient p WHERE p.nhs_number = r.nhs_number AND p.restricted)
        AS restricted_by_number,
    EXISTS (SELECT 1 FROM records_patient p WHERE p.id = r.patient_id AND p.restricted)
        AS restricted_by_link,
    EXISTS (SELECT 1 FROM registry_importedpatient i JOIN records_patient p ON p.id = i.patient_id
        WHERE p.nhs_number = r.nhs_number AND p.updated_at <= i.created_at)
        AS unconfirmed_by_number,
    EXISTS (SELECT 1 FROM registry_importedpatient i JOIN records_patient p ON p.id = i.patient_id
        WHERE i.patient_id = r.patient_id AND p.updated_at <= i.created_at)
        AS unconfirmed_by_link
"""


def _facts_sql(where: str, params: list, *, tail: str = "", extra: str = "") -> list:
    query = f"SELECT r.*, {_FACTS}{extra} FROM registry_registration r WHERE {where} {tail}"  # noqa: S608 - our SQL
    return list(Registration.objects.raw(query, params))


def _nhs_number_page(nhs: str, page: int, per_page: int) -> Page:
    """An NHS number alone: a handful of rows, read whole with their count in one query."""

    def read(number: int) -> list:
        return _facts_sql(
            "r.nhs_number = %s",
            [nhs, per_page, (number - 1) * per_page],
            extra=", count(*) OVER () AS matches",
            tail="ORDER BY r.family_name, r.given_name, r.birth_date, r.diagnosis_date DESC, "
            "r.id LIMIT %s OFFSET %s",
        )

    rows = read(page)
    total = rows[0].matches if rows else 0
    if not rows and page > 1:
        total = Registration.objects.filter(nhs_number=nhs).count()
        if total:  # a page past the end (the results changed): show the last one
            page = ceil(total / per_page)
            rows = read(page)
    return Page([_result(row) for row in rows], total, page, per_page)


def _read_page(ranked, page: int, per_page: int, *, whole: bool) -> tuple[list, int]:
    """The page's registrations with what the patient index says of them, and the total (from
    COUNT(*) OVER (), so the matches are found once)."""
    window = slice((page - 1) * per_page, page * per_page)
    if whole:
        rows = list(_with_index_facts(ranked)[window])
        return rows, rows[0].matches if rows else 0
    ranking = list(ranked.values_list("pk", "matches")[window])
    ids = [pk for pk, _ in ranking]
    by_id = {row.pk: row for row in _with_index_facts(Registration.objects.filter(pk__in=ids))}
    return [by_id[pk] for pk in ids if pk in by_id], ranking[0][1] if ranking else 0


def _with_index_facts(registrations):
    """Each registration's index entry found by NHS number, and whether the entry it is linked
    to or the one with its NHS number is restricted, or created by an import and not confirmed
    by the demographics service since: a registration linked to one entry and numbered as
    another must not show what either hides."""
    by_number = Patient.objects.filter(nhs_number=OuterRef("nhs_number"))
    by_link = Patient.objects.filter(pk=OuterRef("patient_id"))
    # Written again after the import created it: only the demographics service writes an index
    # entry (records.patient_index.apply_demographics; its updated_at is auto_now).
    unconfirmed = ImportedPatient.objects.filter(patient__updated_at__lte=F("created_at"))
    return registrations.annotate(
        index_id=Subquery(by_number.values("pk")[:1]),
        restricted_by_number=Exists(by_number.filter(restricted=True)),
        restricted_by_link=Exists(by_link.filter(restricted=True)),
        unconfirmed_by_number=Exists(
            unconfirmed.filter(patient__nhs_number=OuterRef("nhs_number"))
        ),
        unconfirmed_by_link=Exists(unconfirmed.filter(patient_id=OuterRef("patient_id"))),
    )


def _result(row: Registration) -> Result:
    ids = tuple(sorted({row.patient_id, row.index_id} - {None}))
    return Result(
        row,
        ids,
        restricted=row.restricted_by_number or row.restricted_by_link,
        unconfirmed=row.unconfirmed_by_number or row.unconfirmed_by_link,
    )
