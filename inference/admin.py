from django import forms
from django.contrib import admin, messages

from inference import services
from inference.models import InferenceRecord, ProviderConfig
from inference.providers.base import ProviderUnavailable
from inference.registry import ProviderSpec, check_spec
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
