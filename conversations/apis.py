"""Conversations REST API (docs/api.md, Conversations): thin views over the services and selectors.

Every lookup goes through `selectors.conversation_get`, so another user's conversation is a
404 exactly like a missing one.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import SCOPE_CHAT
from conversations import selectors, services
from conversations.models import Conversation, Message
from llmsite.serializers import PageQuerySerializer, StrictCharField, StrictSerializer, page, page_serializer

TAGS = ["conversations"]
NOT_FOUND = OpenApiResponse(description="no conversation of yours has that id")
MODEL_HELP = "the model id its turns named, which the next turns use too; '' follows the site's default model"


class MessageInputSerializer(StrictSerializer):
    class Meta:
        ref_name = "ConversationMessageInput"

    role = serializers.ChoiceField(choices=Message.Role.values)
    content = StrictCharField(allow_blank=True, trim_whitespace=False)


class ToolCallSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ConversationToolCall"

    id = serializers.CharField()
    name = serializers.CharField()
    arguments = serializers.CharField(help_text="the JSON text of the arguments object")


class MessageOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ConversationMessage"

    id = serializers.IntegerField(help_text="Rate an assistant message with POST /api/v1/feedback {message: id}.")
    role = serializers.ChoiceField(choices=Message.Role.values)
    content = serializers.CharField()
    provider = serializers.CharField()
    model = serializers.CharField()
    prompt_tokens = serializers.IntegerField(allow_null=True)
    completion_tokens = serializers.IntegerField(allow_null=True)
    finish_reason = serializers.CharField()
    tool_calls = ToolCallSerializer(
        many=True, help_text="the tools an assistant turn called: [{id, name, arguments (JSON text)}]; else []"
    )
    sources = serializers.ListField(
        child=serializers.DictField(),
        help_text="the passages an assistant turn was grounded in, as predict returned them "
        "({id, document_id, title, snippet, score, metadata, page?, heading?}); else []",
    )
    created = serializers.DateTimeField()


class ConversationSummarySerializer(serializers.Serializer):
    class Meta:
        ref_name = "ConversationSummary"

    id = serializers.IntegerField()
    title = serializers.CharField()
    model = serializers.CharField(read_only=True, help_text=MODEL_HELP)
    messages_count = serializers.IntegerField()
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()


class ConversationDetailSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Conversation"

    id = serializers.IntegerField()
    title = serializers.CharField()
    model = serializers.CharField(read_only=True, help_text=MODEL_HELP)
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()
    messages = serializers.SerializerMethodField()

    @extend_schema_field(MessageOutputSerializer(many=True))
    def get_messages(self, obj: Conversation) -> list[dict]:
        rows = selectors.conversation_messages(conversation=obj)
        return MessageOutputSerializer(rows, many=True).data


class ConversationListCreateApi(APIView):
    required_scope = SCOPE_CHAT

    class QuerySerializer(PageQuerySerializer):
        class Meta:
            ref_name = "ConversationListQuery"

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ConversationCreate"

        title = StrictCharField(required=False, allow_blank=True, default="", max_length=services.TITLE_MAX_CHARS)
        messages = MessageInputSerializer(
            many=True,
            required=False,
            max_length=services.SEED_MAX_MESSAGES,
            help_text="Turns to start with, e.g. a system prompt; usually none.",
        )

    OutputSerializer = page_serializer(ConversationSummarySerializer, ref_name="ConversationPage")

    @extend_schema(
        operation_id="conversations_list",
        summary="Your conversations, most recently active first",
        parameters=[QuerySerializer],
        responses={200: OutputSerializer},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        body = page(selectors.conversation_list(user=request.user), **query.validated_data)
        return Response(self.OutputSerializer(body).data)

    @extend_schema(
        operation_id="conversations_create",
        summary="Start a conversation; pass its id as `conversation` to predict or the WebSocket",
        request=InputSerializer,
        responses={201: ConversationDetailSerializer, 400: OpenApiResponse(description="invalid input")},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = services.conversation_create(user=request.user, **data.validated_data)
        return Response(ConversationDetailSerializer(conversation).data, status=status.HTTP_201_CREATED)


class ConversationDetailApi(APIView):
    required_scope = SCOPE_CHAT

    class RenameSerializer(StrictSerializer):
        class Meta:
            ref_name = "ConversationRename"

        title = StrictCharField(required=False, allow_blank=True, max_length=services.TITLE_MAX_CHARS)

    @extend_schema(
        operation_id="conversations_retrieve",
        summary="One of your conversations with all its messages, oldest first",
        responses={200: ConversationDetailSerializer, 404: NOT_FOUND},
        tags=TAGS,
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
        return Response(ConversationDetailSerializer(conversation).data)

    @extend_schema(
        operation_id="conversations_rename",
        summary="Rename one of your conversations",
        request=RenameSerializer,
        responses={
            200: ConversationDetailSerializer,
            400: OpenApiResponse(description="invalid title"),
            404: NOT_FOUND,
        },
        tags=TAGS,
    )
    def patch(self, request: Request, conversation_id: int) -> Response:
        conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
        data = self.RenameSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if "title" in data.validated_data:
            services.conversation_rename(conversation=conversation, title=data.validated_data["title"])
        return Response(ConversationDetailSerializer(conversation).data)

    @extend_schema(
        operation_id="conversations_delete",
        summary="Delete one of your conversations and its messages",
        responses={204: OpenApiResponse(description="Deleted."), 404: NOT_FOUND},
        tags=TAGS,
    )
    def delete(self, request: Request, conversation_id: int) -> Response:
        conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
        services.conversation_delete(conversation=conversation)
        return Response(status=status.HTTP_204_NO_CONTENT)
