from django.contrib import admin

from dashboard.models import RequestMetric


@admin.register(RequestMetric)
class RequestMetricAdmin(admin.ModelAdmin):
    """Read-only: rows come from the metrics middleware and go with the retention."""

    list_display = ["created", "method", "endpoint", "status", "latency_ms", "streamed", "user"]
    list_filter = ["method", "status", "streamed"]
    search_fields = ["endpoint"]
    date_hierarchy = "created"
    list_select_related = ["user"]
    show_full_result_count = False  # counting a large table on every page view is the slow part

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
