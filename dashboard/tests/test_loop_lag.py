"""The event-loop lag monitor sees a loop that synchronous code holds."""

from __future__ import annotations

import asyncio
import time

from dashboard import loop_lag, prometheus


def lag_count_at_least(seconds: float) -> float:
    """How many observations were above `seconds` (from the histogram's cumulative buckets)."""
    samples = {s.labels["le"]: s.value for s in prometheus.EVENT_LOOP_LAG.collect()[0].samples if "le" in s.labels}
    total = samples["+Inf"]
    below = max(v for le, v in samples.items() if le != "+Inf" and float(le) <= seconds)
    return total - below


async def test_a_loop_held_by_synchronous_code_shows_as_lag():
    before = lag_count_at_least(0.25)
    loop_lag.watch_running_loop()
    loop_lag.watch_running_loop()  # once per loop, however often it is asked
    await asyncio.sleep(loop_lag.INTERVAL / 2)  # the watcher is now asleep, due back in 0.05 s
    time.sleep(0.4)  # what a blocking call in a view does to everyone on the loop
    await asyncio.sleep(loop_lag.INTERVAL * 2)  # let it wake and observe
    assert lag_count_at_least(0.25) >= before + 1
    assert len([t for t in asyncio.all_tasks() if t.get_name() == "event-loop-lag"]) == 1
