"""The audit log's writers: one event per request that showed or changed patient data, and one
per command or task (with a system actor and a reason).

Views say what they showed with ``audit_saw(request, patient_ids)`` and what they did with
``audit_did(request, action, object_ref)``; the middleware writes the single row after the
response is built, so a list page of 80 patients writes one row, not 80.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from .models import AuditEvent


@dataclass
class RequestAudit:
    patient_ids: set[int] = field(default_factory=set)
    actions: list[str] = field(default_factory=list)
    object_refs: list[str] = field(default_factory=list)
    reason: str = ""

    def __bool__(self) -> bool:
        return bool(self.patient_ids or self.actions)


def audit_saw(request, patient_ids: Iterable[int]) -> None:
    request.audit.patient_ids.update(int(pk) for pk in patient_ids)


def audit_did(
    request, action: str, object_ref: str = "", patient_ids: Iterable[int] = (), reason: str = ""
) -> None:
    request.audit.actions.append(action)
    if object_ref:
        request.audit.object_refs.append(object_ref)
    if reason:
        request.audit.reason = reason
    audit_saw(request, patient_ids)


def record_system_event(
    system_actor: str,
    reason: str,
    action: str,
    patient_ids: Iterable[int] = (),
    object_ref: str = "",
) -> AuditEvent:
    """For management commands and Celery tasks, which have no user."""
    return AuditEvent.objects.create(
        system_actor=system_actor,
        reason=reason,
        action=action,
        patient_ids=sorted(set(patient_ids)),
        object_ref=object_ref,
    )


def client_ip(request) -> str | None:
    # Behind a proxy the deployment sets the real address in REMOTE_ADDR (gunicorn's
    # --forwarded-allow-ips); we do not trust X-Forwarded-For from the client.
    return request.META.get("REMOTE_ADDR") or None


class AuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.audit = RequestAudit()
        response = self.get_response(request)
        audit = request.audit
        if audit:
            user = getattr(request, "user", None)
            AuditEvent.objects.create(
                actor=user if user is not None and user.is_authenticated else None,
                system_actor="" if user is not None and user.is_authenticated else "anonymous",
                action=",".join(audit.actions) or f"view:{_view_name(request)}",
                method=request.method,
                path=request.path[:500],
                status_code=response.status_code,
                patient_ids=sorted(audit.patient_ids),
                object_ref=",".join(audit.object_refs)[:200],
                reason=audit.reason,
                ip=client_ip(request),
            )
        return response


def _view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match else "unknown"
