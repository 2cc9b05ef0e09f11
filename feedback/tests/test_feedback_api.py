"""POST/GET /api/v1/feedback: ratings on your own answers, comments stored as inert plain text."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from feedback.models import Feedback
from feedback.sanitize import to_plain_text
from inference.models import InferenceRecord

pytestmark = pytest.mark.django_db

# From the OWASP XSS filter evasion cheat sheet, plus mutation-XSS payloads that only become a tag
# once a first sanitising pass has decoded them.
XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">click me</a>',
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<IMG SRC=javascript:alert(String.fromCharCode(88,83,83))>",
    "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "<IMG SRC=" + "".join(f"&#{ord(c)};" for c in "javascript:alert('XSS')") + ">",
    '<a href="&#x6A;avascript:alert(1)">x</a>',
    '<<SCRIPT>alert("XSS");//\\<</SCRIPT>',
    "<svg/onload=alert(1)>",
    "<BODY ONLOAD=alert('XSS')>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<META HTTP-EQUIV="refresh" CONTENT="0;url=javascript:alert(\'XSS\');">',
    "<STYLE>@import'http://xss.rocks/xss.css';</STYLE>",
    '<div style="background-image: url(javascript:alert(1))">styled</div>',
    '"><script>alert(1)</script>',
    '<IMG """><SCRIPT>alert("XSS")</SCRIPT>">',
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&amp;lt;img src=x onerror=alert(1)&amp;gt;",
    "<!--<img src=x onerror=alert(1)>-->",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<input onfocus=alert(1) autofocus>",
    '<object data="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="></object>',
]


class TagFinder(HTMLParser):
    """Everything an HTML parser would treat as markup in a piece of text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.markup: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.markup.append(f"<{tag} {attrs}>")

    def handle_endtag(self, tag):
        self.markup.append(f"</{tag}>")

    def handle_comment(self, data):
        self.markup.append(f"<!--{data}-->")

    def handle_decl(self, decl):
        self.markup.append(f"<!{decl}>")

    def unknown_decl(self, data):
        self.markup.append(f"<![{data}]>")


def markup_in(text: str) -> list[str]:
    finder = TagFinder()
    finder.feed(text)
    finder.close()
    return finder.markup


def test_the_tag_finder_sees_tags():  # the check below must be able to fail
    assert markup_in("<img src=x onerror=alert(1)>") == ["<img [('src', 'x'), ('onerror', 'alert(1)')]>"]


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_a_comment_with_markup_is_stored_without_any_tag(alice_client, chat_answer, alice, payload):
    answer = chat_answer(alice)
    response = alice_client.post(
        "/api/v1/feedback", {"rating": -1, "message": answer.pk, "comment": f"bad {payload} answer"}, format="json"
    )
    assert response.status_code == 201, response.content

    stored = Feedback.objects.get().comment
    assert markup_in(stored) == []
    assert "<script" not in stored.lower() and "onerror" not in stored.lower()
    assert stored.startswith("bad")  # the words around it survive (unless an unclosed element swallows them)
    assert response.json()["comment"] == stored


def test_plain_text_survives_sanitising_unchanged():
    text = "2 < 3 and 5 > 4, Tom & Jerry, <3, a→b, \"quoted\" 'single'\nsecond line"
    assert to_plain_text(text) == text


def test_a_comment_of_5001_characters_is_a_400_and_nothing_is_stored(alice_client, chat_answer, alice):
    answer = chat_answer(alice)
    response = alice_client.post(
        "/api/v1/feedback", {"rating": 1, "message": answer.pk, "comment": "a" * 5001}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "comment"
    assert "5001" in response.json()["error"]["message"]
    assert not Feedback.objects.exists()


def test_a_comment_of_5000_characters_is_kept_whole(alice_client, chat_answer, alice):
    answer = chat_answer(alice)
    response = alice_client.post(
        "/api/v1/feedback", {"rating": 1, "message": answer.pk, "comment": "a" * 5000}, format="json"
    )
    assert response.status_code == 201
    assert Feedback.objects.get().comment == "a" * 5000


@pytest.mark.parametrize("comment", ["", "   ", "\n\t ", None, "<p> </p>", "<script>x</script>"])
def test_an_empty_comment_is_stored_as_none(alice_client, chat_answer, alice, comment):
    answer = chat_answer(alice)
    response = alice_client.post(
        "/api/v1/feedback", {"rating": 1, "message": answer.pk, "comment": comment}, format="json"
    )
    assert response.status_code == 201
    assert Feedback.objects.get().comment is None
    assert response.json()["comment"] is None


@pytest.mark.parametrize("rating", [0, 2, -2, "up", True, None, 1.5, [1]])
def test_a_rating_other_than_1_or_minus_1_is_a_400(alice_client, chat_answer, alice, rating):
    answer = chat_answer(alice)
    response = alice_client.post("/api/v1/feedback", {"rating": rating, "message": answer.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "rating"
    assert not Feedback.objects.exists()


def test_rating_a_message_copies_the_exchange_provider_and_model(alice_client, chat_answer, alice):
    answer = chat_answer(alice, "What is 2+2?", "4", system="Be brief.", model="tiny-b")
    response = alice_client.post("/api/v1/feedback", {"rating": 1, "message": answer.pk}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["message"], body["conversation"]) == (answer.pk, answer.conversation_id)
    assert (body["prompt"], body["response"], body["provider"], body["model"]) == ("What is 2+2?", "4", "hf", "tiny-b")
    assert Feedback.objects.get().context == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
    ]


def test_rating_a_message_again_replaces_the_rating(alice_client, chat_answer, alice):
    answer = chat_answer(alice)
    assert alice_client.post("/api/v1/feedback", {"rating": 1, "message": answer.pk}, format="json").status_code == 201
    again = alice_client.post(
        "/api/v1/feedback", {"rating": -1, "message": answer.pk, "comment": "changed my mind"}, format="json"
    )
    assert again.status_code == 200
    stored = Feedback.objects.get()
    assert (stored.rating, stored.comment) == (-1, "changed my mind")


def test_rating_another_users_message_is_a_404_and_nothing_is_stored(bob_client, chat_answer, alice):
    answer = chat_answer(alice, "my secret question", "my secret answer")
    response = bob_client.post("/api/v1/feedback", {"rating": -1, "message": answer.pk}, format="json")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "not_found",
        "message": f"message {answer.pk} not found",
        "field": "message",
    }
    assert not Feedback.objects.exists()


def test_only_answers_can_be_rated(alice_client, chat_answer, alice):
    answer = chat_answer(alice)
    question = answer.conversation.messages.get(role="user")
    response = alice_client.post("/api/v1/feedback", {"rating": 1, "message": question.pk}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "message"


def test_api_callers_rate_a_prompt_and_response_tied_to_their_completion(alice_client, alice, bob_client):
    record = InferenceRecord.objects.create(user=alice, provider="openai", model="gpt-4o-mini")
    body = {"rating": 1, "prompt": "Hi", "response": "Hello!", "completion": f"cmpl-{record.request_id.hex}"}

    assert bob_client.post("/api/v1/feedback", body, format="json").status_code == 404  # not bob's request
    response = alice_client.post("/api/v1/feedback", body, format="json")

    assert response.status_code == 201
    stored = Feedback.objects.get()
    assert (stored.prompt, stored.response, stored.provider, stored.model) == ("Hi", "Hello!", "openai", "gpt-4o-mini")
    assert stored.message is None
    assert stored.context == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    "extra, field",
    [
        ({}, "message"),  # nothing to rate
        ({"prompt": "only a prompt"}, "message"),
        ({"message": "MESSAGE", "response": "also text"}, "message"),
        ({"message": "MESSAGE", "model": "gpt-5"}, "message"),
        ({"response": "x", "comment": 42}, "comment"),
        ({"response": "x", "stars": 5}, "stars"),
    ],
)
def test_a_bad_combination_is_a_400_naming_the_field(alice_client, chat_answer, alice, extra, field):
    answer = chat_answer(alice)
    body = {"rating": 1, **{k: answer.pk if v == "MESSAGE" else v for k, v in extra.items()}}
    response = alice_client.post("/api/v1/feedback", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert not Feedback.objects.exists()


def test_users_see_only_their_own_feedback_and_staff_see_all(
    alice_client, bob_client, staff_client, chat_answer, alice, bob
):
    alice_client.post(
        "/api/v1/feedback", {"rating": 1, "message": chat_answer(alice).pk, "comment": "alice's"}, format="json"
    )
    bob_client.post(
        "/api/v1/feedback", {"rating": -1, "message": chat_answer(bob).pk, "comment": "bob's"}, format="json"
    )

    mine = alice_client.get("/api/v1/feedback").json()
    assert [(f["user"], f["comment"]) for f in mine["results"]] == [("alice", "alice's")]
    assert mine["count"] == 1
    everyone = staff_client.get("/api/v1/feedback").json()
    assert sorted(f["comment"] for f in everyone["results"]) == ["alice's", "bob's"]


def test_feedback_lists_filter_by_rating_model_and_date(staff_client, chat_answer, alice, bob):
    from feedback import services

    good, _ = services.feedback_create(user=alice, rating=1, message=chat_answer(alice, model="tiny-a").pk)
    bad, _ = services.feedback_create(user=bob, rating=-1, message=chat_answer(bob, model="tiny-b").pk)
    Feedback.objects.filter(pk=good.pk).update(created="2025-01-10T12:00:00Z")
    Feedback.objects.filter(pk=bad.pk).update(created="2025-02-20T08:00:00Z")

    def ids(query: str) -> list[int]:
        response = staff_client.get(f"/api/v1/feedback?{query}")
        assert response.status_code == 200, response.content
        return [f["id"] for f in response.json()["results"]]

    assert ids("rating=-1") == [bad.pk]
    assert ids("rating=1") == [good.pk]
    assert ids("model=tiny-a") == [good.pk]
    assert ids("since=2025-02-01") == [bad.pk]
    assert ids("until=2025-01-10") == [good.pk]  # a date includes its whole day
    assert ids("since=2025-01-01&until=2025-03-01") == [bad.pk, good.pk]
    assert ids("since=2025-02-20T09:00:00Z") == []
    assert ids("limit=1&offset=1") == [good.pk]
    for bad_query in ("rating=0", "since=yesterday", "limit=0"):
        assert staff_client.get(f"/api/v1/feedback?{bad_query}").status_code == 400


def test_feedback_needs_a_login(api_client):
    assert api_client.get("/api/v1/feedback").status_code == 401
    assert api_client.post("/api/v1/feedback", {"rating": 1, "response": "x"}, format="json").status_code == 401


def test_posting_feedback_is_rate_limited_per_user(alice_client, bob_client, settings):
    settings.RATELIMIT_FEEDBACK = "2/m"
    body = {"rating": 1, "prompt": "Hi", "response": "Hello"}
    assert [alice_client.post("/api/v1/feedback", body, format="json").status_code for _ in range(3)] == [201, 201, 429]
    assert bob_client.post("/api/v1/feedback", body, format="json").status_code == 201
    assert Feedback.objects.count() == 3
