"""Tool calls on local models: reading a client's tools, writing them into the prompt, constraining the
answer to valid calls, and reading the calls back out of the generated text.

Plain Python, no Django. The one place local models (in process, and through a runner) handle tools:

- `parse_tools` / `parse_tool_choice` check OpenAI's `tools` and `tool_choice` (InvalidParameter naming
  the field: a 400). A tool's parameters must be a JSON schema of an object that the constraint can
  enforce (`constraints.check_schema`), so a call always fits them.
- `chat_messages(request, native=...)` writes the turns a chat template renders: with a template that
  takes `tools` (`native`), assistant `tool_calls` and `tool` results as the template expects them and
  the tools passed to it (`template_tools`); otherwise the tools as a system-prompt block in the widely
  used `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` format, earlier calls written that way
  and tool results as user turns in `<tool_response>` tags. Under `tool_choice="none"` the tools are not
  described at all (the model answers in text; earlier calls and results still render).
- `prepare(request) -> (request', parser)`: request' carries the constraint as its `response_format`
  (so the runner wire, the cache key and both engines' constraint code carry it, and a runner only
  ever generates text); the parser turns the generated text back into `ToolCall`s, or, streaming, into
  `ToolCallDelta`s as the JSON arrives: a call's id and name once its name is complete, then its
  arguments' text piece by piece.

What the constraint is, by `tool_choice`:
- "required", or one named function: the answer is one call, a JSON object
  `{"name": <a listed name>, "arguments": <fitting its parameters>}` (a `json_schema` response format). One
  call per turn: a small model asked for a list of calls tends to repeat them until the token limit.
- "auto": text, or calls only, each `<tool_call>{...}</tool_call>` fitting that schema (the `tool_calls`
  kind; several with `parallel_tool_calls`). transformers enforces it with a Lark grammar, OpenVINO with
  triggered structural tags (text may then come before the calls: it becomes the message's content).
- "none": no constraint from the tools (`response_format`, if any, applies).

`response_format` with tools: under "required" or a named function the answer is a call, never text, so
the format has nothing to shape and is ignored; under "auto" the two are refused together (a 400): the
text branch would have to fit the format, which neither engine's tool constraint combines.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from inference.providers.base import (
    MAX_TOOLS,
    TOOL_ROLE,
    Completion,
    FinishReason,
    GenerationRequest,
    InvalidParameter,
    Message,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from inference.providers.constraints import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, ResponseFormat, check_schema

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_DESCRIPTION_CHARS = 10_000
CHOICES = ("none", "auto", "required")
NO_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}  # declared without: takes none


def call_id() -> str:
    """A new tool call's id, in OpenAI's form."""
    return f"call_{secrets.token_hex(12)}"


# --- reading a client's tools ------------------------------------------------------------------------------


def parse_tools(value: Any) -> tuple[Tool, ...]:
    """OpenAI's `tools` ([{"type": "function", "function": {name, description, parameters, strict}}]), checked."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidParameter("tools", "tools must be a list of function tools")
    if len(value) > MAX_TOOLS:
        raise InvalidParameter("tools", f"at most {MAX_TOOLS} tools")
    tools: list[Tool] = []
    for index, entry in enumerate(value):
        where = f"tools.{index}"
        if not isinstance(entry, Mapping) or entry.get("type") != "function":
            raise InvalidParameter(f"{where}.type", 'only tools of type "function" are supported')
        function = entry.get("function")
        if not isinstance(function, Mapping):
            raise InvalidParameter(f"{where}.function", "a function tool has a function object")
        unknown = sorted(set(function) - {"name", "description", "parameters", "strict"})
        if unknown:
            raise InvalidParameter(f"{where}.function", f"unknown function fields: {', '.join(unknown)}")
        name = function.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidParameter(
                f"{where}.function.name", "a function name is 1 to 64 letters, digits, underscores or dashes"
            )
        if any(tool.name == name for tool in tools):
            raise InvalidParameter(f"{where}.function.name", f"two tools are named {name}")
        description = function.get("description") or ""
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
            raise InvalidParameter(
                f"{where}.function.description", f"a description is text of at most {MAX_DESCRIPTION_CHARS} characters"
            )
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise InvalidParameter(f"{where}.function.strict", "strict must be true or false")
        parameters = function.get("parameters")
        parameters = NO_PARAMETERS if parameters is None else parameters
        field_name = f"{where}.function.parameters"
        if not isinstance(parameters, Mapping) or parameters.get("type") != "object":
            raise InvalidParameter(field_name, 'parameters must be a JSON schema of "type": "object"')
        tools.append(Tool(name, description, check_schema(parameters, field=field_name), strict))
    return tuple(tools)


def parse_tool_choice(value: Any, tools: Sequence[Tool]) -> str:
    """OpenAI's `tool_choice` as a ToolChoice: "none", "auto", "required" or "function:NAME" (a listed name)."""
    if value is None:
        return "auto"
    if isinstance(value, str):
        if value not in CHOICES:
            raise InvalidParameter("tool_choice", 'tool_choice is "none", "auto", "required" or a named function')
        if value == "required" and not tools:
            raise InvalidParameter("tool_choice", 'tool_choice "required" needs tools')
        return value
    function = value.get("function") if isinstance(value, Mapping) else None
    if not isinstance(value, Mapping) or value.get("type") != "function" or not isinstance(function, Mapping):
        raise InvalidParameter("tool_choice", 'a named tool_choice is {"type": "function", "function": {"name": ...}}')
    name = function.get("name")
    if not any(tool.name == name for tool in tools):
        raise InvalidParameter("tool_choice.function.name", f"tool_choice names {name!r}, which is not among the tools")
    return f"function:{name}"


def check(request: GenerationRequest, check_response_format: Callable[[ResponseFormat], None]) -> None:
    """Raise InvalidParameter for what a local model cannot do with `request`'s tools (see the module docstring);
    `check_response_format` is the engine's own check, run on the tool constraint (OpenVINO's keywords)."""
    if not calls_possible(request):
        return
    if request.tool_choice == "auto" and request.response_format is not None:
        raise InvalidParameter(
            "response_format",
            'response_format with tools and tool_choice "auto" is not supported on local models; '
            'use tool_choice "required" (or a named function), or leave out response_format',
        )
    constraint = constraint_for(request)
    assert constraint is not None
    try:
        check_response_format(constraint)
    except InvalidParameter as exc:
        raise InvalidParameter("tools", f"the tools' parameters: {exc.message}") from exc


def calls_possible(request: GenerationRequest) -> bool:
    return bool(request.tools) and request.tool_choice != "none"


# --- the constraint ---------------------------------------------------------------------------------------


def called(request: GenerationRequest) -> tuple[Tool, ...]:
    """The tools a call may be of: the named one, or all."""
    if request.tool_choice.startswith("function:"):
        name = request.tool_choice.removeprefix("function:")
        return tuple(tool for tool in request.tools if tool.name == name)
    return request.tools


def call_schema(tools: Sequence[Tool]) -> dict[str, Any]:
    """The JSON schema of one call of one of `tools`: {"name": its name, "arguments": fitting its parameters}.

    Each tool's `$defs`/`definitions` move to the top under a prefix, and its `$ref`s follow them."""
    variants: list[dict[str, Any]] = []
    defs: dict[str, Any] = {}
    for index, tool in enumerate(tools):
        parameters = json.loads(tool.parameters)
        for key in ("$defs", "definitions"):
            for name, sub in (parameters.pop(key, None) or {}).items():
                defs[f"t{index}_{name}"] = sub
        parameters = _rebased(parameters, index)
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"const": tool.name}, "arguments": parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    defs = {name: _rebased(sub, int(name[1:].split("_", 1)[0])) for name, sub in defs.items()}
    schema: dict[str, Any] = variants[0] if len(variants) == 1 else {"anyOf": variants}
    return {**schema, "$defs": defs} if defs else schema


def _rebased(schema: Any, index: int) -> Any:
    """`schema` with local `$ref`s (#/$defs/X, #/definitions/X) pointing at tool `index`'s hoisted defs."""
    if isinstance(schema, list):
        return [_rebased(item, index) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str):
            for prefix in ("#/$defs/", "#/definitions/"):
                if value.startswith(prefix):
                    value = f"#/$defs/t{index}_{value.removeprefix(prefix)}"
        out[key] = _rebased(value, index)
    return out


def constraint_for(request: GenerationRequest) -> ResponseFormat | None:
    """The response format that enforces `request`'s tool choice; None when it calls no tools."""
    if not calls_possible(request):
        return None
    schema = json.dumps(call_schema(called(request)), ensure_ascii=False, separators=(",", ":"))
    if request.tool_choice == "auto":
        return ResponseFormat("tool_calls", schema, several=request.parallel_tool_calls)
    return ResponseFormat("json_schema", schema, name="tool_call", strict=True)


def prepare(request: GenerationRequest) -> tuple[GenerationRequest, ToolCallParser | None]:
    """(what the engine generates from, how to read its text back): unchanged and None without tool calls."""
    constraint = constraint_for(request)
    if constraint is None:
        return request, None
    if request.tool_choice == "auto" and request.response_format is not None:
        check(request, lambda _: None)  # raises: the combination is refused
    parser = ToolCallParser(called(request), tagged=constraint.type == "tool_calls")
    return replace(request, response_format=constraint), parser


# --- the prompt -------------------------------------------------------------------------------------------


def template_takes_tools(chat_template: Any) -> bool:
    """Whether a chat template renders a `tools` argument itself."""
    return isinstance(chat_template, str) and "tools" in chat_template


def template_tools(request: GenerationRequest) -> list[dict[str, Any]] | None:
    """The tools as a chat template takes them (OpenAI's shape); None when the prompt describes none."""
    if not calls_possible(request):
        return None
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": json.loads(tool.parameters),
            },
        }
        for tool in request.tools
    ]


def chat_messages(request: GenerationRequest, *, native: bool) -> list[dict[str, Any]]:
    """The turns a chat template renders, tools written in (see the module docstring); a prompt is one user turn."""
    turns: Sequence[Message] = request.messages or (Message("user", request.prompt or ""),)
    if native:
        return [_native_turn(message) for message in turns]
    names = {call.id: call.name for message in turns for call in message.tool_calls}
    out: list[dict[str, Any]] = []
    for message in turns:
        if message.role == TOOL_ROLE:
            response = json.dumps(
                {"name": names.get(message.tool_call_id or "", ""), "content": message.content}, ensure_ascii=False
            )
            block = f"<tool_response>\n{response}\n</tool_response>"
            if out and out[-1].get("tool_results"):  # results of one turn's calls go back in one user turn
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "tool_results": True})
            continue
        content = message.content
        if message.tool_calls:
            calls = "\n".join(_written_call(call) for call in message.tool_calls)
            content = f"{content}\n{calls}" if content else calls
        out.append({"role": message.role, "content": content})
    for turn in out:
        turn.pop("tool_results", None)
    if calls_possible(request):
        block = tools_block(request)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{block}"}
        else:
            out.insert(0, {"role": "system", "content": block})
    return out


def tools_block(request: GenerationRequest) -> str:
    """The system prompt's description of the tools and of how to call them (short: small models have small
    context windows)."""
    signatures = "\n".join(
        json.dumps(
            {"name": tool.name, "description": tool.description, "parameters": json.loads(tool.parameters)},
            ensure_ascii=False,
        )
        for tool in request.tools
    )
    if request.tool_choice.startswith("function:"):
        rule = f"You must call {request.tool_choice.removeprefix('function:')}."
    elif request.tool_choice == "required":
        rule = "You must call one of them."
    else:
        rule = "Call one when it helps; otherwise answer in text."
    return (
        f"You can call these functions:\n<tools>\n{signatures}\n</tools>\n"
        f'To call one, write {TOOL_CALL_OPEN}{{"name": <name>, "arguments": <JSON object>}}{TOOL_CALL_CLOSE}\n'
        f"{rule}"
    )


def unanswered_calls_as_text(turns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`turns` with the tool calls no `tool` turn answers written into their assistant turn's text.

    A stored conversation keeps the calls an answer made but never their results (the chat page runs
    no tools), and remote APIs refuse a call that no result follows. Written as text, in the format
    the local models read calls in, every model sees what was called and nothing is refused.
    """
    answered = {turn.get("tool_call_id") for turn in turns if turn.get("role") == TOOL_ROLE}
    settled: list[dict[str, Any]] = []
    for turn in turns:
        calls = [ToolCall.from_dict(c) for c in turn.get("tool_calls") or ()]
        if not calls or all(call.id in answered for call in calls):
            settled.append(dict(turn))
            continue
        written = "\n".join(_written_call(call) for call in calls)
        content = f"{turn['content']}\n{written}" if turn.get("content") else written
        settled.append({key: value for key, value in turn.items() if key != "tool_calls"} | {"content": content})
    return settled


def _written_call(call: ToolCall) -> str:
    return f'{TOOL_CALL_OPEN}{{"name": {json.dumps(call.name)}, "arguments": {_arguments_json(call)}}}{TOOL_CALL_CLOSE}'


def _arguments_json(call: ToolCall) -> str:
    try:
        json.loads(call.arguments)
    except ValueError:
        return json.dumps(call.arguments, ensure_ascii=False)  # not JSON: written as the string it is
    return call.arguments


def _native_turn(message: Message) -> dict[str, Any]:
    """A turn as chat templates that take tools expect it (Hugging Face's convention: arguments as an object)."""
    turn: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        turn["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.loads(_arguments_json(call))},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        turn["tool_call_id"] = message.tool_call_id
    return turn


# --- reading the calls back -------------------------------------------------------------------------------

# The start of a call's JSON, up to its arguments' value: the constraint writes "name" first.
HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')


@dataclass
class _Call:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


class ToolCallParser:
    """Reads generated text into content and tool calls, piece by piece. Not thread-safe; one per answer.

    `tagged`: calls are `<tool_call>{...}</tool_call>` among text (tool_choice "auto"); else the whole
    answer is one call's JSON. `feed(text)` returns the events the text completes (TextDelta for content,
    ToolCallDelta for calls); `end(completion)` the rest, and the answer as a Completion.
    """

    def __init__(self, tools: Sequence[Tool], *, tagged: bool):
        self.names = {tool.name for tool in tools}
        self.tagged = tagged
        self.calls: list[_Call] = []
        self._content: list[str] = []
        self._pending = ""  # text not yet classified
        self._phase = "text" if tagged else "head"  # text → head → arguments → tail → text
        self._depth = 0
        self._in_string = False
        self._escaped = False

    # -- feeding ----------------------------------------------------------------------------------------
    def feed(self, text: str) -> list[StreamEvent]:
        self._pending += text
        events: list[StreamEvent] = []
        while self._pending:
            before = (self._phase, len(self._pending))
            getattr(self, f"_{self._phase}")(events)
            if (self._phase, len(self._pending)) == before:
                break  # waiting for more text
        return events

    def _text(self, events: list[StreamEvent]) -> None:
        at = self._pending.find(TOOL_CALL_OPEN)
        if at >= 0:
            self._say(self._pending[:at], events)
            self._pending = self._pending[at + len(TOOL_CALL_OPEN) :]
            self._phase = "head"
            return
        keep = _held_back(self._pending)  # what may be the start of a tag
        self._say(self._pending[: len(self._pending) - keep], events)
        self._pending = self._pending[len(self._pending) - keep :]

    def _head(self, events: list[StreamEvent]) -> None:
        match = HEAD.match(self._pending)
        if match is None or match.end() == len(self._pending):  # the value may still be after more space
            if self.tagged and TOOL_CALL_CLOSE in self._pending:  # a call in another shape: read it whole
                self._whole(events)
            return
        try:
            name = json.loads(f'"{match.group(1)}"')
        except ValueError:
            name = ""
        if name not in self.names:
            self._phase = "fallback"
            return
        call = _Call(call_id(), name)
        self.calls.append(call)
        events.append(ToolCallDelta(len(self.calls) - 1, "", call.id, call.name))
        self._pending = self._pending[match.end() :]
        self._phase, self._depth, self._in_string, self._escaped = "arguments", 0, False, False

    def _arguments(self, events: list[StreamEvent]) -> None:
        taken = 0
        for char in self._pending:
            taken += 1
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self._phase = "tail"
                    break
        piece = self._pending[:taken]
        self._pending = self._pending[taken:]
        self.calls[-1].arguments.append(piece)
        events.append(ToolCallDelta(len(self.calls) - 1, piece))

    def _tail(self, events: list[StreamEvent]) -> None:
        if not self.tagged:
            self._pending = ""  # the call object's closing brace
            return
        at = self._pending.find(TOOL_CALL_CLOSE)
        if at >= 0:
            self._pending = self._pending[at + len(TOOL_CALL_CLOSE) :]
            self._phase = "text"

    def _fallback(self, events: list[StreamEvent]) -> None:
        """A call that is not name-first or names an unknown tool: read it whole once it closes."""
        if self.tagged and TOOL_CALL_CLOSE in self._pending:
            self._whole(events)

    def _whole(self, events: list[StreamEvent], *, ended: bool = False) -> None:
        """The current call's text read at once: a call when it is one of a listed tool, else text."""
        if self.tagged and not ended:
            at = self._pending.find(TOOL_CALL_CLOSE)
            body, self._pending = self._pending[:at], self._pending[at + len(TOOL_CALL_CLOSE) :]
            written = f"{TOOL_CALL_OPEN}{body}{TOOL_CALL_CLOSE}"
        else:
            body, self._pending = self._pending, ""
            written = f"{TOOL_CALL_OPEN}{body}" if self.tagged else body
        self._phase = "text" if self.tagged else "done"
        try:
            value = json.loads(body)
        except ValueError:
            value = None
        name = value.get("name") if isinstance(value, dict) else None
        arguments = value.get("arguments") if isinstance(value, dict) else None
        if name in self.names and isinstance(arguments, dict):
            call = _Call(call_id(), name, [json.dumps(arguments, ensure_ascii=False)])
            self.calls.append(call)
            events.append(ToolCallDelta(len(self.calls) - 1, call.arguments[0], call.id, call.name))
        else:
            self._say(written, events)

    def _done(self, events: list[StreamEvent]) -> None:
        self._pending = ""

    def _say(self, text: str, events: list[StreamEvent]) -> None:
        if text:
            self._content.append(text)
            events.append(TextDelta(text))

    # -- the end ----------------------------------------------------------------------------------------
    def flush(self) -> list[StreamEvent]:
        """The events still held back once generation has ended."""
        events: list[StreamEvent] = []
        if self._phase == "text":
            self._say(self._pending, events)
            self._pending = ""
        elif self._phase in ("head", "fallback"):  # a call that never got its name (or arguments) whole
            self._whole(events, ended=True)
        return events

    def result(self, finish_reason: FinishReason) -> tuple[str, tuple[ToolCall, ...], FinishReason]:
        """(content, calls, finish reason) of the answer: content is the text outside calls (stripped when there
        are calls); a model that stopped after calls finished with "tool_calls"."""
        calls = tuple(ToolCall(call.id, call.name, "".join(call.arguments)) for call in self.calls)
        content = "".join(self._content)
        if not calls:
            return content, calls, finish_reason
        return content.strip(), calls, "tool_calls" if finish_reason == "stop" else finish_reason

    def completion(self, completion: Completion) -> Completion:
        """A generated answer, read whole."""
        self.feed(completion.text)
        self.flush()
        text, calls, reason = self.result(completion.finish_reason)
        return replace(completion, text=text, finish_reason=reason, tool_calls=calls)


def _held_back(text: str) -> int:
    """How many characters at the end of `text` may begin the opening tag."""
    for size in range(min(len(text), len(TOOL_CALL_OPEN) - 1), 0, -1):
        if TOOL_CALL_OPEN.startswith(text[-size:]):
            return size
    return 0


async def parsed(events: AsyncIterator[StreamEvent], parser: ToolCallParser | None) -> AsyncIterator[StreamEvent]:
    """A provider's text stream as content and tool call events (unchanged without a parser); closing this
    closes `events` (which cancels the generation)."""
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            if parser is None or not isinstance(event, TextDelta | StreamEnd):
                yield event
                continue
            if isinstance(event, TextDelta):
                for piece in parser.feed(event.text):
                    yield piece
                continue
            for piece in parser.flush():
                yield piece
            text, calls, reason = parser.result(event.finish_reason)
            yield replace(event, text=text, finish_reason=reason, tool_calls=calls)
            return
