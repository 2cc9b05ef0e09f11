"""Inference use cases, one module per family; everything is importable from here.

- `completions`: `complete(request)`, `complete_stream(request)` — every entry point calls these.
- `providers`: `provider_activate(...)` switches what the site serves (admin, reload_model, the API);
  `check_model_served(model)` checks a client's `model` against it.
- `response_cache`: `cache_stats()`, `cache_clear()`.
"""

from inference.services.completions import CompletionResult, complete, complete_stream, completion_id
from inference.services.providers import check_model_served, provider_activate
from inference.services.response_cache import cache_clear, cache_stats

__all__ = [
    "CompletionResult",
    "cache_clear",
    "cache_stats",
    "check_model_served",
    "complete",
    "complete_stream",
    "completion_id",
    "provider_activate",
]
