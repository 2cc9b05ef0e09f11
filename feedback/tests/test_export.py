"""Feedback as training data: chat-format JSONL of the good answers, the bad ones for review."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from conversations.services import conversation_create, conversation_delete
from feedback import services
from feedback.models import Feedback
from feedback.tests.conftest import answer_to

pytestmark = pytest.mark.django_db


def rate(user, message, rating: int, comment: str | None = None) -> Feedback:
    return services.feedback_create(user=user, rating=rating, message=message.pk, comment=comment)[0]


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_good_answers_export_as_chat_examples_with_their_history(alice, chat_answer):
    first = chat_answer(alice, "What is 2+2?", "4", system="Be brief.")
    follow_up = answer_to(first.conversation, "And 3+3?", "6")
    rate(alice, first, 1)
    rate(alice, follow_up, 1, comment="right")

    examples = list(services.export_training_examples())

    assert examples == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "4"},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "4"},
                {"role": "user", "content": "And 3+3?"},
                {"role": "assistant", "content": "6"},
            ]
        },
    ]


def test_bad_answers_and_unusable_ones_are_not_training_examples(alice, bob, chat_answer):
    rate(alice, chat_answer(alice, "Capital of France?", "Berlin"), -1, comment="wrong")
    services.feedback_create(user=alice, rating=1, response="an answer without its question")
    services.feedback_create(user=alice, rating=1, prompt="Hi", response="   ")
    # The same exchange rated good by two API callers teaches once.
    for user in (alice, bob):
        services.feedback_create(user=user, rating=1, prompt="Hi", response="Hello!")

    examples = list(services.export_training_examples())

    assert examples == [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}]


def test_feedback_outlives_its_conversation_in_the_export(alice, chat_answer):
    answer = chat_answer(alice, "Keep me", "Kept")
    rate(alice, answer, 1)
    conversation_delete(conversation=answer.conversation)

    assert Feedback.objects.get().message is None
    assert list(services.export_training_examples()) == [
        {"messages": [{"role": "user", "content": "Keep me"}, {"role": "assistant", "content": "Kept"}]}
    ]


def test_the_export_filters_by_date_and_model(alice, chat_answer):
    old = rate(alice, chat_answer(alice, "old", "a", model="tiny-a"), 1)
    new = rate(alice, chat_answer(alice, "new", "b", model="tiny-b"), 1)
    Feedback.objects.filter(pk=old.pk).update(created="2025-01-01T10:00:00Z")
    Feedback.objects.filter(pk=new.pk).update(created="2025-03-01T10:00:00Z")

    def prompts(**filters) -> list[str]:
        return [e["messages"][0]["content"] for e in services.export_training_examples(**filters)]

    assert prompts() == ["old", "new"]
    assert prompts(model="tiny-b") == ["new"]
    assert prompts(since=dt.date(2025, 2, 1)) == ["new"]
    assert prompts(until=dt.date(2025, 1, 1)) == ["old"]


def test_review_items_carry_the_rating_comment_and_origin(alice, chat_answer):
    answer = chat_answer(alice, "Capital of France?", "Berlin", model="tiny-b")
    feedback = rate(alice, answer, -1, comment="<b>wrong</b> city")

    (item,) = services.export_review_items()

    assert item["messages"][-1] == {"role": "assistant", "content": "Berlin"}
    assert item["messages"][-2] == {"role": "user", "content": "Capital of France?"}
    assert (item["rating"], item["comment"], item["model"], item["provider"]) == (-1, "wrong city", "tiny-b", "hf")
    assert (item["feedback_id"], item["message_id"], item["user"]) == (feedback.pk, answer.pk, "alice")


def test_the_export_command_writes_both_files(alice, chat_answer, tmp_path):
    rate(alice, chat_answer(alice, "Hi", "Hello"), 1)
    rate(alice, chat_answer(alice, "2+2?", "5"), -1, comment="bad maths")
    out = tmp_path / "export" / "sft.jsonl"
    stdout, stderr = StringIO(), StringIO()

    call_command("feedback", "export", "--out", str(out), stdout=stdout, stderr=stderr)

    assert read_jsonl(out) == [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    ]
    (review,) = read_jsonl(tmp_path / "export" / "sft.negative.jsonl")
    assert (review["comment"], review["messages"][-1]["content"]) == ("bad maths", "5")
    assert "1 training examples" in stdout.getvalue()
    assert "positive" in stderr.getvalue() and "100%" in stderr.getvalue()  # the progress bars
    assert not list(out.parent.glob(".*.tmp"))  # no temporary files left behind


def test_the_export_command_refuses_bad_dates_and_one_file_for_both(tmp_path):
    with pytest.raises(CommandError, match="not a date"):
        call_command("feedback", "export", "--out", str(tmp_path / "a.jsonl"), "--since", "last week")
    with pytest.raises(CommandError, match="different files"):
        out = str(tmp_path / "a.jsonl")
        call_command("feedback", "export", "--out", out, "--negative-out", out)


def test_the_list_command_shows_ratings_filtered(alice, bob, chat_answer):
    rate(alice, chat_answer(alice), 1, comment="nice")
    rate(bob, chat_answer(bob), -1, comment="multi\nline <i>rude</i>")
    stdout, stderr = StringIO(), StringIO()

    call_command("feedback", "list", "--rating", "-1", stdout=stdout, stderr=stderr)

    lines = stdout.getvalue().splitlines()
    assert len(lines) == 2  # header and bob's row
    assert "bob" in lines[1] and "-1" in lines[1] and "multi line rude" in lines[1]
    assert "1 of 1 shown" in stderr.getvalue()


def test_exported_examples_load_into_the_chat_template_of_the_served_model(alice, chat_answer, tmp_path):
    # What the training app does with each line: tokenize it with the model's own chat template.
    folder = settings.BASE_DIR / "data" / "models" / "SmolLM2-135M-Instruct"
    if not (folder / "tokenizer.json").is_file():
        pytest.skip("the SmolLM2 tokenizer is missing; run manage.py prepare_models")
    from transformers import AutoTokenizer

    rate(alice, chat_answer(alice, "Name a colour", "Blue", system="Answer with one word."), 1)
    out = tmp_path / "sft.jsonl"
    services.write_jsonl(services.export_training_examples(), out)
    tokenizer = AutoTokenizer.from_pretrained(folder)

    (example,) = read_jsonl(out)
    text = tokenizer.apply_chat_template(example["messages"], tokenize=False)

    assert "Answer with one word." in text and "Name a colour" in text and text.rstrip().endswith("Blue<|im_end|>")


def test_every_example_passes_the_training_apps_dataset_loader(alice, chat_answer):
    datasets = pytest.importorskip("training.datasets")
    # Awkward histories: a greeting before any question, an earlier empty answer, a plain pair.
    greeted = conversation_create(user=alice, messages=[{"role": "assistant", "content": "Hello! Ask me anything."}])
    rate(alice, answer_to(greeted, "Hi", "Hey"), 1)
    empty = chat_answer(alice, "First", "")
    rate(alice, answer_to(empty.conversation, "Again", "Ok"), 1)
    rate(alice, chat_answer(alice, "2+2?", "4", system="Be brief."), 1)

    examples = datasets.load_feedback(max_examples=100)

    assert [e.messages for e in examples] == [
        (("user", "Hi"), ("assistant", "Hey")),
        (("system", "Be brief."), ("user", "2+2?"), ("assistant", "4")),
    ]
