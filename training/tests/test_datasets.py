"""Datasets: the shipped files, line-numbered errors, and the optional feedback export."""

from __future__ import annotations

import json
import sys
import types

import pytest

from training import datasets as ds

LIMITS = {"max_examples": 1000, "max_bytes": 1_000_000}


def write_jsonl(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}


def test_the_shipped_datasets_load_and_are_valid():
    dialogue = ds.load("dialogue", **LIMITS)
    knowledge = ds.load("knowledge", **LIMITS)
    assert len(dialogue) >= 40 and all(e.kind == "chat" for e in dialogue)
    assert any(len(e.messages) > 3 for e in dialogue)  # some multi-turn conversations
    assert len(knowledge) >= 10 and all(e.kind == "text" and e.text for e in knowledge)
    assert knowledge[0].source == "knowledge.txt:1"


def test_a_corrupt_line_is_an_error_that_names_the_file_and_the_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, "", '{"messages": [oops', GOOD])
    with pytest.raises(ds.DatasetError, match=r"bad\.jsonl:3: not valid JSON"):
        ds.load_file(path, **LIMITS)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"text": "no messages"}, 'expected an object with "messages"'),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "role must be one of system, user, assistant"),
        ({"messages": [{"role": "user", "content": 3}]}, "content must be a string"),
        ({"messages": [{"role": "user", "content": "only a question"}]}, "no assistant message"),
        ({"messages": [{"role": "assistant", "content": "I start"}, {"role": "user", "content": "hm"}]}, "first"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]}, "must not be empty"),
    ],
)
def test_each_bad_conversation_shape_is_named(tmp_path, record, message):
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, record])
    with pytest.raises(ds.DatasetError) as caught:
        ds.load_file(path, **LIMITS)
    assert caught.value.message.startswith("data.jsonl:2: ") and message in caught.value.message


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"fine\n\xff\xfe broken\n")
    with pytest.raises(ds.DatasetError, match=r"notes\.txt:2: not UTF-8"):
        ds.load_file(path, **LIMITS)


def test_limits_on_size_and_count(tmp_path):
    path = write_jsonl(tmp_path / "many.jsonl", [GOOD] * 5)
    with pytest.raises(ds.DatasetError, match="5 examples; the limit is 4"):
        ds.load_file(path, max_examples=4, max_bytes=1_000_000)
    with pytest.raises(ds.DatasetError, match="the limit is 10"):
        ds.load_file(path, max_examples=100, max_bytes=10)


def test_files_in_the_data_folder_become_datasets_but_never_shadow_shipped_ones(tmp_path):
    write_jsonl(tmp_path / "support.jsonl", [GOOD])
    write_jsonl(tmp_path / "dialogue.jsonl", [GOOD])
    (tmp_path / "ignored.csv").write_text("a,b\n")
    found = ds.file_datasets(tmp_path)
    assert found["support"].origin == "data" and found["dialogue"].origin == "shipped"
    assert "ignored" not in found
    assert len(ds.load("support", data_dir=tmp_path, **LIMITS)) == 1
    with pytest.raises(ds.DatasetUnavailable, match="unknown dataset 'nope'"):
        ds.load("nope", data_dir=tmp_path, **LIMITS)


@pytest.fixture
def feedback_services(monkeypatch):
    """Stand in for feedback.services (being built elsewhere) with a module of our choosing."""

    def install(**attributes):
        module = types.ModuleType("feedback.services")
        for name, value in attributes.items():
            setattr(module, name, value)
        monkeypatch.setitem(sys.modules, "feedback.services", module)
        import feedback

        monkeypatch.setattr(feedback, "services", module, raising=False)

    return install


def test_feedback_is_unavailable_with_a_reason_until_the_export_exists(feedback_services):
    feedback_services()
    info = ds.catalogue()["feedback"]
    assert not info.available and "export_training_examples is missing" in info.detail
    with pytest.raises(ds.DatasetUnavailable, match="not available yet"):
        ds.load("feedback", **LIMITS)


def test_feedback_examples_are_validated_like_file_lines(feedback_services):
    feedback_services(export_training_examples=lambda: iter([GOOD, GOOD]))
    assert ds.catalogue()["feedback"].available
    assert [e.source for e in ds.load("feedback", **LIMITS)] == ["feedback example 1", "feedback example 2"]

    feedback_services(export_training_examples=lambda: iter([GOOD, {"messages": "nope"}]))
    with pytest.raises(ds.DatasetError, match="feedback example 2: "):
        ds.load("feedback", **LIMITS)

    feedback_services(export_training_examples=lambda: iter([]))
    with pytest.raises(ds.DatasetUnavailable, match="no examples yet"):
        ds.load("feedback", **LIMITS)


def test_a_failing_export_is_reported_not_raised(feedback_services):
    def broken():
        raise RuntimeError("database went away")

    feedback_services(export_training_examples=broken)
    with pytest.raises(ds.DatasetError, match="the feedback export failed: RuntimeError: database went away"):
        ds.load("feedback", **LIMITS)
