"""`manage.py chat`: streams answers, keeps the conversation, understands its slash commands."""

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)  # the chat writes records from its own threads


def run_chat(monkeypatch, lines, *args):
    feed = iter(lines)

    def fake_input(prompt=""):
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    out, err = io.StringIO(), io.StringIO()
    call_command("chat", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_sends_the_whole_conversation_and_forgets_it_on_reset(monkeypatch, serving):
    seen = []
    stream = serving.stream

    def recording(request):
        seen.append([m.content for m in request.messages])
        return stream(request)

    monkeypatch.setattr(serving, "stream", recording)
    out, err = run_chat(monkeypatch, ["first", "second", "/reset", "third", "/quit"], "--max-new-tokens", "3")
    assert seen[0] == ["first"]
    assert seen[1][0] == "first" and seen[1][-1] == "second" and len(seen[1]) == 3
    assert seen[2] == ["third"]
    assert "conversation forgotten" in err
    assert out.count("bot> ") == 3


def test_it_explains_unknown_commands_and_unavailable_providers(monkeypatch, serving):
    _, err = run_chat(monkeypatch, ["/dance", "/provider nowhere", "/quit"])
    assert "unknown command '/dance'" in err
    assert "/provider NAME" in err
    assert "unknown provider 'nowhere'" in err
