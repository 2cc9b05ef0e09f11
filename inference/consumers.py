"""The chat WebSocket, `/ws/v1/chat/` (docs/api.md): stream completions token by token, cancel them.

Protocol (JSON text frames):
- The browser is authenticated by its session. Other clients send
  `{"type": "auth", "token": "<JWT or API key>"}` first; anything else first, a bad token, or
  no auth within AUTH_TIMEOUT_SECONDS closes the socket with 4401. `{"type": "ready"}` answers
  a successful authentication (and greets a session user on connect). An API key without the
  `chat` scope gets an `error` (`scope_not_allowed`) and the socket closes with 4403.
- `{"type": "generate", ...predict fields...}` → `{"type": "token", "text"}` and, when the model calls
  tools, `{"type": "tool_call", "index", "id", "name", "arguments"}` pieces (`id` and `name` on a call's
  first piece only)… then `{"type": "done", ...predict response fields except text}` (with the whole
  `tool_calls`) or `{"type": "error", "error": {...}}`.
  One generation at a time: another `generate` meanwhile is an `error` with code `busy`. A
  generation that would cross a usage limit is an `error` with code `quota_exceeded`, `limit`
  and `resets_at`.
- `{"type": "cancel"}` stops the generation in flight within one token; it ends with
  `{"type": "done", "finish_reason": "cancelled", ...}`. Closing the socket cancels it too.
- While the server shuts down, a `generate` gets an `error` (`shutting_down`); one already running
  finishes, or ends with that error when the grace period ends; then the socket closes (1001).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from rest_framework import serializers

from accounts.models import SCOPE_CHAT, ApiKey
from accounts.permissions import scope_refusal
from accounts.services import acredentials_for_bearer_token
from inference import services
from inference.protocol import CompletionRequest
from inference.providers.base import TextDelta, ToolCallDelta
from inference.sse import tool_call_piece
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError, error_body, from_validation_error
from llmsite.shutdown import drain, shutting_down_error
from usage.services import Meter

logger = logging.getLogger(__name__)

UNAUTHORISED = 4401
FORBIDDEN = 4403  # an API key without the chat scope
AUTH_TIMEOUT_SECONDS = 10
# A frame bigger than the largest valid prompt plus room for the JSON around it is refused unread.
MAX_FRAME_CHARS_OVER_PROMPT = 64_000


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.user: Any = None
        self.api_key: ApiKey | None = None
        self.generation: asyncio.Task | None = None
        self.auth_timer: asyncio.TimerHandle | None = None
        self.closed = False
        await self.accept()
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            await self._ready(user)
        else:
            loop = asyncio.get_running_loop()
            self.auth_timer = loop.call_later(AUTH_TIMEOUT_SECONDS, lambda: loop.create_task(self._refuse()))

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        if self.generation is not None and not self.generation.done():
            self.generation.cancel()  # a closed socket stops the generation within one token
            await asyncio.gather(self.generation, return_exceptions=True)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if text_data is None:
            await self._error(ApplicationError("send JSON text frames", code=ErrorCode.INVALID_FRAME))
            return
        if len(text_data) > settings.LLM_MAX_PROMPT_CHARS + MAX_FRAME_CHARS_OVER_PROMPT:
            await self._error(ApplicationError("the message is too large", code=ErrorCode.TOO_LARGE))
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self._error(ApplicationError("the message is not valid JSON", code=ErrorCode.INVALID_JSON))
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if self.user is None:
            if kind == "auth" and isinstance(content.get("token"), str) and content["token"]:
                credentials = await acredentials_for_bearer_token(content["token"])
                if credentials is not None:
                    user, credential = credentials
                    api_key = credential if isinstance(credential, ApiKey) else None
                    refusal = scope_refusal(api_key, SCOPE_CHAT)
                    if refusal:
                        await self._error(ApplicationError(refusal, code=ErrorCode.SCOPE_NOT_ALLOWED, status=403))
                        await self.close(code=FORBIDDEN)
                        return
                    self.api_key = api_key
                    await self._ready(user)
                    return
            await self._refuse()
            return
        if kind == "generate":
            await self._start(content)
        elif kind == "cancel":
            if self.generation is not None and not self.generation.done():
                self.generation.cancel()
        elif kind == "auth":
            await self.send_json({"type": "ready", "user": self.user.get_username()})
        else:
            await self._error(ApplicationError(f"unknown message type {kind!r}", code=ErrorCode.INVALID, field="type"))

    async def _ready(self, user: Any) -> None:
        self.user = user
        if self.auth_timer is not None:
            self.auth_timer.cancel()
            self.auth_timer = None
        await self.send_json({"type": "ready", "user": user.get_username()})

    async def _refuse(self) -> None:
        if self.user is None and not self.closed:
            await self.close(code=UNAUTHORISED)

    async def _error(self, exc: ApplicationError) -> None:
        if not self.closed:
            await self.send_json(
                {"type": "error", "error": error_body(exc.code, exc.message, field=exc.field, **exc.details)["error"]}
            )

    async def _start(self, content: dict[str, Any]) -> None:
        from inference.apis import PredictApi

        if self.generation is not None and not self.generation.done():
            await self._error(ApplicationError("a generation is already running on this socket", code=ErrorCode.BUSY))
            return
        if drain.draining:  # the server is shutting down: generations already running finish, no new one starts
            await self._error(shutting_down_error())
            return
        fields = {key: value for key, value in content.items() if key != "type"}
        serializer = PredictApi.InputSerializer(data=fields)
        try:
            serializer.is_valid(raise_exception=True)
        except serializers.ValidationError as exc:
            await self._error(from_validation_error(exc))
            return
        self.generation = asyncio.create_task(self._generate(serializer.validated_data["request"]))

    async def _generate(self, asked: CompletionRequest) -> None:
        produced = 0
        try:
            meter = Meter(user=self.user, api_key=self.api_key)
            async for event in services.complete_stream(asked, user=self.user, source="ws", meter=meter):
                if isinstance(event, TextDelta):
                    produced += 1
                    await self.send_json({"type": "token", "text": event.text})
                elif isinstance(event, ToolCallDelta):
                    produced += 1
                    await self.send_json({"type": "tool_call", **tool_call_piece(event)})
                else:
                    body = {k: v for k, v in event.as_dict().items() if k != "text"}
                    await self.send_json({"type": "done", **body})
        except asyncio.CancelledError:
            if not self.closed:
                await self.send_json(
                    {
                        "type": "done",
                        "finish_reason": "cancelled",
                        "usage": {"prompt_tokens": 0, "completion_tokens": produced, "total_tokens": produced},
                    }
                )
        except ApplicationError as exc:
            await self._error(exc)
        except Exception:
            logger.exception("chat generation failed")
            await self._error(
                ApplicationError("the generation failed; it has been logged", code=ErrorCode.SERVER_ERROR)
            )
