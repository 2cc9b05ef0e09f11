"""Browser pages under /accounts/: login (rate-limited), register, and Django's logout and password change."""

from django.urls import include, path

from accounts import views

urlpatterns = [
    # Before django.contrib.auth.urls, so this login view (with attempt limits) is the one served.
    path("login/", views.LoginPage.as_view(), name="login"),
    path("register/", views.RegisterPage.as_view(), name="register"),
    path("", include("django.contrib.auth.urls")),
]
