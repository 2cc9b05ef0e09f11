from django import forms
from django.contrib import admin, messages
from django.db.models import Count

from inference import services
from inference.models import Conversation, InferenceRecord, Message, ProviderConfig
from inference.providers.base import ProviderUnavailable
from inference.registry import ProviderSpec, check_spec
from llmsite.admin_csv import csv_export_action
from llmsite.errors import ApplicationError


class ProviderConfigForm(forms.ModelForm):
    class Meta:
        model = ProviderConfig
        fields = ["provider", "model", "device", "parameters", "active"]

    def clean(self):
        data = super().clean()
        if data.get("active") and data.get("provider") and data.get("model"):
            try:
                check_spec(ProviderSpec(data["provider"], data["model"], data.get("device") or "auto"))
            except ProviderUnavailable as exc:
                raise forms.ValidationError(exc.message) from exc
        return data


@admin.register(ProviderConfig)
class ProviderConfigAdmin(admin.ModelAdmin):
    form = ProviderConfigForm
    list_display = ["provider", "model", "device", "active", "version", "applied_version", "state", "updated_at"]
    list_filter = ["provider", "active", "device", "state"]
    search_fields = ["model"]
    readonly_fields = ["version", "applied_version", "state", "state_detail", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        if not obj.active:
            super().save_model(request, obj, form, change)
            return
        # Activating goes through the one switching service: load here, swap, tell the other servers.
        try:
            services.provider_activate(
                provider=obj.provider,
                model=obj.model,
                device=obj.device,
                parameters=obj.parameters,
                config=obj if obj.pk else None,
                load_here=True,
            )
        except ApplicationError as exc:
            obj.active = False
            super().save_model(request, obj, form, change)
            self.message_user(request, f"Saved but not activated: {exc.message}", level=messages.ERROR)
        else:
            self.message_user(request, f"Now serving {obj.provider}:{obj.model}.", level=messages.SUCCESS)


@admin.register(InferenceRecord)
class InferenceRecordAdmin(admin.ModelAdmin):
    list_display = [
        "created",
        "user",
        "source",
        "provider",
        "model",
        "status",
        "cached",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "ttft_ms",
    ]
    list_filter = ["status", "cached", "source", "provider", "model"]
    search_fields = ["request_id", "user__username", "model", "error"]
    date_hierarchy = "created"
    list_select_related = ["user"]
    readonly_fields = [f.name for f in InferenceRecord._meta.fields]

    def has_add_permission(self, request):
        return False


# --- conversations -------------------------------------------------------------------------------

MESSAGE_FIELDS = ["role", "content", "provider", "model", "prompt_tokens", "completion_tokens", "finish_reason"]


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
