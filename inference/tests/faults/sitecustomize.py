"""Faults for the readiness tests, injected into the processes they start: put this folder on PYTHONPATH.

Python imports `sitecustomize` at start-up, so a live daphne and the runner processes it starts (they
inherit its environment) load this; it does nothing unless one of these names a file:

- LLMSITE_TEST_STALL_FILE: while that file exists, every forward pass of the batching scheduler waits
  before it starts (a stuck step: the scheduler thread lives, holds its work and completes no step).
- LLMSITE_TEST_DIE_FILE: while that file exists, the scheduler's loop fails when it admits work, outside
  its per-step handler, so its thread ends.

Only the scheduler's own methods are wrapped: the model, the runner and the site run as served.
"""

import os
import time

STALL_FILE = os.environ.get("LLMSITE_TEST_STALL_FILE")
DIE_FILE = os.environ.get("LLMSITE_TEST_DIE_FILE")

if STALL_FILE or DIE_FILE:
    from inference.providers import batching

    forward, admit = batching.BatchScheduler._forward, batching.BatchScheduler._admit

    def _stalling_forward(self, *args, **kwargs):
        while STALL_FILE and os.path.exists(STALL_FILE):
            time.sleep(0.05)
        return forward(self, *args, **kwargs)

    def _failing_admit(self):
        if DIE_FILE and os.path.exists(DIE_FILE):
            raise RuntimeError("injected fault: the scheduler loop failed")
        return admit(self)

    batching.BatchScheduler._forward = _stalling_forward
    batching.BatchScheduler._admit = _failing_admit
