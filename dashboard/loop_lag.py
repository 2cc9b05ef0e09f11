"""How late the web process's event loop runs what it was asked to run: the measure of a blocked loop.

Every `INTERVAL` seconds a task asks to wake after `INTERVAL`; how much later it wakes is the lag.
A loop that is never blocked wakes within a millisecond or two; a loop that some synchronous code
holds (a slow view run on the loop, a long JSON encode, a GIL held by another thread) wakes late,
and every request, stream frame and WebSocket message waits that long too. The histogram is
exported as `llmsite_event_loop_lag_seconds`; `make loadtest` reads it.
"""

from __future__ import annotations

import asyncio
import weakref

from dashboard import prometheus

INTERVAL = 0.1  # seconds
# One watching task per loop, held here so that it is not collected while its loop runs.
_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = weakref.WeakKeyDictionary()


def watch_running_loop() -> None:
    """Start watching the running loop, once; cheap to call on every request."""
    loop = asyncio.get_running_loop()
    if loop not in _watchers:
        _watchers[loop] = loop.create_task(_watch(loop), name="event-loop-lag")


async def _watch(loop: asyncio.AbstractEventLoop) -> None:
    while True:
        asked = loop.time()
        await asyncio.sleep(INTERVAL)
        prometheus.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - asked - INTERVAL))
