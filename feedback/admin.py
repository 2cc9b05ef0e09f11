from django.contrib import admin

from feedback.models import Feedback
from llmsite.admin_csv import csv_export_action

SNIPPET_CHARS = 80

CSV_COLUMNS = [
    ("id", "pk"),
    ("created", "created"),
    ("user", "user.username"),
    ("rating", "rating"),
    ("comment", "comment"),
    ("provider", "provider"),
    ("model", "model"),
    ("message", "message_id"),
    ("conversation", lambda f: f.message.conversation_id if f.message_id else None),
    ("prompt", "prompt"),
    ("response", "response"),
]


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["created", "user", "rating", "comment_snippet", "provider", "model", "message"]
    list_filter = ["rating", "provider", "model", "created"]
    search_fields = ["comment", "prompt", "response", "model", "user__username"]
    date_hierarchy = "created"
    list_select_related = ["user", "message__conversation"]
    actions = [csv_export_action(CSV_COLUMNS, name="feedback")]
    # Read-only: feedback is what users said; editing here would also skip the sanitiser.
    readonly_fields = [f.name for f in Feedback._meta.fields]

    @admin.display(description="comment")
    def comment_snippet(self, obj: Feedback) -> str:
        # Plain text, autoescaped by the admin like every other value.
        comment = obj.comment or ""
        return comment if len(comment) <= SNIPPET_CHARS else comment[: SNIPPET_CHARS - 1] + "…"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
