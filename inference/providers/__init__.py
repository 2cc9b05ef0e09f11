"""Model backends behind one protocol (`base.Provider`); one module per provider.

Plain Python: nothing here imports Django. `inference.registry` builds them from settings.
"""

from inference.providers.base import (
    Completion,
    GenerationRequest,
    Message,
    PromptTooLong,
    Provider,
    ProviderError,
    ProviderUnavailable,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)

__all__ = [
    "Completion",
    "GenerationRequest",
    "Message",
    "PromptTooLong",
    "Provider",
    "ProviderError",
    "ProviderUnavailable",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Usage",
]
