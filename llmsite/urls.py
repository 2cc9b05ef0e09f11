"""Root URLs: each app mounts its own; health and docs live here."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from dashboard import urls as dashboard_urls
from llmsite.health import HealthzApi, ReadyzApi
from llmsite.views import api_docs, documents, home

urlpatterns = [
    path("", home, name="home"),
    path("documents/", documents, name="documents"),
    path("healthz", HealthzApi.as_view(), name="healthz"),
    path("readyz", ReadyzApi.as_view(), name="readyz"),
    path("metrics", include(dashboard_urls.prometheus_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", api_docs, name="api-docs"),
    path("admin/", admin.site.urls),
    path("dashboard/", include(dashboard_urls.page_urlpatterns)),
    path("usage/", include("usage.page_urls")),
    path("arena/", include("arena.page_urls")),
    path("accounts/", include("accounts.page_urls")),
    path("api/v1/auth/", include("accounts.urls")),
    path("api/v1/embed/", include("embeddings.urls")),
    path("api/v1/training/", include("training.urls")),
    path("api/v1/evaluations", include("evaluation.urls")),
    path("evaluations/", include("evaluation.page_urls")),
    path("api/v1/feedback", include("feedback.urls")),
    path("api/v1/arena/", include("arena.urls")),
    path("api/v1/metrics", include(dashboard_urls.api_urlpatterns)),
    path("api/v1/", include("usage.urls")),
    path("api/v1/", include("conversations.urls")),
    path("api/v1/models/", include("evaluation.model_urls")),  # promote, rollback: before inference's models/
    path("api/v1/", include("inference.urls")),
    path("v1/", include("inference.openai_urls")),
]
