"""The converted SmolLM2 folder is a faithful, loadable copy of the packaged GGUF model."""

import json

import pytest
from django.conf import settings

from llmsite.model_store import PREPARED_MARKER, resolve_llm_folder

pytestmark = pytest.mark.real_model


def test_the_prepared_folder_loads_fast_and_answers_greedily():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_llm_folder(settings.LLM_MODEL, settings.MODELS_DIR)
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert json.loads((folder / PREPARED_MARKER).read_text())["name"] == "SmolLM2-135M-Instruct"

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
