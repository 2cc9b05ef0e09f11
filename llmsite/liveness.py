"""`/healthz` answered in front of Django, on the event loop, in microseconds.

Through Django, even an async view pays for the middleware stack: under ASGI every classic
middleware runs its `process_request` and `process_response` in a worker thread
(`sync_to_async`), so one probe makes about sixteen thread hops, each waiting for the GIL behind
whatever the process is busy with. Measured with 200 clients (`make loadtest`): the probe's p99
was over a second while the event loop itself was never late by more than 100 ms. A liveness
probe should say whether the process and its loop answer, and nothing else, so it is answered
here, with the headers every response carries. Other methods on `/healthz` go on to Django (405).
The schema still documents it (`llmsite.health.HealthzApi`), and the test client reaches that view.
"""

from __future__ import annotations

from typing import Any

PATH = "/healthz"
BODY = b'{"status":"ok"}'
# What the security middlewares put on a JSON answer (docs/security.md), with the strictest policy:
# a JSON body needs nothing from any origin.
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


def answer_liveness(app: Any) -> Any:
    """`app`, with GET and HEAD of /healthz answered before it."""

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": BODY if scope["method"] == "GET" else b""})
            return
        await app(scope, receive, send)

    return application
