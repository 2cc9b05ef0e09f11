"""lm-evaluation-harness against a live site: the project's own task (evaluation/harness/llmsite_facts), run by
lm-eval's `local-completions` model through /v1/completions of a server serving the real SmolLM2, scores every
question as the same weights do in this process with transformers (docs/evaluation-harness.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from django.conf import settings

from llmsite.testing import ROOT, start_live_server

pytestmark = [pytest.mark.live_server, pytest.mark.real_model]

MODEL = "SmolLM2-135M-Instruct"
TASK = "llmsite_facts"
TASKS_DIR = ROOT / "evaluation" / "harness"
QUESTIONS = TASKS_DIR / TASK / f"{TASK}.jsonl"
LIMIT = 8  # questions the test asks (lm-eval's `limit`: the first ones), to stay short on a 2-core machine
# Each choice's log-likelihood is a sum over its few tokens; the site and transformers agree within 1e-4 a token
# (inference/tests/test_completions_live.py).
TOL = 1e-3


@pytest.fixture(scope="module")
def smollm2() -> Path:
    from llmsite.model_store import ModelNotFound, resolve_llm_folder

    try:
        return resolve_llm_folder(MODEL, settings.MODELS_DIR)
    except ModelNotFound as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def site(tmp_path_factory, smollm2):
    server = start_live_server(
        tmp_path_factory.mktemp("harness-site"),
        MODELS_DIR=str(smollm2.parent),
        LLM_MODEL=MODEL,
        EMBEDDINGS_LOAD_AT_START="never",
    )
    yield server
    server.stop()


def questions() -> list[dict]:
    return [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()][:LIMIT]


def harness_run(site, smollm2: Path) -> dict:
    """lm-eval's Python API, as docs/evaluation-harness.md shows it, against the site."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(
        model="local-completions",
        model_args={
            "model": MODEL,
            "base_url": f"{site.url}/v1/completions",
            "tokenizer_backend": "huggingface",
            "tokenizer": str(smollm2),
            # The site takes prompts as text (not token ids): lm-eval sends its tokens decoded.
            "tokenized_requests": False,
            "num_concurrent": 1,
            "max_retries": 1,
            "header": {"Authorization": f"Bearer {site.create_api_key()}"},
        },
        tasks=[TASK],
        task_manager=TaskManager(include_path=str(TASKS_DIR)),
        limit=LIMIT,
        log_samples=True,
        bootstrap_iters=0,
    )


def reference_logliks(smollm2: Path, pairs: list[tuple[str, str]]) -> list[float]:
    """Each continuation's log-likelihood after its context, from the same weights in this process.

    Split as lm-eval splits a pair for a causal model: the whole text's tokens after the context's own."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
    scores = []
    threads = torch.get_num_threads()
    # One thread: the server's runner computes on the same cores, and two sets of spinning threads slow both down.
    torch.set_num_threads(1)
    try:
        for context, continuation in pairs:
            whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
            start = len(tokenizer(context, add_special_tokens=False)["input_ids"])
            with torch.inference_mode():
                rows = model(input_ids=torch.tensor([whole]), use_cache=False).logits[0].float().log_softmax(-1)
            scores.append(sum(float(rows[i - 1][whole[i]]) for i in range(start, len(whole))))
    finally:
        torch.set_num_threads(threads)
    return scores


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def test_lm_eval_scores_every_question_through_the_site_as_the_model_does(site, smollm2, tmp_path, monkeypatch):
    import datasets

    # The task reads its JSONL relative to the repository root; datasets caches what it read in a folder of its own.
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    asked = questions()

    results = harness_run(site, smollm2)

    samples = sorted(results["samples"][TASK], key=lambda s: s["doc_id"])
    assert [s["doc"]["question"] for s in samples] == [q["question"] for q in asked]
    pairs = [(f"Question: {q['question']}\nAnswer:", f" {choice}") for q in asked for choice in q["choices"]]
    assert [tuple(a) for s in samples for a in s["arguments"]] == pairs
    expected = iter(reference_logliks(smollm2, pairs))
    chosen, reference_chosen = [], []
    for sample, question in zip(samples, asked, strict=True):
        logliks = [loglik for loglik, _greedy in sample["filtered_resps"]]
        reference = [next(expected) for _ in question["choices"]]
        for got, want in zip(logliks, reference, strict=True):
            assert math.isclose(got, want, abs_tol=TOL), (question["question"], logliks, reference)
        chosen.append(argmax(logliks))
        reference_chosen.append(argmax(reference))
    assert chosen == reference_chosen
    accuracy = sum(c == q["answer"] for c, q in zip(reference_chosen, asked, strict=True)) / len(asked)
    assert results["results"][TASK]["acc,none"] == pytest.approx(accuracy)
    assert results["n-samples"][TASK]["effective"] == len(asked)
