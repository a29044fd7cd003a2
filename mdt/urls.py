from django.urls import path

from . import views, views_letters, views_live, views_review

app_name = "mdt"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("meetings/", views.meeting_list, name="meetings"),
    path("meetings/<uuid:public_id>/", views.meeting_detail, name="meeting"),
    path("meetings/<uuid:public_id>/preview/", views.preview_patient, name="preview_patient"),
    path("meetings/<uuid:public_id>/cases/", views.add_case, name="add_case"),
    path("meetings/<uuid:public_id>/close/", views.close_list, name="close_list"),
    path("meetings/<uuid:public_id>/refresh/", views.refresh_meeting, name="refresh_meeting"),
    path(
        "meetings/<uuid:public_id>/refresh/progress/",
        views.meeting_refresh_progress,
        name="refresh_progress",
    ),
    path("cases/<uuid:public_id>/", views.case_detail, name="case"),
    path("cases/<uuid:public_id>/refresh/", views.refresh_case, name="refresh_case"),
    path("cases/<uuid:public_id>/move/", views.move_case, name="move_case"),
    path("cases/<uuid:public_id>/triage/", views.set_triage, name="set_triage"),
    path("cases/<uuid:public_id>/remove/", views.remove_case, name="remove_case"),
    # Reviews before the meeting (mdt/views_review.py)
    path("cases/<uuid:public_id>/reviews/", views_review.record_review, name="record_review"),
    # The live meeting (mdt/views_live.py)
    path("meetings/<uuid:public_id>/start/", views_live.start_meeting, name="start_meeting"),
    path("meetings/<uuid:public_id>/console/", views_live.console, name="console"),
    path("meetings/<uuid:public_id>/console/show/", views_live.show_case, name="show_case"),
    path("meetings/<uuid:public_id>/live/", views_live.follow, name="follow"),
    path("meetings/<uuid:public_id>/live/state/", views_live.live_state, name="live_state"),
    path("meetings/<uuid:public_id>/attendance/", views_live.attendance, name="attendance"),
    path("meetings/<uuid:public_id>/conclude/", views_live.conclude, name="conclude"),
    path("meetings/<uuid:public_id>/summary/", views_live.meeting_summary, name="meeting_summary"),
    path("cases/<uuid:public_id>/outcome/", views_live.save_outcome, name="save_outcome"),
    path("cases/<uuid:public_id>/outcome/sign/", views_live.sign_outcome, name="sign_outcome"),
    path("cases/<uuid:public_id>/outcome/amend/", views_live.amend_outcome, name="amend_outcome"),
    path("cases/<uuid:public_id>/outcomes/", views_live.outcome_history, name="outcome_history"),
    path("cases/<uuid:public_id>/defer/", views_live.defer_case, name="defer_case"),
    path("cases/<uuid:public_id>/note/", views_live.note_case, name="note_case"),
    path("cases/<uuid:public_id>/withdraw/", views_live.withdraw_case, name="withdraw_case"),
    # Letters to GPs (mdt/views_letters.py)
    path("letters/", views_letters.gp_letters, name="gp_letters"),
    path("letters/<uuid:public_id>/", views_letters.gp_letter, name="gp_letter"),
    path("letters/<uuid:public_id>/pdf/", views_letters.letter_pdf, name="letter_pdf"),
    path("letters/<uuid:public_id>/resend/", views_letters.resend_letter, name="resend_letter"),
    path(
        "meetings/<uuid:public_id>/letters/", views_letters.meeting_letters, name="meeting_letters"
    ),
    path(
        "meetings/<uuid:public_id>/letters/progress/",
        views_letters.meeting_letters_progress,
        name="meeting_letters_progress",
    ),
    path(
        "meetings/<uuid:public_id>/letters/send/",
        views_letters.send_meeting_letters,
        name="send_meeting_letters",
    ),
    path(
        "cases/<uuid:public_id>/patient-told/",
        views_letters.record_patient_told,
        name="record_patient_told",
    ),
    path(
        "cases/<uuid:public_id>/letter-preview/",
        views_letters.letter_preview,
        name="letter_preview",
    ),
    path(
        "reports/letter-turnaround/",
        views_letters.letter_turnaround,
        name="letter_turnaround",
    ),
    path("patients/search/", views.patient_search, name="patient_search"),
    path("cases/from-registry/", views.add_registry_patient, name="add_registry_patient"),
]
