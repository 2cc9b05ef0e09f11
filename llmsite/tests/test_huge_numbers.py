"""Numbers past what the database stores are 4xx, never 500s (found by fuzzing the schema)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "method,url,body",
    [
        ("get", "/api/v1/conversations?offset=494715742135422893093289984", None),
        ("get", "/api/v1/training/runs?offset=58355900688732151808&status=queued", None),
        ("get", "/api/v1/usage?user=99999999999999999999999", None),
        ("put", "/api/v1/usage/limits/99999999999999999999999", {}),
        ("post", "/api/v1/predict", {"prompt": "hi", "conversation": 10**30}),
        ("post", "/api/v1/feedback", {"rating": 1, "message": 10**30}),
        ("get", "/api/v1/conversations/99999999999999999999999", None),
        ("delete", "/api/v1/embed/documents/99999999999999999999999", None),
        ("get", "/api/v1/training/runs/99999999999999999999999", None),
        ("delete", "/api/v1/auth/keys/99999999999999999999999", None),
    ],
)
def test_a_number_too_large_for_the_database_is_a_client_error(staff_client, method, url, body):
    call = getattr(staff_client, method)
    response = call(url, body, format="json") if body is not None else call(url)
    assert 400 <= response.status_code < 500, (url, response.status_code, response.content[:200])
