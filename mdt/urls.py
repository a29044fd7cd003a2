from django.urls import path

from . import views

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
    path("patients/search/", views.patient_search, name="patient_search"),
    path("cases/from-registry/", views.add_registry_patient, name="add_registry_patient"),
]
