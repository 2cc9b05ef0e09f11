"""OpenAPI description of the metrics scrape token (drf-spectacular extension, loaded in DashboardConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class MetricsTokenScheme(OpenApiAuthenticationExtension):
    target_class = "dashboard.apis.MetricsTokenAuthentication"
    name = "metricsToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "the METRICS_TOKEN setting (GET /metrics only)"}
