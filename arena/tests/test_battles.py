"""Battles through the API: two tiny models answer in this process; anonymity, bounds, votes, reveals."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync

from arena.models import Battle
from inference.models import InferenceRecord

pytestmark = pytest.mark.django_db(transaction=True)  # the answers are recorded from the event loop's threads

URL = "/api/v1/arena/battles"


def vote_url(battle_id: int) -> str:
    return f"{URL}/{battle_id}/vote"


def test_it_answers_with_both_models_without_naming_them(arena_settings, alice_client):
    response = alice_client.post(URL, {"prompt": "Name a colour.", "max_tokens": 4}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "a", "b"}
    assert "tiny-" not in json.dumps(body)  # anonymous until the vote
    battle = Battle.objects.get(pk=body["id"])
    assert {battle.model_a, battle.model_b} == {"tiny-a", "tiny-b"} and battle.blind
    for side in ("a", "b"):
        assert body[side]["text"] == getattr(battle, f"answer_{side}")
        assert body[side]["finish_reason"] in ("stop", "length")
    assert battle.finished is not None
    # Both answers went through the metered completions: one usage record per side, of alice's.
    records = InferenceRecord.objects.filter(source="arena", user__username="alice")
    assert sorted(records.values_list("model", flat=True)) == ["tiny-a", "tiny-b"]


def test_it_answers_with_the_models_named(arena_settings, alice_client):
    response = alice_client.post(URL, {"prompt": "Hi", "models": ["tiny-b", "tiny-a"], "max_tokens": 2}, format="json")
    assert response.status_code == 201, response.content
    battle = Battle.objects.get(pk=response.json()["id"])
    assert (battle.model_a, battle.model_b, battle.blind) == ("tiny-b", "tiny-a", False)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 8001}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": "Hi", "models": ["tiny-a"]}, "models"),
        ({"prompt": "Hi", "models": ["tiny-a", "tiny-a"]}, "models"),
        ({"prompt": "Hi", "models": ["tiny-a", "no-such-model"]}, "models"),
        ({"prompt": "Hi", "models": ["tiny-a", "tiny-b", "tiny-c"]}, "models"),
        ({"prompt": "Hi", "models": "tiny-a"}, "models"),
        ({"prompt": "Hi", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "Hi", "max_tokens": 100000}, "max_tokens"),
        ({"prompt": "Hi", "temperature": 1}, "temperature"),
    ],
)
def test_it_refuses_bad_input_naming_the_field(arena_settings, alice_client, body, field):
    response = alice_client.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not Battle.objects.exists()


def test_it_needs_two_models(arena_settings, alice_client, tmp_path):
    from arena.tests.conftest import build_tiny_models

    arena_settings.MODELS_DIR = build_tiny_models(tmp_path / "one", ("tiny-a",))
    response = alice_client.post(URL, {"prompt": "Hi"}, format="json")
    assert response.status_code == 409
    assert "needs two models" in response.json()["error"]["message"]


def test_it_needs_a_signed_in_user(arena_settings, api_client):
    assert api_client.post(URL, {"prompt": "Hi"}, format="json").status_code == 401
    assert api_client.get("/api/v1/arena/leaderboard").status_code == 401


def test_a_vote_reveals_the_models_once(alice_client, alice, make_battle):
    battle = make_battle(alice)
    shown = alice_client.get(f"{URL}/{battle.pk}").json()
    assert shown["model_a"] is None and shown["model_b"] is None and shown["vote"] is None
    assert shown["a"] == {"text": "answer of tiny-a", "finish_reason": "stop"}

    response = alice_client.post(vote_url(battle.pk), {"vote": "b"}, format="json")
    assert response.status_code == 200
    revealed = response.json()
    assert (revealed["vote"], revealed["model_a"], revealed["model_b"]) == ("b", "tiny-a", "tiny-b")
    assert alice_client.get(f"{URL}/{battle.pk}").json()["model_b"] == "tiny-b"

    again = alice_client.post(vote_url(battle.pk), {"vote": "a"}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    battle.refresh_from_db()
    assert battle.vote == "b" and battle.voted is not None


def test_others_battles_are_not_found(alice_client, bob, make_battle):
    battle = make_battle(bob)
    assert alice_client.get(f"{URL}/{battle.pk}").status_code == 404
    assert alice_client.post(vote_url(battle.pk), {"vote": "a"}, format="json").status_code == 404
    assert alice_client.post(vote_url(999999), {"vote": "a"}, format="json").status_code == 404
    battle.refresh_from_db()
    assert battle.vote == ""


def test_it_refuses_a_vote_while_answers_are_written_or_when_a_side_failed(alice_client, alice, make_battle):
    running = make_battle(alice, finished=None, answer_a="", answer_b="", finish_reason_a="", finish_reason_b="")
    response = alice_client.post(vote_url(running.pk), {"vote": "a"}, format="json")
    assert response.status_code == 409 and "still being written" in response.json()["error"]["message"]
    failed = make_battle(alice, finish_reason_b="error", error_b="the model is unavailable", answer_b="")
    assert alice_client.post(vote_url(failed.pk), {"vote": "a"}, format="json").status_code == 409
    assert alice_client.get(f"{URL}/{failed.pk}").json()["b"]["error"] == "the model is unavailable"


@pytest.mark.parametrize("vote", ["A", "", "best", None, 1])
def test_it_refuses_a_vote_that_is_not_a_choice(alice_client, alice, make_battle, vote):
    battle = make_battle(alice)
    response = alice_client.post(vote_url(battle.pk), {"vote": vote}, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "vote"


def test_it_streams_both_answers_as_events(arena_settings, alice_client):
    response = alice_client.post(URL, {"prompt": "Hi", "max_tokens": 3, "stream": True}, format="json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    frames = parse_frames(async_to_sync(read_all)(response.streaming_content))
    assert frames[0][0] == "battle"
    battle = Battle.objects.get(pk=frames[0][1]["id"])
    done = {data["side"]: data["finish_reason"] for event, data in frames if event == "done"}
    assert done == {"a": battle.finish_reason_a, "b": battle.finish_reason_b}
    for side in ("a", "b"):
        streamed = "".join(data["text"] for event, data in frames if event == "token" and data["side"] == side)
        assert streamed == getattr(battle, f"answer_{side}")
    assert "tiny-" not in json.dumps(frames)


async def read_all(chunks) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def parse_frames(raw: bytes) -> list[tuple[str, dict]]:
    frames = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        event, data = "message", None
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
        frames.append((event, data))
    return frames


def test_a_failing_side_fails_alone(arena_settings, alice_client):
    from inference.tests.fake_upstream import FakeUpstream, json_reply

    with FakeUpstream() as upstream:
        arena_settings.OPENAI_BASE_URL = f"{upstream.url}/v1"
        arena_settings.OPENAI_API_TYPE = "openai"
        arena_settings.OPENAI_MODEL = "gpt-arena"
        arena_settings.LLM_REMOTE_MAX_RETRIES = 0
        upstream.script("POST", "/v1/chat/completions", json_reply(400, {"error": {"message": "no thanks"}}))
        body = {"prompt": "Hi", "models": ["tiny-a", "openai/gpt-arena"], "max_tokens": 3}
        response = alice_client.post(URL, body, format="json")
    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["a"]["finish_reason"] in ("stop", "length") and "error" not in answer["a"]
    assert answer["b"]["finish_reason"] == "error" and "no thanks" in answer["b"]["error"]
    battle = Battle.objects.get(pk=answer["id"])
    assert (battle.finish_reason_b, battle.answer_b) == ("error", "")
    # Nothing to compare: no vote.
    assert alice_client.post(vote_url(battle.pk), {"vote": "a"}, format="json").status_code == 409
