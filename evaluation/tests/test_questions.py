"""The question set: well formed, answerable from the shipped knowledge, and held out from the training dialogue."""

from __future__ import annotations

import json

from evaluation import engine, services
from training.datasets import SHIPPED_DIR


def test_the_question_set_loads_with_enough_questions():
    questions = services.questions()
    assert 40 <= len(questions) <= 100
    assert len({q.id for q in questions}) == len(questions)


def test_no_question_appears_in_the_training_dialogue():
    dialogue = (SHIPPED_DIR / "dialogue.jsonl").read_text()
    said = {
        engine.normalise(message["content"])
        for line in dialogue.splitlines()
        for message in json.loads(line)["messages"]
    }
    whole = engine.normalise(dialogue)
    for question in services.questions():
        asked = engine.normalise(question.question)
        assert asked not in said, question.id
        assert asked not in whole, question.id


def test_every_question_has_an_accepted_answer_in_the_knowledge_text():
    knowledge = (SHIPPED_DIR / "knowledge.txt").read_text()
    for question in services.questions():
        assert engine.is_correct(knowledge, question.answers), question.id


def test_a_broken_question_file_names_its_line(tmp_path):
    import pytest

    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"id": "a", "question": "Q?", "answers": ["x"]}\n{"id": "a", "question": "Q?", "answers": ["y"]}\n'
    )
    with pytest.raises(engine.EvaluationError, match=r"q\.jsonl:2: `id` must be a unique"):
        engine.load_questions(path)
