from django.urls import path

from . import views

app_name = "registry"
urlpatterns = [
    path("search/", views.search, name="search"),
    path("imports/", views.imports, name="imports"),
    path("imports/<uuid:public_id>/", views.import_run, name="import"),
]
