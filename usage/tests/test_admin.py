from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django import forms

from accounts import services as accounts_services
from accounts.models import ApiKey
from usage import services
from usage.models import ModelPrice, UsageBucket, UsageCounter, UsageLimit
from usage.services import Limit, Meter, QuotaExceeded, ledger_add, limits_for, price_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    return client


@pytest.fixture(autouse=True)
def _fresh_prices():
    """The price table is cached per process: no test sees another's."""
    services.prices_changed()
    yield
    services.prices_changed()


def _posted(field: forms.BoundField) -> dict[str, Any]:
    """What a browser posts for one field of an unchanged form."""
    widget, value = field.field.widget, field.value()
    if isinstance(widget, forms.MultiWidget):
        parts = value if isinstance(value, list) else widget.decompress(value)
        return {
            f"{field.html_name}{suffix}": sub.format_value(part) or ""
            for suffix, sub, part in zip(widget.widgets_names, widget.widgets, parts, strict=True)
        }
    if isinstance(widget, forms.CheckboxInput):
        return {field.html_name: "on"} if value else {}
    if isinstance(value, list | tuple):
        return {field.html_name: [str(v) for v in value]}
    return {field.html_name: "" if value is None else str(value)}


def change_form_data(response) -> dict[str, Any]:
    """The POST data of an admin change page as it was served: the form, then every inline's forms."""
    forms_ = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms_ += [inline.formset.management_form, *inline.formset.forms]
    data: dict[str, Any] = {}
    for form in forms_:
        for field in form:
            if not field.field.disabled:
                data.update(_posted(field))
    return data


def test_it_sets_a_users_daily_token_limit_on_the_user_page(admin_client, alice):
    url = f"/admin/auth/user/{alice.pk}/change/"
    page = admin_client.get(url)
    assert "Usage limits" in page.content.decode()
    assert "Empty = the site default" in page.content.decode()
    data = change_form_data(page)
    data["usage_limit-0-tokens_per_day"] = "2000"

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert Limit(f"user:{alice.pk}", "tokens_per_day", 2000) in limits_for(alice)
    # The next request is held to it.
    with pytest.raises(QuotaExceeded):
        Meter(user=alice).reserve(model="smollm2", prompt_tokens=1500, max_tokens=600)
    Meter(user=alice).reserve(model="smollm2", prompt_tokens=1500, max_tokens=500)


def test_an_untouched_limits_form_saves_no_row(admin_client, alice):
    url = f"/admin/auth/user/{alice.pk}/change/"
    data = change_form_data(admin_client.get(url))
    data["first_name"] = "Alice"

    assert admin_client.post(url, data).status_code == 302
    assert not UsageLimit.objects.exists()


def test_the_add_user_page_asks_only_for_name_and_password(admin_client):
    page = admin_client.get("/admin/auth/user/add/")
    assert page.status_code == 200
    assert page.context["inline_admin_formsets"] == []


def test_it_edits_an_api_keys_scopes_models_and_limits(admin_client, alice):
    api_key, _ = accounts_services.api_key_create(user=alice, name="ci")
    url = f"/admin/accounts/apikey/{api_key.pk}/change/"
    page = admin_client.get(url)
    assert "Limits of this key alone" in page.content.decode()
    data = change_form_data(page)
    assert data["scopes"] == ["chat", "embeddings", "metrics"]
    data["scopes"] = ["embeddings", "chat"]
    data["allowed_models"] = "smollm2, all-minilm\n smollm2\n\n"
    data["usage_limit-0-requests_per_minute"] = "5"

    response = admin_client.post(url, data)

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.scopes == ["chat", "embeddings"]
    assert api_key.allowed_models == ["smollm2", "all-minilm"]
    assert Limit(f"key:{api_key.pk}", "requests_per_minute", 5) in limits_for(alice, api_key)
    listing = admin_client.get("/admin/accounts/apikey/").content.decode()
    assert "chat, embeddings" in listing
    # Shown again as text, one model a line.
    assert "smollm2\nall-minilm</textarea>" in admin_client.get(url).content.decode()


def test_an_api_key_needs_a_scope(admin_client, alice):
    api_key, _ = accounts_services.api_key_create(user=alice, scopes=["chat"], models=["smollm2"])
    url = f"/admin/accounts/apikey/{api_key.pk}/change/"
    data = change_form_data(admin_client.get(url))
    del data["scopes"]
    data["allowed_models"] = ""

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "A key needs at least one scope." in response.content.decode()
    api_key.refresh_from_db()
    assert (api_key.scopes, api_key.allowed_models) == (["chat"], ["smollm2"])


def test_it_refuses_an_overlong_model_id(admin_client, alice):
    api_key, _ = accounts_services.api_key_create(user=alice)
    url = f"/admin/accounts/apikey/{api_key.pk}/change/"
    data = change_form_data(admin_client.get(url))
    data["allowed_models"] = "x" * 501

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "Model ids are 1 to 500 characters" in response.content.decode()
    assert ApiKey.objects.get(pk=api_key.pk).allowed_models == []


def test_a_price_saved_in_the_admin_is_used_at_once(admin_client, django_capture_on_commit_callbacks):
    assert price_of("big-model") == (0, 0)  # and now cached

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/usage/modelprice/add/", {"model": "big-model", "input_per_million": "2", "output_per_million": "6"}
        )
    assert response.status_code == 302
    assert price_of("big-model") == (Decimal(2), Decimal(6))

    price = ModelPrice.objects.get(model="big-model")
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            f"/admin/usage/modelprice/{price.pk}/change/",
            {"model": "big-model", "input_per_million": "2.5", "output_per_million": "6"},
        )
    assert price_of("big-model") == (Decimal("2.5"), Decimal(6))

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(f"/admin/usage/modelprice/{price.pk}/delete/", {"post": "yes"})
    assert price_of("big-model") == (0, 0)


def test_a_price_deleted_from_the_list_is_forgotten_at_once(admin_client, django_capture_on_commit_callbacks):
    price = ModelPrice.objects.create(model="big-model", input_per_million=3, output_per_million=9)
    assert price_of("big-model") == (Decimal(3), Decimal(9))

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/usage/modelprice/", {"action": "delete_selected", "_selected_action": [price.pk], "post": "yes"}
        )
    assert not ModelPrice.objects.exists()
    assert price_of("big-model") == (0, 0)


def test_the_ledger_is_read_only(admin_client, alice):
    ledger_add(
        user=alice,
        api_key=None,
        model="big-model",
        kind="completion",
        prompt_tokens=1000,
        completion_tokens=500,
        cost=1_500_000,
        at=datetime(2026, 11, 3, 10, tzinfo=UTC),
    )
    bucket = UsageBucket.objects.get()

    listing = admin_client.get("/admin/usage/usagebucket/")
    assert listing.status_code == 200
    text = listing.content.decode()
    assert "1.500000" in text  # cost in currency units
    assert "1500" in text  # tokens
    assert "delete_selected" not in text
    assert admin_client.get("/admin/usage/usagebucket/add/").status_code == 403
    assert admin_client.post(f"/admin/usage/usagebucket/{bucket.pk}/change/", {"requests": "0"}).status_code == 403
    assert admin_client.post(f"/admin/usage/usagebucket/{bucket.pk}/delete/", {"post": "yes"}).status_code == 403
    assert UsageBucket.objects.get().requests == 1
    assert admin_client.get("/admin/usage/usagebucket/?kind=completion&hour__year=2026").status_code == 200


def test_the_limit_counters_are_read_only(admin_client):
    counter = UsageCounter.objects.create(
        subject="user:1", kind="tokens_per_day", window_start=datetime(2026, 11, 3, tzinfo=UTC), used=7
    )

    assert "user:1" in admin_client.get("/admin/usage/usagecounter/").content.decode()
    assert admin_client.get("/admin/usage/usagecounter/add/").status_code == 403
    assert admin_client.post(f"/admin/usage/usagecounter/{counter.pk}/change/", {"used": "0"}).status_code == 403
    assert UsageCounter.objects.get().used == 7


def test_the_limits_list_finds_a_users_and_a_keys_limits_by_username(admin_client, alice, bob):
    api_key, _ = accounts_services.api_key_create(user=bob, name="phone")
    services.limits_set(user=alice, values={"tokens_per_day": 2000})
    services.limits_set(api_key=api_key, values={"requests_per_minute": 5})

    def found(query: str) -> list[UsageLimit]:
        return list(admin_client.get(f"/admin/usage/usagelimit/?q={query}").context["cl"].result_list)

    assert [(row.user, row.tokens_per_day) for row in found("alice")] == [(alice, 2000)]
    assert [(row.api_key, row.requests_per_minute) for row in found("bob")] == [(api_key, 5)]
    assert admin_client.get("/admin/usage/usagelimit/").status_code == 200
