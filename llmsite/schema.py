"""The OpenAPI schema's shared parts: the error bodies, and the errors every operation declares.

`AutoSchema` (settings: `DEFAULT_SCHEMA_CLASS`) adds to each operation the error statuses its
view answers with whatever it does — 400 for a body or query it parses, 401 when it needs
credentials, 403 for staff-only operations and API key scopes, 404 for a path naming an object,
413 and 415 for a body — and gives every declared error the error body of its path (ours, or
OpenAI's under `/v1/`). Views declare only what is theirs (409, 429, 503, ...), usually as
`OpenApiResponse(description=...)`. `make fuzz` checks the result against the running site.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from accounts.permissions import IsStaff


class ErrorDetailSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ErrorDetail"

    code = serializers.CharField(help_text="stable; docs/api.md lists every code")
    message = serializers.CharField(help_text="what went wrong and what to fix, for people")
    field = serializers.CharField(required=False, help_text="the input at fault, as a dotted path")
    details = serializers.JSONField(required=False, help_text="a validation error's detail for every field")


class ErrorSerializer(serializers.Serializer):
    """`{"error": {...}}` (llmsite.errors.error_body); some errors add members, e.g. a quota's `limit`."""

    class Meta:
        ref_name = "Error"

    error = ErrorDetailSerializer()


class OpenAIErrorDetailSerializer(serializers.Serializer):
    class Meta:
        ref_name = "OpenAIErrorDetail"

    message = serializers.CharField()
    type = serializers.CharField(help_text="invalid_request_error, authentication_error, ...")
    param = serializers.CharField(allow_null=True, help_text="the input at fault")
    code = serializers.CharField(allow_null=True)


class OpenAIErrorSerializer(serializers.Serializer):
    """OpenAI's error shape, under `/v1/` (llmsite.errors.openai_error_body)."""

    class Meta:
        ref_name = "OpenAIError"

    error = OpenAIErrorDetailSerializer()


# What an operation that runs a model (a completion, an embedding) may answer besides its own errors.
MODEL_ERRORS = {
    429: OpenApiResponse(description="a usage limit would be crossed (`quota_exceeded`); see Retry-After"),
    502: OpenApiResponse(description="the model's provider failed (`provider_error`, `upstream_*`)"),
    503: OpenApiResponse(description="the model cannot answer now: not loaded, loading, busy (the message says why)"),
    504: OpenApiResponse(description="a remote provider timed out (`upstream_timeout`)"),
}


def event_stream(description: str) -> OpenApiResponse:
    """A `text/event-stream` answer; its schema is one event's (OpenAPI 3.2's convention for SSE)."""
    event = {
        "type": "object",
        "properties": {
            "event": {"type": "string", "description": "the event's name; `message` when the frame names none"},
            "data": {"type": "string", "description": "the payload: one line of JSON (or `[DONE]`)"},
        },
        "required": ["data"],
    }
    return OpenApiResponse(event, description=description)


class StrictSerializerExtension(OpenApiSerializerExtension):
    """A StrictSerializer's input refuses fields it does not declare: `additionalProperties: false`.

    `Meta.one_of`, groups of fields of which a request gives exactly one (the group's first field is
    then required, and no field of another group may come), becomes the schema's `oneOf`.
    """

    target_class = "llmsite.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: openapi.AutoSchema, direction: Any) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
            groups = getattr(getattr(self.target, "Meta", None), "one_of", ())
            if groups:
                schema["oneOf"] = [_only(group, groups) for group in groups]
        return schema


def _only(group: tuple[str, ...], groups: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    others = [name for other in groups if other is not group for name in other]
    return {"required": [group[0]], "not": {"anyOf": [{"required": [name]} for name in others]}}


BODY_METHODS = ("POST", "PUT", "PATCH")


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's, plus the common errors of each operation and the bounds of nested lists."""

    def _map_serializer_field(self, field: Any, direction: Any, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # drf-spectacular leaves out the bounds of a nested list (`Item(many=True, max_length=...)`).
        if isinstance(field, serializers.ListSerializer) and schema and schema.get("type") == "array":
            if field.max_length is not None:
                schema["maxItems"] = field.max_length
            if field.min_length is not None or not field.allow_empty:
                schema["minItems"] = max(field.min_length or 0, 0 if field.allow_empty else 1)
        return schema

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for status, description in self._common_errors().items():
            responses.setdefault(status, {"description": description})
        body = self.resolve_serializer(
            OpenAIErrorSerializer if self.path.startswith("/v1/") else ErrorSerializer, "response"
        )
        for status, response in responses.items():
            if status >= "400" and "content" not in response:
                response["content"] = {"application/json": {"schema": body.ref}}
        return dict(sorted(responses.items()))

    def _common_errors(self) -> dict[str, str]:
        errors = {}
        reads_body = self.method in BODY_METHODS and self.get_request_serializer() is not None
        has_query = any(p["in"] == "query" for p in self._get_parameters())
        if reads_body or has_query:
            errors["400"] = "invalid input: `field` names it and the message says what to fix"
        permissions = self.view.get_permissions()
        if not all(isinstance(p, AllowAny) for p in permissions):
            errors["401"] = "no credentials, or credentials that are not valid (expired, revoked, ...)"
        if any(isinstance(p, IsStaff) for p in permissions):
            errors["403"] = "not staff, or an API key (staff operations need a login)"
        elif getattr(self.view, "required_scope", None):
            errors["403"] = "the API key's scopes (or its model list) do not allow this"
        if "{" in self.path:
            errors["404"] = "nothing (of yours) has that id or name"
        if reads_body:
            errors["413"] = "the request body is larger than the site accepts"
            errors["415"] = "the body is not JSON (`Content-Type: application/json`)"
        return errors
