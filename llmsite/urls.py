"""Root URLs: each app mounts its own; health and docs live here."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from llmsite.health import HealthzApi, ReadyzApi
from llmsite.views import home

urlpatterns = [
    path("", home, name="home"),
    path("healthz", HealthzApi.as_view(), name="healthz"),
    path("readyz", ReadyzApi.as_view(), name="readyz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.page_urls")),
    path("api/v1/auth/", include("accounts.urls")),
    path("api/v1/embed/", include("embeddings.urls")),
    path("api/v1/training/", include("training.urls")),
    path("api/v1/feedback", include("feedback.urls")),
    path("api/v1/", include("inference.urls")),
    path("v1/", include("inference.openai_urls")),
]
