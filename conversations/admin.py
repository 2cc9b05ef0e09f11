"""Conversations and messages in the admin: browse, search, export as CSV; what was said is read-only."""

from django.contrib import admin
from django.db.models import Count

from conversations.models import Conversation, Message
from llmsite.admin_csv import csv_export_action

MESSAGE_FIELDS = [
    "role",
    "content",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "finish_reason",
    "tool_calls",
    "sources",
]


class MessageInline(admin.TabularInline):
    model = Message
    fields = [*MESSAGE_FIELDS, "created"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "user", "messages_count", "created", "updated"]
    list_filter = ["created", "updated", "messages__model"]
    search_fields = ["title", "user__username", "messages__content"]
    date_hierarchy = "updated"
    list_select_related = ["user"]
    readonly_fields = ["user", "created", "updated"]
    fields = ["title", "user", "created", "updated"]
    inlines = [MessageInline]
    actions = [
        csv_export_action(
            [
                ("id", "pk"),
                ("user", "user.username"),
                ("title", "title"),
                ("messages", "messages_count"),
                ("created", "created"),
                ("updated", "updated"),
            ],
            name="conversations",
        )
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(messages_count=Count("messages"))

    @admin.display(description="messages", ordering="messages_count")
    def messages_count(self, obj: Conversation) -> int:
        return obj.messages_count

    def has_add_permission(self, request):
        return False  # conversations start from the chat page or the API


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "created",
        "conversation",
        "user",
        "role",
        "snippet",
        "provider",
        "model",
        "completion_tokens",
    ]
    list_filter = ["role", "provider", "model", "created"]
    search_fields = ["content", "conversation__title", "conversation__user__username", "model", "completion_id"]
    date_hierarchy = "created"
    list_select_related = ["conversation__user"]
    readonly_fields = [f.name for f in Message._meta.fields]
    actions = [
        csv_export_action(
            [
                ("id", "pk"),
                ("conversation", "conversation_id"),
                ("user", "conversation.user.username"),
                ("created", "created"),
                *[(name, name) for name in MESSAGE_FIELDS],
                ("completion_id", "completion_id"),
            ],
            name="messages",
        )
    ]

    @admin.display(description="text")
    def snippet(self, obj: Message) -> str:
        return obj.content[:80]

    @admin.display(description="user", ordering="conversation__user__username")
    def user(self, obj: Message) -> str:
        return obj.conversation.user.get_username()

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # what was said stays as it was said; delete instead
