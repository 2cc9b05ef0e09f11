"""A fake upstream API for the remote provider tests: real HTTP/1.1 on a free port, scripted replies.

Each test scripts what the server answers, request by request (`script(method, path, *replies)`),
and reads back what it was sent (`seen`). Replies can stream a body in chunks (chunked transfer
encoding, as the real APIs do), pause before the headers or mid-body (read timeouts), or drop the
connection mid-body. The server notices when a client goes away (`disconnected`).

The streams are written in the exact wire formats: the recorded ones live in
`fixtures/remote/*.sse`; `anthropic_sse()` and `openai_sse()` build variants the same way, tool
calls (`tool_calls=` / `tool_uses=`: OpenAI's `delta.tool_calls` pieces, Anthropic's `tool_use`
blocks with `input_json_delta` pieces), logprobs and refusals included.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from inference.providers.remote import HttpOptions

FIXTURES = Path(__file__).parent / "fixtures" / "remote"
# What providers under test talk to a stand-in with: keys no real service issued, quick timeouts and retries.
OPENAI_KEY = "sk-proj-test-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
FAST = HttpOptions(connect_timeout=2, read_timeout=5, max_retries=2, backoff=0.01, max_retry_wait=2)
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


def fixture(name: str) -> bytes:
    """A recorded stream, byte for byte."""
    return (FIXTURES / name).read_bytes()


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Sequence[bytes] = ()
    chunked: bool = True  # else the body is sent with a Content-Length
    chunk_delay: float = 0.0  # seconds between chunks
    delay_before: float = 0.0  # seconds before the status line (a read timeout before any byte)
    pause_after: int | None = None  # after this many chunks, go silent for `pause` seconds
    pause: float = 0.0
    hold: threading.Event | None = None  # with pause_after: go silent until the test sets it (at most `pause` s)
    cut: bool = False  # drop the connection after the chunks, leaving the body unfinished


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    data = json.dumps(body).encode()
    return Reply(status, {"content-type": "application/json", **(headers or {})}, [data], chunked=False)


def sse_reply(body: bytes, *, split_every: int | None = None, **options: Any) -> Reply:
    """An event stream sent one event per chunk, or in pieces of `split_every` bytes (mid-line, mid-UTF-8)."""
    if split_every:
        chunks = [body[i : i + split_every] for i in range(0, len(body), split_every)]
    else:
        chunks = [event + b"\n\n" for event in body.split(b"\n\n") if event]
    headers = {**SSE_HEADERS, **options.pop("headers", {})}
    return Reply(200, headers, chunks, **options)


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


# A streamed tool call: its id, the function's name, and its arguments' JSON text in the pieces it comes in.
StreamedCall = tuple[str, str, Sequence[str]]


def anthropic_sse(
    texts: Sequence[str],
    *,
    stop_reason: str | None = None,
    input_tokens: int = 12,
    output_tokens: int | None = None,
    end: bool = True,
    tool_uses: Sequence[StreamedCall] = (),
) -> bytes:
    """A Messages stream as Anthropic sends it (named events, ping, cumulative usage in message_delta).

    `tool_uses` follow the text as `tool_use` blocks (alone when there is no text, as with a forced
    tool_choice): `content_block_start` with the id, name and `input: {}`, then `input_json_delta`
    pieces, the first one empty; the stop reason is then "tool_use".
    """
    output_tokens = len(texts) + len(tool_uses) if output_tokens is None else output_tokens
    stop_reason = stop_reason or ("tool_use" if tool_uses else "end_turn")

    def event(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {_compact(data)}\n\n"

    message = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-test",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        },
    }
    parts = [event("message_start", {"type": "message_start", "message": message})]
    index = 0
    if texts or not tool_uses:
        parts.append(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        parts.append(event("ping", {"type": "ping"}))
        for text in texts:
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
            parts.append(event("content_block_delta", delta))
        parts.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    for call_id, name, pieces in tool_uses:
        block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
        parts.append(
            event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
        )
        for piece in ["", *pieces]:
            delta = {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": piece},
            }
            parts.append(event("content_block_delta", delta))
        parts.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    if end:
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        parts.append(
            event("message_delta", {"type": "message_delta", "delta": delta, "usage": {"output_tokens": output_tokens}})
        )
        parts.append(event("message_stop", {"type": "message_stop"}))
    return "".join(parts).encode()


# One text chunk's logprobs: (token, logprob, [(alternative, logprob), ...]) per token.
ChunkLogprobs = Sequence[tuple[str, float, Sequence[tuple[str, float]]]]


def openai_logprobs(tokens: ChunkLogprobs) -> dict[str, Any]:
    """A choice's `logprobs` as OpenAI sends them, with each token's UTF-8 `bytes`."""

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return {
        "content": [{**entry(t, lp), "top_logprobs": [entry(a, alp) for a, alp in top]} for t, lp, top in tokens],
        "refusal": None,
    }


def openai_sse(
    texts: Sequence[str],
    *,
    finish_reason: str | None = None,
    usage: tuple[int, int | None] | None = (9, None),  # (prompt, completion; None: one per text)
    done: bool = True,
    tool_calls: Sequence[StreamedCall] = (),
    logprobs: Sequence[ChunkLogprobs] | None = None,  # one per text
    refusal: Sequence[str] = (),
) -> bytes:
    """A Chat Completions stream as OpenAI sends it (role chunk first, usage chunk with `choices: []`, [DONE]).

    `tool_calls` follow the text: a call's first piece carries its index, id, type and name with
    `arguments: ""` (with the role, when there is no text), the others `{"index", "function": {"arguments"}}`;
    the finish reason is then "tool_calls". `refusal` pieces come as `delta.refusal`, as a declined
    structured answer does.
    """
    base = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190, "model": "gpt-test"}
    finish_reason = finish_reason or ("tool_calls" if tool_calls else "stop")

    def chunk(choices: list[dict[str, Any]], chunk_usage: dict[str, int] | None = None) -> str:
        data = {**base, "system_fingerprint": "fp_44709d6fcb", "choices": choices, "usage": chunk_usage}
        return f"data: {_compact(data)}\n\n"

    def choice(delta: dict[str, Any], reason: str | None = None, chunk_logprobs: Any = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": chunk_logprobs, "finish_reason": reason}

    role = {"role": "assistant", "content": None if (tool_calls or refusal) and not texts else "", "refusal": None}
    calls = [
        [{"index": i, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]
        + [{"index": i, "function": {"arguments": piece}} for piece in pieces]
        for i, (call_id, name, pieces) in enumerate(tool_calls)
    ]
    pieces = [piece for call in calls for piece in call]
    if tool_calls and not texts:
        parts = [chunk([choice({**role, "tool_calls": [pieces.pop(0)]})])]
    else:
        parts = [chunk([choice(role)])]
    for index, text in enumerate(texts):
        lp = openai_logprobs(logprobs[index]) if logprobs is not None else None
        parts.append(chunk([choice({"content": text}, chunk_logprobs=lp)]))
    parts += [chunk([choice({"refusal": piece})]) for piece in refusal]
    parts += [chunk([choice({"tool_calls": [piece]})]) for piece in pieces]
    parts.append(chunk([choice({}, finish_reason)]))
    if usage is not None:
        prompt, completion = usage[0], len(texts) + len(tool_calls) if usage[1] is None else usage[1]
        parts.append(
            chunk([], {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
        )
    if done:
        parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    client_port: int


class FakeUpstream:
    """The server; use as a context manager (or start()/stop())."""

    def __init__(self) -> None:
        self.replies: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self.seen: list[Seen] = []
        self.disconnected = threading.Event()
        self.chunks_sent = 0
        self._stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection pooling is real

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # http.server's naming
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval: shutdown() waits for one, at the end of every test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-upstream", daemon=True
        )

    def start(self) -> FakeUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # ends any pause at once
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Queue replies for `method path` (query excluded), answered in order."""
        self.replies[(method, path)].extend(replies)

    def requests_to(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    # --- serving ------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        headers = {k.lower(): v for k, v in handler.headers.items()}
        self.seen.append(Seen(handler.command, url.path, parse_qs(url.query), headers, body, handler.client_address[1]))
        queue = self.replies.get((handler.command, url.path))
        if not queue:
            # 418: a status no client retries, so an unscripted request fails the test at once.
            reply = json_reply(
                418, {"error": {"message": f"fake upstream: nothing scripted for {handler.command} {url.path}"}}
            )
        else:
            reply = queue.popleft()
        try:
            self._write(handler, reply)
        except (BrokenPipeError, ConnectionResetError):
            self.disconnected.set()
            handler.close_connection = True

    def _write(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay_before and self._stop.wait(reply.delay_before):
            return
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if reply.chunked:
            handler.send_header("transfer-encoding", "chunked")
        else:
            handler.send_header("content-length", str(sum(len(c) for c in reply.chunks)))
        handler.end_headers()
        for index, data in enumerate(reply.chunks):
            if index and reply.chunk_delay and self._stop.wait(reply.chunk_delay):
                return
            if reply.pause_after is not None and index == reply.pause_after:
                if reply.hold is not None:
                    reply.hold.wait(reply.pause)
                elif self._stop.wait(reply.pause):
                    return
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if reply.chunked else data)
            handler.wfile.flush()
            self.chunks_sent += 1
        if reply.cut:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.chunked:
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()


def closed_port_url() -> str:
    """A URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
