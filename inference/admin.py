from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from inference import selectors, services
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


class PoolActionForm(forms.Form):
    """A Load or Unload button of the model pool page."""

    model = forms.CharField(max_length=500)
    action = forms.ChoiceField(choices=[("load", "Load"), ("unload", "Unload")])


@admin.register(ProviderConfig)
class ProviderConfigAdmin(admin.ModelAdmin):
    """The active configuration (the default model), and the model pool page linked from its list."""

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

    # --- the model pool: every callable model, staff load and unload them -------------------
    def get_urls(self):
        pool = path("pool/", self.admin_site.admin_view(self.pool_view), name="inference_providerconfig_pool")
        return [pool, *super().get_urls()]

    def pool_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the pool as a table (models_list). POST: load or unload one model, then back here with a message."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_change_permission(request):
                raise PermissionDenied
            self._pool_action(request)
            return HttpResponseRedirect(reverse("admin:inference_providerconfig_pool"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Model pool",
            "rows": [_pool_row_for_display(row) for row in selectors.models_list()],
            "can_change": self.has_change_permission(request),
        }
        return TemplateResponse(request, "admin/inference/model_pool.html", context)

    def _pool_action(self, request: HttpRequest) -> None:
        form = PoolActionForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "Pick a model and Load or Unload.", level=messages.ERROR)
            return
        model, action = form.cleaned_data["model"], form.cleaned_data["action"]
        try:
            row = services.model_load(model) if action == "load" else services.model_unload(model)
        except ApplicationError as exc:
            self.message_user(request, f"Could not {action} {model}: {exc.message}", level=messages.ERROR)
            return
        if action == "load":
            self.message_user(request, f"Loaded {model}.", level=messages.SUCCESS)
        elif row.get("state") == "loaded":  # answers are running on it: it goes when they end
            self.message_user(request, f"{model} unloads when its running answers end.", level=messages.WARNING)
        else:
            self.message_user(request, f"Unloaded {model}.", level=messages.SUCCESS)


def _pool_row_for_display(row: dict[str, Any]) -> dict[str, Any]:
    """A models_list row as the pool page shows it: last use as a datetime, buttons for the models that load."""
    last_used = row.get("last_used")
    return {
        **row,
        "last_used": datetime.fromisoformat(last_used) if last_used else None,
        "loadable": row["kind"] in ("local", "remote"),
    }


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
