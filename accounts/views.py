"""Browser pages: session login with attempt limits, and registration."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import FormView

from accounts import services
from accounts.forms import RegisterForm
from accounts.ratelimits import RateLimited, check_login_rate_limit, check_rate_limit
from llmsite.errors import ApplicationError


def _too_many(view: Any, request: HttpRequest, exc: RateLimited, form: Any) -> HttpResponse:
    context = view.get_context_data(form=form, rate_limited=f"Too many attempts; try again in {exc.wait} seconds.")
    response = view.render_to_response(context, status=429)
    response["Retry-After"] = str(exc.wait)
    return response


class LoginPage(LoginView):
    """Django's LoginView, counting each POST against RATELIMIT_LOGIN per client IP and per username."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = request.POST.get("username", "")
        try:
            check_login_rate_limit(request, username)
        except RateLimited as exc:
            # An unbound form: validating it would try the password, which is what the limit forbids.
            form = self.get_form_class()(request=request, initial={"username": username})
            return _too_many(self, request, exc, form)
        return super().post(request, *args, **kwargs)


class RegisterPage(FormView):
    """Create an account, log it in, and go on to `next` (or LOGIN_REDIRECT_URL)."""

    template_name = "registration/register.html"
    form_class = RegisterForm

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            check_rate_limit(request, "register", rate_setting="RATELIMIT_LOGIN")
        except RateLimited as exc:
            return _too_many(self, request, exc, self.form_class())
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(next=self._next_url(), **kwargs)

    def form_valid(self, form: RegisterForm) -> HttpResponse:
        try:
            user = services.user_register(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                email=form.cleaned_data.get("email") or "",
            )
        except ApplicationError as exc:
            form.add_error("password2" if exc.field == "password" else exc.field, exc.message)
            return self.form_invalid(form)
        login(self.request, user, backend="django.contrib.auth.backends.ModelBackend")
        return HttpResponseRedirect(self._next_url() or settings.LOGIN_REDIRECT_URL)

    def _next_url(self) -> str:
        url = self.request.POST.get("next") or self.request.GET.get("next") or ""
        safe = url_has_allowed_host_and_scheme(
            url, allowed_hosts={self.request.get_host()}, require_https=self.request.is_secure()
        )
        return url if safe else ""
