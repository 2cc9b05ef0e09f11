from django.apps import AppConfig


class DashboardConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "dashboard"

    def ready(self) -> None:
        from django.contrib import admin

        from dashboard import checks, schema, signals  # noqa: F401 - system checks, OpenAPI auth scheme, receivers

        # The admin home links to the dashboard (unless the site already uses its own index page).
        if admin.site.index_template is None:
            admin.site.index_template = "dashboard/admin_index.html"
