from django.urls import path

from . import views

app_name = "registry"
urlpatterns = [
    path("search/", views.search, name="search"),
    path("imports/", views.imports, name="imports"),
    path("imports/<int:pk>/", views.import_run, name="import"),
]
