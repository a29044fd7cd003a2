"""The access matrix: every URL of the mdt, records and registry apps × role × scope, one exact
status each.

Security model (ARCHITECTURE.md, ADR-003): every view is behind login; patient data is reached by
team membership through the one scoped queryset (``visible_to``). An object outside the user's
teams is 404, never 403, so ids cannot be probed; a role that may see but not act gets 403. GPs
(who see the letters sent to their practice, and only those) and administrators (who manage,
and read the audit log) are not team members, so every team object is 404 to them. Superusers get
no bypass: they have exactly an administrator's statuses.

The world, built once for the module: trust A hosts the acting user's team ("own team") and
another team ("other team, same trust"); trust B hosts a third ("other trust"). Each team has an
upcoming meeting with two listed cases; the regional patient index also holds a spare patient on
no list. The acting user holds their role at trust A and, for coordinator, clinician and chair, is
a member of the own team only. Requesting the own, same-trust or other-trust meeting or case is
therefore exactly the user being on the meeting's team, on another team of the same trust, or on
a team of another trust. The own team's patients are registered with the GP's practice, so for a
GP "own team" is the strongest claim (the patients are theirs): it grants only the letters sent
to the practice.
Every patient also has a tumour registration in the cancer registry, with the same postcode as the
index, and the registry holds an import whose set-aside rows name two of the patients.

Every cell also checks:
- no denied response (403, 404, 405, the anonymous 302) carries any patient's NHS number (plain
  or spaced), family name or given name, in its body or headers;
- a 200 shows exactly the patients it should (the user's own lists, or the one patient looked up
  in the regional index by NHS number), and the audit log records exactly those patients;
- no response shows any patient's address or postcode (one patient is restricted), except that
  the registry search shows the registry's postcode of the unrestricted patients it finds;
- data changes if and only if the cell is a signed-in 302, the change is the intended one, and
  the redirect goes to the meeting.
"""

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from django.contrib import admin
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import override_settings
from django.urls import URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.display import format_nhs_number
from accounts.models import AuditEvent, Organisation, Role, User
from mdt.models import (
    Attendance,
    Case,
    CoreRole,
    Letter,
    LetterStatus,
    Meeting,
    Outcome,
    PatientTold,
    Review,
    Team,
    TeamMember,
)
from records.models import Patient, Snapshot
from registry import cosd
from registry.models import ImportRun, QuarantinedRow, Registration
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    MembershipFactory,
    OrganisationFactory,
    PatientFactory,
    PracticeFactory,
    TeamFactory,
    UserFactory,
    make_member,
)

OWN = "own-team"
SAME_TRUST = "other-team-same-trust"
OTHER_TRUST = "other-trust"
SCOPES = (OWN, SAME_TRUST, OTHER_TRUST)
NO_OBJECT = "no-object"  # the URL names no team, meeting, case or patient
REGION = "region"  # the URL names an object of no team (a registry import)

ANONYMOUS = "anonymous"
SUPERUSER = "superuser"  # an administrator with is_superuser and is_staff
ROLES = (Role.COORDINATOR, Role.CLINICIAN, Role.CHAIR, Role.GP, Role.ADMIN, ANONYMOUS)
TEAM_ROLES = (Role.COORDINATOR, Role.CLINICIAN, Role.CHAIR)

# One row per request and scope; one exact status per role. Read with the views: outside the
# user's teams is 404, checked before the role, so it is 404 whatever the role; a role that may
# not act is 403; a method the view does not take is 405; login comes first, so anonymous is
# always 302 to the login page; a successful change redirects (302) to the meeting.
# A superuser gets the admin column in every row (no bypass).
# fmt: off
MATRIX = [
    # request                      scope          coord clin chair  gp  admin anon
    ("GET  mdt:dashboard",         NO_OBJECT,     200,  200, 200,  200, 200,  302),
    ("POST mdt:dashboard",         NO_OBJECT,     405,  405, 405,  405, 405,  302),

    ("GET  mdt:meetings",          NO_OBJECT,     200,  200, 200,  200, 200,  302),
    # Scheduling: the team is a form choice limited to the user's teams, so another team's id is
    # a form error (200, nothing scheduled), the same answer as for a team that does not exist.
    ("POST mdt:meetings",          OWN,           302,  403, 302,  403, 403,  302),
    ("POST mdt:meetings",          SAME_TRUST,    200,  403, 200,  403, 403,  302),
    ("POST mdt:meetings",          OTHER_TRUST,   200,  403, 200,  403, 403,  302),

    ("GET  mdt:meeting",           OWN,           200,  200, 200,  404, 404,  302),
    ("GET  mdt:meeting",           SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:meeting",           OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:meeting",           OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:meeting",           SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:meeting",           OTHER_TRUST,   405,  405, 405,  405, 405,  302),

    ("POST mdt:preview_patient",   OWN,           200,  200, 200,  404, 404,  302),
    ("POST mdt:preview_patient",   SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:preview_patient",   OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:preview_patient",   OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:preview_patient",   SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:preview_patient",   OTHER_TRUST,   405,  405, 405,  405, 405,  302),

    # Clinicians may propose cases before the cut-off (the meeting is a week away).
    ("POST mdt:add_case",          OWN,           302,  302, 302,  404, 404,  302),
    ("POST mdt:add_case",          SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:add_case",          OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:add_case",          OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:add_case",          SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:add_case",          OTHER_TRUST,   405,  405, 405,  405, 405,  302),

    ("POST mdt:close_list",        OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:close_list",        SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:close_list",        OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:close_list",        OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:close_list",        SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:close_list",        OTHER_TRUST,   405,  405, 405,  405, 405,  302),

    ("POST mdt:move_case",         OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:move_case",         SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:move_case",         OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:move_case",         OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:move_case",         SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:move_case",         OTHER_TRUST,   405,  405, 405,  405, 405,  302),

    ("POST mdt:set_triage",        OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:set_triage",        SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:set_triage",        OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:set_triage",        OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:set_triage",        SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:set_triage",        OTHER_TRUST,   405,  405, 405,  405, 405,  302),

    # The case page and the federated record: every member of the team may read and refresh.
    ("GET  mdt:case",              OWN,           200,  200, 200,  404, 404,  302),
    ("GET  mdt:case",              SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:case",              OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:case",              OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:case",              SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:case",              OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("POST mdt:refresh_case",      OWN,           302,  302, 302,  404, 404,  302),
    ("POST mdt:refresh_case",      SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:refresh_case",      OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:refresh_case",      OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:refresh_case",      SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:refresh_case",      OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("POST mdt:refresh_meeting",   OWN,           302,  302, 302,  404, 404,  302),
    ("POST mdt:refresh_meeting",   SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:refresh_meeting",   OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:refresh_meeting",   OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:refresh_meeting",   SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:refresh_meeting",   OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("GET  mdt:refresh_progress",  OWN,           200,  200, 200,  404, 404,  302),
    ("GET  mdt:refresh_progress",  SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:refresh_progress",  OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:refresh_progress",  OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:refresh_progress",  SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:refresh_progress",  OTHER_TRUST,   405,  405, 405,  405, 405,  302),

    ("GET  mdt:remove_case",       OWN,           200,  403, 200,  404, 404,  302),
    ("GET  mdt:remove_case",       SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:remove_case",       OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:remove_case",       OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:remove_case",       SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:remove_case",       OTHER_TRUST,   404,  404, 404,  404, 404,  302),

    # Reviews before the meeting: only a member of the team in that specialty records its review.
    # The acting clinician is the team's surgeon and the chair its chair: neither may record the
    # radiology review posted here, nor may the coordinator (tests/mdt/test_review_views.py has
    # the radiologist's own success).
    ("POST mdt:record_review",     OWN,           403,  403, 403,  404, 404,  302),
    ("POST mdt:record_review",     SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:record_review",     OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:record_review",     OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:record_review",     SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:record_review",     OTHER_TRUST,   405,  405, 405,  405, 405,  302),

    # The regional patient index is searched by NHS number, to list a patient who may be on no
    # list yet (ADR-003: region-wide by design, POSTed with a purpose, audited). The scope is whose
    # list the searched patient is on; the listings shown stay team-scoped.
    ("GET  mdt:patient_search",    NO_OBJECT,     200,  200, 200,  403, 403,  302),
    ("POST mdt:patient_search",    OWN,           200,  200, 200,  403, 403,  302),
    ("POST mdt:patient_search",    SAME_TRUST,    200,  200, 200,  403, 403,  302),
    ("POST mdt:patient_search",    OTHER_TRUST,   200,  200, 200,  403, 403,  302),

    # The cancer registry's search (issue 4): region-wide by design like the patient search, but
    # for coordinators only, POSTed with a purpose and audited. The scope is whose list the
    # searched patient is on; the OWN target is restricted, so its postcode must not show.
    ("GET  registry:search",       NO_OBJECT,     200,  403, 403,  403, 403,  302),
    ("POST registry:search",       OWN,           200,  403, 403,  403, 403,  302),
    ("POST registry:search",       SAME_TRUST,    200,  403, 403,  403, 403,  302),
    ("POST registry:search",       OTHER_TRUST,   200,  403, 403,  403, 403,  302),
    # "Add to a meeting" from a registry result (in mdt: registry may not import mdt). The meeting
    # is a form choice limited to the user's teams' open meetings, so another team's is a form
    # error (200, the patient being added shown, nothing added), as for scheduling.
    ("GET  mdt:add_registry_patient", NO_OBJECT,  405,  405, 405,  405, 405,  302),
    ("POST mdt:add_registry_patient", OWN,        302,  403, 403,  403, 403,  302),
    ("POST mdt:add_registry_patient", SAME_TRUST, 200,  403, 403,  403, 403,  302),
    ("POST mdt:add_registry_patient", OTHER_TRUST, 200, 403, 403,  403, 403,  302),

    # Registry imports: administrators upload files and follow the import; the report shows
    # counts, line numbers and reasons, never the set-aside rows' values (which name patients).
    # An import belongs to no team (REGION): every administrator sees every import.
    ("GET  registry:imports",      NO_OBJECT,     403,  403, 403,  403, 200,  302),
    ("POST registry:imports",      NO_OBJECT,     403,  403, 403,  403, 302,  302),
    ("GET  registry:import",       REGION,        403,  403, 403,  403, 200,  302),
    ("POST registry:import",       REGION,        405,  405, 405,  405, 405,  302),

    # The live meeting (issue 5). Before these cells every team's meeting is put in progress with
    # its target case on the screen, and more where a row needs it (LIVE_SETUP). Running it (start,
    # console, moving the screen, drafting, deferring, concluding) is for the chair or the
    # coordinator; signing and amending outcomes for a chair; following, attendance, the summary
    # and an outcome's versions for every member of the team.
    ("POST mdt:start_meeting",     OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:start_meeting",     SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:start_meeting",     OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:start_meeting",     OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:start_meeting",     SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:start_meeting",     OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("GET  mdt:console",           OWN,           200,  403, 200,  404, 404,  302),
    ("GET  mdt:console",           SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:console",           OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:console",           OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:console",           SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:console",           OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("POST mdt:show_case",         OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:show_case",         SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:show_case",         OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:show_case",         OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:show_case",         SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:show_case",         OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("GET  mdt:follow",            OWN,           200,  200, 200,  404, 404,  302),
    ("GET  mdt:follow",            SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:follow",            OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:follow",            OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:follow",            SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:follow",            OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("GET  mdt:live_state",        OWN,           200,  200, 200,  404, 404,  302),
    ("GET  mdt:live_state",        SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:live_state",        OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:live_state",        OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:live_state",        SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:live_state",        OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("GET  mdt:attendance",        OWN,           200,  200, 200,  404, 404,  302),
    ("GET  mdt:attendance",        SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:attendance",        OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:attendance",        OWN,           302,  302, 302,  404, 404,  302),
    ("POST mdt:attendance",        SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:attendance",        OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:conclude",          OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:conclude",          SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:conclude",          OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:conclude",          OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:conclude",          SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:conclude",          OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("GET  mdt:meeting_summary",   OWN,           200,  200, 200,  404, 404,  302),
    ("GET  mdt:meeting_summary",   SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:meeting_summary",   OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:meeting_summary",   OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:meeting_summary",   SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:meeting_summary",   OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("POST mdt:save_outcome",      OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:save_outcome",      SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:save_outcome",      OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:save_outcome",      OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:save_outcome",      SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:save_outcome",      OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("POST mdt:sign_outcome",      OWN,           403,  403, 302,  404, 404,  302),
    ("POST mdt:sign_outcome",      SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:sign_outcome",      OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:sign_outcome",      OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:sign_outcome",      SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:sign_outcome",      OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("GET  mdt:amend_outcome",     OWN,           403,  403, 200,  404, 404,  302),
    ("GET  mdt:amend_outcome",     SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:amend_outcome",     OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:amend_outcome",     OWN,           403,  403, 302,  404, 404,  302),
    ("POST mdt:amend_outcome",     SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:amend_outcome",     OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:outcome_history",   OWN,           200,  200, 200,  404, 404,  302),
    ("GET  mdt:outcome_history",   SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:outcome_history",   OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:outcome_history",   OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:outcome_history",   SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:outcome_history",   OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("POST mdt:defer_case",        OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:defer_case",        SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:defer_case",        OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:defer_case",        OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:defer_case",        SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:defer_case",        OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("POST mdt:note_case",         OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:note_case",         SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:note_case",         OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:note_case",         OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:note_case",         SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:note_case",         OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("POST mdt:withdraw_case",     OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:withdraw_case",     SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:withdraw_case",     OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:withdraw_case",     OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:withdraw_case",     SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:withdraw_case",     OTHER_TRUST,   405,  405, 405,  405, 405,  302),

    # Letters to GPs (issue 6). The own team's target case has a letter sent to the GP's practice
    # (LIVE_SETUP): the GP reads it in the portal and downloads its PDF, as does the team; nobody
    # else sees it. The meeting's letters are for the team; sending them (once the meeting has
    # concluded) and resending a failed one for the chair or the coordinator; recording that the
    # patient has been told for every member; the preview on the console for those who run it.
    ("GET  mdt:gp_letters",        NO_OBJECT,     403,  403, 403,  200, 403,  302),
    ("POST mdt:gp_letters",        NO_OBJECT,     405,  405, 405,  405, 405,  302),
    ("GET  mdt:gp_letter",         OWN,           404,  404, 404,  200, 404,  302),
    ("GET  mdt:gp_letter",         SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:gp_letter",         OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:gp_letter",         OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:gp_letter",         SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:gp_letter",         OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("GET  mdt:letter_pdf",        OWN,           200,  200, 200,  200, 404,  302),
    ("GET  mdt:letter_pdf",        SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:letter_pdf",        OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:letter_pdf",        OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:letter_pdf",        SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:letter_pdf",        OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("POST mdt:resend_letter",     OWN,           302,  403, 302,  404, 404,  302),
    ("POST mdt:resend_letter",     SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("POST mdt:resend_letter",     OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("GET  mdt:resend_letter",     OWN,           405,  405, 405,  405, 405,  302),
    ("GET  mdt:resend_letter",     SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("GET  mdt:resend_letter",     OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    ("GET  mdt:meeting_letters",   OWN,           200,  200, 200,  404, 404,  302),
    ("GET  mdt:meeting_letters",   SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:meeting_letters",   OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:meeting_letters",   OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:meeting_letters",   SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:meeting_letters",   OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    # The panel's progress, polled while letters are on their way: the same letters, the same team.
    ("GET  mdt:meeting_letters_progress", OWN,    200,  200, 200,  404, 404,  302),
    ("GET  mdt:meeting_letters_progress", SAME_TRUST, 404, 404, 404, 404, 404,  302),
    ("GET  mdt:meeting_letters_progress", OTHER_TRUST, 404, 404, 404, 404, 404, 302),
    ("POST mdt:meeting_letters_progress", OWN,    405,  405, 405,  405, 405,  302),
    ("POST mdt:meeting_letters_progress", SAME_TRUST, 405, 405, 405, 405, 405,  302),
    ("POST mdt:meeting_letters_progress", OTHER_TRUST, 405, 405, 405, 405, 405, 302),
    ("POST mdt:send_meeting_letters", OWN,        302,  403, 302,  404, 404,  302),
    ("POST mdt:send_meeting_letters", SAME_TRUST, 404,  404, 404,  404, 404,  302),
    ("POST mdt:send_meeting_letters", OTHER_TRUST, 404, 404, 404,  404, 404,  302),
    ("GET  mdt:send_meeting_letters", OWN,        405,  405, 405,  405, 405,  302),
    ("GET  mdt:send_meeting_letters", SAME_TRUST, 405,  405, 405,  405, 405,  302),
    ("GET  mdt:send_meeting_letters", OTHER_TRUST, 405, 405, 405,  405, 405,  302),
    ("POST mdt:record_patient_told", OWN,         302,  302, 302,  404, 404,  302),
    ("POST mdt:record_patient_told", SAME_TRUST,  404,  404, 404,  404, 404,  302),
    ("POST mdt:record_patient_told", OTHER_TRUST, 404,  404, 404,  404, 404,  302),
    ("GET  mdt:record_patient_told", OWN,         405,  405, 405,  405, 405,  302),
    ("GET  mdt:record_patient_told", SAME_TRUST,  405,  405, 405,  405, 405,  302),
    ("GET  mdt:record_patient_told", OTHER_TRUST, 405,  405, 405,  405, 405,  302),
    ("GET  mdt:letter_preview",    OWN,           200,  403, 200,  404, 404,  302),
    ("GET  mdt:letter_preview",    SAME_TRUST,    404,  404, 404,  404, 404,  302),
    ("GET  mdt:letter_preview",    OTHER_TRUST,   404,  404, 404,  404, 404,  302),
    ("POST mdt:letter_preview",    OWN,           405,  405, 405,  405, 405,  302),
    ("POST mdt:letter_preview",    SAME_TRUST,    405,  405, 405,  405, 405,  302),
    ("POST mdt:letter_preview",    OTHER_TRUST,   405,  405, 405,  405, 405,  302),
    # The administrators' turnaround report: counts and times per meeting of their organisation's
    # teams, no patients (so nothing to audit); the URL names no team.
    ("GET  mdt:letter_turnaround", NO_OBJECT,     403,  403, 403,  403, 200,  302),
    ("POST mdt:letter_turnaround", NO_OBJECT,     405,  405, 405,  405, 405,  302),

    ("GET  records:audit_log",     NO_OBJECT,     403,  403, 403,  403, 200,  302),
    ("POST records:audit_log",     OWN,           403,  403, 403,  403, 200,  302),
    ("POST records:audit_log",     SAME_TRUST,    403,  403, 403,  403, 200,  302),
    ("POST records:audit_log",     OTHER_TRUST,   403,  403, 403,  403, 200,  302),
]
# fmt: on

# What each URL's path names: nothing, a meeting, a case or the target case's letter (by
# public_id), or a registry import.
MEETING, CASE, LETTER, IMPORT = "meeting", "case", "letter", "import"
PATH_OBJECT = {
    "mdt:dashboard": None,
    "mdt:meetings": None,
    "mdt:meeting": MEETING,
    "mdt:preview_patient": MEETING,
    "mdt:add_case": MEETING,
    "mdt:close_list": MEETING,
    "mdt:move_case": CASE,
    "mdt:set_triage": CASE,
    "mdt:remove_case": CASE,
    "mdt:record_review": CASE,
    "mdt:case": CASE,
    "mdt:refresh_case": CASE,
    "mdt:refresh_meeting": MEETING,
    "mdt:refresh_progress": MEETING,
    "mdt:patient_search": None,
    "mdt:add_registry_patient": None,
    "mdt:start_meeting": MEETING,
    "mdt:console": MEETING,
    "mdt:show_case": MEETING,
    "mdt:follow": MEETING,
    "mdt:live_state": MEETING,
    "mdt:attendance": MEETING,
    "mdt:conclude": MEETING,
    "mdt:meeting_summary": MEETING,
    "mdt:save_outcome": CASE,
    "mdt:sign_outcome": CASE,
    "mdt:amend_outcome": CASE,
    "mdt:outcome_history": CASE,
    "mdt:defer_case": CASE,
    "mdt:note_case": CASE,
    "mdt:withdraw_case": CASE,
    "mdt:gp_letters": None,
    "mdt:gp_letter": LETTER,
    "mdt:letter_pdf": LETTER,
    "mdt:resend_letter": LETTER,
    "mdt:meeting_letters": MEETING,
    "mdt:meeting_letters_progress": MEETING,
    "mdt:send_meeting_letters": MEETING,
    "mdt:record_patient_told": CASE,
    "mdt:letter_preview": CASE,
    "mdt:letter_turnaround": None,
    "records:audit_log": None,
    "registry:search": None,
    "registry:imports": None,
    "registry:import": IMPORT,
}

PATIENT_NAMES = {
    # scope: [(family name, given name) of the target case, of the second case]
    OWN: [("Zebedee-Matrix", "Ottoline"), ("Quillfeather-Matrix", "Peregrine")],
    SAME_TRUST: [("Yarrowby-Matrix", "Clementina"), ("Wexcombe-Matrix", "Barnabus")],
    OTHER_TRUST: [("Xanthorpe-Matrix", "Hyacinthe"), ("Vellacott-Matrix", "Leofric")],
}
SPARE_NAME = ("Umberleigh-Matrix", "Theodosia")
ADDRESS_MARK = "Matrixaddress"  # in every patient's address; no page may show an address


@dataclass
class World:
    trust: Organisation  # hosts the own team and the same-trust team
    practice: Organisation  # the own team's patients' GP practice
    teams: dict[str, Team]
    meetings: dict[str, Meeting]
    cases: dict[str, list[Case]]  # per scope: [target case (position 1), second (position 2)]
    spare: Patient  # in the regional index, on no list
    import_run: ImportRun  # a registry import whose set-aside rows name patients
    pristine: tuple = ()  # _state() as built: every cell must start from it

    @property
    def patients(self) -> list[Patient]:
        return [case.patient for cases in self.cases.values() for case in cases] + [self.spare]


def _patient(family: str, given: str, practice: Organisation, number: int, **extra) -> Patient:
    return PatientFactory(
        family_name=family,
        given_name=given,
        gp_practice=practice,
        address=f"{number} {ADDRESS_MARK} Row, Quenbury",
        postcode=f"QX{number} 7ZW",
        **extra,
    )


def _build_world() -> World:
    trust_a = OrganisationFactory(name="Matrix Trust A")
    trust_b = OrganisationFactory(name="Matrix Trust B")
    gp_practice = PracticeFactory()
    other_practice = PracticeFactory()
    teams = {
        OWN: TeamFactory(host=trust_a),
        SAME_TRUST: TeamFactory(host=trust_a),
        OTHER_TRUST: TeamFactory(host=trust_b),
    }
    author = UserFactory()
    meetings, cases = {}, {}
    for scope, team in teams.items():
        meetings[scope] = MeetingFactory(team=team)
        practice = gp_practice if scope == OWN else other_practice
        cases[scope] = [
            CaseFactory(
                meeting=meetings[scope],
                position=position,
                added_by=author,
                patient=_patient(
                    family,
                    given,
                    practice,
                    number=10 * len(cases) + position,
                    # The own team's target case is on most pages that show a patient.
                    restricted=(scope == OWN and position == 1),
                ),
            )
            for position, (family, given) in enumerate(PATIENT_NAMES[scope], start=1)
        ]
    spare = _patient(*SPARE_NAME, other_practice, number=99)
    patients = [case.patient for scope_cases in cases.values() for case in scope_cases] + [spare]
    for patient in patients:
        _register(patient)
    import_run = ImportRun.objects.create(
        kind=ImportRun.Kind.TUMOURS, file_name="matrix.csv", status=ImportRun.Status.DONE
    )
    for line, patient in enumerate([cases[OWN][0].patient, cases[OTHER_TRUST][0].patient], 2):
        QuarantinedRow.objects.create(
            run=import_run,
            line=line,
            reasons=["CR0370 PRIMARY DIAGNOSIS (ICD): “E11” is not a cancer code."],
            values={
                "nhs_number": patient.nhs_number,
                "family_name": patient.family_name,
                "given_name": patient.given_name,
                "postcode": patient.postcode,
            },
        )
    return World(trust_a, gp_practice, teams, meetings, cases, spare, import_run)


def _register(patient: Patient) -> Registration:
    """The patient's tumour in the registry, with the index's postcode (restricted or not)."""
    return Registration.objects.create(
        patient=patient,
        submitting_org="RMX",
        local_tumour_id=f"MATRIX-{patient.pk}",
        submission_date=date(2024, 3, 1),
        nhs_number=patient.nhs_number,
        family_name=patient.family_name,
        given_name=patient.given_name,
        birth_date=patient.birth_date,
        postcode=patient.postcode,
        diagnosis_date=date(2023, 5, 1),
        icd10="C34.1",
    )


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    """Built once for the module, in a transaction rolled back after its last test. Each test runs
    in a savepoint inside it (pytest-django's ``db``), so whatever a cell changes is undone."""
    with (
        django_db_blocker.unblock(),
        # conftest's fast hasher is function-scoped; the world's users are made before it applies.
        override_settings(
            PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
            MEDIA_ROOT=tmp_path_factory.mktemp("matrix-media"),  # uploaded registry files
        ),
        transaction.atomic(),
    ):
        built = _build_world()
        built.pristine = _state()
        yield built
        transaction.set_rollback(True)


def _acting_user(world: World, role: str) -> User | None:
    if role == ANONYMOUS:
        return None
    if role in TEAM_ROLES:
        core_role = {
            Role.COORDINATOR: CoreRole.COORDINATOR,
            Role.CLINICIAN: CoreRole.SURGEON,
            Role.CHAIR: CoreRole.CHAIR,
        }[role]
        return make_member(world.teams[OWN], role=role, core_role=core_role)
    if role == SUPERUSER:
        user = UserFactory(is_superuser=True, is_staff=True)
        MembershipFactory(user=user, organisation=world.trust, role=Role.ADMIN)
        return user
    user = UserFactory()
    organisation = world.practice if role == Role.GP else world.trust
    MembershipFactory(user=user, organisation=organisation, role=role)
    return user


def _url(world: World, url_name: str, scope: str) -> str:
    kind = PATH_OBJECT[url_name]
    if kind == MEETING:
        return reverse(url_name, args=[world.meetings[scope].public_id])
    if kind == CASE:
        return reverse(url_name, args=[world.cases[scope][0].public_id])
    if kind == LETTER:
        letter = Letter.objects.get(outcome__case=world.cases[scope][0])
        return reverse(url_name, args=[letter.public_id])
    if kind == IMPORT:
        return reverse(url_name, args=[world.import_run.public_id])
    return reverse(url_name)


# What the live meeting's cells need before the request, on every team's meeting (so that another
# team's is refused for its scope, not for its state): "live" puts the meeting in progress with its
# target case on the screen; "final" also ends every case (noted for information), so that the
# meeting can be concluded; "note" lists the target for information; "drafted" gives the target
# a record and a complete draft outcome; "signed" signs that outcome; "sent" gives that signed
# outcome a letter sent to the patient's practice (with a PDF naming the patient), "failed" one
# whose sending failed.
LIVE_SETUP = {
    "mdt:console": "live",
    "mdt:show_case": "live",
    "mdt:follow": "live",
    "mdt:live_state": "live",
    "mdt:attendance": "live",
    "mdt:conclude": "final",
    "mdt:meeting_summary": "live",
    "mdt:save_outcome": "live",
    "mdt:sign_outcome": "drafted",
    "mdt:amend_outcome": "signed",
    "mdt:outcome_history": "signed",
    "mdt:defer_case": "live",
    "mdt:note_case": "note",
    "mdt:withdraw_case": "live",
    "mdt:gp_letters": "sent",
    "mdt:gp_letter": "sent",
    "mdt:letter_pdf": "sent",
    "mdt:resend_letter": "failed",
    "mdt:meeting_letters": "sent",
    "mdt:meeting_letters_progress": "sent",
    "mdt:send_meeting_letters": "failed",
    "mdt:record_patient_told": "signed",
    "mdt:letter_preview": "drafted",
}
COMPLETE_OUTCOME = {
    "category": "treatment",
    "care_plan_intent": "C",
    "planned_treatments": ["01"],
    "plan": "Right upper lobectomy.",
}


def _set_up_live_meeting(world: World, url_name: str) -> None:
    setup = LIVE_SETUP.get(url_name)
    if setup is None:
        return
    now = timezone.now()
    recorder = UserFactory()
    for scope, meeting in world.meetings.items():
        target = world.cases[scope][0]
        Meeting.objects.filter(pk=meeting.pk).update(
            status=Meeting.Status.IN_PROGRESS,
            started_at=now,
            list_closed_at=now,
            current_case=target,
        )
        if setup == "final":
            Case.objects.filter(meeting=meeting).update(status=Case.Status.FOR_INFORMATION)
        if setup == "note":
            Case.objects.filter(pk=target.pk).update(triage=Case.Triage.FOR_INFORMATION)
        if setup in ("drafted", "signed", "sent", "failed"):
            snapshot = Snapshot.objects.create(patient=target.patient, reason="matrix")
            Case.objects.filter(pk=target.pk).update(snapshot=snapshot)
            signed = {"signed_at": now, "signed_by": recorder, "snapshot": snapshot}
            outcome = Outcome.objects.create(
                case=target,
                recorded_by=recorder,
                discussion_date=timezone.localdate(),
                **COMPLETE_OUTCOME,
                **(signed if setup != "drafted" else {}),
            )
            if setup != "drafted":
                Case.objects.filter(pk=target.pk).update(status=Case.Status.DISCUSSED)
            if setup in ("sent", "failed"):
                _letter(outcome, target.patient, sent=setup == "sent")
        if url_name == "mdt:send_meeting_letters":
            Meeting.objects.filter(pk=meeting.pk).update(
                status=Meeting.Status.CONCLUDED, concluded_at=now
            )


def _letter(outcome: Outcome, patient: Patient, *, sent: bool) -> Letter:
    now = timezone.now()
    letter = Letter(outcome=outcome, recipient=patient.gp_practice, created_at=now)
    if sent:
        letter.status = LetterStatus.SENT
        letter.pdf.save("letter.pdf", ContentFile(f"%PDF {patient.full_name}".encode()), save=False)
        letter.sha256, letter.rendered_at, letter.sent_at = "0" * 64, now, now
    else:
        letter.status, letter.last_error = LetterStatus.FAILED, "MESH refused the message"
    letter.save()
    return letter


def _outcome_form(revision: int) -> dict:
    return {
        "revision": str(revision),
        "discussion_date": timezone.localdate().isoformat(),
        **COMPLETE_OUTCOME,
        "action_rows": "0",
        "patient_informed": "no",
    }


def _post_data(world: World, url_name: str, scope: str) -> dict:
    if url_name == "mdt:meetings":
        return {
            "team": world.teams[scope].pk,
            "date": (timezone.localdate() + timedelta(days=60)).isoformat(),
            "time": "09:00",
            "cutoff_days": "1",
            "weeks": "1",
        }
    if url_name == "mdt:preview_patient":
        return {"nhs_number": world.spare.nhs_number}
    if url_name == "mdt:add_case":
        return {
            "nhs_number": world.spare.nhs_number,
            "question": "Confirm stage and plan treatment",
            "referrer": "Dr A Referrer",
            "triage": Case.Triage.FULL_DISCUSSION,
            "late_reason": "",
            "submission_id": "",
        }
    if url_name == "mdt:move_case":
        return {"direction": "down"}
    if url_name == "mdt:set_triage":
        return {"triage": Case.Triage.STANDARD_OF_CARE}
    if url_name == "mdt:remove_case":
        return {"reason": "Listed in error"}
    if url_name == "mdt:record_review":
        return {"role": CoreRole.RADIOLOGIST, "note": "CT reviewed", "action": "done"}
    if url_name == "mdt:patient_search":
        return {"purpose": "history", "nhs_number": world.cases[scope][0].patient.nhs_number}
    if url_name == "records:audit_log":
        return {"nhs_number": world.cases[scope][0].patient.nhs_number, "user": ""}
    if url_name == "registry:search":
        return {"purpose": "listing", "nhs_number": world.cases[scope][0].patient.nhs_number}
    if url_name == "mdt:add_registry_patient":
        fields = {
            "meeting": world.meetings[scope].public_id,
            "nhs_number": world.spare.nhs_number,
            "question": "Registry stage differs: confirm and plan",
            "referrer": "Dr A Referrer",
            "triage": Case.Triage.FULL_DISCUSSION,
            "late_reason": "",
            "submission_id": "",
        }
        return {"slot": "r1", **{f"r1-{name}": value for name, value in fields.items()}}
    if url_name == "mdt:show_case":
        return {"direction": "next"}
    if url_name == "mdt:attendance":
        return {"status": "present"}  # checking oneself in
    if url_name == "mdt:save_outcome":
        return _outcome_form(revision=0)
    if url_name == "mdt:sign_outcome":
        return _outcome_form(revision=1)
    if url_name == "mdt:amend_outcome":
        return {"reason": "The T stage was recorded wrongly"}
    if url_name in {"mdt:defer_case", "mdt:withdraw_case"}:
        return {"reason": "Awaiting PET-CT"}
    if url_name == "mdt:record_patient_told":
        return {"told_by": "Clinical nurse specialist", "told_at": ""}
    if url_name == "registry:imports":
        header = ",".join(item.number for item in cosd.TUMOUR_ITEMS)
        return {"tumours": SimpleUploadedFile("tumours.csv", f"{header}\n".encode())}
    return {}


def _shown_patients(world: World, method: str, url_name: str, scope: str, role: str):
    """The patients a 200 should show: the user's own lists, or the one looked up by number."""
    own_listed = [case.patient for case in world.cases[OWN]]
    request = (method, url_name)
    if request == ("GET", "mdt:dashboard"):
        return own_listed if role in TEAM_ROLES else []
    if request == ("GET", "mdt:meeting"):
        return own_listed
    if request in {("GET", "mdt:remove_case"), ("GET", "mdt:case")}:
        return [world.cases[scope][0].patient]
    if request == ("POST", "mdt:preview_patient"):
        return [world.spare]
    if request in {
        ("POST", "mdt:patient_search"),
        ("POST", "records:audit_log"),
        ("POST", "registry:search"),
    }:
        return [world.cases[scope][0].patient]
    if request == ("POST", "mdt:add_registry_patient"):
        return [world.spare]  # the patient being added, above the form's error
    if request in {("GET", "mdt:console"), ("GET", "mdt:meeting_summary")}:
        return own_listed  # the case on the screen, and the list
    if request == ("GET", "mdt:gp_letters"):
        return [world.cases[OWN][0].patient] if role == Role.GP else []
    if request in {
        ("GET", "mdt:gp_letter"),
        ("GET", "mdt:letter_pdf"),
        ("GET", "mdt:meeting_letters"),
        ("GET", "mdt:meeting_letters_progress"),
        ("GET", "mdt:letter_preview"),
        ("GET", "mdt:follow"),
        ("GET", "mdt:live_state"),
        ("GET", "mdt:amend_outcome"),
        ("GET", "mdt:outcome_history"),
    }:
        return [world.cases[scope][0].patient]
    return []


# The patients a successful change records in the audit log.
AUDITED_ON_CHANGE = {
    "mdt:meetings": lambda world, scope: [],
    "mdt:add_case": lambda world, scope: [world.spare],
    "mdt:close_list": lambda world, scope: [],
    "mdt:move_case": lambda world, scope: [world.cases[scope][0].patient],
    "mdt:set_triage": lambda world, scope: [world.cases[scope][0].patient],
    "mdt:remove_case": lambda world, scope: [world.cases[scope][0].patient],
    "mdt:refresh_case": lambda world, scope: [world.cases[scope][0].patient],
    "mdt:refresh_meeting": lambda world, scope: [case.patient for case in world.cases[scope]],
    "mdt:add_registry_patient": lambda world, scope: [world.spare],
    "registry:imports": lambda world, scope: [],
    "mdt:start_meeting": lambda world, scope: [],
    "mdt:show_case": lambda world, scope: [world.cases[scope][1].patient],
    "mdt:attendance": lambda world, scope: [],
    "mdt:conclude": lambda world, scope: [],
    "mdt:save_outcome": lambda world, scope: [world.cases[scope][0].patient],
    "mdt:sign_outcome": lambda world, scope: [world.cases[scope][0].patient],
    "mdt:amend_outcome": lambda world, scope: [world.cases[scope][0].patient],
    "mdt:defer_case": lambda world, scope: [world.cases[scope][0].patient],
    "mdt:note_case": lambda world, scope: [world.cases[scope][0].patient],
    "mdt:withdraw_case": lambda world, scope: [world.cases[scope][0].patient],
    "mdt:resend_letter": lambda world, scope: [world.cases[scope][0].patient],
    "mdt:send_meeting_letters": lambda world, scope: [],
    "mdt:record_patient_told": lambda world, scope: [world.cases[scope][0].patient],
}


def _identifiers(patient: Patient) -> list[str]:
    return [
        patient.nhs_number,
        format_nhs_number(patient.nhs_number),
        patient.family_name.lower(),
        patient.given_name.lower(),
    ]


def _haystack(response) -> str:
    """The body and every header, lower-cased (names are shown upper-cased: "ZEBEDEE, Ada")."""
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return f"{body.decode(errors='replace')}\n{headers}".lower()


def _assert_shows_only(
    response,
    patients: list[Patient],
    shown: list[Patient],
    where: str,
    *,
    shows_postcodes: bool = False,
):
    """``shows_postcodes``: the page may show the postcodes of the unrestricted patients shown."""
    haystack = _haystack(response)
    for patient in patients:
        if patient in shown:
            assert patient.family_name.lower() in haystack, f"{where}: {patient} missing"
        else:
            leaked = [text for text in _identifiers(patient) if text in haystack]
            assert not leaked, f"{where}: response shows {patient} ({leaked})"
        assert patient.address.lower() not in haystack, f"{where}: shows {patient}'s address"
        if not (shows_postcodes and patient in shown and not patient.restricted):
            assert patient.postcode.lower() not in haystack, f"{where}: shows {patient}'s postcode"
    assert ADDRESS_MARK.lower() not in haystack, f"{where}: shows an address"


def _state() -> tuple:
    """Everything the matrix's requests could change (the audit log is written on purpose)."""
    return (
        sorted(ImportRun.objects.values_list("pk", "kind", "status", "requested_by_id")),
        Registration.objects.count(),
        sorted(
            Meeting.objects.values_list(
                "pk",
                "team_id",
                "starts_at",
                "status",
                "list_closed_by_id",
                "refresh_requested_at",
                "current_case_id",
                "concluded_by_id",
            )
        ),
        sorted(
            Case.objects.values_list(
                "pk",
                "meeting_id",
                "patient_id",
                "position",
                "triage",
                "status",
                "removed_by_id",
                "population_requested_at",
                "deferred_by_id",
                "noted_by_id",
                "carried_over_to_id",
            )
        ),
        sorted(
            Outcome.objects.values_list(
                "pk", "case_id", "amendment_no", "revision", "recorded_by_id", "signed_by_id"
            )
        ),
        sorted(Attendance.objects.values_list("meeting_id", "user_id", "status", "left_at")),
        sorted(Review.objects.values_list("case_id", "role", "reviewer_id", "note", "done_at")),
        # Not read_at: a GP opening a letter marks it read, which is reading, not a change.
        sorted(Letter.objects.values_list("pk", "status", "attempts")),
        sorted(PatientTold.objects.values_list("case_id", "told_by", "recorded_by_id")),
    )


def _check_intended_change(world: World, url_name: str, scope: str, user: User) -> str:
    """Asserts the successful request's change; returns the page it should redirect to."""
    if url_name == "registry:imports":
        created = ImportRun.objects.exclude(pk=world.import_run.pk)
        assert [(run.kind, run.status, run.requested_by) for run in created] == [
            (ImportRun.Kind.TUMOURS, ImportRun.Status.QUEUED, user)
        ]
        return reverse("registry:import", args=[created.get().public_id])
    # Fresh copies: the world's objects are shared by every cell of the module.
    meeting = Meeting.objects.get(pk=world.meetings[scope].pk)
    target = Case.objects.get(pk=world.cases[scope][0].pk)
    if url_name == "mdt:meetings":
        created = Meeting.objects.exclude(pk__in=[m.pk for m in world.meetings.values()])
        assert [m.team_id for m in created] == [world.teams[scope].pk]
        return reverse("mdt:meeting", args=[created.get().public_id])
    letter_change = _check_letter_change(meeting, target, url_name, user)
    if letter_change:
        return letter_change
    live_change = _check_live_change(meeting, target, url_name, user)
    if live_change:
        return live_change
    if url_name in {"mdt:add_case", "mdt:add_registry_patient"}:
        added = Case.objects.get(meeting=meeting, patient=world.spare)
        assert (added.status, added.added_by) == (Case.Status.LISTED, user)
    elif url_name == "mdt:close_list":
        assert (meeting.status, meeting.list_closed_by) == (Meeting.Status.LIST_CLOSED, user)
    elif url_name == "mdt:move_case":
        assert target.position == 2
    elif url_name == "mdt:set_triage":
        assert target.triage == Case.Triage.STANDARD_OF_CARE
    elif url_name == "mdt:remove_case":
        assert (target.status, target.removed_by) == (Case.Status.REMOVED, user)
    elif url_name == "mdt:refresh_case":
        assert target.population_requested_at is not None
        return reverse("mdt:case", args=[target.public_id])
    elif url_name == "mdt:refresh_meeting":
        assert meeting.refresh_requested_at is not None
        assert all(c.population_requested_at for c in meeting.cases.listed())
    else:
        raise AssertionError(f"{url_name} has no expected change")
    return reverse("mdt:meeting", args=[meeting.public_id])


def _check_letter_change(meeting: Meeting, target: Case, url_name: str, user: User) -> str:
    """The letters' changes; returns where the request should redirect ("" if another)."""
    if url_name in {"mdt:resend_letter", "mdt:send_meeting_letters"}:
        assert Letter.objects.get(outcome__case=target).status == LetterStatus.QUEUED
        return reverse("mdt:meeting", args=[meeting.public_id]) + "#letters"
    if url_name == "mdt:record_patient_told":
        told = PatientTold.objects.get(case=target)
        assert (told.told_by, told.recorded_by) == ("Clinical nurse specialist", user)
        return reverse("mdt:outcome_history", args=[target.public_id]) + "#patient-told"
    return ""


def _check_live_change(meeting: Meeting, target: Case, url_name: str, user: User) -> str:
    """The live meeting's changes; returns where the request should redirect ("" if another)."""
    console = reverse("mdt:console", args=[meeting.public_id])
    on_console = f"{console}?case={target.public_id}#outcome"
    outcomes = list(target.outcomes.order_by("amendment_no"))
    if url_name == "mdt:start_meeting":
        assert (meeting.status, meeting.started_by) == (Meeting.Status.IN_PROGRESS, user)
        return console
    if url_name == "mdt:show_case":
        assert meeting.current_case.position == 2
        return console
    if url_name == "mdt:attendance":
        attendance = Attendance.objects.get(meeting=meeting)
        assert (attendance.user, attendance.status) == (user, Attendance.Status.PRESENT)
        return reverse("mdt:follow", args=[meeting.public_id])
    if url_name == "mdt:conclude":
        assert (meeting.status, meeting.concluded_by) == (Meeting.Status.CONCLUDED, user)
        return reverse("mdt:meeting_summary", args=[meeting.public_id])
    if url_name == "mdt:save_outcome":
        assert [(o.recorded_by, o.is_signed) for o in outcomes] == [(user, False)]
    elif url_name == "mdt:sign_outcome":
        assert [o.signed_by for o in outcomes] == [user]
        assert target.status == Case.Status.DISCUSSED
    elif url_name == "mdt:amend_outcome":
        assert [(o.amendment_no, o.is_signed) for o in outcomes] == [(0, True), (1, False)]
    elif url_name == "mdt:defer_case":
        assert (target.status, target.deferred_by) == (Case.Status.DEFERRED, user)
    elif url_name == "mdt:note_case":
        assert (target.status, target.noted_by) == (Case.Status.FOR_INFORMATION, user)
    elif url_name == "mdt:withdraw_case":
        assert (target.status, target.removed_by) == (Case.Status.REMOVED, user)
    else:
        return ""
    return on_console


def _cells():
    for request, scope, *statuses in MATRIX:
        method, url_name = request.split()
        by_role = dict(zip(ROLES, statuses, strict=True))
        by_role[SUPERUSER] = by_role[Role.ADMIN]
        for role, status in by_role.items():
            yield pytest.param(
                method, url_name, scope, str(role), status, id=f"{method}-{url_name}-{scope}-{role}"
            )


@pytest.mark.parametrize(("method", "url_name", "scope", "role", "expected"), list(_cells()))
def test_access_matrix(db, client, world, method, url_name, scope, role, expected):
    assert _state() == world.pristine, "an earlier cell's changes were not rolled back"
    _set_up_live_meeting(world, url_name)
    before = _state()
    user = _acting_user(world, role)
    if user is not None:
        client.force_login(user)
    url = _url(world, url_name, scope)
    last_event = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, _post_data(world, url_name, scope))

    cell = f"{method} {url_name} as {role}, {scope}"
    assert response.status_code == expected, f"{cell}: {response.status_code}, not {expected}"

    shown = _shown_patients(world, method, url_name, scope, role) if expected == 200 else []
    shows_postcodes = (method, url_name) == ("POST", "registry:search")
    _assert_shows_only(response, world.patients, shown, cell, shows_postcodes=shows_postcodes)

    audited = set()
    for patient_ids in AuditEvent.objects.filter(id__gt=last_event).values_list(
        "patient_ids", flat=True
    ):
        audited.update(patient_ids)
    changed = expected == 302 and user is not None
    should_audit = AUDITED_ON_CHANGE[url_name](world, scope) if changed else shown
    assert audited == {p.pk for p in should_audit}, f"{cell}: audited patients {audited}"

    if user is None:
        login = reverse("accounts:login")
        assert response["Location"] == f"{login}?next={url}", cell
    if changed:
        assert _state() != before, f"{cell}: redirected but changed nothing"
        assert response["Location"] == _check_intended_change(world, url_name, scope, user)
    else:
        assert _state() == before, f"{cell}: changed data"


@pytest.mark.parametrize("role", [Role.GP, Role.ADMIN, "no role"])
def test_team_membership_without_a_team_role_shows_no_patient(db, client, world, role):
    """Only coordinators, clinicians and chairs see a team's patients through team membership.

    A GP's access is by the practice a letter was sent to, and an administrator manages teams and
    members (in the Django admin) without seeing patients; neither may become a viewer of patient
    lists by being put on a team. A user with no role (say, one whose trust role was removed)
    sees nothing either.
    """
    user = UserFactory()
    if role != "no role":
        MembershipFactory(user=user, organisation=world.trust, role=role)
    TeamMember.objects.create(team=world.teams[OWN], user=user, core_role=CoreRole.OTHER)
    client.force_login(user)

    meeting_page = client.get(reverse("mdt:meeting", args=[world.meetings[OWN].public_id]))
    dashboard = client.get(reverse("mdt:dashboard"))

    assert (meeting_page.status_code, dashboard.status_code) == (404, 200)
    _assert_shows_only(meeting_page, world.patients, [], f"meeting page as a {role} team member")
    _assert_shows_only(dashboard, world.patients, [], f"dashboard as a {role} team member")


def test_patient_data_is_not_in_the_django_admin(db, client, world):
    """ADR-003 and the hazard log (H5, H6): patients, meetings and cases are not registered in the
    admin, not even as inlines, so a superuser cannot read them there."""
    hidden = {Patient, Meeting, Case}
    assert not [model for model in hidden if admin.site.is_registered(model)]
    for model, model_admin in admin.site._registry.items():
        inlines = {inline.model for inline in model_admin.inlines}
        assert not inlines & hidden, f"{model.__name__}'s admin shows {inlines & hidden}"

    client.force_login(_acting_user(world, SUPERUSER))
    for model in hidden:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 404, url
    pages = [reverse("admin:index")] + [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
    ]
    pages.append(reverse("admin:mdt_team_change", args=[world.teams[OWN].pk]))
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        _assert_shows_only(response, world.patients, [], f"admin page {page}")


def test_matrix_is_well_formed():
    """One row per request and scope, a status for every role, object URLs in every scope, and
    every URL tried with both GET and POST (a method the view does not take is 405)."""
    seen = set()
    for request, scope, *statuses in MATRIX:
        method, url_name = request.split()
        assert method in {"GET", "POST"}, request
        assert url_name in PATH_OBJECT, f"{url_name}: say what its path names in PATH_OBJECT"
        assert len(statuses) == len(ROLES), request
        assert set(statuses) <= {200, 302, 403, 404, 405}, request
        assert statuses[-1] == 302, f"{request}: anonymous is always sent to the login page"
        assert (method, url_name, scope) not in seen, f"duplicate row {request} {scope}"
        seen.add((method, url_name, scope))
        if 302 in statuses[:-1]:
            assert method == "POST" and url_name in AUDITED_ON_CHANGE, request
    for url_name, kind in PATH_OBJECT.items():
        for method in ("GET", "POST"):
            scopes = {scope for m, name, scope in seen if (m, name) == (method, url_name)}
            if kind is None:
                assert scopes in ({NO_OBJECT}, set(SCOPES)), f"{method} {url_name}: {scopes}"
            elif kind == IMPORT:
                assert scopes == {REGION}, f"{method} {url_name}: an import has no team"
            else:
                assert scopes == set(SCOPES), f"{method} {url_name} needs every scope: {scopes}"


def _named_urls(resolver: URLResolver, prefix: str = ""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            namespace = f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
            yield from _named_urls(pattern, namespace)
        elif pattern.name:
            yield f"{prefix}{pattern.name}"


def test_every_mdt_records_and_registry_url_is_in_the_matrix():
    apps = {"mdt", "records", "registry"}
    names = {name for name in _named_urls(get_resolver()) if name.split(":")[0] in apps}
    in_matrix = {request.split()[1] for request, *_ in MATRIX}
    assert {"mdt:dashboard", "records:audit_log", "registry:search"} <= names  # reached all three
    assert names - in_matrix == set(), "add these URLs to MATRIX (and PATH_OBJECT)"
    assert in_matrix - names == set(), "MATRIX names URLs that no longer exist"
    assert set(PATH_OBJECT) == names, "PATH_OBJECT must list exactly the apps' URLs"
