"""The pool from the shell: `generate --model`, `chat --model` and `/model`, `manage.py models`.

Two different tiny models (tiny-a the default, tiny-b) served in this process (LLM_RUNNER=inline),
and an OpenAI-compatible stand-in upstream for a remote model; each answer is compared with what
its model answers alone.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from inference import registry
from inference.engine import get_engine
from inference.models import InferenceRecord
from inference.providers.base import GenerationRequest, SamplingParams
from inference.tests.fake_upstream import json_reply, openai_sse, sse_reply

pytestmark = pytest.mark.django_db(transaction=True)  # the commands write records from their own threads

PROMPT = "Name a colour."
REMOTE = "openai/gpt-pool"
# Greedy, both random tiny models answer newlines alone; seeded sampling tells them apart, and repeats.
SAMPLING = {"temperature": 1.0, "seed": 7}


@pytest.fixture
def pool_settings(tiny_settings, upstream):
    """tiny-a the default, tiny-b beside it, both in this process; `openai/gpt-pool` on the stand-in upstream."""
    tiny_settings.LLM_RUNNER = "inline"
    tiny_settings.LLM_KEEP_ALIVE = 300.0
    tiny_settings.LLM_FALLBACKS = {}
    tiny_settings.OPENAI_BASE_URL = f"{upstream.url}/v1"
    tiny_settings.OPENAI_API_KEY = ""
    tiny_settings.OPENAI_API_TYPE = "openai"
    tiny_settings.OPENAI_MODEL = "gpt-pool"
    tiny_settings.ANTHROPIC_API_KEY = ""
    tiny_settings.LLM_REMOTE_MAX_RETRIES = 0
    registry._model_lists.clear()
    yield tiny_settings
    registry._model_lists.clear()


def alone(provider, tokens: int, prompt: str = PROMPT) -> str:
    """What `provider` answers greedily to `prompt`, with nothing else around."""
    sampling = SamplingParams(max_new_tokens=tokens, **SAMPLING)
    return provider.generate(GenerationRequest(prompt=prompt, sampling=sampling)).text


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def generate(*args: str) -> tuple[str, str]:
    out, err = run("generate", PROMPT, "--max-new-tokens", "6", "--temperature", "1", "--seed", "7", *args)
    return out.removesuffix("\n"), err


def run_chat(monkeypatch, lines: list[str], *args: str) -> tuple[str, str]:
    feed = iter(lines)

    def fake_input(prompt: str = "") -> str:
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    return run("chat", *args)


def loaded() -> set[str]:
    return {mid for mid, row in get_engine().pool_state().items() if row["state"] == "loaded"}


# --- generate -------------------------------------------------------------------------------------
def test_generate_answers_with_the_model_it_names_and_the_default_without_one(
    pool_settings, tiny_provider, tiny_b_provider
):
    assert alone(tiny_provider, 6) != alone(tiny_b_provider, 6)  # else this test could not tell them apart

    text, footer = generate("--model", "tiny-b")
    assert text == alone(tiny_b_provider, 6)
    assert footer.strip().startswith("[tiny-b 6 tokens")
    assert loaded() == {"tiny-b"}  # the default was not loaded for it

    text, footer = generate()
    assert text == alone(tiny_provider, 6)
    assert footer.strip().startswith("[tiny-a 6 tokens")

    records = InferenceRecord.objects.order_by("created", "id")
    assert [(r.source, r.model, r.requested_model) for r in records] == [("cli", "tiny-b", ""), ("cli", "tiny-a", "")]


def test_generate_answers_with_a_remote_model_by_its_pool_id(pool_settings, upstream):
    upstream.script("POST", "/v1/chat/completions", sse_reply(openai_sse(["Teal", "."], usage=(5, 2))))
    text, footer = generate("--model", REMOTE)
    assert text == "Teal."
    assert footer.strip().startswith(f"[{REMOTE} 2 tokens")
    assert upstream.requests_to("/v1/chat/completions")[0].body["model"] == "gpt-pool"


def test_generate_falls_back_and_says_so(pool_settings, upstream, tiny_provider):
    pool_settings.LLM_FALLBACKS = {REMOTE: ("tiny-a",)}
    upstream.script("POST", "/v1/chat/completions", json_reply(500, {"error": {"message": "boom"}}))
    text, footer = generate("--model", REMOTE)
    assert text == alone(tiny_provider, 6)
    assert footer.strip().startswith("[tiny-a 6 tokens")
    assert f"[fallback for {REMOTE}: {REMOTE}:" in footer
    record = InferenceRecord.objects.get()
    assert (record.model, record.requested_model) == ("tiny-a", REMOTE)


def test_generate_refuses_an_unknown_model_saying_how_to_list_them(pool_settings):
    for unknown in ("tiny-z", "../tiny-a", "anthropic/claude-x"):  # anthropic has no key here
        with pytest.raises(CommandError) as refused:
            generate("--model", unknown)
        assert f"`{unknown}` does not exist" in str(refused.value)
        assert "`manage.py models` lists them" in str(refused.value)
    assert loaded() == set()  # refused before anything loaded
    assert not InferenceRecord.objects.exists()


def test_generate_keep_alive_zero_unloads_the_model_after_its_answer(pool_settings):
    generate("--model", "tiny-b", "--keep-alive", "0")
    assert "tiny-b" not in loaded()
    generate("--model", "tiny-b", "--keep-alive", "5m")
    assert get_engine().pool_state()["tiny-b"]["keep_alive"] == 300.0
    with pytest.raises(CommandError, match="--keep-alive: keep_alive must be seconds or a duration"):
        generate("--keep-alive", "soon")


# --- chat -----------------------------------------------------------------------------------------
def test_chat_talks_to_the_model_it_names_and_switches_with_slash_model(
    monkeypatch, pool_settings, tiny_provider, tiny_b_provider
):
    out, err = run_chat(
        monkeypatch,
        [PROMPT, "/model tiny-z", "/reset", "/model", PROMPT, "/reset", "/provider hf tiny-b", PROMPT, "/quit"],
        "--model",
        "tiny-b",
        "--max-new-tokens",
        "6",
        "--temperature",
        "1",
        "--seed",
        "7",
    )
    answers = [line.removeprefix("bot> ") for line in out.splitlines() if line.startswith("bot> ")]
    assert answers == [alone(tiny_b_provider, 6), alone(tiny_provider, 6), alone(tiny_b_provider, 6)]
    assert err.startswith("Chatting with tiny-b.")
    assert "cannot switch: The model `tiny-z` does not exist" in err and "`manage.py models` lists them" in err
    assert "(now talking to tiny-a)" in err and "(now talking to tiny-b)" in err
    footers = [line.split()[0] for line in err.splitlines() if line.startswith("[")]
    assert footers == ["[tiny-b", "[tiny-a", "[tiny-b"]


def test_chat_refuses_an_unknown_model_before_the_first_turn(monkeypatch, pool_settings):
    monkeypatch.setattr("builtins.input", lambda prompt="": pytest.fail("the chat started"))
    with pytest.raises(CommandError, match=r"`manage\.py models` lists them"):
        call_command("chat", "--model", "tiny-z", stdout=io.StringIO(), stderr=io.StringIO())


# --- models ---------------------------------------------------------------------------------------
def test_models_lists_the_pool_as_a_table(pool_settings):
    pool_settings.LLM_FALLBACKS = {REMOTE: ("tiny-a", "tiny-b")}
    get_engine().preload("tiny-b")
    out, err = run("models")
    header, *lines = out.splitlines()
    assert header.split() == ["ID", "KIND", "STATE", "MEMORY", "QUEUE", "DEFAULT", "FALLBACKS"]
    rows = {line.split()[0]: line.split() for line in lines}
    assert rows["tiny-a"] == ["tiny-a", "local", "idle", "-", "0", "yes", "-"]
    assert rows["tiny-b"] == ["tiny-b", "local", "loaded", "-", "0", "-"]  # in this process: no runner to measure
    assert rows[REMOTE] == [REMOTE, "remote", "idle", "-", "0", "tiny-a,", "tiny-b"]
    assert rows["all-MiniLM-L6-v2"][1] == "embedding"
    assert "GET /api/v1/models" in err


def test_models_json_is_what_the_api_lists(pool_settings, alice_client):
    out, _ = run("models", "--json")
    listed = json.loads(out)
    expected = ["tiny-a", "tiny-b", REMOTE, "all-MiniLM-L6-v2"]
    # Other tests may add model folders to the shared tiny MODELS_DIR: these four, in this order.
    assert [row["id"] for row in listed if row["id"] in expected] == expected
    assert listed == alice_client.get("/api/v1/models").json()["data"]
