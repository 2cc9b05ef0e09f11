"""Inference use cases, one module per family; everything is importable from here.

- `completions`: `complete(request)`, `complete_stream(request)` — every entry point calls these.
- `providers`: `provider_activate(...)` switches the default model (admin, reload_model, the API);
  `model_load(id)` / `model_unload(id)` load and unload models of the pool (staff).
- `response_cache`: `cache_stats()`, `cache_clear()`.
"""

from inference.services.completions import CompletionResult, complete, complete_stream, completion_id
from inference.services.providers import model_load, model_unload, provider_activate
from inference.services.response_cache import cache_clear, cache_stats

__all__ = [
    "CompletionResult",
    "cache_clear",
    "cache_stats",
    "complete",
    "complete_stream",
    "completion_id",
    "model_load",
    "model_unload",
    "provider_activate",
]
