"""WhiteNoise that stays on the event loop under ASGI.

WhiteNoise's middleware is sync-only. In an ASGI project Django then runs it, and so every
request that passes through it, by hopping to a worker thread and back (`sync_to_async`, then
`async_to_sync` for the middlewares and async views inside it). Under load those hops wait for
the GIL behind whatever else the process is doing, which is what made `/healthz` slow while
answers streamed. The lookup itself is a dict read, so this subclass answers it on the loop
and only hands the file serving (which opens a file) to a thread.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None):
        super().__init__(get_response)
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self._is_async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request):
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
