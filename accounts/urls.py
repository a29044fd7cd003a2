from django.urls import path

from . import session_views, views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("session/", session_views.session_status, name="session_status"),
    path("session/stay-signed-in/", session_views.stay_signed_in, name="stay_signed_in"),
]
