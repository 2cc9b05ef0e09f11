"""Dashboard routes; llmsite/urls.py mounts each at its place (/dashboard/, /api/v1/metrics, /metrics)."""

from django.urls import path

from dashboard import apis, views

page_urlpatterns = [path("", views.dashboard_page, name="dashboard")]
api_urlpatterns = [path("", apis.MetricsApi.as_view(), name="dashboard-metrics")]
prometheus_urlpatterns = [path("", apis.PrometheusApi.as_view(), name="prometheus-metrics")]
