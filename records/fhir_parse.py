"""Reading a FHIR server's answer: a Bundle parsed entry by entry with the R4B models, so that one
unreadable entry costs that entry, not the whole answer.

Reasons given here are shown on the case page and stored, so they never quote the body itself."""

import json
from dataclasses import dataclass, field

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

_MAX_TEXT = 300


class NotFHIR(ValueError):
    """The answer is not a readable FHIR Bundle; str() says why."""


class FhirOperationOutcome(NotFHIR):
    """The server answered with an OperationOutcome (an error report) instead of a Bundle."""

    def __init__(self, reason: str, codes: tuple[str, ...] = ()):
        super().__init__(reason)
        self.codes = codes  # the issue codes, e.g. ("not-found",), for the caller to decide


@dataclass
class ParsedBundle:
    resources: list[Resource] = field(default_factory=list)
    dropped: int = 0
    drop_reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    next_url: str | None = None
    total: int | None = None
    bundle_type: str | None = None
    # full_urls[i] is the fullUrl of resources[i]: a resource may be referenced by it.
    full_urls: list[str | None] = field(default_factory=list)


def _load(body: bytes | str | dict) -> dict:
    if isinstance(body, dict):
        data = body
    else:
        try:
            data = json.loads(body)
        except ValueError as error:
            raise NotFHIR(f"The answer is not valid JSON ({_json_error_place(error)}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise NotFHIR("The answer is JSON but not a FHIR resource: it has no resourceType.")
    return data


def _json_error_place(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"line {error.lineno}, column {error.colno}"
    return "not readable as text"


def outcome_text(outcome: dict) -> str:
    """The human text of an OperationOutcome: each issue's details text or display, else its
    diagnostics, else its code."""
    texts = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details") or {}
        codings = details.get("coding") or [{}]
        text = (
            details.get("text")
            or codings[0].get("display")
            or issue.get("diagnostics")
            or issue.get("code")
            or "no details"
        )
        texts.append(f"{issue.get('severity', 'error')}: {text}"[:_MAX_TEXT])
    return "; ".join(texts) or "the server reported an error without details"


def _raise_if_outcome(data: dict) -> None:
    if data["resourceType"] == "OperationOutcome":
        codes = tuple(
            i.get("code") for i in data.get("issue") or [] if isinstance(i, dict) and i.get("code")
        )
        raise FhirOperationOutcome(
            f"The source answered with an error: {outcome_text(data)}.", codes=codes
        )


def _validation_summary(error: ValidationError) -> str:
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0] if problems else {"loc": (), "msg": "invalid"}
    where = ".".join(str(part) for part in first["loc"]) or "resource"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where}: {first['msg'].rstrip('.')}{more}"[:_MAX_TEXT]


def read_resource(data: object) -> Resource:
    """One resource with the R4B model its resourceType names; raises ValueError with a short
    reason (no data quoted) when that is impossible."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    resource_type = data.get("resourceType")
    if not isinstance(resource_type, str):
        raise ValueError("no resourceType")
    try:
        model = get_fhir_model_class(resource_type)
    except (ValueError, KeyError):
        model = None
    if model is None or not issubclass(model, Resource):
        raise ValueError(f"unknown resource type {resource_type[:60]!r}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ValueError(f"not a valid R4 {resource_type}: {_validation_summary(error)}") from None


def parse_bundle(body: bytes | str | dict) -> ParsedBundle:
    """Raises NotFHIR (or its FhirOperationOutcome) when the answer as a whole is unreadable."""
    data = _load(body)
    _raise_if_outcome(data)
    if data["resourceType"] != "Bundle":
        raise NotFHIR(
            f"The source answered with a {data['resourceType'][:60]} where a Bundle was expected."
        )
    entries = data.get("entry") or []
    if not isinstance(entries, list):
        raise NotFHIR("The source's Bundle is malformed: entry is not a list.")
    try:
        envelope = Bundle.model_validate({k: v for k, v in data.items() if k != "entry"})
    except ValidationError as error:
        raise NotFHIR(f"The source's Bundle is malformed: {_validation_summary(error)}.") from None

    parsed = ParsedBundle(total=envelope.total, bundle_type=envelope.type)
    parsed.next_url = next(
        (link.url for link in envelope.link or [] if link.relation == "next"), None
    )
    for number, entry in enumerate(entries, start=1):
        _read_entry(parsed, number, entry)
    return parsed


def _read_entry(parsed: ParsedBundle, number: int, entry: object) -> None:
    def drop(reason: str) -> None:
        parsed.dropped += 1
        parsed.drop_reasons.append(f"entry {number}: {reason}")

    if not isinstance(entry, dict):
        return drop("not a JSON object")
    data = entry.get("resource")
    if data is None:
        return drop("no resource")
    search = entry.get("search") if isinstance(entry.get("search"), dict) else {}
    is_outcome = isinstance(data, dict) and data.get("resourceType") == "OperationOutcome"
    if search.get("mode") == "outcome" or is_outcome:
        parsed.warnings.append(
            outcome_text(data) if isinstance(data, dict) else "unreadable outcome"
        )
        return None
    try:
        resource = read_resource(data)
    except ValueError as error:
        label = _label(data)
        return drop(f"{label}{error}")
    parsed.resources.append(resource)
    full_url = entry.get("fullUrl")
    parsed.full_urls.append(full_url if isinstance(full_url, str) else None)
    return None


def _label(data: object) -> str:
    if isinstance(data, dict) and isinstance(data.get("resourceType"), str) and data.get("id"):
        return f"{data['resourceType'][:60]}/{str(data['id'])[:64]}: "
    return ""


def split_batch_response(body: bytes | str | dict) -> list[tuple[int, dict | None]]:
    """Each entry of a batch-response (or transaction-response) Bundle as (HTTP status, inner
    resource): the resource when there is one, else the entry's response.outcome (so an error
    comes back as its OperationOutcome, which parse_bundle turns into FhirOperationOutcome).
    A status that cannot be read is 0."""
    data = _load(body)
    _raise_if_outcome(data)
    if data["resourceType"] != "Bundle" or data.get("type") not in (
        "batch-response",
        "transaction-response",
    ):
        raise NotFHIR("The source's answer to a batch is not a batch-response Bundle.")
    results = []
    for entry in data.get("entry") or []:
        entry = entry if isinstance(entry, dict) else {}
        response = entry.get("response") if isinstance(entry.get("response"), dict) else {}
        resource = entry.get("resource") or response.get("outcome")
        results.append(
            (_status(response.get("status")), resource if isinstance(resource, dict) else None)
        )
    return results


def _status(text: object) -> int:
    head = str(text or "").strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else 0
