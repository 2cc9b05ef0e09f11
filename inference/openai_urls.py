"""OpenAI-compatible routes under /v1/ (clients use base_url=http://host:port/v1)."""

from django.urls import path

from inference import openai_apis, openai_completions

urlpatterns = [
    path("chat/completions", openai_apis.chat_completions, name="openai-chat-completions"),
    path("completions", openai_completions.completions, name="openai-completions"),
    path("embeddings", openai_apis.EmbeddingsApi.as_view(), name="openai-embeddings"),
    path("models", openai_apis.ModelListApi.as_view(), name="openai-models"),
    path("models/<path:model>", openai_apis.ModelDetailApi.as_view(), name="openai-model"),
]
