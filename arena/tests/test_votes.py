"""What the votes feed: the leaderboard, the JSONL export (API and command), and the preference pairs."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from arena import services

pytestmark = pytest.mark.django_db

LEADERBOARD = "/api/v1/arena/leaderboard"
EXPORT = "/api/v1/arena/votes/export"


def test_the_leaderboard_ranks_blind_votes_best_first(alice_client, alice, make_battle):
    for _ in range(3):
        make_battle(alice, "tiny-a", "tiny-b", vote="a")
        make_battle(alice, "tiny-b", "tiny-a", vote="b")
    make_battle(alice, "tiny-a", "tiny-b", vote="tie")
    # Neither counts: both_bad is no comparison; a vote on models the user named is not blind.
    make_battle(alice, "tiny-a", "tiny-b", vote="both_bad")
    make_battle(alice, "tiny-a", "tiny-c", vote="b", blind=False)
    make_battle(alice, "tiny-a", "tiny-c")  # not voted

    table = alice_client.get(LEADERBOARD).json()
    assert [row["model"] for row in table] == ["tiny-a", "tiny-b"]
    best, worst = table
    assert best["rating"] > 1000 > worst["rating"]
    assert best["votes"] == worst["votes"] == 7
    for row in table:
        assert row["ci_low"] <= row["rating"] <= row["ci_high"]
    assert alice_client.get(LEADERBOARD).json() == table  # the same votes, the same table


def test_the_leaderboard_is_empty_without_votes(alice_client):
    assert alice_client.get(LEADERBOARD).json() == []


def test_preference_pairs_take_the_winner_as_chosen(alice, make_battle):
    make_battle(alice, vote="a", prompt="first")
    make_battle(alice, "tiny-b", "tiny-a", vote="b", prompt="second", answer_a="B's", answer_b="A's")
    make_battle(alice, vote="b", blind=False, prompt="named")
    for vote in ("tie", "both_bad", ""):
        make_battle(alice, vote=vote)
    make_battle(alice, vote="a", answer_b="  ")  # nothing to reject
    make_battle(alice, vote="a", answer_a="same", answer_b="same")

    assert services.preference_pairs() == [
        {
            "messages": [{"role": "user", "content": "first"}],
            "chosen": "answer of tiny-a",
            "rejected": "answer of tiny-b",
            "source": "arena",
        },
        {"messages": [{"role": "user", "content": "second"}], "chosen": "A's", "rejected": "B's", "source": "arena"},
        {
            "messages": [{"role": "user", "content": "named"}],
            "chosen": "answer of tiny-b",
            "rejected": "answer of tiny-a",
            "source": "arena",
        },
    ]


def test_staff_download_every_voted_battle_as_jsonl(staff_client, alice_client, alice, make_battle):
    voted = make_battle(alice, vote="tie", prompt="Hello")
    make_battle(alice)  # not voted: not exported
    response = staff_client.get(EXPORT, HTTP_ACCEPT="application/jsonl")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/jsonl")
    assert "attachment" in response["Content-Disposition"]
    lines = [json.loads(line) for line in response.content.decode().splitlines()]
    assert len(lines) == 1
    row = lines[0]
    assert row["id"] == voted.pk and row["vote"] == "tie" and row["user"] == "alice"
    assert row["messages"] == [{"role": "user", "content": "Hello"}]
    assert (row["model_a"], row["answer_a"], row["model_b"], row["answer_b"]) == (
        "tiny-a",
        "answer of tiny-a",
        "tiny-b",
        "answer of tiny-b",
    )
    assert alice_client.get(EXPORT).status_code == 403


def test_export_votes_writes_the_same_lines_to_a_file_or_stdout(alice, make_battle, tmp_path, staff_client):
    make_battle(alice, vote="a")
    make_battle(alice, vote="both_bad")
    target = tmp_path / "out" / "votes.jsonl"
    call_command("export_votes", "--output", str(target), stderr=io.StringIO())
    out = io.StringIO()
    call_command("export_votes", stdout=out)
    assert target.read_text() == out.getvalue() == staff_client.get(EXPORT).content.decode()
    assert [json.loads(line)["vote"] for line in out.getvalue().splitlines()] == ["a", "both_bad"]
