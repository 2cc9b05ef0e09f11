"""Preference datasets: the shipped pairs, JSONL pair files, the arena and feedback-pairs exports."""

from __future__ import annotations

import json
import sys
import types

import pytest

from training import datasets as ds

LIMITS = {"max_examples": 1000, "max_bytes": 1_000_000}
PAIR = {
    "messages": [{"role": "user", "content": "Does llmsite download weights?"}],
    "chosen": "No, it works offline.",
    "rejected": "Yes, every time it starts.",
    "source": "test",
}


def write_jsonl(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_the_shipped_preferences_load_as_pairs_for_dpo():
    pairs = ds.load_pairs("preferences", **LIMITS)
    assert len(pairs) >= 40
    assert all(p.messages[-1][0] == "user" and p.chosen != p.rejected for p in pairs)
    info = ds.catalogue()["preferences"]
    assert info.kind == "preference" and info.origin == "shipped" and info.available
    assert ds.catalogue()["dialogue"].kind == "chat"


def test_a_pair_file_is_not_chat_data_and_a_chat_file_is_not_pairs():
    with pytest.raises(ds.DatasetError, match=r"preferences\.jsonl holds preference pairs: they train DPO runs"):
        ds.load("preferences", **LIMITS)
    with pytest.raises(ds.DatasetError, match=r"dialogue\.jsonl: preference pairs come in a \.jsonl file whose lines"):
        ds.load_pairs("dialogue", **LIMITS)
    with pytest.raises(ds.DatasetError, match="'arena' holds preference pairs"):
        ds.load("arena", **LIMITS)


def test_pair_files_in_the_data_folder_become_preference_datasets(tmp_path):
    write_jsonl(tmp_path / "mine.jsonl", [PAIR, {**PAIR, "source": ""}])
    assert ds.catalogue(tmp_path)["mine"].kind == "preference"
    pairs = ds.load_pairs("mine", data_dir=tmp_path, **LIMITS)
    assert [p.source for p in pairs] == ["test", "mine.jsonl:2"]  # no source: the line names it
    assert pairs[0].messages == (("user", "Does llmsite download weights?"),)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"messages": PAIR["messages"], "chosen": "a"}, 'expected an object with "messages", "chosen" and "rejected"'),
        ({**PAIR, "messages": []}, '"messages" must be a non-empty list'),
        ({**PAIR, "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
         "the last message must be the user's"),
        ({**PAIR, "messages": [{"role": "tool", "content": "q"}]}, "role must be one of system, user, assistant"),
        ({**PAIR, "rejected": PAIR["chosen"]}, "the same answer"),
        ({**PAIR, "chosen": "  "}, '"chosen" must be a non-empty string'),
        ({**PAIR, "source": 3}, '"source" must be a string'),
    ],
)  # fmt: skip
def test_each_bad_pair_is_named_with_its_line(tmp_path, record, message):
    path = write_jsonl(tmp_path / "pairs.jsonl", [PAIR, record])
    with pytest.raises(ds.DatasetError, match=r"^pairs\.jsonl:2: ") as caught:
        ds.load_pairs_file(path, **LIMITS)
    assert message in caught.value.message


def test_a_corrupt_pair_line_names_the_file_and_the_line(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [PAIR, "", '{"messages": ['])
    with pytest.raises(ds.DatasetError, match=r"^pairs\.jsonl:3: not valid JSON"):
        ds.load_pairs_file(path, **LIMITS)


@pytest.fixture
def arena_services(monkeypatch):
    """Stand in for arena.services (another app) with a module of the test's choosing."""

    def install(**attributes):
        package = types.ModuleType("arena")
        module = types.ModuleType("arena.services")
        for name, value in attributes.items():
            setattr(module, name, value)
        package.services = module
        monkeypatch.setitem(sys.modules, "arena", package)
        monkeypatch.setitem(sys.modules, "arena.services", module)

    return install


def test_arena_is_listed_unavailable_with_the_reason_while_the_app_is_missing(monkeypatch):
    # What an absent app looks like to import (the installed one is imported already: hide its module too).
    monkeypatch.setitem(sys.modules, "arena", None)
    monkeypatch.setitem(sys.modules, "arena.services", None)
    info = ds.catalogue()["arena"]
    assert info.kind == "preference" and not info.available
    assert "cannot import arena.services" in info.detail
    with pytest.raises(ds.DatasetUnavailable, match="the arena export is not available"):
        ds.load_pairs("arena", **LIMITS)


def test_arena_pairs_are_validated_like_file_lines(arena_services):
    arena_services()
    assert "arena.services.preference_pairs is missing" in ds.catalogue()["arena"].detail

    arena_services(preference_pairs=lambda: [PAIR, {**PAIR, "source": "arena"}])
    assert ds.catalogue()["arena"].available
    pairs = ds.load_pairs("arena", **LIMITS)
    assert [p.source for p in pairs] == ["test", "arena"]

    arena_services(preference_pairs=lambda: [PAIR, {**PAIR, "rejected": 5}])
    with pytest.raises(ds.DatasetError, match="arena pair 2: "):
        ds.load_pairs("arena", **LIMITS)

    arena_services(preference_pairs=lambda: [])
    with pytest.raises(ds.DatasetUnavailable, match="no pairs yet: vote in some arena battles first"):
        ds.load_pairs("arena", **LIMITS)

    def broken():
        raise RuntimeError("database went away")

    arena_services(preference_pairs=broken)
    with pytest.raises(ds.DatasetError, match="the arena export failed: RuntimeError: database went away"):
        ds.load_pairs("arena", **LIMITS)


@pytest.mark.django_db
def test_feedback_pairs_are_answers_to_the_same_conversation_rated_up_and_down(alice, bob):
    from feedback.models import Feedback

    asked = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is it offline?"}]
    for user, rating, response in [(alice, 1, "Yes."), (bob, -1, "No, it needs the hub."), (bob, 1, "Yes.")]:
        Feedback.objects.create(user=user, rating=rating, context=asked, prompt="Is it offline?", response=response)
    # Rated only one way, or another conversation: no pair.
    Feedback.objects.create(
        user=alice, rating=-1, context=[{"role": "user", "content": "Hi"}], prompt="Hi", response="Go away."
    )
    pairs = ds.load_pairs("feedback-pairs", **LIMITS)
    assert len(pairs) == 1
    assert pairs[0].messages == (("system", "Be brief."), ("user", "Is it offline?"))
    assert (pairs[0].chosen, pairs[0].rejected, pairs[0].source) == ("Yes.", "No, it needs the hub.", "feedback")


@pytest.mark.django_db
def test_feedback_pairs_without_pairs_is_unavailable():
    with pytest.raises(ds.DatasetUnavailable, match="rate answers to the same prompt up and down"):
        ds.load_pairs("feedback-pairs", **LIMITS)


@pytest.mark.django_db
def test_arena_votes_are_a_preference_dataset(django_user_model):
    from django.utils import timezone

    from arena.models import Battle

    user = django_user_model.objects.create_user("voter", password="x" * 12)
    now = timezone.now()
    common = {"user": user, "model_a": "m1", "model_b": "m2", "finished": now, "voted": now}
    Battle.objects.create(prompt="Which port?", answer_a="8000", answer_b="no idea", vote="a", **common)
    Battle.objects.create(prompt="Which engine?", answer_a="none", answer_b="OpenVINO", vote="b", **common)
    Battle.objects.create(prompt="A tie", answer_a="x", answer_b="y", vote="tie", **common)

    assert ds.catalogue()["arena"].available
    pairs = ds.load_pairs("arena", **LIMITS)
    assert [(p.chosen, p.rejected, p.source) for p in pairs] == [
        ("8000", "no idea", "arena"),
        ("OpenVINO", "none", "arena"),
    ]
