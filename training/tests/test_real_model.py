"""The real SmolLM2-135M-Instruct: a few steps on the shipped dialogue set lower the held-out loss,
and the checkpoint loads back through the HF provider and answers (slower: about half a minute)."""

from __future__ import annotations

import pytest
from django.conf import settings

from training import datasets as ds
from training.trainer import TrainingConfig, train

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def smollm2():
    from llmsite.model_store import ModelNotFound, resolve_llm_folder

    try:
        return resolve_llm_folder("SmolLM2-135M-Instruct", settings.MODELS_DIR)
    except ModelNotFound as exc:
        pytest.skip(str(exc))


def test_three_steps_lower_the_eval_loss_and_the_result_serves(smollm2, tmp_path):
    from inference.providers.base import GenerationRequest, SamplingParams
    from inference.providers.hf import HFProvider

    examples = ds.load("dialogue", max_examples=1000, max_bytes=10_000_000)
    folder = tmp_path / "smollm2-tuned"  # never inside the real MODELS_DIR
    result = train(
        TrainingConfig(
            base_folder=smollm2,
            output_folder=folder,
            max_steps=3,
            batch_size=2,
            learning_rate=1e-4,
            warmup_ratio=0.0,
            max_length=256,
            eval_fraction=0.1,
            device="cpu",
        ),
        examples,
    )
    assert result.steps == 3 and result.eval_examples == 5
    assert result.eval_loss_after < result.eval_loss_before

    provider = HFProvider("smollm2-tuned", folder, device="cpu")
    provider.load()
    try:
        completion = provider.generate(
            GenerationRequest(prompt="What is llmsite?", sampling=SamplingParams(max_new_tokens=16))
        )
    finally:
        provider.close()
    assert completion.usage.completion_tokens > 0 and completion.text.strip()
