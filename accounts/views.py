"""Sign in and sign out, with the NHS.UK look."""

from django.contrib.auth import views as auth_views
from django.utils import timezone

from .session_limits import LAST_SEEN, LOGIN_AT


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.jinja"
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        now = timezone.now().isoformat()
        self.request.session[LOGIN_AT] = now
        self.request.session[LAST_SEEN] = now
        return response


class LogoutView(auth_views.LogoutView):
    pass
