"""The admin for feedback, conversations and messages: lists, filters, search, CSV export, inert text."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from conversations.models import Conversation, Message
from feedback import services
from feedback.models import Feedback
from feedback.tests.test_feedback_api import markup_in

pytestmark = pytest.mark.django_db

RAW = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def rated(alice, bob, chat_answer):
    good, _ = services.feedback_create(
        user=alice, rating=1, comment="clear & correct", message=chat_answer(alice, "Hi", "Hello", model="tiny-a").pk
    )
    bad, _ = services.feedback_create(
        user=bob, rating=-1, comment='=HYPERLINK("http://evil")', message=chat_answer(bob, "Q", "A", model="tiny-b").pk
    )
    return good, bad


def download(client: Client, url: str, ids: list[int]) -> list[dict[str, str]]:
    response = client.post(url, {"action": "export_csv", "_selected_action": ids})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


AWARE = "+00%3A00%3A00%2B00%3A00"  # " 00:00:00+00:00", as the admin's own date links write it


@pytest.mark.parametrize(
    "query, count",
    [
        ("", 2),
        ("?rating__exact=-1", 1),
        ("?rating__exact=1", 1),
        ("?model=tiny-a", 1),
        (f"?created__gte=2000-01-01{AWARE}", 2),
        (f"?created__gte=2999-01-01{AWARE}", 0),
        ("?q=correct", 1),
        ("?q=bob", 1),
    ],
)
def test_the_feedback_changelist_loads_with_each_filter(admin_client, rated, query, count):
    response = admin_client.get(f"/admin/feedback/feedback/{query}")
    assert response.status_code == 200
    assert response.context["cl"].result_count == count


def test_the_feedback_filters_select_the_right_rows(admin_client, rated):
    good, bad = rated
    assert list(admin_client.get("/admin/feedback/feedback/?rating__exact=-1").context["cl"].result_list) == [bad]
    assert list(admin_client.get("/admin/feedback/feedback/?model=tiny-a").context["cl"].result_list) == [good]


def test_the_feedback_csv_export_has_every_row_and_defuses_formulas(admin_client, rated):
    good, bad = rated
    rows = download(admin_client, "/admin/feedback/feedback/", [good.pk, bad.pk])
    by_id = {int(r["id"]): r for r in rows}
    assert set(by_id) == {good.pk, bad.pk}
    assert by_id[good.pk]["comment"] == "clear & correct"
    assert by_id[good.pk]["rating"] == "1" and by_id[bad.pk]["rating"] == "-1"
    assert by_id[good.pk]["model"] == "tiny-a"
    assert by_id[good.pk]["conversation"] == str(good.message.conversation_id)
    # A spreadsheet would run =HYPERLINK(...); the leading quote makes it text.
    assert by_id[bad.pk]["comment"] == '\'=HYPERLINK("http://evil")'


def test_markup_that_reached_the_database_shows_as_inert_text_in_the_admin(admin_client, alice, chat_answer):
    # Rows written around the service (an import, an older version): the admin must still escape them.
    answer = chat_answer(alice, prompt=RAW, text=RAW)
    feedback = Feedback.objects.create(
        user=alice, rating=-1, comment=RAW, message=answer, prompt=RAW, response=RAW, model="tiny-a"
    )
    pages = [
        "/admin/feedback/feedback/",
        f"/admin/feedback/feedback/{feedback.pk}/change/",
        "/admin/conversations/message/",
        f"/admin/conversations/message/{answer.pk}/change/",
        f"/admin/conversations/conversation/{answer.conversation_id}/change/",
    ]
    for url in pages:
        html = admin_client.get(url).content.decode()
        assert RAW not in html, url
        assert "<img src=x onerror" not in html, url
        assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html, url


def test_sanitised_comments_render_without_markup_in_the_admin(admin_client, alice, chat_answer):
    services.feedback_create(user=alice, rating=-1, comment=f"rude {RAW} words", message=chat_answer(alice).pk)
    html = admin_client.get("/admin/feedback/feedback/").content.decode()
    assert "rude  words" in html
    assert "pwned" not in html and "onerror" not in html


def test_feedback_is_read_only_in_the_admin(admin_client, rated):
    good, _ = rated
    assert admin_client.get("/admin/feedback/feedback/add/").status_code == 403
    admin_client.post(f"/admin/feedback/feedback/{good.pk}/change/", {"comment": "<b>edited</b>", "rating": -1})
    good.refresh_from_db()
    assert (good.comment, good.rating) == ("clear & correct", 1)


def test_staff_without_permissions_cannot_see_feedback(client, staff, rated):
    client.force_login(staff)
    assert client.get("/admin/feedback/feedback/").status_code == 403


def test_staff_with_view_permission_can_list_and_export(client, staff, rated):
    staff.user_permissions.add(Permission.objects.get(codename="view_feedback"))
    client.force_login(staff)
    assert client.get("/admin/feedback/feedback/?rating__exact=1").status_code == 200
    assert len(download(client, "/admin/feedback/feedback/", [f.pk for f in rated])) == 2


@pytest.mark.parametrize(
    "url",
    [
        "/admin/conversations/conversation/",
        "/admin/conversations/conversation/?q=alice",
        "/admin/conversations/conversation/?messages__model=tiny-a",
        f"/admin/conversations/conversation/?created__gte=2000-01-01{AWARE}",
        "/admin/conversations/message/",
        "/admin/conversations/message/?role__exact=assistant",
        "/admin/conversations/message/?model=tiny-b",
        "/admin/conversations/message/?q=Hello",
    ],
)
def test_the_conversation_and_message_changelists_load(admin_client, rated, url):
    response = admin_client.get(url)
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


def test_conversations_and_messages_export_as_csv(admin_client, rated):
    chats = list(Conversation.objects.order_by("id"))
    rows = download(admin_client, "/admin/conversations/conversation/", [c.pk for c in chats])
    assert sorted((r["user"], r["messages"]) for r in rows) == [("alice", "2"), ("bob", "2")]

    messages = list(Message.objects.order_by("id"))
    rows = download(admin_client, "/admin/conversations/message/", [m.pk for m in messages])
    assert {(r["user"], r["role"], r["content"], r["model"]) for r in rows} == {
        ("alice", "user", "Hi", ""),
        ("alice", "assistant", "Hello", "tiny-a"),
        ("bob", "user", "Q", ""),
        ("bob", "assistant", "A", "tiny-b"),
    }


def test_the_tag_check_used_here_catches_raw_markup():
    assert markup_in(RAW)
